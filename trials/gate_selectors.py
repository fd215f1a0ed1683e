"""The gates' part of each person's work queue: subjects due for re-consent (the site PI and the hospital's
research office), GCP certificates expiring or expired (the holder and their research office), and gates
answered "pending" (the research office that must record the approval). Each section costs at most two bounded
queries (three for re-consent, which reads the subjects' ledger state)."""

import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.roles import Role
from cgtclinic.workdays import day_start
from cgtclinic.workqueue import ITEMS_PER_KIND, Section, WorkItem, section
from trials import consent, gates, qualifications
from trials.models import Gate, GateAnswer, GateRule, GcpCertificate, Trial, TrialSite

# A trial owes its gates from submission until it stops enrolling for good; an unanswered gate then blocks its
# activation, a site's initiation or an enrolment report, so it waits on the research office.
OWES_GATES = (
    Trial.Status.SUBMITTED,
    Trial.Status.UNDER_REVIEW,
    Trial.Status.APPROVED,
    Trial.Status.ACTIVE,
    Trial.Status.SUSPENDED,
)


def _reconsent_section(sites) -> Section:
    due = consent.reconsent_due(sites, limit=ITEMS_PER_KIND + 1)
    items = [
        WorkItem(
            kind="consent.reconsent",
            title=_("Re-consent %(code)s to %(version)s: %(protocol)s at %(institution)s")
            % {
                "code": row.subject.code,
                "version": row.current,
                "protocol": row.subject.trial.protocol_number,
                "institution": row.subject.site.institution,
            },
            url=reverse("ethics_portal:site_startup", args=[row.subject.site_id]),
            detail=_("Signed %(version)s") % {"version": row.signed},
        )
        for row in due[:ITEMS_PER_KIND]
    ]
    return Section("consent.reconsent", _("Subjects due for re-consent"), items, len(items), len(due) > len(items))


def _certificate_item(certificate: GcpCertificate, today: datetime.date) -> WorkItem:
    return WorkItem(
        kind="qualifications.certificate",
        title=_("GCP certificate of %(person)s expires on %(day)s")
        % {"person": certificate.person, "day": certificate.expires_on.isoformat()},
        url=reverse("ethics_portal:qualifications"),
        due_at=day_start(certificate.expires_on + datetime.timedelta(days=1)),
        overdue=certificate.expires_on < today,
        all_day=True,
    )


def _certificates(people_q: Q, today: datetime.date):
    days = qualifications.reminder_days(today)
    if days is None:
        return None
    later = GcpCertificate.objects.filter(person=OuterRef("person"), expires_on__gt=OuterRef("expires_on"))
    return (
        GcpCertificate.objects.filter(people_q, expires_on__lte=today + datetime.timedelta(days=days))
        .filter(~Exists(later))
        .select_related("person")
        .order_by("expires_on", "pk")
    )


def _pending_item(answer: GateAnswer) -> WorkItem:
    where = f" · {answer.site.institution}" if answer.site_id else ""
    return WorkItem(
        kind="gates.pending",
        title=_("%(gate)s pending: %(protocol)s%(where)s")
        % {"gate": answer.get_gate_display(), "protocol": answer.trial.protocol_number, "where": where},
        url=reverse("admin:trials_gateanswer_change", args=[answer.pk]),
    )


def _rule_applies(gate: str, trial_ref: str) -> Exists:
    """A seeded rule makes the gate apply to the outer row's trial (blank kind or category: any)."""
    return Exists(
        GateRule.objects.filter(gate=gate)
        .filter(Q(trial_kind="") | Q(trial_kind=OuterRef(f"{trial_ref}kind")))
        .filter(Q(therapy_category="") | Q(therapy_category=OuterRef(f"{trial_ref}therapy_category")))
    )


def unanswered(gate: str, institution_id: int) -> QuerySet:
    """The trials (trial gate: those the institution leads) or sites (site gate: those at the institution) that owe
    the gate and have no answer to it yet, oldest first."""
    if gates.is_trial_gate(gate):
        return (
            Trial.objects.filter(lead_institution_id=institution_id, status__in=OWES_GATES)
            .filter(_rule_applies(gate, ""))
            .exclude(Exists(GateAnswer.objects.filter(trial=OuterRef("pk"), site__isnull=True, gate=gate)))
            .order_by("pk")
        )
    return (
        TrialSite.objects.filter(institution_id=institution_id, trial__status__in=OWES_GATES)
        .filter(_rule_applies(gate, "trial__"))
        .exclude(Exists(GateAnswer.objects.filter(site=OuterRef("pk"), gate=gate)))
        .select_related("trial", "institution")
        .order_by("pk")
    )


def _unanswered_item(gate: str, row) -> WorkItem:
    trial = row if isinstance(row, Trial) else row.trial
    where = f" · {row.institution}" if isinstance(row, TrialSite) else ""
    return WorkItem(
        kind="gates.unanswered",
        title=_("%(gate)s not yet answered: %(protocol)s%(where)s")
        % {"gate": Gate(gate).label, "protocol": trial.protocol_number, "where": where},
        url=f"{reverse('admin:trials_gateanswer_add')}?trial={trial.pk}&gate={gate}"
        + (f"&site={row.pk}" if isinstance(row, TrialSite) else ""),
        detail=_("Activation, site initiation and enrolment wait for this answer."),
    )


def work(user, *, now: datetime.datetime) -> list[Section]:
    if user.is_superuser or user.role not in (Role.PI, Role.RESEARCH_OFFICE) or not user.institution_id:
        return []
    today = timezone.localdate(now)
    sections = []
    if user.role == Role.PI:
        sections.append(_reconsent_section(TrialSite.objects.filter(site_pi=user)))
        certificates = _certificates(Q(person=user), today)
    else:
        sections.append(_reconsent_section(TrialSite.objects.filter(institution_id=user.institution_id)))
        certificates = _certificates(Q(person__institution_id=user.institution_id, person__is_active=True), today)
        pending = (
            GateAnswer.objects.filter(outcome=GateAnswer.Outcome.PENDING)
            .filter(
                Q(site__isnull=True, trial__lead_institution_id=user.institution_id)
                | Q(site__institution_id=user.institution_id)
            )
            .select_related("trial", "site__institution")
            .order_by("recorded_at", "pk")
        )
        sections.append(section("gates.pending", _("Approvals pending before start"), pending, _pending_item))
        for gate in Gate.values:
            sections.append(
                section(
                    f"gates.unanswered.{gate}",
                    _("%(gate)s to answer before start") % {"gate": Gate(gate).label},
                    unanswered(gate, user.institution_id),
                    lambda row, gate=gate: _unanswered_item(gate, row),
                )
            )
    if certificates is not None:
        sections.append(
            section(
                "qualifications.certificate",
                _("GCP certificates expiring"),
                certificates,
                lambda certificate: _certificate_item(certificate, today),
            )
        )
    return [found for found in sections if found.count]
