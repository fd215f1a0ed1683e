"""Loading the demo ethics files: a step the services refuse, or a bad row, names the file, row and step, and the
whole demo set is left unloaded."""

import pytest

from cgtclinic.models import Institution
from cgtclinic.seeding import SeedError, load_seeds
from ethics.models import EthicsCommittee, Submission
from tests.seeds.files import read_rows, write_rows

pytestmark = pytest.mark.django_db


def _decide_before_review(rows):
    rows[0]["steps"].insert(2, {"do": "decide", "date": "2023-09-08", "by": "ethics_office", "outcome": "approve"})


def _office_step_by_the_pi(rows):
    rows[0]["steps"][1]["by"] = "pi"


def _unknown_reviewer(rows):
    rows[0]["steps"][3]["reviewers"] = ["无名氏"]


def _holding_a_meeting_still_to_come(rows):
    rows[0]["steps"][5] = {"do": "schedule", "date": "2023-10-09", "by": "ethics_office", "meeting_in_days": 5}


@pytest.mark.parametrize(
    ("break_row", "expected"),
    [
        (_decide_before_review, "step 3"),
        (_office_step_by_the_pi, "step 2"),
        (_unknown_reviewer, "无名氏"),
        (_holding_a_meeting_still_to_come, "still to come"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_bad_submission_row_names_file_row_and_step_and_loads_nothing(seeds_dir, break_row, expected):
    load_seeds(seeds_dir)
    path = seeds_dir / "demo" / "ethics_submissions.yaml"
    rows = read_rows(path)
    break_row(rows)
    write_rows(path, rows)

    with pytest.raises(SeedError) as caught:
        load_seeds(seeds_dir, demo=True)

    message = str(caught.value)
    assert "ethics_submissions.yaml, row 1" in message
    assert expected in message
    assert not Submission.objects.exists()
    assert not EthicsCommittee.objects.exists()
    assert not Institution.objects.exists()


def test_a_committee_with_an_account_from_another_hospital_is_refused(seeds_dir):
    load_seeds(seeds_dir)
    path = seeds_dir / "demo" / "ethics.yaml"
    rows = read_rows(path)
    secretary = next(m for m in rows[1]["members"] if m["member_role"] == "secretary")
    secretary["account"] = "ethics_office"
    write_rows(path, rows)

    with pytest.raises(SeedError, match=r"ethics\.yaml, row 2 .*member 3.*institution"):
        load_seeds(seeds_dir, demo=True)
    assert not EthicsCommittee.objects.exists()
