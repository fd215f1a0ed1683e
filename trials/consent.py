"""Consent per subject: the approved ICF version each subject signed, and who must sign a newer one.

An ICF version is approved when an ethics decision to approve covers a submission that included it (the ethics
app links submissions to document versions; this module reads that link by its relation names, without
importing the ethics app, which sits downstream of trials). When a newer version of an ICF is approved, every
subject still on study whose latest consent to that ICF is on an earlier version is due for re-consent, and
stays listed (per site, in the PI's and the research office's work queue) until their re-consent is recorded.
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import Conflict, DomainError
from cgtclinic.models import User
from trials.models import DocumentVersion, EnrolmentSubject, SubjectConsent, SubjectState, TrialDocument, TrialSite

# The ethics decision outcome that approves what its submission contained (ethics.models.Decision.Outcome.APPROVE).
APPROVING_OUTCOME = "approve"


def approved_icf_versions(trial_id: int) -> QuerySet[DocumentVersion]:
    """The trial's ICF versions that an ethics approval covered, newest number first per document."""
    return (
        DocumentVersion.objects.filter(document__trial_id=trial_id, document__kind=TrialDocument.Kind.ICF)
        .filter(submissions__decision__outcome=APPROVING_OUTCOME)
        .distinct()
        .select_related("document")
        .order_by("document_id", "-number")
    )


def icf_version_in_force(trial_id: int, day: datetime.date) -> DocumentVersion | None:
    """The newest ICF version of the trial whose ethics approval was decided on or before a day."""
    return (
        approved_icf_versions(trial_id)
        .filter(submissions__decision__decided_at__date__lte=day)
        .order_by("-number", "-pk")
        .first()
    )


def check_icf_version(trial_id: int, icf_version: DocumentVersion | None) -> None:
    if icf_version is None or not approved_icf_versions(trial_id).filter(pk=icf_version.pk).exists():
        raise DomainError(
            _("Choose an ICF version of this trial that the ethics committee approved."), field="icf_version"
        )


def _check_dates(consented_on: datetime.date, enrolled_on: datetime.date | None = None) -> None:
    if consented_on > timezone.localdate():
        raise DomainError(_("The consent date cannot be in the future."), field="consented_on")
    if enrolled_on is not None and consented_on > enrolled_on:
        raise DomainError(
            _("The subject must consent on or before the day of enrolment (%(day)s).") % {"day": enrolled_on},
            field="consented_on",
        )


def record_at_enrolment(
    *,
    subject: EnrolmentSubject,
    actor: User,
    icf_version: DocumentVersion,
    consented_on: datetime.date,
    on: datetime.date,
) -> SubjectConsent:
    """The consent an enrolment names (called by the enrolment service inside its transaction)."""
    check_icf_version(subject.trial_id, icf_version)
    _check_dates(consented_on, on)
    consent, created = SubjectConsent.objects.get_or_create(
        subject=subject,
        icf_version=icf_version,
        defaults={"consented_on": consented_on, "recorded_by": actor, "recorded_at": timezone.now()},
    )
    if not created and consent.consented_on != consented_on:
        raise Conflict(
            _("Subject %(code)s's consent to this ICF version is already recorded as of %(day)s.")
            % {"code": subject.code, "day": consent.consented_on},
            code="consent_recorded",
            field="consented_on",
        )
    return consent


def consent_record(
    *,
    subject: EnrolmentSubject,
    actor: User,
    icf_version: DocumentVersion,
    consented_on: datetime.date,
    note: str = "",
) -> SubjectConsent:
    """Record a subject's (re-)consent to an approved ICF version. The site's PI, delegated consent takers and
    reporters, and the research office of the site's hospital may record it."""
    from trials import enrolment, qualifications
    from trials.models import Duty

    site = subject.site
    if not enrolment.may_report(actor, site) and not (
        qualifications.holds_duty(actor, site, Duty.CONSENT, consented_on)
    ):
        raise DomainError(_("You may not record consent for this site's subjects."), code="permission_denied")
    check_icf_version(subject.trial_id, icf_version)
    _check_dates(consented_on)
    with transaction.atomic():
        locked = EnrolmentSubject.objects.select_for_update().get(pk=subject.pk)
        if SubjectConsent.objects.filter(subject=locked, icf_version=icf_version).exists():
            raise Conflict(
                _("Subject %(code)s's consent to this ICF version is already recorded.") % {"code": locked.code},
                code="consent_recorded",
            )
        earlier = SubjectConsent.objects.filter(subject=locked, icf_version__document_id=icf_version.document_id)
        latest = earlier.order_by("-icf_version__number").select_related("icf_version").first()
        if latest is not None and latest.icf_version.number > icf_version.number:
            raise DomainError(
                _("Subject %(code)s already consented to a later version of this ICF.") % {"code": locked.code},
                field="icf_version",
            )
        if latest is not None and consented_on < latest.consented_on:
            raise DomainError(
                _("A re-consent cannot be dated before the subject's earlier consent (%(day)s).")
                % {"day": latest.consented_on},
                field="consented_on",
            )
        return SubjectConsent.objects.create(
            subject=locked,
            icf_version=icf_version,
            consented_on=consented_on,
            is_reconsent=SubjectConsent.objects.filter(subject=locked).exists(),
            recorded_by=actor,
            recorded_at=timezone.now(),
            note=note.strip(),
        )


@dataclass(frozen=True)
class ReconsentDue:
    subject: EnrolmentSubject
    signed: DocumentVersion
    current: DocumentVersion


def reconsent_due(sites: QuerySet[TrialSite], *, limit: int | None = None) -> list[ReconsentDue]:
    """Subjects on study at these sites whose latest consent to an ICF is on an earlier version than the newest
    approved one of that ICF, oldest subject first (the state kept on the subject's row). Two queries however many
    subjects."""
    newer = DocumentVersion.objects.filter(
        document_id=OuterRef("icf_version__document_id"),
        number__gt=OuterRef("icf_version__number"),
        submissions__decision__outcome=APPROVING_OUTCOME,
    )
    later_consent = SubjectConsent.objects.filter(
        subject_id=OuterRef("subject_id"),
        icf_version__document_id=OuterRef("icf_version__document_id"),
        icf_version__number__gt=OuterRef("icf_version__number"),
    )
    consents = (
        SubjectConsent.objects.filter(subject__site__in=sites, subject__state=SubjectState.ON_STUDY)
        .filter(Exists(newer), ~Exists(later_consent))
        .select_related("icf_version__document", "subject__site__institution", "subject__trial")
        .order_by("subject_id", "pk")
    )
    rows = list(consents[:limit] if limit else consents)
    current = {}
    for version in DocumentVersion.objects.filter(
        document_id__in={c.icf_version.document_id for c in rows}, submissions__decision__outcome=APPROVING_OUTCOME
    ).order_by("document_id", "-number"):
        current.setdefault(version.document_id, version)
    return [
        ReconsentDue(subject=c.subject, signed=c.icf_version, current=current[c.icf_version.document_id]) for c in rows
    ]
