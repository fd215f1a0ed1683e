"""safety-timeliness: per institution and per trial and per clock, against figures computed in the test from the
reports' own times and the seeded periods; scoped to the regulator's region; constant queries at two sizes."""

import datetime
import statistics
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cgtclinic.roles import Role
from ethics import safety
from ethics.models import SafetyClock
from tests.ethics.safety_world import beijing, build_world, load_safety_parameters, record_sae, seeded
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.reports.helpers import report

pytestmark = pytest.mark.django_db
NOW = beijing(2026, 6, 30, 12, 0)
SPONSOR, EC = "sponsor_report", "ec_report"


@pytest.fixture
def regulator(region):
    return UserFactory(role=Role.REGULATOR, region=region)


def grow(world, count: int, start: int = 0) -> list[dict]:
    """SAEs aware at different hours, sent to the sponsor after 1..n hours, half reported to the committee late;
    returns what each one did, as plain times, for the independent computation."""
    done = []
    for n in range(start, start + count):
        aware = beijing(2026, 6, 1, 8, 0) + datetime.timedelta(days=n % 20, minutes=7 * n)
        with time_machine.travel(aware + datetime.timedelta(minutes=5), tick=False):
            event = record_sae(world, aware)
        sent = aware + datetime.timedelta(hours=1 + n % 5)
        with time_machine.travel(sent, tick=False):
            safety.safety_send_to_sponsor(event=event, actor=world["pi"], at=sent)
        reported = None
        if n % 3:
            reported = aware + datetime.timedelta(hours=12 if n % 2 else 30)
            with time_machine.travel(reported, tick=False):
                safety.safety_report_to_ec(event=event, actor=world["pi"])
        done.append({"aware": aware, "sent": sent, "reported": reported})
    return done


def expected(done: list[dict]) -> dict:
    """The figures per clock, from the events' times and the seeded periods alone."""
    periods = {SPONSOR: seeded("sae_sponsor_report_hours"), EC: seeded("sae_ec_report_hours")}
    figures = {}
    for kind, met_key in ((SPONSOR, "sent"), (EC, "reported")):
        hours = [(d[met_key] - d["aware"]).total_seconds() / 3600 for d in done if d[met_key]]
        limit = periods[kind]
        due = [d["aware"] + datetime.timedelta(hours=limit) for d in done]
        figures[kind] = {
            "clocks": len(done),
            "on_time": sum(h <= limit for h in hours),
            "late": sum(h > limit for h in hours),
            "open": sum(1 for d, t in zip(done, due, strict=True) if not d[met_key] and t > NOW),
            "open_overdue": sum(1 for d, t in zip(done, due, strict=True) if not d[met_key] and t <= NOW),
            "median_hours": round(statistics.median(hours), 2) if hours else None,
        }
    return figures


def test_figures_match_an_independent_computation_and_stay_in_the_region(region, regulator, other_region):
    load_safety_parameters()
    world = build_world(hospital=None)
    world["hospital"].region = region
    world["hospital"].save()
    elsewhere = build_world()  # another region's hospital: never counted
    done = grow(world, 9)
    grow(elsewhere, 2)
    with time_machine.travel(NOW, tick=False):
        data = report(regulator, "safety-timeliness")
        by_trial = report(regulator, "safety-timeliness", group_by="trial")
    rows = {row["kind"]: row for row in data["rows"]}
    assert set(rows) == {SPONSOR, EC, "committee_review"}
    for kind, figures in expected(done).items():
        row = rows[kind]
        assert row["group_name"] == world["hospital"].name_zh
        for name, value in figures.items():
            got = row[name] if name != "median_hours" else (row[name] and round(float(row[name]), 2))
            assert got == value, (kind, name)
        if figures["median_hours"] is not None:
            assert Decimal(str(row["median_days"])) == (Decimal(str(row["median_hours"])) / 24).quantize(
                Decimal("0.01")
            )
    assert data["summary"]["clocks"] == sum(row["clocks"] for row in data["rows"])
    assert [row["group_name"] for row in by_trial["rows"]] == [world["trial"].protocol_number] * 3


def test_queries_do_not_grow_with_the_data(region, regulator, django_assert_max_num_queries):
    load_safety_parameters()
    world = build_world()
    world["hospital"].region = region
    world["hospital"].save()
    used = []
    for size, start in ((2, 0), (8, 2)):
        grow(world, size, start)
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
            report(regulator, "safety-timeliness", group_by="trial")
        used.append(len(queries))
    assert used[0] == used[1]


def test_hospital_roles_read_it_in_the_admin_not_the_api(client, region):
    load_safety_parameters()
    world = build_world()
    grow(world, 2)
    office = world["ethics_office"]
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(office)
    assert api.get("/api/v1/reports/safety-timeliness/").status_code == 403
    client.force_login(office)
    page = client.get("/admin/ethics/safetyevent/timeliness/?by=trial")
    assert page.status_code == 200
    assert world["trial"].protocol_number in page.content.decode()
    stranger = UserFactory(role=Role.ETHICS_OFFICE, institution=build_world()["hospital"])
    client.force_login(stranger)
    assert world["trial"].protocol_number not in client.get("/admin/ethics/safetyevent/timeliness/").content.decode()


def test_pages_are_cut_in_name_order_with_the_count_and_total_of_every_group(region, regulator):
    """Only the page of groups is read: each page in the groups' name order, every page with the number of groups
    and the total over all clocks (its median too), and a page past the end empty with the same total."""
    load_safety_parameters()
    worlds = []
    for name in ("乙医院", "甲医院"):
        world = build_world(hospital=InstitutionFactory(region=region, name_zh=name))
        grow(world, 3)
        worlds.append(world)
    with time_machine.travel(NOW, tick=False):
        whole = report(regulator, "safety-timeliness")
        pages = [report(regulator, "safety-timeliness", page_size=2, page=page) for page in (1, 2, 3, 4)]
    assert [row["group_name"] for row in whole["rows"]] == ["乙医院"] * 3 + ["甲医院"] * 3  # by name (code point)
    assert [row for page in pages for row in page["rows"]] == whole["rows"]
    assert pages[3]["rows"] == []
    for page in pages:
        assert page["pagination"]["count"] == 6
        assert page["summary"] == whole["summary"]
    assert whole["summary"]["clocks"] == sum(row["clocks"] for row in whole["rows"]) == SafetyClock.objects.count()
    met = [float(h) for h in SafetyClock.objects.filter(met_at__isnull=False).values_list("elapsed_hours", flat=True)]
    assert round(float(whole["summary"]["median_hours"]), 2) == round(statistics.median(met), 2)


def test_a_region_without_clocks_gets_an_empty_report_with_zero_totals(region, regulator):
    load_safety_parameters()
    grow(build_world(), 2)  # another region's
    data = report(regulator, "safety-timeliness", group_by="trial")
    assert data["rows"] == [] and data["pagination"]["count"] == 0
    assert data["summary"]["clocks"] == 0 and data["summary"]["median_hours"] is None
