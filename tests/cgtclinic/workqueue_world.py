"""One hospital's work in every state the work queue knows, and a neighbour hospital with work of its own.

Plain functions (not fixtures) so the API, admin and query-count tests build the same world."""

import datetime
from dataclasses import dataclass, field

from django.utils import timezone

from cgtclinic.models import Institution, Region, User
from cgtclinic.roles import Role
from ethics.models import Decision, Meeting, RecognitionRequest, Submission
from subsidies.models import Claim
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import (
    AgendaItemFactory,
    AllianceFactory,
    DecisionFactory,
    EthicsCommitteeFactory,
    MeetingFactory,
    ReviewAssignmentFactory,
    SubmissionFactory,
)
from tests.factories.subsidies import SubsidyProgramFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory, active_site, days_ago

S = Submission.Status


@dataclass
class Hospital:
    institution: Institution
    ethics_office: User
    research_office: User
    pi: User
    rows: dict = field(default_factory=dict)


def open_request(*, committee, lead_committee, due_in: datetime.timedelta, trial=None) -> RecognitionRequest:
    """A recognition request to ``committee`` for a trial led by ``lead_committee``'s hospital, due in ``due_in``."""
    trial = trial or TrialFactory(lead_institution=lead_committee.institution)
    site = TrialSiteFactory(trial=trial, institution=committee.institution)
    now = timezone.now()
    return RecognitionRequest.objects.create(
        alliance=AllianceFactory(members=[lead_committee, committee]),
        trial=trial,
        site=site,
        committee=committee,
        subject=Submission.Kind.INITIAL,
        received_at=now - datetime.timedelta(days=10),
        remind_at=now + due_in - datetime.timedelta(days=1),
        due_at=now + due_in,
    )


def hospital(region: Region, *, copies: int = 1) -> Hospital:
    """A hospital with ``copies`` of each kind of work waiting at its offices and on its PI."""
    institution = InstitutionFactory(region=region)
    committee = EthicsCommitteeFactory(institution=institution)
    place = Hospital(
        institution=institution,
        ethics_office=UserFactory(role=Role.ETHICS_OFFICE, institution=institution),
        research_office=UserFactory(role=Role.RESEARCH_OFFICE, institution=institution),
        pi=UserFactory(role=Role.PI, institution=institution),
    )
    lead_committee = EthicsCommitteeFactory(institution=InstitutionFactory(region=region))
    rows = place.rows
    for _ in range(copies):
        trial = TrialFactory(lead_institution=institution, pi=place.pi)
        rows.setdefault("overdue_request", []).append(
            open_request(committee=committee, lead_committee=lead_committee, due_in=-datetime.timedelta(hours=2))
        )
        rows.setdefault("open_request", []).append(
            open_request(committee=committee, lead_committee=lead_committee, due_in=datetime.timedelta(days=2))
        )
        rows.setdefault("submitted", []).append(
            SubmissionFactory(trial=trial, committee=committee, status=S.SUBMITTED, submitted_at=timezone.now())
        )
        rows.setdefault("accepted", []).append(SubmissionFactory(trial=trial, committee=committee, status=S.ACCEPTED))
        expedited = SubmissionFactory(trial=trial, committee=committee, status=S.EXPEDITED_REVIEW)
        ReviewAssignmentFactory(submission=expedited, opinion="approve", recorded_at=timezone.now())
        rows.setdefault("to_decide", []).append(expedited)
        still_reviewing = SubmissionFactory(trial=trial, committee=committee, status=S.EXPEDITED_REVIEW)
        ReviewAssignmentFactory(submission=still_reviewing)
        rows.setdefault("still_reviewing", []).append(still_reviewing)
        rows.setdefault("meeting", []).append(
            MeetingFactory(committee=committee, scheduled_at=timezone.now() + datetime.timedelta(days=5))
        )
        cancelled = MeetingFactory(
            committee=committee,
            scheduled_at=timezone.now() - datetime.timedelta(days=30),
            status=Meeting.Status.CANCELLED,
        )
        rows.setdefault("finished_meeting", []).append(cancelled)
        held = MeetingFactory(
            committee=committee, scheduled_at=timezone.now() - datetime.timedelta(days=1), status=Meeting.Status.HELD
        )
        awaiting = SubmissionFactory(trial=trial, committee=committee, status=S.AWAITING_MEETING)
        AgendaItemFactory(meeting=held, submission=awaiting)
        rows.setdefault("held_meeting", []).append(held)
        rows.setdefault("after_meeting", []).append(awaiting)
        planned_for = SubmissionFactory(trial=trial, committee=committee, status=S.AWAITING_MEETING)
        AgendaItemFactory(meeting=rows["meeting"][-1], submission=planned_for)
        rows.setdefault("before_meeting", []).append(planned_for)
        rows.setdefault("continuing_due", []).append(
            DecisionFactory(
                submission=SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED),
                next_continuing_review_due=timezone.localdate() + datetime.timedelta(days=10),
                letter_number="伦审〔2026〕001",
            )
        )
        rows.setdefault("continuing_later", []).append(
            DecisionFactory(
                submission=SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED),
                next_continuing_review_due=timezone.localdate() + datetime.timedelta(days=200),
            )
        )
        rows.setdefault("returned", []).append(
            SubmissionFactory(trial=trial, committee=committee, status=S.RETURNED, kind=Submission.Kind.AMENDMENT)
        )
        rows.setdefault("modifications", []).append(
            DecisionFactory(
                submission=SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED),
                outcome=Decision.Outcome.MODIFY_AND_RESUBMIT,
            )
        )
        site = active_site(started=200, lead_institution=institution, pi=place.pi)
        site.site_initiated_on = days_ago(200)
        site.save(update_fields=["site_initiated_on"])
        rows.setdefault("stalled", []).append(site)
        for status, key in ((Claim.Status.DRAFT, "draft_claim"), (Claim.Status.SUBMITTED, "submitted_claim")):
            rows.setdefault(key, []).append(
                Claim.objects.create(
                    institution=institution,
                    program=SubsidyProgramFactory(region=region),
                    year=2026,
                    status=status,
                    reference_date=datetime.date(2026, 1, 1),
                    opened_by=place.research_office,
                    opened_at=timezone.now(),
                    submitted_at=timezone.now() if status != Claim.Status.DRAFT else None,
                )
            )
    return place
