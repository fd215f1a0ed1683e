"""Enrolment follows the ethics path: the lead committee's approval (through the ethics services) opens the lead
site for enrolment until its validity ends, a site that recognised the approval follows it, and a
continuing-review approval extends both."""

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from cgtclinic import workdays
from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from ethics import recognition, services
from ethics.models import Decision, RecognitionRequest, Submission
from tests.ethics.conftest import attach_required_documents
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import TrialFactory, TrialSiteFactory
from trials import enrolment
from trials import services as trial_services
from trials.models import EnrolmentEntry, TrialSite

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")
K = EnrolmentEntry.Kind
# Monday 2 March 2026, 10:00 in Beijing.
MONDAY = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=SH)


@pytest.fixture(autouse=True)
def calendar_2026(db):
    workdays.sync_from_package(years=[2026])


@pytest.fixture
def world(institution):
    committee = EthicsCommitteeFactory(institution=institution)
    balanced_committee(committee)
    member_hospital = InstitutionFactory()
    member_committee = EthicsCommitteeFactory(institution=member_hospital)
    AllianceFactory(members=[committee, member_committee])
    trial = TrialFactory(lead_institution=institution)
    return {
        "committee": committee,
        "trial": trial,
        "lead": trial.sites.get(role=TrialSite.SiteRole.LEAD),
        "member": TrialSiteFactory(trial=trial, institution=member_hospital),
        "office": UserFactory(role=Role.ETHICS_OFFICE, institution=institution),
        "research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=institution),
        "member_office": UserFactory(role=Role.ETHICS_OFFICE, institution=member_hospital),
    }


def approve(submission: Submission, world) -> Decision:
    office = world["office"]
    services.submission_submit(submission=submission, actor=submission.trial.pi)
    services.submission_accept(submission=submission, actor=office)
    services.submission_route(submission=submission, actor=office, review_type="expedited", reason="低风险")
    assignment = services.reviewer_assign(
        submission=submission, actor=office, member=world["committee"].members.first()
    )
    services.opinion_record(assignment=assignment, actor=office, opinion=Decision.Outcome.APPROVE)
    return services.decision_record(submission=submission, actor=office, outcome=Decision.Outcome.APPROVE)


def initial_approval(world) -> Decision:
    trial = world["trial"]
    draft = services.submission_create(actor=trial.pi, trial=trial, kind=Submission.Kind.INITIAL)
    return approve(attach_required_documents(draft, trial.pi), world)


def continuing_review_approval(world) -> Decision:
    trial = world["trial"]
    draft = services.submission_create(
        actor=trial.pi,
        trial=trial,
        kind=Submission.Kind.CONTINUING_REVIEW,
        summary="年度持续审查",
        details={"enrolled_to_date": 2, "safety_summary": "无严重不良事件", "progress": "按计划入组"},
    )
    return approve(draft, world)


def enrol(site: TrialSite, on: datetime.date, kind=K.ENROLLED) -> EnrolmentEntry:
    return enrolment.enrolment_report(site=site, actor=site.site_pi, kind=kind, occurred_on=on)


def fresh(site: TrialSite) -> TrialSite:
    return TrialSite.objects.select_related("trial").get(pk=site.pk)


@pytest.fixture
def approved(world):
    """Lead approval on Monday, the trial activated the same day, the member site recognising it on Tuesday."""
    with time_machine.travel(MONDAY, tick=False):
        decision = initial_approval(world)
        trial_services.trial_activate(trial=world["trial"], actor=world["research_office"])
    with time_machine.travel(MONDAY + datetime.timedelta(days=1), tick=False):
        recognition.recognition_respond(
            request=RecognitionRequest.objects.get(site=world["member"]),
            actor=world["member_office"],
            outcome=RecognitionRequest.Status.RECOGNISED,
        )
    return decision


def test_the_lead_committees_approval_sets_the_sites_approval_and_its_validity(world):
    with time_machine.travel(MONDAY, tick=False):
        with pytest.raises(DomainError) as before:
            enrol(fresh(world["lead"]), MONDAY.date())
        assert before.value.code == "no_ethics_approval"
        decision = initial_approval(world)
    lead = fresh(world["lead"])
    assert lead.ethics_approved_on == MONDAY.date()
    assert lead.ethics_valid_until == decision.valid_until is not None
    member = fresh(world["member"])
    assert (member.ethics_approved_on, member.ethics_valid_until) == (None, None)


def test_a_recognising_site_follows_the_lead_approval(world, approved):
    member = fresh(world["member"])
    assert member.ethics_approved_on == MONDAY.date() + datetime.timedelta(days=1)
    assert member.ethics_valid_until == approved.valid_until
    with time_machine.travel(MONDAY + datetime.timedelta(days=2), tick=False):
        # The member's approval dates from Tuesday: Monday is before it.
        with pytest.raises(DomainError) as early:
            enrol(member, MONDAY.date())
        assert early.value.code == "no_ethics_approval"
        enrol(member, MONDAY.date() + datetime.timedelta(days=1))
        enrol(fresh(world["lead"]), MONDAY.date())


def test_enrolment_stops_when_the_approval_runs_out_and_a_continuing_review_extends_every_site(world, approved):
    expired = approved.valid_until + datetime.timedelta(days=3)
    with time_machine.travel(datetime.datetime.combine(expired, datetime.time(10), tzinfo=SH), tick=False):
        for site in (world["lead"], world["member"]):
            enrol(fresh(site), approved.valid_until)
            with pytest.raises(DomainError) as caught:
                enrol(fresh(site), expired)
            assert caught.value.code == "ethics_approval_expired"
            # Exits are still reported.
            enrol(fresh(site), expired, kind=K.WITHDRAWN)

    renewal_day = approved.valid_until - datetime.timedelta(days=5)
    with time_machine.travel(datetime.datetime.combine(renewal_day, datetime.time(10), tzinfo=SH), tick=False):
        renewal = continuing_review_approval(world)
    assert renewal.valid_until > approved.valid_until
    with time_machine.travel(datetime.datetime.combine(expired, datetime.time(10), tzinfo=SH), tick=False):
        for site in (world["lead"], world["member"]):
            assert fresh(site).ethics_valid_until == renewal.valid_until
            enrol(fresh(site), expired)
