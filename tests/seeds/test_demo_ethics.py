"""The demo ethics data: committees that follow the policy and make a quorum, submissions in every status that
match their trials, letters issued, and something in every part of the demo PI's dashboard."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from cgtclinic.models import PolicyParameter, User
from cgtclinic.seeding import SEEDS_DIR, load_seeds
from ethics import services
from ethics.models import (
    Attendance,
    CommitteeMember,
    Decision,
    EthicsCommittee,
    Meeting,
    ReviewAssignment,
    Submission,
    SubmissionEvent,
    TrainingRecord,
    Vote,
)
from ethics.seeds import REVIEW_INTERVAL_CODE
from tests.seeds.files import read_rows
from trials.models import DocumentVersion, Trial, TrialSite, TrialStatusChange

pytestmark = pytest.mark.django_db

# The demo's own letters are rendered (and checked) here; the other seed modules use a stand-in.
REAL_LETTERS = True

S = Submission.Status
Role = CommitteeMember.MemberRole
Specialty = CommitteeMember.Specialty
SUBMISSIONS_FILE = SEEDS_DIR / "demo" / "ethics_submissions.yaml"
ETHICS_MODELS = (
    EthicsCommittee,
    CommitteeMember,
    TrainingRecord,
    Submission,
    SubmissionEvent,
    ReviewAssignment,
    Meeting,
    Attendance,
    Vote,
    Decision,
    DocumentVersion,
    Trial,
    TrialSite,
    TrialStatusChange,
)
# Where a seeded submission stands after its last step (the steps that change nothing are left out).
STATUS_AFTER = {
    "create": S.DRAFT,
    "submit": S.SUBMITTED,
    "return": S.RETURNED,
    "accept": S.ACCEPTED,
    "decide": S.DECIDED,
    "acknowledge": S.ACKNOWLEDGED,
    "withdraw": S.WITHDRAWN,
}


@pytest.fixture
def demo_report(demo_loaded_once, db):
    """Every test here reads the demo set, so it is loaded once for the module."""
    return demo_loaded_once


def _expected_status(row) -> str:
    status = S.DRAFT
    for step in row.get("steps") or []:
        if step["do"] == "route":
            status = S.EXPEDITED_REVIEW if step["review"] == "expedited" else S.AWAITING_MEETING
        status = STATUS_AFTER.get(step["do"], status)
    return status


def _seeded(row) -> Submission:
    return Submission.objects.get(trial__protocol_number=row["trial"], kind=row["kind"], summary=row["summary"])


def test_every_seeded_submission_ends_where_its_steps_lead(demo_report):
    rows = read_rows(SUBMISSIONS_FILE)

    # Besides the SAE reports the demo safety reports file (seeds/demo/safety_events.yaml).
    assert Submission.objects.filter(safety_events__isnull=True).count() == len(rows)
    for row in rows:
        assert _seeded(row).status == _expected_status(row), row["summary"]


def test_the_demo_covers_every_submission_status(demo_report):
    assert set(Submission.objects.values_list("status", flat=True)) == set(S.values)


def test_committees_take_their_months_from_the_policy_value(demo_report):
    today = timezone.localdate()
    committees = list(EthicsCommittee.objects.select_related("institution__region"))

    assert committees
    for committee in committees:
        months = PolicyParameter.value_for(REVIEW_INTERVAL_CODE, region=committee.institution.region, on=today)
        assert committee.approval_validity_months == committee.continuing_review_months == months


def test_every_hospital_with_a_trial_has_a_committee_with_the_required_mix(demo_report):
    hospitals = set(Trial.objects.values_list("lead_institution", flat=True))
    hospitals |= set(TrialSite.objects.values_list("institution", flat=True))
    assert set(EthicsCommittee.objects.values_list("institution", flat=True)) == hospitals

    for committee in EthicsCommittee.objects.all():
        members = list(committee.members.current())
        assert 7 <= len(members) <= 9, committee
        roles = [m.member_role for m in members]
        assert (roles.count(Role.CHAIR), roles.count(Role.VICE_CHAIR), roles.count(Role.SECRETARY)) == (1, 1, 1)
        specialties = {m.specialty for m in members}
        assert {Specialty.MEDICINE, Specialty.PHARMACY, Specialty.NURSING, Specialty.LAW} <= specialties, committee
        assert {Specialty.ETHICS, Specialty.COMMUNITY} <= specialties, committee
        assert {m.gender for m in members} == set(CommitteeMember.Gender.values), committee
        assert sum(not m.is_affiliated for m in members) >= 2, committee
        assert all(1 <= m.training_records.count() <= 2 for m in members), committee


def test_the_demo_ethics_office_account_is_its_committees_secretary(demo_report):
    account = User.objects.get(username="ethics_office")

    [member] = CommitteeMember.objects.filter(user=account)
    assert member.member_role == Role.SECRETARY
    assert member.committee.institution == account.institution


def test_every_held_meeting_had_a_quorum_for_each_item_and_a_vote(demo_report):
    held = Meeting.objects.filter(status__in=(Meeting.Status.HELD, Meeting.Status.CLOSED))

    assert held.exists()
    for meeting in held:
        assert meeting.quorum_met is True, meeting.quorum_note
        for item in meeting.agenda.all():
            assert services.quorum_check(meeting=meeting, agenda_item=item).met
            assert item.votes.exists()
    assert held.filter(agenda__conflicts__isnull=False).exists(), "one member is recused somewhere"
    # A meeting whose items are decided is closed, so it no longer waits in the office's queue.
    assert not Meeting.objects.filter(status=Meeting.Status.HELD, decisions__isnull=False).exists()


def test_submissions_awaiting_a_meeting_are_on_a_planned_meetings_agenda(demo_report):
    waiting = Submission.objects.filter(status=S.AWAITING_MEETING)

    assert waiting.exists()
    for submission in waiting:
        meeting = submission.agenda_items.get().meeting
        assert meeting.status == Meeting.Status.PLANNED
        assert meeting.scheduled_at > timezone.now()


def test_initial_approvals_follow_the_trials_own_history(demo_report):
    """The application is submitted, taken in and approved on the days the trial's history records."""
    approvals = Decision.objects.filter(submission__kind=Submission.Kind.INITIAL, outcome=Decision.Outcome.APPROVE)

    assert approvals.count() >= 8
    for decision in approvals.select_related("submission__trial"):
        trial = decision.submission.trial
        changes = {c.to_status: timezone.localdate(c.at) for c in trial.status_changes.all()}
        assert timezone.localdate(decision.submission.submitted_at) == changes[Trial.Status.SUBMITTED], trial
        accepted = decision.submission.events.get(kind=SubmissionEvent.Kind.ACCEPTED)
        assert timezone.localdate(accepted.at) == changes[Trial.Status.UNDER_REVIEW], trial
        assert timezone.localdate(decision.decided_at) == changes[Trial.Status.APPROVED], trial
        lead = trial.sites.get(role=TrialSite.SiteRole.LEAD)
        assert lead.ethics_approved_on == changes[Trial.Status.APPROVED], trial


def test_every_decision_has_its_letter(demo_report, demo_media, settings):
    settings.MEDIA_ROOT = demo_media
    decisions = list(Decision.objects.all())

    assert decisions
    for decision in decisions:
        with decision.letter_file.open("rb") as letter:
            pdf = letter.read()
        assert pdf.startswith(b"%PDF")
        assert hashlib.sha256(pdf).hexdigest() == decision.letter_sha256
        assert decision.letter_number.startswith(decision.committee.letter_prefix)


def test_uploaded_documents_are_readable_pdfs(demo_report, demo_media, settings):
    settings.MEDIA_ROOT = demo_media
    versions = list(DocumentVersion.objects.all())

    assert versions
    for version in versions:
        with version.file.open("rb") as upload:
            reader = PdfReader(io.BytesIO(upload.read()))
        assert len(reader.pages) == 1
        assert version.document.trial.protocol_number in reader.pages[0].extract_text()


def test_a_continuing_review_falls_due_within_the_reminder_window(demo_report):
    today = timezone.localdate()
    due_soon = [
        decision
        for decision in Decision.objects.exclude(next_continuing_review_due=None).select_related("committee")
        if today
        <= decision.next_continuing_review_due
        <= today + timedelta(days=decision.committee.continuing_review_reminder_days)
    ]

    assert [d.submission.trial.pi.username for d in due_soon] == ["pi"]


def test_the_demo_pi_dashboard_shows_something_in_every_section(demo_report, client):
    client.force_login(User.objects.get(username="pi"))

    response = client.get(reverse("ethics_portal:dashboard"))

    assert response.status_code == 200
    context = response.context
    for section, rows in context["waiting"].items():
        assert rows, f"nothing waiting in {section}"
    assert context["due_dates"] and context["trials"] and context["submissions"]


def test_loading_again_adds_and_changes_nothing_in_ethics(demo_report):
    before = {
        model: (model.objects.count(), getattr(model, "history", model.objects).count()) for model in ETHICS_MODELS
    }

    again = load_seeds(SEEDS_DIR, demo=True)

    assert again.created == again.updated == 0
    assert again.kept_trials == []
    assert again.tally(Submission).unchanged == Submission.objects.filter(safety_events__isnull=True).count()
    assert again.tally(CommitteeMember).unchanged == CommitteeMember.objects.count()
    after = {
        model: (model.objects.count(), getattr(model, "history", model.objects).count()) for model in ETHICS_MODELS
    }
    assert after == before


def test_a_draft_edited_in_the_app_is_not_seeded_again(demo_report):
    draft = Submission.objects.get(status=S.DRAFT)
    services.submission_update_draft(submission=draft, actor=draft.trial.pi, summary="首次伦理审查申请（修改稿）")

    again = load_seeds(SEEDS_DIR, demo=True)

    assert again.created == 0
    assert Submission.objects.filter(trial=draft.trial).count() == 1
