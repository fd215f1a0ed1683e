"""Decision letters (审查意见 / 批件): rendered to PDF from an HTML template with WeasyPrint.

The Chinese letter is the authoritative one: it is rendered once when the decision is recorded, stored with its
SHA-256, and never rendered again. An English rendering is made on demand and not stored. Each language has its
own template because the letter's fixed wording is formal text chosen per language, not interface strings.
"""

import hashlib

from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import User
from cgtclinic.pdf import render_pdf
from ethics.models import CommitteeMember, Decision, SubmissionEvent

AUTHORITATIVE_LANGUAGE = "zh-hans"
TEMPLATES = {
    "zh-hans": "ethics/letters/decision_letter.zh-hans.html",
    "en": "ethics/letters/decision_letter.en.html",
}


def _context(decision: Decision) -> dict:
    submission = decision.submission
    trial = submission.trial
    committee = decision.committee
    documents = (
        submission.documents.select_related("document").order_by("document__kind", "document__title", "number").all()
    )
    chair = (
        CommitteeMember.objects.filter(committee=committee, member_role=CommitteeMember.MemberRole.CHAIR)
        .current()
        .first()
    )
    meeting = decision.meeting
    present = meeting.attendance.count() if meeting else None
    return {
        "decision": decision,
        "submission": submission,
        "trial": trial,
        "committee": committee,
        "institution": committee.institution,
        "documents": documents,
        "chair": chair,
        "meeting": meeting,
        "meeting_date": timezone.localtime(meeting.scheduled_at).date() if meeting else None,
        "present": present,
        "decided_on": timezone.localtime(decision.decided_at).date(),
    }


def render_decision_letter(decision: Decision, language: str = AUTHORITATIVE_LANGUAGE) -> bytes:
    """The decision letter as PDF bytes, in Chinese (``zh-hans``) or English (``en``), fonts embedded."""
    if language not in TEMPLATES:
        raise DomainError(_("Decision letters are available in Chinese and English only."), field="language")
    decision = (
        Decision.objects.select_related(
            "committee__institution",
            "meeting",
            "submission__trial__pi",
            "submission__trial__sponsor",
            "submission__trial__department",
            "submission__trial__lead_institution",
        )
    ).get(pk=decision.pk)
    with translation.override(language):
        html = render_to_string(TEMPLATES[language], _context(decision))
    return render_pdf(html)


def letter_issue(*, decision: Decision, actor: User) -> Decision:
    """Render the authoritative Chinese letter once, store it with its SHA-256 and put it on the timeline.

    Does nothing if the decision already has its letter, so calling it again (or twice at once) is harmless.
    """
    with transaction.atomic():
        locked = Decision.objects.select_for_update().get(pk=decision.pk)
        if locked.letter_file:
            return locked
        pdf = render_decision_letter(locked, AUTHORITATIVE_LANGUAGE)
        digest = hashlib.sha256(pdf).hexdigest()
        year = locked.letter_year or timezone.localdate(locked.decided_at).year
        name = f"{locked.committee_id}-{year}-{locked.letter_sequence or locked.pk:04d}.pdf"
        locked.letter_file.save(name, ContentFile(pdf), save=False)
        locked.letter_sha256 = digest
        locked._history_user = actor
        locked.save(update_fields=["letter_file", "letter_sha256"])
        SubmissionEvent.objects.create(
            submission_id=locked.submission_id,
            kind=SubmissionEvent.Kind.LETTER_ISSUED,
            actor=actor,
            at=timezone.now(),
            note=f"{locked.letter_number} SHA-256 {digest}",
        )
    # The caller's instance (e.g. the one decision_record returns) shows the letter too.
    decision.letter_file, decision.letter_sha256 = locked.letter_file, locked.letter_sha256
    return locked


def letter_filename(decision: Decision, language: str) -> str:
    """The download name: the letter number's digits, never the prefix's Chinese (some browsers mangle it)."""
    suffix = "" if language == AUTHORITATIVE_LANGUAGE else f"-{language}"
    return f"decision-letter-{decision.letter_year}-{decision.letter_sequence or decision.pk:04d}{suffix}.pdf"
