"""Scoped reads of trials for pages and the API: here, the trials part of each person's work queue."""

import datetime

from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from cgtclinic.roles import Role
from cgtclinic.workqueue import Section, WorkItem, day_start, section
from trials import enrolment
from trials.models import TrialSite


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
