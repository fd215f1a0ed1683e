import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cgtclinic.roles import Role
from ethics import services as ethics_services
from ethics.models import Decision, Submission
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import CommitteeMemberFactory, EthicsCommitteeFactory
from tests.factories.trials import PDF_BYTES, TrialFactory
from trials.models import Trial


def pdf(name: str = "document.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF_BYTES, content_type="application/pdf")


@pytest.fixture
def client(client):
    """These tests read the pages' English wording; that the portal is Chinese by default is tested in
    test_access.py and the browser test."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def committee(pi):
    return EthicsCommitteeFactory(institution=pi.institution)


@pytest.fixture
def pi_client(client, pi):
    client.force_login(pi)
    return client


@pytest.fixture
def other_pi(institution):
    return UserFactory(role=Role.PI, institution=institution)


@pytest.fixture
def approved_trial(pi, committee):
    """A trial the committee approved through its initial review, as decision_record leaves it."""
    trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.APPROVED)
    initial = Submission.objects.create(
        trial=trial,
        committee=committee,
        kind=Submission.Kind.INITIAL,
        status=Submission.Status.DECIDED,
        summary="首次审查",
        submitted_by=pi,
        reference="伦审受〔2026〕00001",
        submitted_at=timezone.now(),
        decided_at=timezone.now(),
    )
    Decision.objects.create(
        submission=initial,
        committee=committee,
        outcome=Decision.Outcome.APPROVE,
        decided_at=timezone.now(),
        decided_by=UserFactory(role=Role.ETHICS_OFFICE, institution=pi.institution),
        letter_number=f"{committee.letter_prefix}〔2026〕001号",
        valid_until=timezone.localdate() + datetime.timedelta(days=365),
        next_continuing_review_due=timezone.localdate() + datetime.timedelta(days=365),
    )
    return trial


def decide(submission: Submission, outcome: str, *, requested_modifications: str = "") -> Decision:
    """Take a submitted submission through intake, expedited review and a decision, as the ethics office does."""
    committee = submission.committee
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=committee.institution)
    member = CommitteeMemberFactory(committee=committee)
    ethics_services.submission_accept(submission=submission, actor=office)
    ethics_services.submission_route(submission=submission, actor=office, review_type="expedited", reason="低风险")
    assignment = ethics_services.reviewer_assign(submission=submission, actor=office, member=member)
    ethics_services.opinion_record(assignment=assignment, actor=office, opinion=outcome)
    return ethics_services.decision_record(
        submission=submission, actor=office, outcome=outcome, requested_modifications=requested_modifications
    )
