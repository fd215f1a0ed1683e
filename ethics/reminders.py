"""Continuing-review reminders: who is told that a study's continuing review falls due, and when.

The due date is ``Decision.next_continuing_review_due``, set by ``decision_record`` and cleared or replaced by a
later approval, so the database is the only clock. The beat task ``ethics.tasks.sweep_continuing_reviews`` calls
``send_continuing_review_reminders`` every 15 minutes; each reminder is a ``ContinuingReviewReminder`` row under
a unique key (decision, due date, stage), and people are notified only by the transaction that inserted it, so a
second sweep, or two at once, sends nothing more.
"""

import datetime
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Case, CharField, Exists, Max, OuterRef, Q, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cgtclinic.models import User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from ethics.models import ContinuingReviewReminder, Decision, EthicsCommittee

log = logging.getLogger(__name__)
Stage = ContinuingReviewReminder.Stage

SUBJECTS = {
    Stage.UPCOMING: _("Continuing review due on %(due)s: %(protocol)s"),
    Stage.OVERDUE: _("Continuing review overdue since %(due)s: %(protocol)s"),
}
BODIES = {
    Stage.UPCOMING: _(
        "The continuing review of the study “%(trial)s” is due on %(due)s (%(committee)s, letter %(letter)s). "
        "Please submit the continuing-review report to the ethics committee before then."
    ),
    Stage.OVERDUE: _(
        "The continuing review of the study “%(trial)s” was due on %(due)s and is now overdue (%(committee)s, "
        "letter %(letter)s). Please submit the continuing-review report to the ethics committee now."
    ),
}


def continuing_review_due_decisions(
    today: datetime.date, *, decision_ids: Iterable[int] | None = None
) -> list[tuple[Decision, str]]:
    """Decisions owed a reminder today that has not been recorded yet, each with its stage.

    "upcoming" from the committee's ``continuing_review_reminder_days`` before the due date up to the due date,
    "overdue" from the day after. Only the current due date counts: a date that moved leaves its old one behind.
    Two queries whatever the number of decisions; the range scan uses the partial index on the due date.
    """
    horizon = EthicsCommittee.objects.aggregate(days=Max("continuing_review_reminder_days"))["days"]
    if horizon is None:
        return []
    stage = Case(
        When(next_continuing_review_due__lt=today, then=Value(Stage.OVERDUE)),
        default=Value(Stage.UPCOMING),
        output_field=CharField(),
    )
    recorded = ContinuingReviewReminder.objects.filter(
        decision=OuterRef("pk"), due_on=OuterRef("next_continuing_review_due"), stage=OuterRef("stage")
    )
    decisions = (
        Decision.objects.filter(
            next_continuing_review_due__isnull=False,
            next_continuing_review_due__lte=today + datetime.timedelta(days=horizon),
        )
        .annotate(stage=stage)
        .filter(~Exists(recorded))
        .select_related("committee", "submission__trial__pi")
        .order_by("next_continuing_review_due", "pk")
    )
    if decision_ids is not None:
        decisions = decisions.filter(pk__in=list(decision_ids))
    return [
        (decision, decision.stage)
        for decision in decisions
        if decision.stage == Stage.OVERDUE
        or today
        >= decision.next_continuing_review_due
        - datetime.timedelta(days=decision.committee.continuing_review_reminder_days)
    ]


def _office_staff(decisions: list[Decision]) -> dict[tuple[str, int], list[User]]:
    """Active ethics-office staff of the committees' institutions and research-office staff of the lead
    institutions, in one query, keyed by (role, institution)."""
    ethics = {decision.committee.institution_id for decision in decisions}
    research = {decision.submission.trial.lead_institution_id for decision in decisions}
    staff = defaultdict(list)
    if not decisions:
        return staff
    people = User.objects.filter(is_active=True).filter(
        Q(role=Role.ETHICS_OFFICE, institution_id__in=ethics)
        | Q(role=Role.RESEARCH_OFFICE, institution_id__in=research)
    )
    for person in people.order_by("pk"):
        staff[(person.role, person.institution_id)].append(person)
    return staff


def reminder_recipients(decision: Decision, staff: dict[tuple[str, int], list[User]]) -> list[User]:
    """The trial's PI, the committee's ethics office, and the lead institution's research office."""
    trial = decision.submission.trial
    return [
        trial.pi,
        *staff[(Role.ETHICS_OFFICE, decision.committee.institution_id)],
        *staff[(Role.RESEARCH_OFFICE, trial.lead_institution_id)],
    ]


def _remind(decision: Decision, stage: str, now: datetime.datetime, recipients: list[User]) -> bool:
    """Record the reminder and notify, in one transaction; False when another run recorded it first."""
    due = decision.next_continuing_review_due
    trial = decision.submission.trial
    with transaction.atomic():
        # A concurrent run inserting the same key waits here for the first to commit, then finds its row.
        _reminder, created = ContinuingReviewReminder.objects.get_or_create(
            decision=decision, due_on=due, stage=stage, defaults={"sent_at": now}
        )
        if not created:
            return False
        params = {
            "due": due.isoformat(),
            "protocol": trial.protocol_number,
            "trial": trial,
            "committee": decision.committee,
            "letter": decision.letter_number or "—",
        }
        notify(
            recipients=recipients,
            topic=f"continuing_review.{stage}",
            event_key=f"decision:{decision.pk}:{due.isoformat()}",
            subject=render_later(SUBJECTS[stage], **params),
            body=render_later(BODIES[stage], **params),
            # The PI files the report from the trial's portal page; office staff open it in the admin.
            link=reverse("ethics_portal:trial_detail", args=[decision.submission.trial_id]),
        )
    return True


def send_continuing_review_reminders(
    now: datetime.datetime | None = None, *, decision_ids: Iterable[int] | None = None
) -> list[tuple[Decision, str]]:
    """Send every continuing-review reminder due at ``now`` that no earlier run sent; returns those sent.

    Each decision is handled in its own transaction, so one that fails is retried by the next sweep without
    holding back the others.
    """
    now = now or timezone.now()
    due = continuing_review_due_decisions(timezone.localdate(now), decision_ids=decision_ids)
    staff = _office_staff([decision for decision, _stage in due])
    sent = []
    for decision, stage in due:
        try:
            if _remind(decision, stage, now, reminder_recipients(decision, staff)):
                sent.append((decision, stage))
        except Exception:
            log.exception("continuing-review reminder failed", extra={"decision": decision.pk, "stage": stage})
    return sent
