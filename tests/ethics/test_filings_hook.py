"""The ethics app starts the research-filing clocks: a lead approval of biomedical new-technology research opens its
filing, counted from the day the committee decided (Beijing date, even late in the evening)."""

import datetime

import pytest
import time_machine
from django.conf import settings

from cgtclinic import workdays
from cgtclinic.models import PolicyParameter
from cgtclinic.seeding import load_policy
from ethics import services
from ethics.models import Decision
from trials.models import FilingObligation, Trial, TrialReview

SH = datetime.timezone(datetime.timedelta(hours=8))
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def policy(db):
    load_policy(settings.BASE_DIR / "seeds" / "policy")
    workdays.sync_from_package(years=[2026])


def test_a_lead_approval_opens_the_new_technology_filing(routed, office, committee, trial):
    Trial.objects.filter(pk=trial.pk).update(is_new_technology=True, new_technology_reason="碱基编辑")
    TrialReview.objects.filter(trial=trial).update(decided_on=datetime.date(2026, 6, 1))
    with time_machine.travel(datetime.datetime(2026, 6, 5, 23, 50, tzinfo=SH), tick=False):
        submission = routed("expedited")
        assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
        services.opinion_record(assignment=assignment, actor=office, opinion="approve")
        services.decision_record(submission=submission, actor=office, outcome=Decision.Outcome.APPROVE)
    filing = FilingObligation.objects.get(trial=trial, kind=FilingObligation.Kind.NEW_TECHNOLOGY)
    assert filing.basis_on == datetime.date(2026, 6, 5)
    days = int(PolicyParameter.value_for("new_technology_filing_working_days", on=filing.basis_on))
    last, counted = datetime.date(2026, 6, 5), 0
    while counted < days:  # the days after Friday 5 June 2026 are plain weekdays until the 19th
        last += datetime.timedelta(days=1)
        counted += last.weekday() < 5
    assert filing.due_at == datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time(), tzinfo=SH)
