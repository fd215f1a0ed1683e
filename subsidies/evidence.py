"""Evidence for each patient a claim line claims: the consent the subject signed (ICF version and date), the site's
ethics approval (letter number and date) and the trial's registration or filing number, with a marker for each
piece that is missing.

Which patients a line claims: the site's enrolled patients in ledger order (day, then entry), the first ones taken by
earlier claims, the next ``patients_claimed`` by this line; a count reported without a subject code stands for that
many patients without a code. Missing evidence does not block submission (see ``MISSING``); it is shown on the claim
and frozen with it for the regulator, who may lower the line.

Reads for all the claim's sites at once: one query each for the ledger entries, the consents, the ethics decisions
and the recognitions.
"""

import datetime

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ethics.models import Decision, RecognitionRequest, Submission
from trials.models import EnrolmentEntry, SubjectConsent, Trial, TrialSite

APPROVING = (Decision.Outcome.APPROVE, Decision.Outcome.APPROVE_AFTER_MODIFICATION)
RECOGNISED = (RecognitionRequest.Status.RECOGNISED, RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS)

# What can be missing, and why it does not block submission: the program pays per enrolled patient from the ledger
# (001 task 5: 根据项目入组人数), the regulator awards selectively (择优) and may lower a line, and per-subject consent
# records (trials.SubjectConsent) start with issue 12, so patients enrolled before it have their signed consent only
# on paper at the site. Blocking would make every earlier claim unsubmittable; flagging it lets the office complete
# the records first and the regulator decide with the gaps in view.
MISSING = ("subject_code", "consent", "ethics_letter", "ethics_approval", "registration")


def missing_label(code: str) -> str:
    """A missing piece of evidence, in the active language."""
    return {
        "subject_code": _("Patient reported without a subject code: no per-patient evidence"),
        "consent": _("No consent recorded on or before the reference date"),
        "ethics_letter": _("Ethics approval recorded without its letter number"),
        "ethics_approval": _("No ethics approval for the site"),
        "registration": _("No registration or filing number for the trial"),
    }.get(code, code)


def _day(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        value = timezone.localdate(value)
    return value.isoformat()


def registration(trial: Trial) -> dict:
    """The trial's public registration and filing numbers (any of them is evidence of registration)."""
    return {
        "chictr_id": trial.chictr_id,
        "nct_id": trial.nct_id,
        "filing_number": trial.filing_number,
        "nmpa_approval_number": trial.nmpa_approval_number,
    }


def _registered(numbers: dict) -> bool:
    return any(numbers.get(key) for key in ("chictr_id", "nct_id", "filing_number"))


def site_summary(trial: Trial, site: TrialSite, completed_on: datetime.date | None) -> dict:
    """What a claim line states about its trial and site, from the rows as given (no query)."""
    return {
        "protocol_number": trial.protocol_number,
        "title_zh": trial.title_zh,
        "title_en": trial.title_en,
        "kind": trial.kind,
        "therapy_category": trial.therapy_category,
        "status": trial.status,
        "sponsor": trial.sponsor.name_zh if trial.sponsor_id else "",
        "site_role": site.role,
        "completed_on": completed_on.isoformat() if completed_on else None,
        "ethics_approved_on": site.ethics_approved_on.isoformat() if site.ethics_approved_on else None,
        "site_initiated_on": site.site_initiated_on.isoformat() if site.site_initiated_on else None,
        "startup_days": site.startup_days,
        "nmpa_approval_number": trial.nmpa_approval_number,
        "filing_number": trial.filing_number,
    }


def ethics_record(source: str, *, decided, committee: str = "", letter_number: str = "") -> dict:
    """The approval a site enrolled under: its committee's ``decision``, the ``recognition`` of the lead's, or the
    date ``recorded`` on the site."""
    return {"source": source, "committee": committee, "letter_number": letter_number, "decided_on": _day(decided)}


def ethics_by_site(sites: list[TrialSite], on: datetime.date) -> dict[int, dict]:
    """Per site: the approval it enrolled under, as of ``on``: its own committee's approving decision on the trial's
    initial review, else the recognition of the lead's approval, else the date recorded on the site. Two queries."""
    out: dict[int, dict] = {}
    if not sites:
        return out
    by_key = {(site.trial_id, site.institution_id): site for site in sites}
    decisions = (
        Decision.objects.filter(
            submission__trial_id__in={site.trial_id for site in sites},
            submission__kind=Submission.Kind.INITIAL,
            committee__institution_id__in={site.institution_id for site in sites},
            outcome__in=APPROVING,
        )
        .select_related("committee", "submission")
        .order_by("decided_at", "pk")
    )
    for decision in decisions:
        site = by_key.get((decision.submission.trial_id, decision.committee.institution_id))
        if site is None or timezone.localdate(decision.decided_at) > on:
            continue
        out[site.pk] = ethics_record(
            "decision",
            committee=decision.committee.name_zh,
            letter_number=decision.letter_number,
            decided=decision.decided_at,
        )
    recognitions = (
        RecognitionRequest.objects.filter(site_id__in=[site.pk for site in sites], status__in=RECOGNISED)
        .filter(Q(responded_at__isnull=False))
        .select_related("lead_decision")
        .order_by("responded_at", "pk")
    )
    for request in recognitions:
        if request.site_id in out or timezone.localdate(request.responded_at) > on:
            continue
        out[request.site_id] = ethics_record(
            "recognition",
            letter_number=(
                request.lead_decision.letter_number if request.lead_decision_id else request.external_lead_letter_number
            ),
            decided=request.responded_at,
        )
    for site in sites:
        if site.pk not in out and site.ethics_approved_on and site.ethics_approved_on <= on:
            out[site.pk] = ethics_record("recorded", decided=site.ethics_approved_on)
    return out


def patient_slots(site_ids, on: datetime.date) -> dict[int, list[dict]]:
    """Per site: one entry per enrolled patient standing on ``on`` (reported, not reversed), in ledger order, with
    the subject's code and latest consent on or before ``on`` (None when reported without a code). Two queries."""
    entries = (
        EnrolmentEntry.objects.filter(
            site_id__in=list(site_ids),
            kind=EnrolmentEntry.Kind.ENROLLED,
            occurred_on__lte=on,
            reverses__isnull=True,
            reversed_by__isnull=True,
        )
        .select_related("subject")
        .order_by("site_id", "occurred_on", "pk")
    )
    entries = list(entries)
    consents = {}
    subject_ids = {entry.subject_id for entry in entries if entry.subject_id}
    for consent in (
        SubjectConsent.objects.filter(subject_id__in=subject_ids, consented_on__lte=on)
        .select_related("icf_version__document")
        .order_by("subject_id", "consented_on", "pk")
    ):
        consents[consent.subject_id] = consent  # the latest wins
    out: dict[int, list[dict]] = {}
    for entry in entries:
        slots = out.setdefault(entry.site_id, [])
        if entry.subject_id:
            consent = consents.get(entry.subject_id)
            slots.append(
                {
                    "subject": entry.subject.code,
                    "enrolled_on": _day(entry.occurred_on),
                    "consent": None
                    if consent is None
                    else {
                        "document": consent.icf_version.document.title,
                        "version": consent.icf_version.number,
                        "version_label": consent.icf_version.version_label,
                        "consented_on": _day(consent.consented_on),
                        "is_reconsent": consent.is_reconsent,
                    },
                }
            )
        else:
            slots.extend(
                {"subject": None, "enrolled_on": _day(entry.occurred_on), "consent": None} for _ in range(entry.count)
            )
    return out


def line_evidence(*, trial: Trial, site: TrialSite, slots: list[dict], ethics: dict | None, first: int, count: int):
    """The evidence of the patients a line claims (positions ``first`` to ``first + count`` of the site's ledger),
    with what is missing: {"ethics", "registration", "patients", "missing": {code: how many}}."""
    numbers = registration(trial)
    missing: dict[str, int] = {}
    if ethics is None:
        missing["ethics_approval"] = 1
    elif not ethics.get("letter_number"):
        missing["ethics_letter"] = 1
    if not _registered(numbers):
        missing["registration"] = 1
    patients = []
    for position, slot in enumerate(slots[first : first + count], start=first + 1):
        gaps = []
        if slot["subject"] is None:
            gaps.append("subject_code")
        elif slot["consent"] is None:
            gaps.append("consent")
        for gap in gaps:
            missing[gap] = missing.get(gap, 0) + 1
        patients.append({"position": position, **slot, "missing": gaps})
    # Patients the ledger counts but the site's entries up to the reference date do not list (should not happen).
    for position in range(first + len(patients) + 1, first + count + 1):
        patients.append(
            {"position": position, "subject": None, "enrolled_on": None, "consent": None, "missing": ["subject_code"]}
        )
        missing["subject_code"] = missing.get("subject_code", 0) + 1
    return {"ethics": ethics, "registration": numbers, "patients": patients, "missing": missing}
