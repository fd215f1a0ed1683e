"""The ethics facts (ethics.rollups) follow decisions and recognition answers made through the services: after random
decisions and answers they equal a recomputation from the submissions and requests, and the regulator's turnaround
and timeliness reports give the figures computed from the raw rows."""

import random

import pytest

from cgtclinic import rollups
from ethics import recognition, services
from ethics.models import Decision, RecognitionRequest, Submission
from ethics.selectors import recognition_timeliness
from tests.ethics.recognition_world import build_world, ready_for_decision
from tests.factories.trials import TrialFactory, TrialSiteFactory
from tests.reports.helpers import percentile, report

pytestmark = pytest.mark.django_db
R = RecognitionRequest.Status
S = Submission.Status
NAMES = ["ethics.turnaround_facts", "ethics.recognition_answer_facts"]


@pytest.mark.parametrize("seed", [1, 2])
def test_facts_equal_a_recomputation_after_random_decisions_and_answers(seed, region):
    rng = random.Random(seed)
    world = build_world(region)
    people, committee = world.people, world.lead_committee
    offices = {
        world.hospital_a.pk: people["office_a"],
        world.request_b.committee.institution_id: people["office_b"],
    }
    for _ in range(4):
        trial = TrialFactory(lead_institution=committee.institution)
        TrialSiteFactory(trial=trial, institution=world.hospital_a)
        submission = ready_for_decision(trial, people["lead_office"], committee)
        if rng.random() < 0.3:
            services.submission_refer_to_meeting(submission=submission, actor=people["lead_office"], reason="复杂")
        elif rng.random() < 0.8:
            services.decision_record(
                submission=submission, actor=people["lead_office"], outcome=Decision.Outcome.APPROVE
            )
        assert rollups.differences(NAMES) == {}
    for request in RecognitionRequest.objects.filter(status=R.OPEN).select_related("committee").order_by("pk"):
        outcome = rng.choice([R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED, None])
        if outcome is not None:
            recognition.recognition_respond(
                request=request,
                actor=offices[request.committee.institution_id],
                outcome=outcome,
                note="" if outcome == R.RECOGNISED else "按本院要求",
            )
        assert rollups.differences(NAMES) == {}

    regulator = people["regulator"]
    turnaround = report(regulator, "ethics-turnaround")["summary"]
    decided = Submission.objects.filter(status=S.DECIDED).exclude(review_type="")
    days = [(s.decided_at - s.submitted_at).total_seconds() / 86400 for s in decided]
    assert turnaround["decided"] == len(days)
    assert (
        turnaround["in_review"]
        == Submission.objects.filter(status__in=[S.EXPEDITED_REVIEW, S.AWAITING_MEETING]).count()
    )
    assert turnaround["median_days"] == round(percentile(days, 0.5), 1)
    assert turnaround["max_days"] == round(max(days), 1)

    timeliness = report(regulator, "recognition-timeliness")
    raw = recognition_timeliness(requests=RecognitionRequest.objects.visible_to(regulator), by="alliance")
    figures = ("received", "answered_on_time", "answered_late", "open", "overdue")
    assert [[row[f] for f in figures] for row in timeliness["rows"]] == [[row[f] for f in figures] for row in raw]
    assert [row["median_working_hours"] for row in timeliness["rows"]] == [
        None if row["median_working_hours"] is None else float(row["median_working_hours"]) for row in raw
    ]

    # Rebuilt from the raw data, the facts are the same, and rebuilding is idempotent.
    rollups.rebuild(NAMES)
    assert rollups.differences(NAMES) == {}
    assert report(regulator, "ethics-turnaround")["summary"] == turnaround
