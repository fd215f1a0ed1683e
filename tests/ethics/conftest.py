import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cgtclinic.roles import Role
from ethics import services
from ethics.models import Submission
from tests.ethics.safety_world import world  # noqa: F401  (the safety tests' fixture)
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import PDF_BYTES, TrialFactory
from trials import services as trial_services


@pytest.fixture
def committee(institution):
    committee = EthicsCommitteeFactory(institution=institution, letter_prefix="测伦审")
    balanced_committee(committee)
    return committee


@pytest.fixture
def office(institution):
    """The ethics office of the committee's institution."""
    return UserFactory(role=Role.ETHICS_OFFICE, institution=institution)


@pytest.fixture
def trial(institution, committee):
    return TrialFactory(lead_institution=institution)


def attach_required_documents(submission, actor):
    versions = [
        trial_services.document_add_version(
            trial=submission.trial,
            actor=actor,
            kind=kind,
            title=str(kind),
            uploaded_file=SimpleUploadedFile(f"{kind}.pdf", PDF_BYTES),
        )
        for kind in services.INITIAL_REQUIRED_DOCUMENTS
    ]
    return services.submission_update_draft(
        submission=submission,
        actor=actor,
        summary="首次审查申请",
        declarations=dict.fromkeys(services.DECLARATIONS, True),
        documents=versions,
    )


@pytest.fixture
def complete_initial(trial):
    """A complete draft initial application by the trial's PI."""
    submission = services.submission_create(actor=trial.pi, trial=trial, kind=Submission.Kind.INITIAL)
    return attach_required_documents(submission, trial.pi)


@pytest.fixture
def routed(complete_initial, office):
    """Factory: an initial application submitted, accepted and routed the given way."""

    def make(review_type):
        submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)
        services.submission_accept(submission=submission, actor=office)
        return services.submission_route(submission=submission, actor=office, review_type=review_type, reason="依规")

    return make
