"""Investigator qualifications: GCP training certificates, their expiry reminders, and each site's delegation log.

A site's PI must hold a valid GCP certificate on the day the site is initiated and on every day a subject is
screened or enrolled there. Whoever reports enrolment for a site must hold the "report" duty on its delegation
log on the day of the event; the site's PI holds every duty without a line of the log.

Reminders: the beat task ``trials.tasks.sweep_certificate_reminders`` calls ``send_certificate_reminders`` every
15 minutes. A certificate gets "expires soon" from ``gcp_certificate_reminder_days`` before its expiry date and
"expired" the day after it, each once (a ``CertificateReminder`` row under a unique key, written in the
transaction that notifies), and neither when the person already holds a later certificate.
"""

import datetime
import logging
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic.errors import Conflict, DomainError
from cgtclinic.models import PolicyParameter, User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from trials.models import CertificateReminder, Delegation, Duty, GcpCertificate, TrialSite
from trials.uploads import check_upload

log = logging.getLogger(__name__)
REMINDER_DAYS_CODE = "gcp_certificate_reminder_days"
Stage = CertificateReminder.Stage


# --- certificates ------------------------------------------------------------------------------------------------


def may_record_certificate(actor: User, person: User) -> bool:
    """The person themselves, or the research or ethics office of their institution."""
    if actor.is_superuser:
        return True
    if not actor.is_active:
        return False
    if actor.pk == person.pk:
        return True
    return actor.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE) and actor.institution_id == person.institution_id


def certificate_record(
    *,
    actor: User,
    person: User,
    number: str,
    issuer: str,
    issued_on: datetime.date,
    expires_on: datetime.date,
    file=None,
) -> GcpCertificate:
    """Put a person's GCP training certificate on record."""
    if not may_record_certificate(actor, person):
        raise DomainError(_("You may not record certificates for this person."), code="permission_denied")
    number, issuer = number.strip(), issuer.strip()
    if not number:
        raise DomainError(_("Please give the certificate number."), field="number")
    if not issuer:
        raise DomainError(_("Please say who issued the certificate."), field="issuer")
    if issued_on > timezone.localdate():
        raise DomainError(_("The issue date cannot be in the future."), field="issued_on")
    if expires_on <= issued_on:
        raise DomainError(_("The expiry date must be after the issue date."), field="expires_on")
    if file is not None:
        check_upload(file)
    certificate = GcpCertificate(
        person=person,
        number=number,
        issuer=issuer,
        issued_on=issued_on,
        expires_on=expires_on,
        recorded_by=actor,
        recorded_at=timezone.now(),
    )
    with transaction.atomic():
        if GcpCertificate.objects.filter(person=person, issuer=issuer, number=number).exists():
            raise Conflict(_("This certificate is already on record."), code="duplicate_certificate", field="number")
        if file is not None:
            certificate.file.save(file.name, file, save=False)
        try:
            certificate.full_clean(exclude=["file"])
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages)) from exc
        certificate._history_user = actor
        certificate.save()
    return certificate


def valid_certificate(person: User | None, on: datetime.date) -> GcpCertificate | None:
    """The person's certificate valid on a day (the one expiring last), or None."""
    if person is None:
        return None
    return (
        GcpCertificate.objects.filter(person=person, issued_on__lte=on, expires_on__gte=on)
        .order_by("-expires_on", "-pk")
        .first()
    )


def check_site_pi_qualified(site: TrialSite, on: datetime.date, *, action) -> None:
    """Refuse ``action`` when the site has no PI, or its PI holds no GCP certificate valid on the day."""
    if site.site_pi_id is None:
        raise DomainError(
            _("Cannot %(action)s: %(site)s has no site PI on record; record the site PI first.")
            % {"action": action, "site": site.institution},
            code="site_pi_missing",
        )
    if valid_certificate(site.site_pi, on) is None:
        raise DomainError(
            _(
                "Cannot %(action)s: the site PI %(pi)s holds no GCP training certificate valid on %(day)s; the "
                "PI or the hospital's research office records a current certificate first."
            )
            % {"action": action, "pi": site.site_pi, "day": on.isoformat()},
            code="pi_not_qualified",
        )


# --- the delegation log ------------------------------------------------------------------------------------------


def may_keep_log(actor: User, site: TrialSite) -> bool:
    """The site's PI, or the research office of the site's hospital."""
    if actor.is_superuser:
        return True
    if not actor.is_active:
        return False
    if actor.role == Role.PI:
        return site.site_pi_id == actor.pk
    return actor.role == Role.RESEARCH_OFFICE and actor.institution_id == site.institution_id


def delegation_candidates(site: TrialSite) -> QuerySet[User]:
    """Who may be put on the site's log: active PI-role staff of the site's hospital other than its PI."""
    return User.objects.filter(is_active=True, role=Role.PI, institution_id=site.institution_id).exclude(
        pk=site.site_pi_id
    )


def delegation_record(
    *,
    site: TrialSite,
    actor: User,
    person: User,
    duties: list[str],
    starts_on: datetime.date,
    ends_on: datetime.date | None = None,
) -> list[Delegation]:
    """Add lines to a site's delegation log: the person may perform each duty from ``starts_on``."""
    if not may_keep_log(actor, site):
        raise DomainError(
            _("Only the site PI or the hospital's research office keeps the delegation log."), code="permission_denied"
        )
    duties = list(dict.fromkeys(duties))
    if not duties or any(duty not in Duty.values for duty in duties):
        raise DomainError(_("Choose at least one duty from the list."), field="duties")
    if person.institution_id != site.institution_id or not person.is_active:
        raise DomainError(_("Delegate to an active member of the site's hospital."), field="person")
    if person.pk == site.site_pi_id:
        raise DomainError(_("The site PI holds every duty without a delegation."), field="person")
    if ends_on is not None and ends_on < starts_on:
        raise DomainError(_("The end date cannot be before the start date."), field="ends_on")
    now = timezone.now()
    lines = []
    with transaction.atomic():
        TrialSite.objects.select_for_update().filter(pk=site.pk).first()
        for duty in duties:
            overlapping = Delegation.objects.filter(site=site, person=person, duty=duty).filter(
                Q(ends_on__isnull=True) | Q(ends_on__gte=starts_on)
            )
            if ends_on is not None:
                overlapping = overlapping.filter(starts_on__lte=ends_on)
            if overlapping.exists():
                raise Conflict(
                    _("%(person)s already holds “%(duty)s” at this site for part of that period.")
                    % {"person": person, "duty": Duty(duty).label},
                    code="delegation_overlaps",
                    field="duties",
                )
            line = Delegation(
                site=site,
                person=person,
                duty=duty,
                starts_on=starts_on,
                ends_on=ends_on,
                recorded_by=actor,
                recorded_at=now,
            )
            line._history_user = actor
            line.save()
            lines.append(line)
    return lines


def delegation_end(*, delegation: Delegation, actor: User, ends_on: datetime.date) -> Delegation:
    """Close a line of the log on a day (the person may act up to and including it)."""
    if not may_keep_log(actor, delegation.site):
        raise DomainError(
            _("Only the site PI or the hospital's research office keeps the delegation log."), code="permission_denied"
        )
    with transaction.atomic():
        line = Delegation.objects.select_for_update().get(pk=delegation.pk)
        if ends_on < line.starts_on:
            raise DomainError(_("The end date cannot be before the start date."), field="ends_on")
        if line.ends_on is not None and line.ends_on <= ends_on:
            raise Conflict(_("This delegation already ends on %(day)s.") % {"day": line.ends_on}, code="already_ended")
        line.ends_on = ends_on
        line._history_user = actor
        line.save(update_fields=["ends_on"])
    return line


def holds_duty(person: User, site: TrialSite, duty: str, on: datetime.date) -> bool:
    """Whether the person may perform a duty at the site on a day: its PI always, others by the log."""
    if person.pk == site.site_pi_id:
        return True
    return Delegation.objects.filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=on), site=site, person=person, duty=duty, starts_on__lte=on
    ).exists()


def check_may_report(actor: User, site: TrialSite, on: datetime.date) -> None:
    """An investigator reports only while holding the "report" duty on the day of the event. The research office
    of the site's hospital keeps the log and records the ledger for the site as its registrar, and superusers
    correct data as administrators: neither acts under a delegation."""
    if actor.is_superuser or (actor.role == Role.RESEARCH_OFFICE and actor.institution_id == site.institution_id):
        return
    if holds_duty(actor, site, Duty.REPORT, on):
        return
    raise DomainError(
        _(
            "%(person)s does not hold the duty “%(duty)s” at %(site)s on %(day)s; the site PI or the research office "
            "adds it to the site's delegation log first."
        )
        % {"person": actor, "duty": Duty.REPORT.label, "site": site.institution, "day": on.isoformat()},
        code="not_delegated",
    )


# --- reminders ---------------------------------------------------------------------------------------------------

SUBJECTS = {
    Stage.BEFORE_EXPIRY: gettext_lazy("Your GCP training certificate expires on %(expires)s"),
    Stage.EXPIRED: gettext_lazy("GCP training certificate expired on %(expires)s: %(person)s"),
}
BODIES = {
    Stage.BEFORE_EXPIRY: gettext_lazy(
        "The GCP training certificate %(number)s of %(person)s (issued by %(issuer)s) expires on %(expires)s. A site "
        "PI without a valid certificate cannot initiate a site or enrol subjects: please renew the training and "
        "record the new certificate."
    ),
    Stage.EXPIRED: gettext_lazy(
        "The GCP training certificate %(number)s of %(person)s (issued by %(issuer)s) expired on %(expires)s. Sites "
        "where this person is PI cannot screen or enrol subjects until a current certificate is recorded."
    ),
}


def reminder_days(on: datetime.date) -> int | None:
    try:
        return int(PolicyParameter.value_for(REMINDER_DAYS_CODE, on=on))
    except PolicyParameter.DoesNotExist:
        return None


def due_certificates(today: datetime.date) -> list[tuple[GcpCertificate, str]]:
    """Certificates owed a reminder today that no run has sent, each with its stage. Two queries."""
    days = reminder_days(today)
    if days is None:
        return []
    later = GcpCertificate.objects.filter(person=OuterRef("person"), expires_on__gt=OuterRef("expires_on"))
    sent = CertificateReminder.objects.filter(certificate=OuterRef("pk"))
    rows = (
        GcpCertificate.objects.filter(expires_on__lte=today + datetime.timedelta(days=days), person__is_active=True)
        .filter(~Exists(later))
        .annotate(
            sent_before=Exists(sent.filter(stage=Stage.BEFORE_EXPIRY)),
            sent_expired=Exists(sent.filter(stage=Stage.EXPIRED)),
        )
        .select_related("person")
        .order_by("expires_on", "pk")
    )
    due = []
    for certificate in rows:
        if certificate.expires_on < today:
            if not certificate.sent_expired:
                due.append((certificate, Stage.EXPIRED))
        elif not certificate.sent_before:
            due.append((certificate, Stage.BEFORE_EXPIRY))
    return due


def _offices(certificates: list[GcpCertificate]) -> dict[int, list[User]]:
    institutions = {c.person.institution_id for c in certificates}
    staff = defaultdict(list)
    for person in User.objects.filter(
        is_active=True, role=Role.RESEARCH_OFFICE, institution_id__in=institutions
    ).order_by("pk"):
        staff[person.institution_id].append(person)
    return staff


def _remind(certificate: GcpCertificate, stage: str, now: datetime.datetime, offices: list[User]) -> bool:
    with transaction.atomic():
        _row, created = CertificateReminder.objects.get_or_create(
            certificate=certificate, stage=stage, defaults={"sent_at": now}
        )
        if not created:
            return False
        params = {
            "number": certificate.number,
            "issuer": certificate.issuer,
            "expires": certificate.expires_on.isoformat(),
            "person": certificate.person,
        }
        notify(
            recipients=[certificate.person, *offices],
            topic=f"gcp_certificate.{stage}",
            event_key=f"certificate:{certificate.pk}",
            subject=render_later(SUBJECTS[stage], **params),
            body=render_later(BODIES[stage], **params),
            link=reverse("ethics_portal:qualifications"),
        )
    return True


def send_certificate_reminders(now: datetime.datetime | None = None) -> list[tuple[GcpCertificate, str]]:
    """Send every certificate reminder due at ``now`` that no earlier run sent; returns those sent."""
    now = now or timezone.now()
    due = due_certificates(timezone.localdate(now))
    offices = _offices([certificate for certificate, _stage in due])
    sent = []
    for certificate, stage in due:
        try:
            if _remind(certificate, stage, now, offices[certificate.person.institution_id]):
                sent.append((certificate, stage))
        except Exception:
            log.exception("certificate reminder failed", extra={"certificate": certificate.pk, "stage": stage})
    return sent
