"""Decision letters: the stored Chinese PDF (numbered, hashed, CJK font embedded) and the English rendering."""

import datetime
import hashlib
import io
import zoneinfo

import pytest
import time_machine
from pypdf import PdfReader

from cgtclinic.errors import DomainError
from ethics import letters, services
from ethics.models import Decision, ReviewAssignment, SubmissionEvent
from tests.ethics.conftest import attach_required_documents
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import TrialFactory

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def decide_expedited(submission, office, outcome=Decision.Outcome.APPROVE, text=""):
    """An expedited review with one approving reviewer, then the decision (which issues its letter)."""
    assignment = services.reviewer_assign(
        submission=submission, actor=office, member=submission.committee.members.order_by("id").first()
    )
    services.opinion_record(assignment=assignment, actor=office, opinion=ReviewAssignment.Opinion.APPROVE)
    return services.decision_record(submission=submission, actor=office, outcome=outcome, requested_modifications=text)


def initial_for_new_trial(committee, office):
    """A complete initial application for a fresh trial at the committee's institution, routed to expedited."""
    trial = TrialFactory(lead_institution=committee.institution)
    submission = attach_required_documents(
        services.submission_create(actor=trial.pi, trial=trial, kind="initial", committee=committee), trial.pi
    )
    services.submission_submit(submission=submission, actor=trial.pi)
    services.submission_accept(submission=submission, actor=office)
    return services.submission_route(submission=submission, actor=office, review_type="expedited", reason="低风险")


def pdf_text(data: bytes) -> str:
    """The letter's text with all whitespace removed (letter-spacing and line breaks split words apart)."""
    return "".join("".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def flat(text: str) -> str:
    return "".join(text.split())


def embedded_fonts(data: bytes) -> list[tuple[str, bool]]:
    """(font name, has an embedded font program) for every font the pages use, descendants included."""
    fonts = []
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for descendant in [font, *[d.get_object() for d in font.get("/DescendantFonts", [])]]:
                descriptor = descendant.get("/FontDescriptor")
                if descriptor is None:
                    continue
                descriptor = descriptor.get_object()
                embedded = any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
                fonts.append((str(descriptor["/FontName"]), embedded))
    return fonts


def test_decision_issues_the_chinese_letter_once_with_its_hash(routed, office):
    decision = decide_expedited(routed("expedited"), office)

    assert decision.letter_file
    stored = decision.letter_file.read()
    assert stored.startswith(b"%PDF")
    assert decision.letter_sha256 == hashlib.sha256(stored).hexdigest()
    text = pdf_text(stored)
    trial = decision.submission.trial
    assert decision.letter_number in text
    assert flat(trial.title_zh) in text
    assert "伦理审查批件" in text and "同意" in text
    event = SubmissionEvent.objects.get(submission=decision.submission, kind=SubmissionEvent.Kind.LETTER_ISSUED)
    assert decision.letter_sha256 in event.note and event.actor == office

    again = letters.letter_issue(decision=decision, actor=office)
    assert again.letter_sha256 == decision.letter_sha256
    assert SubmissionEvent.objects.filter(kind=SubmissionEvent.Kind.LETTER_ISSUED).count() == 1


def test_the_cjk_font_is_embedded(routed, office):
    decision = decide_expedited(routed("expedited"), office)
    fonts = embedded_fonts(decision.letter_file.read())
    assert fonts and all(embedded for _name, embedded in fonts)
    names = {name.split("+")[-1].replace("-", "") for name, _embedded in fonts}
    assert names & {"NotoSansCJKSC", "NotoSerifCJKSC"}, names


def test_letter_lists_reviewed_documents_modifications_and_the_validity(routed, office):
    submission = routed("expedited")
    decision = decide_expedited(submission, office)
    text = pdf_text(decision.letter_file.read())
    for version in submission.documents.select_related("document"):
        assert flat(version.document.title) in text
    assert f"{decision.valid_until:%Y}年{decision.valid_until.month}月{decision.valid_until.day}日" in text
    assert "下次跟踪审查" in text

    modify = initial_for_new_trial(submission.committee, office)
    decision = decide_expedited(
        modify, office, outcome=Decision.Outcome.APPROVE_AFTER_MODIFICATION, text="知情同意书补充不良反应的描述。"
    )
    text = pdf_text(decision.letter_file.read())
    assert "伦理审查意见" in text and "作必要的修改后同意" in text
    assert "知情同意书补充不良反应的描述。" in text and flat(modify.trial.title_zh) in text
    assert decision.valid_until is None


def test_meeting_letter_shows_the_meeting_and_the_vote(routed, office, committee):
    submission = routed("full_board")
    meeting = services.meeting_schedule(
        committee=committee,
        actor=office,
        scheduled_at=datetime.datetime(2026, 5, 20, 14, tzinfo=SHANGHAI),
        location="行政楼第二会议室",
    )
    item = services.meeting_add_submission(meeting=meeting, actor=office, submission=submission)
    members = list(committee.members.order_by("id"))
    services.meeting_record_attendance(meeting=meeting, actor=office, members=members)
    votes = dict.fromkeys(members[:6], "approve") | {members[6]: "approve_after_modification"}
    services.vote_record(agenda_item=item, actor=office, votes=votes)
    decision = services.decision_record(submission=submission, actor=office, outcome="approve")

    decision.refresh_from_db()
    stored = decision.letter_file.read()
    assert hashlib.sha256(stored).hexdigest() == decision.letter_sha256
    text = pdf_text(stored)
    assert "会议审查" in text and "2026年5月20日" in text and "行政楼第二会议室" in text
    assert "出席委员7人" in text and "赞成本决定6票，其他意见1票" in text


def test_letter_numbers_run_per_committee_and_restart_each_year(committee, office):
    other = EthicsCommitteeFactory(letter_prefix="他伦审")
    balanced_committee(other)
    other_office = UserFactory(role=office.role, institution=other.institution)
    with time_machine.travel(datetime.datetime(2026, 12, 30, 10, tzinfo=SHANGHAI), tick=False):
        first = decide_expedited(initial_for_new_trial(committee, office), office)
        elsewhere = decide_expedited(initial_for_new_trial(other, other_office), other_office)
        second = decide_expedited(initial_for_new_trial(committee, office), office)
    with time_machine.travel(datetime.datetime(2027, 1, 4, 10, tzinfo=SHANGHAI), tick=False):
        next_year = decide_expedited(initial_for_new_trial(committee, office), office)

    assert [first.letter_number, second.letter_number] == ["测伦审〔2026〕001号", "测伦审〔2026〕002号"]
    assert elsewhere.letter_number == "他伦审〔2026〕001号"
    assert next_year.letter_number == "测伦审〔2027〕001号"
    for decision in (first, second, elsewhere, next_year):
        assert decision.letter_number in pdf_text(decision.letter_file.read())


def test_english_rendering_is_made_on_demand_and_not_stored(routed, office):
    decision = decide_expedited(routed("expedited"), office)
    stored = decision.letter_file.read()
    english = letters.render_decision_letter(decision, "en")
    assert english.startswith(b"%PDF") and english != stored
    text = pdf_text(english)
    assert "EthicsApproval" in text and decision.letter_number in text
    decision.refresh_from_db()
    assert hashlib.sha256(decision.letter_file.read()).hexdigest() == decision.letter_sha256


def test_unknown_language_is_refused(routed, office):
    decision = decide_expedited(routed("expedited"), office)
    with pytest.raises(DomainError):
        letters.render_decision_letter(decision, "fr")


def test_a_decision_whose_letter_lacks_glyphs_is_not_recorded(routed, office):
    """Issue 11: a letter whose characters print as empty boxes is never numbered, hashed and stored."""
    submission = routed("expedited")
    trial = submission.trial
    trial.title_zh = "CAR-T 研究 \ue000"  # private use area: no font draws it
    trial.save(update_fields=["title_zh"])
    with pytest.raises(DomainError) as refused:
        decide_expedited(submission, office)
    assert refused.value.code == "font_missing"
    assert not Decision.objects.filter(submission=submission).exists()
