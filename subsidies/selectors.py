"""Scoped reads of subsidy claims for pages and the API: here, the claims part of each person's work queue."""

import datetime

from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _

from cgtclinic.roles import Role
from cgtclinic.workqueue import Section, WorkItem, section
from subsidies.models import Claim

C = Claim.Status


def _claim_item(kind: str, title, claim: Claim, url: str) -> WorkItem:
    return WorkItem(
        kind=kind,
        title=title % {"reference": claim.reference, "program": claim.program.name, "institution": claim.institution},
        url=url,
        detail=(
            _("%(status)s, %(balance)s RMB owed")
            % {"status": claim.get_status_display(), "balance": f"{claim.balance:,.2f}"}
            if claim.status == C.PARTIALLY_PAID
            else claim.get_status_display()
        ),
    )


def research_office_work(user) -> list[Section]:
    """Its hospital's claims still in draft: to complete and submit."""
    drafts = (
        Claim.objects.filter(institution_id=user.institution_id, status=C.DRAFT)
        .select_related("program", "institution")
        .order_by("opened_at", "pk")
    )
    return [
        section(
            "claim.prepare",
            _("Claims to prepare and submit"),
            drafts,
            lambda c: _claim_item(
                "claim.prepare",
                _("Prepare claim %(reference)s (%(program)s)"),
                c,
                reverse("admin:subsidies_claim_change", args=[c.pk]),
            ),
        )
    ]


def regulator_work(user) -> list[Section]:
    """Its region's submitted claims: to take into review, to decide, and approved or partly paid ones to pay."""
    claims = (
        Claim.objects.filter(program__region_id=user.region_id)
        .select_related("program", "institution")
        .order_by("submitted_at", "pk")
    )
    steps = [
        (
            "claim.review",
            _("Claims to review"),
            Q(status=C.SUBMITTED),
            _("Review claim %(reference)s of %(institution)s"),
        ),
        (
            "claim.decide",
            _("Claims to decide"),
            Q(status=C.UNDER_REVIEW),
            _("Decide claim %(reference)s of %(institution)s"),
        ),
        (
            "claim.pay",
            _("Approved claims to pay"),
            Q(status__in=Claim.PAYABLE_STATUSES),
            _("Record a payment of claim %(reference)s of %(institution)s"),
        ),
    ]
    return [
        section(
            kind,
            label,
            claims.filter(condition),
            lambda c, kind=kind, title=title: _claim_item(kind, title, c, reverse("claims-detail", args=[c.pk])),
        )
        for kind, label, condition, title in steps
    ]


def work(user, *, now: datetime.datetime) -> list[Section]:
    """The subsidies part of each person's work queue (registered in SubsidiesConfig.ready)."""
    if user.is_superuser:
        return []
    if user.role == Role.RESEARCH_OFFICE and user.institution_id:
        return research_office_work(user)
    if user.role == Role.REGULATOR and user.region_id:
        return regulator_work(user)
    return []
