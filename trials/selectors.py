"""Scoped reads of trials for pages and the API: here, the trials part of each person's work queue."""

import datetime

from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from cgtclinic.roles import Role
from cgtclinic.workdays import day_start
from cgtclinic.workqueue import Section, WorkItem, section
from trials import enrolment, filings
from trials.models import FilingObligation, TrialSite


def stalled_sites(sites: QuerySet, today: datetime.date) -> QuerySet:
    """Sites whose enrolment is stalled (``trials.enrolment.stalled_sites_q``), longest stalled first."""
    return (
        sites.filter(enrolment.stalled_sites_q(today))
        .alias(since=Coalesce("enrolment__last_enrolled_on", "site_initiated_on"))
        .select_related("trial", "institution")
        .order_by("since", "pk")
    )


def _stalled_item(site: TrialSite) -> WorkItem:
    last = site.enrolment.last_enrolled_on if hasattr(site, "enrolment") else None
    since = max(filter(None, (last, site.site_initiated_on)))
    url = (
        reverse("admin:trials_siteenrolment_changelist") + "?" + urlencode({"trial": site.trial_id, "show": "stalled"})
    )
    return WorkItem(
        kind="enrolment.stalled",
        title=_("Enrolment stalled: %(protocol)s at %(institution)s")
        % {"protocol": site.trial.protocol_number, "institution": site.institution},
        url=url,
        due_at=day_start(since + datetime.timedelta(days=enrolment.STALLED_AFTER_DAYS)),
        overdue=True,
        all_day=True,
        detail=_("No enrolment for %(days)s days") % {"days": enrolment.STALLED_AFTER_DAYS},
    )


def work(user, *, now: datetime.datetime) -> list[Section]:
    """The trials part of a research office's work queue: stalled enrolment at its hospital's sites."""
    if user.is_superuser or user.role != Role.RESEARCH_OFFICE or not user.institution_id:
        return []
    today = timezone.localdate(now)
    sites = TrialSite.objects.filter(institution_id=user.institution_id).select_related("enrolment")
    return [section("enrolment.stalled", _("Stalled enrolment"), stalled_sites(sites, today), _stalled_item)]


# --- research filings -------------------------------------------------------------------------------------------


def filings_waiting(user, *, now: datetime.datetime) -> QuerySet | None:
    """The open filings in their reminder window (or overdue) that ``user`` acts on: the lead research office's
    for its institution's trials, a PI's for their own trials. None for anyone else (no query)."""
    if user.is_superuser or not user.is_active:
        return None
    rows = FilingObligation.objects.open().filter(remind_at__lte=now)
    if user.role == Role.RESEARCH_OFFICE and user.institution_id:
        rows = rows.filter(trial__lead_institution_id=user.institution_id)
    elif user.role == Role.PI:
        rows = rows.filter(trial__pi_id=user.pk)
    else:
        return None
    return rows.select_related("trial").order_by("due_at", "pk")


def _filing_item(obligation: FilingObligation, *, now: datetime.datetime, for_pi: bool) -> WorkItem:
    overdue = obligation.due_at <= now
    days = (timezone.localdate(obligation.due_at - datetime.timedelta(microseconds=1)) - timezone.localdate(now)).days
    if overdue:
        title = _("Filing overdue: %(filing)s (%(protocol)s)")
    else:
        title = _("Filing due in %(days)s days: %(filing)s (%(protocol)s)")
    return WorkItem(
        kind="filing.due",
        title=title
        % {"days": max(days, 0), "filing": obligation.get_kind_display(), "protocol": obligation.trial.protocol_number},
        url=filings.pi_link(obligation.trial_id) if for_pi else filings.office_link(obligation.trial_id),
        due_at=obligation.due_at,
        overdue=overdue,
        provisional=obligation.provisional,
        detail=obligation.trial.title,
    )


def filing_work(user, *, now: datetime.datetime) -> list[Section]:
    """Filings due soon or overdue, overdue first: for the lead research office and for the trial's PI."""
    rows = filings_waiting(user, now=now)
    if rows is None:
        return []
    for_pi = user.role == Role.PI
    return [
        section(
            "filing.due",
            _("Research filings due"),
            rows,
            lambda row: _filing_item(row, now=now, for_pi=for_pi),
        )
    ]
