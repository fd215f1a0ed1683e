"""load_seeds: loads cleanly, writes nothing on a second run, applies edits, and refuses bad rows whole."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cgtclinic.models import Institution, PolicyParameter, PolicyTarget, Region, Sponsor, User
from cgtclinic.roles import Role
from cgtclinic.seeding import CHANGE_REASON, SeedError, load_demo, load_policy, load_seeds
from tests.seeds.files import read_rows, write_rows
from trials import services
from trials.models import Trial, TrialSite, TrialStatusChange

pytestmark = pytest.mark.django_db

SEEDED_MODELS = (Region, PolicyParameter, PolicyTarget, Institution, Sponsor, User, Trial, TrialSite)


def _snapshot():
    """Row and history counts of every seeded model, and every status change as it stands."""
    counts = {model: (model.objects.count(), model.history.count()) for model in SEEDED_MODELS}
    changes = list(TrialStatusChange.objects.order_by("id").values_list())
    return counts, changes


def test_policy_loads_every_row_of_the_files(seeds_dir):
    report = load_policy(seeds_dir / "policy")

    assert report.tally(Region).created == len(read_rows(seeds_dir / "policy" / "regions.yaml"))
    parameters = read_rows(seeds_dir / "policy" / "parameters.yaml")
    assert report.tally(PolicyParameter).created == PolicyParameter.objects.count() == len(parameters)
    assert report.tally(PolicyTarget).created == PolicyTarget.objects.count()
    for row in parameters:
        stored = PolicyParameter.objects.get(
            code=row["code"], region__code=row["region"], effective_from=row["effective_from"]
        )
        assert stored.value == row["value"]
        assert stored.source_clause == row["source_clause"]
        assert stored.history.get().history_change_reason == CHANGE_REASON


def test_second_run_creates_and_changes_nothing(demo_report):
    before = _snapshot()

    again = load_seeds(demo=True)

    assert again.created == again.updated == 0
    assert all(tally.unchanged for tally in again.tallies.values())
    assert _snapshot() == before
    assert again.new_accounts == []


def test_an_edited_parameter_updates_its_row_and_its_history(seeds_dir):
    load_seeds(seeds_dir)
    path = seeds_dir / "policy" / "parameters.yaml"
    rows = read_rows(path)
    edited = rows[0]
    new_value = edited["value"] + 1
    edited["value"] = new_value
    edited["source_clause"] += "（修订）"
    write_rows(path, rows)

    report = load_seeds(seeds_dir)

    assert (report.tally(PolicyParameter).updated, report.tally(PolicyParameter).created) == (1, 0)
    row = PolicyParameter.objects.get(code=edited["code"], region__code=edited["region"])
    assert row.value == new_value
    assert row.source_clause.endswith("（修订）")
    latest, previous = row.history.all()[:2]
    assert latest.history_type == "~" and latest.history_change_reason == CHANGE_REASON
    assert previous.value == new_value - 1


def test_an_edited_demo_trial_updates_only_that_trial(seeds_dir):
    load_seeds(seeds_dir, demo=True)
    path = seeds_dir / "demo" / "trials.yaml"
    rows = read_rows(path)
    rows[0]["target_enrolment"] += 2
    write_rows(path, rows)

    report = load_seeds(seeds_dir, demo=True)

    assert report.updated == 1 and report.tally(Trial).updated == 1
    trial = Trial.objects.get(protocol_number=rows[0]["protocol_number"])
    assert trial.target_enrolment == rows[0]["target_enrolment"]
    assert trial.history.first().history_user.username == "admin"


def test_a_bad_row_names_file_and_row_and_loads_nothing(seeds_dir):
    load_seeds(seeds_dir)
    before = _snapshot()
    path = seeds_dir / "policy" / "parameters.yaml"
    rows = read_rows(path)
    rows[0]["value"] += 1  # a good edit before the bad row must not survive the failure
    rows[4]["unit"] = "fortnights"
    write_rows(path, rows)

    with pytest.raises(SeedError) as caught:
        load_seeds(seeds_dir)

    message = str(caught.value)
    assert "parameters.yaml" in message and "row 5" in message and "unit" in message
    assert _snapshot() == before


def _trial_row(rows, protocol_number):
    return next(row for row in rows if row["protocol_number"] == protocol_number)


def _unknown_pi(rows):
    rows[2]["pi"] = "nobody"


def _pi_without_the_pi_role(rows):
    rows[2]["pi"] = "research_office"


def _department_of_another_hospital(rows):
    rows[2]["department"] = "骨科"


def _milestones_out_of_order(rows):
    rows[2]["sites"][0]["contract_signed_on"] = rows[2]["sites"][0]["submission_received_on"]


def _milestone_in_the_future(rows):
    rows[2]["lead_site"]["first_patient_in_on"] = "2099-01-01"


def _history_step_before_the_previous(rows):
    rows[2]["history"][1]["date"] = "2020-01-01"


def _history_by_an_unknown_person(rows):
    rows[2]["history"][0]["by"] = "nobody"


def _unknown_status(rows):
    rows[2]["history"][-1]["to"] = "paused"


def _unquoted_phase(rows):
    rows[2]["phase"] = 12


def _duplicate_key(rows):
    rows[3]["protocol_number"] = rows[2]["protocol_number"]
    rows[3]["lead"] = rows[2]["lead"]


def _unknown_field(rows):
    rows[2]["colour"] = "blue"


@pytest.mark.parametrize(
    ("break_row", "expected"),
    [
        (_unknown_pi, "nobody"),
        (_pi_without_the_pi_role, "pi:"),
        (_department_of_another_hospital, "骨科"),
        (_milestones_out_of_order, "site 1): contract_signed_on"),
        (_milestone_in_the_future, "lead_site): first_patient_in_on"),
        (_history_step_before_the_previous, "history step 2"),
        (_history_by_an_unknown_person, "nobody"),
        (_unknown_status, "paused"),
        (_unquoted_phase, "phase"),
        (_duplicate_key, "row 3"),
        (_unknown_field, "colour"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_bad_demo_row_names_file_and_row_and_loads_nothing(seeds_dir, break_row, expected):
    load_seeds(seeds_dir)
    before = _snapshot()
    path = seeds_dir / "demo" / "trials.yaml"
    rows = read_rows(path)
    break_row(rows)
    write_rows(path, rows)

    with pytest.raises(SeedError) as caught:
        load_seeds(seeds_dir, demo=True)

    message = str(caught.value)
    assert "trials.yaml" in message
    assert f"row {4 if break_row is _duplicate_key else 3}" in message
    assert expected in message
    assert _snapshot() == before
    assert not Institution.objects.exists()


def test_a_bare_on_key_is_explained(seeds_dir):
    path = seeds_dir / "demo" / "trials.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(", date: ", ", on: ", 1), encoding="utf-8")

    with pytest.raises(SeedError, match="on/off/yes/no"):
        load_seeds(seeds_dir, demo=True)


def test_demo_without_policy_regions_is_refused_clearly(seeds_dir):
    with pytest.raises(SeedError, match=r"institutions\.yaml, row 1 .*Unknown region"):
        load_demo(seeds_dir / "demo")
    assert not Institution.objects.exists()


def test_overlapping_periods_are_refused(seeds_dir):
    path = seeds_dir / "policy" / "parameters.yaml"
    rows = read_rows(path)
    first, second = [i for i, row in enumerate(rows) if row["code"] == "startup_target_weeks"][:2]
    rows[first]["effective_to"] = None
    write_rows(path, rows)

    with pytest.raises(SeedError, match=rf"row {second + 1} .*overlaps"):
        load_seeds(seeds_dir)
    assert not PolicyParameter.objects.exists()


def test_a_trial_moved_on_in_the_app_keeps_its_status(seeds_dir):
    load_seeds(seeds_dir, demo=True)
    trial = Trial.objects.get(protocol_number="RK-CART-2025-01")
    services.trial_close_enrolment(trial=trial, actor=User.objects.get(username="research_office"))

    report = load_seeds(seeds_dir, demo=True)

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ENROLMENT_CLOSED
    assert (
        trial.status_changes.count()
        == len(_trial_row(read_rows(seeds_dir / "demo" / "trials.yaml"), "RK-CART-2025-01")["history"]) + 1
    )
    assert report.updated == 0
    assert any("RK-CART-2025-01" in kept for kept in report.kept_trials)


def _credentials_table(output: str) -> dict[str, list[str]]:
    """The rows of the printed credentials table by username: role, hospital / region, username, password.
    Columns are separated by two or more spaces (a role label may contain one)."""
    lines = output.splitlines()
    header = next(number for number, line in enumerate(lines) if line.split()[:1] == ["role"])
    assert re.split(r"\s{2,}", lines[header].strip()) == ["role", "hospital / region", "username", "password"]
    assert set(lines[header + 1].strip()) <= {"-", " "}
    rows = {}
    for line in lines[header + 2 :]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != 4:
            break
        rows[cells[2]] = cells
    return rows


def test_command_prints_the_credentials_table_once(seeds_dir):
    first, second = StringIO(), StringIO()

    call_command("load_seeds", "--demo", "--seeds-dir", str(seeds_dir), stdout=first)
    call_command("load_seeds", "--demo", "--seeds-dir", str(seeds_dir), stdout=second)

    demo_logins = [row["username"] for row in read_rows(seeds_dir / "demo" / "people.yaml") if row.get("demo_account")]
    table = _credentials_table(first.getvalue())
    assert list(table) == demo_logins, "every demo login, in the order of people.yaml"
    for username, (role, place, _username, password) in table.items():
        user = User.objects.select_related("institution", "region").get(username=username)
        assert user.check_password(password)
        assert role == str(Role(user.role).label)
        if user.institution:
            assert place == user.institution.short_name
        elif user.region:
            assert place == user.region.name_zh
        else:
            assert (user.role, place) == (Role.SYSTEM_ADMIN, "—")
        assert password not in second.getvalue()
    # The Guangdong recognition loop can be walked with the printed accounts.
    assert table["zhujiang_eo"][:2] == ["Ethics office staff", "珠大附一"]
    assert table["zhujiang_pi_huang"][:2] == ["Principal investigator", "珠大附一"]
    for hospital, office in (("湾区人民医院", "wanqu"), ("南粤肿瘤医院", "nanyue")):
        assert table[f"{office}_eo"][:2] == ["Ethics office staff", hospital]
        assert table[f"{office}_ro"][:2] == ["Research office staff", hospital]
    assert table["guangdong_regulator"][:2] == ["Regulator", "广东省"]
    # A later run says the accounts exist and how to reset one, and prints no table.
    assert "changepassword" in second.getvalue()
    assert all(username in second.getvalue() for username in demo_logins)
    assert "hospital / region" not in second.getvalue()


def test_command_reports_a_bad_file_without_loading(seeds_dir):
    (seeds_dir / "policy" / "regions.yaml").write_text("- code: [unclosed\n", encoding="utf-8")

    with pytest.raises(CommandError, match=r"regions\.yaml"):
        call_command("load_seeds", "--seeds-dir", str(seeds_dir), stdout=StringIO())
    assert not Region.objects.exists()


def test_a_row_removed_from_the_files_is_kept_and_reported(seeds_dir):
    load_seeds(seeds_dir)
    path = seeds_dir / "policy" / "parameters.yaml"
    rows = read_rows(path)
    removed = rows.pop()
    write_rows(path, rows)

    report = load_seeds(seeds_dir)

    assert PolicyParameter.objects.filter(code=removed["code"]).exists()
    assert [item for item in report.not_in_seeds if removed["code"] in item]


def test_a_person_on_record_made_a_demo_login_gets_a_password(seeds_dir):
    load_seeds(seeds_dir, demo=True)
    path = seeds_dir / "demo" / "people.yaml"
    rows = read_rows(path)
    person = next(row for row in rows if not row.get("demo_account"))
    person["demo_account"] = True
    write_rows(path, rows)

    report = load_seeds(seeds_dir, demo=True)

    [account] = report.new_accounts
    assert account.username == person["username"]
    assert User.objects.get(username=person["username"]).check_password(account.password)
