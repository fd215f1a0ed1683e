"""Safety reporting: SAEs a site's investigator reports, SUSARs the sponsor sends to the site, and their clocks.

Every report gets its clocks (``SafetyClock``) when it is recorded or reaches the step that starts them; each
clock's period is a seeded policy value (or the institution's own setting), named on the clock with its source:

- SAE: investigator → sponsor, "immediately" (GCP 2020 art. 26), ``sae_sponsor_report_hours`` from awareness;
  investigator → ethics committee within the institution's period (``SafetyReportingSettings.ec_report_hours``,
  else ``sae_ec_report_hours``); the committee's review from the report to it.
- SUSAR (NMPA/CDE 2018 standard for expedited reporting): the sponsor's first report within 7 (fatal or
  life-threatening) or 15 calendar days, day 0 being the day the sponsor learned of it, met when the site
  receives it; for a fatal or life-threatening SUSAR, follow-up information within 8 more days of the first
  report (met when a follow-up reaches the site); the site PI's review and the committee's review from receipt.

Periods in hours run from the moment (Civil Code art. 201). Periods in calendar days follow the Civil Code's day
rule: the start day ("day 0") is not counted and the period ends at 24:00 Beijing time of its last day, so
"within 7 days, day 0 = the day the sponsor learns" ends at 24:00 of day 0 + 7. Holidays do not move them: the
standard counts calendar days (art. 204 lets a special rule set aside art. 203's move of a last day that is a
holiday), so a deadline in a year without a published holiday schedule is never provisional.

Reporting to the ethics committee files an SAE submission (``Submission.Kind.SAE``, SUSARs too, marked in its
details) to the committee that reviews the trial for the site, through the ethics services, so the committee's
office sees it in its intake; the committee's review of the safety report acknowledges that submission. Where
no committee in the system has approved the trial for the site, the investigator records the time the report was
made outside the system instead.

The database holds every deadline; the beat sweep (every minute) is enough on its own and ETA tasks give
timeliness for short waits. Reminders and escalations are recorded in ``SafetyEffect`` under a unique key before
anyone is told, so each happens once.
"""

import datetime
import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import PolicyParameter, User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from cgtclinic.workdays import CALENDAR_TZ, ONE_DAY, day_start
from ethics.models import (
    Decision,
    EthicsCommittee,
    SafetyClock,
    SafetyEffect,
    SafetyEvent,
    SafetyEventStep,
    SafetyReportingSettings,
    Submission,
)
from ethics.recognition import ETA_HORIZON
from trials.models import EnrolmentSubject, TrialSite

logger = logging.getLogger(__name__)
K = SafetyEvent.Kind
St = SafetyEvent.Status
C = SafetyClock.Kind
HOURS, CALENDAR_DAYS = PolicyParameter.Unit.HOURS, PolicyParameter.Unit.CALENDAR_DAYS

# --- what can happen next ---------------------------------------------------------------------------------------

SEND_TO_SPONSOR, REPORT_TO_EC, PI_REVIEW = "send_to_sponsor", "report_to_ec", "pi_review"
COMMITTEE_REVIEW = "committee_review"
WITHDRAW, FOLLOW_UP = "withdraw", "follow_up"
# The one table of a report's steps: {from status: {step: to status}}. A SAE starts "recorded", a SUSAR "received".
# A follow-up report leaves the first report's status as it is, so it is listed wherever it applies.
ALLOWED: dict[str, dict[str, str]] = {
    St.RECORDED: {SEND_TO_SPONSOR: St.SENT_TO_SPONSOR, FOLLOW_UP: St.RECORDED, WITHDRAW: St.WITHDRAWN},
    St.SENT_TO_SPONSOR: {REPORT_TO_EC: St.REPORTED_TO_EC, FOLLOW_UP: St.SENT_TO_SPONSOR},
    St.RECEIVED: {PI_REVIEW: St.PI_REVIEWED, FOLLOW_UP: St.RECEIVED, WITHDRAW: St.WITHDRAWN},
    St.PI_REVIEWED: {REPORT_TO_EC: St.REPORTED_TO_EC, FOLLOW_UP: St.PI_REVIEWED},
    St.REPORTED_TO_EC: {COMMITTEE_REVIEW: St.REVIEWED, FOLLOW_UP: St.REPORTED_TO_EC},
    St.REVIEWED: {FOLLOW_UP: St.REVIEWED},
}
STEP_LABELS = {
    SEND_TO_SPONSOR: pgettext_lazy("safety step", "Sent to the sponsor"),
    REPORT_TO_EC: pgettext_lazy("safety step", "Reported to the ethics committee"),
    PI_REVIEW: pgettext_lazy("safety step", "Reviewed by the PI"),
    COMMITTEE_REVIEW: pgettext_lazy("safety step", "Reviewed by the committee"),
    WITHDRAW: pgettext_lazy("safety step", "Withdrawn"),
    FOLLOW_UP: pgettext_lazy("safety step", "Follow-up report"),
    "recorded": pgettext_lazy("safety step", "Recorded"),
}
# The clock each step meets.
STEP_MEETS = {
    SEND_TO_SPONSOR: C.SPONSOR_REPORT,
    REPORT_TO_EC: C.EC_REPORT,
    PI_REVIEW: C.PI_REVIEW,
    COMMITTEE_REVIEW: C.COMMITTEE_REVIEW,
}
# Clocks the site's investigators act on; the committee's office acts on its review; the sponsor's are watched.
INVESTIGATOR_CLOCKS = (C.SPONSOR_REPORT, C.EC_REPORT, C.PI_REVIEW, C.SUSAR_FOLLOW_UP)
OFFICE_CLOCKS = (C.COMMITTEE_REVIEW,)


def is_investigator(user: User, event: SafetyEvent) -> bool:
    """The site's PI or the trial's PI."""
    return bool(user.is_active and user.role == Role.PI and user.pk in (event.site.site_pi_id, event.trial.pi_id))


def is_site_staff(user: User, event: SafetyEvent) -> bool:
    """An investigator, or the site institution's research office (机构办公室), which receives SUSARs too."""
    return is_investigator(user, event) or bool(
        user.is_active and user.role == Role.RESEARCH_OFFICE and user.institution_id == event.site.institution_id
    )


def is_committee_office(user: User, event: SafetyEvent) -> bool:
    """The ethics office of the committee the report went to (else of the site's institution)."""
    institution_id = event.ec_submission.committee.institution_id if event.ec_submission_id else None
    return bool(
        user.is_active
        and user.role == Role.ETHICS_OFFICE
        and user.institution_id in {institution_id or event.site.institution_id}
    )


_TAKEN_BY = {
    SEND_TO_SPONSOR: is_site_staff,
    REPORT_TO_EC: is_site_staff,
    PI_REVIEW: is_investigator,
    COMMITTEE_REVIEW: is_committee_office,
    WITHDRAW: is_site_staff,
    FOLLOW_UP: is_site_staff,
}


def available_steps(event: SafetyEvent, user: User) -> list[str]:
    """The steps ``user`` may take on the report now, in the table's order; a follow-up is filed on a first report."""
    steps = [step for step in ALLOWED.get(event.status, {}) if not (step == FOLLOW_UP and event.follow_up_of_id)]
    if user.is_superuser:
        return steps
    return [step for step in steps if _TAKEN_BY[step](user, event)]


def _check(event: SafetyEvent, step: str, actor: User) -> str:
    target = ALLOWED.get(event.status, {}).get(step)
    if target is None or (step == FOLLOW_UP and event.follow_up_of_id):
        raise TransitionNotAllowed(
            _("This report is “%(status)s”; “%(step)s” is not possible now.")
            % {"status": event.get_status_display(), "step": STEP_LABELS[step]}
        )
    if not (actor.is_superuser or _TAKEN_BY[step](actor, event)):
        raise DomainError(_("You are not allowed to take this step on this report."), code="permission_denied")
    return target


# --- clocks -----------------------------------------------------------------------------------------------------


def calendar_day_deadline(start: datetime.datetime | datetime.date, days: int) -> datetime.datetime:
    """The end of a period of ``days`` calendar days starting on ``start``'s day (Beijing): that day is not counted
    (it is "day 0"), and the period ends at 24:00 of day 0 + ``days``. Holidays and weekends count like any day."""
    if isinstance(start, datetime.datetime):
        start = start.astimezone(CALENDAR_TZ).date()
    return datetime.datetime.combine(start + datetime.timedelta(days=days) + ONE_DAY, datetime.time(0), CALENDAR_TZ)


SETTING_FIELDS = {
    "sae_ec_report_hours": "ec_report_hours",
    "susar_pi_review_calendar_days": "pi_review_days",
    "safety_committee_review_calendar_days": "committee_review_days",
}


def period(code: str, site: TrialSite, on: datetime.date) -> tuple[int, str]:
    """The period for a clock at ``site`` and where it comes from: the institution's own setting when it has one,
    else the seeded policy value in force on ``on`` for the institution's region."""
    field = SETTING_FIELDS.get(code)
    if field:
        own = (
            SafetyReportingSettings.objects.filter(institution_id=site.institution_id)
            .values_list(field, flat=True)
            .first()
        )
        if own:
            return int(own), _("Institution's setting (%(institution)s)") % {"institution": site.institution}
    row = (
        PolicyParameter.objects.filter(code=code, effective_from__lte=on)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
        .filter(Q(region_id=site.institution.region_id) | Q(region__isnull=True))
        .order_by(F("region").asc(nulls_last=True), "-effective_from")
        .first()
    )
    if row is None:
        raise DomainError(
            _("No policy value “%(code)s” is in force on %(day)s; ask the system administrator to load the seeds.")
            % {"code": code, "day": on.isoformat()}
        )
    return int(row.value), f"{row.source_document} {row.source_clause}"[:200]


def _remind_at(started_at: datetime.datetime, due_at: datetime.datetime, on: datetime.date) -> datetime.datetime:
    left = PolicyParameter.value_for("safety_reminder_remaining_percent", on=on)
    return max(started_at, due_at - (due_at - started_at) * float(left / Decimal(100)))


def _open_clock(event: SafetyEvent, kind: str, code: str, started_at: datetime.datetime) -> SafetyClock:
    on = timezone.localdate(started_at)
    value, source = period(code, event.site, on)
    unit = HOURS if code.endswith("_hours") else CALENDAR_DAYS
    # Hours run from the moment (Civil Code art. 201); days by the day rule.
    due_at = started_at + datetime.timedelta(hours=value) if unit == HOURS else calendar_day_deadline(started_at, value)
    institution = event.site.institution
    clock = SafetyClock.objects.create(
        event=event,
        trial_id=event.trial_id,
        site_institution=institution,
        region_id=institution.region_id,
        kind=kind,
        started_at=started_at,
        due_at=due_at,
        remind_at=_remind_at(started_at, due_at, on),
        period=value,
        unit=unit,
        period_source=source,
    )
    refresh_next_due(event.pk)
    return clock


def _meet(clock: SafetyClock, at: datetime.datetime) -> None:
    clock.met_at = at
    clock.late = at > clock.due_at
    clock.elapsed_hours = Decimal((at - clock.started_at).total_seconds() / 3600).quantize(Decimal("0.01"))
    clock.save(update_fields=["met_at", "late", "elapsed_hours"])
    refresh_next_due(clock.event_id)


def refresh_next_due(event_id: int) -> None:
    """The report's next deadline as its clocks now say: the earliest due moment of the open ones (none when every
    clock is met or cancelled). Called under the report's row lock by every change to its clocks."""
    earliest = SafetyClock.objects.filter(event_id=OuterRef("pk")).open().order_by("due_at").values("due_at")[:1]
    SafetyEvent.objects.filter(pk=event_id).update(next_due_at=Subquery(earliest))


def _meet_open(event: SafetyEvent, kind: str, at: datetime.datetime) -> None:
    clock = SafetyClock.objects.select_for_update(of=("self",)).filter(event=event, kind=kind).open().first()
    if clock is not None:
        _meet(clock, at)


def time_left(clock: SafetyClock, now: datetime.datetime | None = None) -> datetime.timedelta:
    """Time until the clock's deadline: negative once it passed, zero once it is met."""
    if clock.met_at or clock.cancelled:
        return datetime.timedelta(0)
    return clock.due_at - (now or timezone.now())


def _schedule_timers(clock_ids: list[int]) -> None:
    """After commit, queue ETA tasks for effects due soon; the sweep covers the rest."""
    from ethics import tasks

    def enqueue():
        now = timezone.now()
        for clock in SafetyClock.objects.filter(pk__in=clock_ids).open():
            for when, task in ((clock.remind_at, tasks.safety_remind), (clock.due_at, tasks.safety_escalate)):
                if when - now <= ETA_HORIZON:
                    task.apply_async((clock.pk,), eta=max(when, now))

    transaction.on_commit(enqueue, robust=True)


# --- recording reports ------------------------------------------------------------------------------------------


def _check_moment(at: datetime.datetime, *, field: str, after: datetime.datetime | None = None) -> None:
    if timezone.is_naive(at):
        raise DomainError(_("Give the time with its time zone."), field=field)
    if at > timezone.now() + datetime.timedelta(minutes=5):
        raise DomainError(_("That time is in the future."), field=field)
    if after is not None and at < after:
        raise DomainError(_("That time is before the report's start."), field=field)


def _check_details(*, site: TrialSite, subject: EnrolmentSubject | None, criteria: list[str], term: str,
                   description: str) -> None:  # fmt: skip
    if subject is not None and subject.site_id != site.pk:
        raise DomainError(_("The subject code belongs to another site."), field="subject")
    unknown = set(criteria) - set(SafetyEvent.Criterion.values)
    if not criteria or unknown:
        raise DomainError(_("Choose at least one seriousness criterion."), field="criteria")
    if not term.strip() or not description.strip():
        raise DomainError(_("Give the event term and a description."), field="description")


def _step_row(event, step, actor, *, from_status="", to_status="", at=None, note="") -> None:
    SafetyEventStep.objects.create(
        event=event,
        step=step,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        happened_at=at or timezone.now(),
        note=note,
    )


def safety_event_record(
    *,
    actor: User,
    site: TrialSite,
    kind: str,
    term: str,
    description: str,
    criteria: list[str],
    expectedness: str,
    causality: str,
    outcome: str = SafetyEvent.Outcome.ONGOING,
    subject: EnrolmentSubject | None = None,
    onset_on: datetime.date | None = None,
    aware_at: datetime.datetime | None = None,
    sponsor_aware_on: datetime.date | None = None,
    received_at: datetime.datetime | None = None,
    sponsor_reference: str = "",
    follow_up_of: SafetyEvent | None = None,
) -> SafetyEvent:
    """Record an SAE (when the investigator became aware) or a SUSAR the site received (with the day the sponsor
    learned of it, day 0), and start its clocks. A follow-up report names the first report it follows."""
    if kind not in K.values:
        raise DomainError(_("Unknown kind of safety report."), field="kind")
    probe = SafetyEvent(site=site, trial=site.trial, follow_up_of=follow_up_of)
    if not (actor.is_superuser or is_site_staff(actor, probe)):
        raise DomainError(
            _("Only the site's investigators or research office may report here."), code="permission_denied"
        )
    _check_details(site=site, subject=subject, criteria=criteria, term=term, description=description)
    if expectedness not in SafetyEvent.Expectedness.values or causality not in SafetyEvent.Causality.values:
        raise DomainError(_("Give the expectedness and the causality."), field="causality")
    if kind == K.SAE:
        if aware_at is None:
            raise DomainError(_("Say when the investigator became aware of the event."), field="aware_at")
        _check_moment(aware_at, field="aware_at")
        sponsor_aware_on = received_at = None
    else:
        if sponsor_aware_on is None or received_at is None:
            raise DomainError(
                _("Give the day the sponsor learned of it (day 0) and when the site received it."), field="received_at"
            )
        _check_moment(received_at, field="received_at", after=day_start(sponsor_aware_on))
        aware_at = None
    with transaction.atomic():
        sequence = 0
        if follow_up_of is not None:
            first = SafetyEvent.objects.select_for_update().get(pk=follow_up_of.pk)
            if first.kind != kind or first.site_id != site.pk or first.follow_up_of_id:
                raise DomainError(_("A follow-up belongs to a first report of the same kind and site."))
            _check(first, FOLLOW_UP, actor)
            sequence = first.follow_ups.count() + 1
        event = SafetyEvent(
            kind=kind,
            trial=site.trial,
            site=site,
            subject=subject,
            follow_up_of=follow_up_of,
            sequence=sequence,
            status=St.RECORDED if kind == K.SAE else St.RECEIVED,
            term=term.strip(),
            description=description.strip(),
            criteria=sorted(set(criteria)),
            expectedness=expectedness,
            causality=causality,
            outcome=outcome,
            onset_on=onset_on,
            aware_at=aware_at,
            sponsor_aware_on=sponsor_aware_on,
            received_at=received_at,
            sponsor_reference=sponsor_reference.strip(),
            reported_by=actor,
        )
        event._history_user = actor
        event.save()
        _step_row(event, FOLLOW_UP if follow_up_of else "recorded", actor, to_status=event.status,
                  at=aware_at or received_at)  # fmt: skip
        clocks = _start_clocks(event)
        if follow_up_of is not None:
            _step_row(follow_up_of, FOLLOW_UP, actor, at=aware_at or received_at, note=f"#{sequence}")
            if kind == K.SUSAR:
                _meet_open(follow_up_of, C.SUSAR_FOLLOW_UP, received_at)
        _schedule_timers([clock.pk for clock in clocks if clock.met_at is None])
        if kind == K.SUSAR:
            _tell(event, "safety.received", RECEIVED_SUBJECT, RECEIVED_BODY, _investigators(event))
    return event


def _start_clocks(event: SafetyEvent) -> list[SafetyClock]:
    if event.kind == K.SAE:
        return [
            _open_clock(event, C.SPONSOR_REPORT, "sae_sponsor_report_hours", event.aware_at),
            _open_clock(event, C.EC_REPORT, "sae_ec_report_hours", event.aware_at),
        ]
    clocks = []
    if event.follow_up_of_id is None:
        code = (
            "susar_fatal_expedited_calendar_days"
            if event.fatal_or_life_threatening
            else "susar_expedited_calendar_days"
        )
        expedited = _open_clock(event, C.SUSAR_EXPEDITED, code, day_start(event.sponsor_aware_on))
        # The sponsor's clock is met when its report reaches the site: that is what the site can attest.
        _meet(expedited, event.received_at)
        clocks.append(expedited)
        if event.fatal_or_life_threatening:
            clocks.append(
                _open_clock(event, C.SUSAR_FOLLOW_UP, "susar_fatal_follow_up_calendar_days", event.received_at)
            )
    clocks.append(_open_clock(event, C.PI_REVIEW, "susar_pi_review_calendar_days", event.received_at))
    clocks.append(_open_clock(event, C.COMMITTEE_REVIEW, "safety_committee_review_calendar_days", event.received_at))
    return clocks


# --- steps ------------------------------------------------------------------------------------------------------


def _lock(event: SafetyEvent) -> SafetyEvent:
    return (
        SafetyEvent.objects.select_for_update(of=("self",))
        .select_related("site__institution", "trial", "ec_submission__committee")
        .get(pk=event.pk)
    )


def _move(locked: SafetyEvent, step: str, actor: User, *, at: datetime.datetime, note: str, fields=()) -> SafetyEvent:
    to = _check(locked, step, actor)
    from_status = locked.status
    locked.status = to
    locked._history_user = actor
    locked.save(update_fields=["status", *fields])
    _step_row(locked, step, actor, from_status=from_status, to_status=to, at=at, note=note)
    if step in STEP_MEETS:
        _meet_open(locked, STEP_MEETS[step], at)
    return locked


def _start(event: SafetyEvent) -> datetime.datetime:
    return event.aware_at or event.received_at


def _timed_step(event: SafetyEvent, actor: User, step: str, at, note: str, stamps) -> SafetyEvent:
    """A step that happened at ``at`` (default now, never before the report's start): ``stamps(at)`` gives the
    fields it writes on the report."""
    at = at or timezone.now()
    with transaction.atomic():
        locked = _lock(event)
        _check(locked, step, actor)
        _check_moment(at, field="at", after=_start(locked))
        fields = stamps(at)
        for name, value in fields.items():
            setattr(locked, name, value)
        return _move(locked, step, actor, at=at, note=note, fields=list(fields))


def safety_send_to_sponsor(
    *, event: SafetyEvent, actor: User, at: datetime.datetime | None = None, note: str = ""
) -> SafetyEvent:
    """The investigator sent the written SAE report to the sponsor at ``at`` (default: now)."""
    return _timed_step(event, actor, SEND_TO_SPONSOR, at, note, lambda at: {"sponsor_notified_at": at})


def safety_pi_review(
    *, event: SafetyEvent, actor: User, at: datetime.datetime | None = None, note: str = ""
) -> SafetyEvent:
    """The site PI signed for and read the SUSAR (and judged whether subjects' care must change)."""
    return _timed_step(event, actor, PI_REVIEW, at, note, lambda at: {"pi_reviewed_at": at, "pi_reviewed_by": actor})


def reviewing_committee(event: SafetyEvent) -> EthicsCommittee | None:
    """The committee that approved the trial for the site: the site institution's own, else the lead's."""
    approving = Decision.objects.filter(submission__trial_id=event.trial_id, outcome=Decision.Outcome.APPROVE)
    for institution_id in (event.site.institution_id, event.trial.lead_institution_id):
        committee = (
            EthicsCommittee.objects.filter(institution_id=institution_id, is_active=True)
            .filter(Exists(approving.filter(committee=OuterRef("pk"))))
            .order_by("pk")
            .first()
        )
        if committee is not None:
            return committee
    return None


def _submission_details(event: SafetyEvent) -> dict:
    return {
        "event_date": (event.onset_on or timezone.localdate(_start(event))).isoformat(),
        "description": f"{event.term}\n{event.description}",
        "causality": str(event.get_causality_display()),
        "outcome": str(event.get_outcome_display()),
        "report_type": event.kind,
        "safety_event": event.pk,
        "seriousness": [str(SafetyEvent.Criterion(c).label) for c in event.criteria],
        "expectedness": str(event.get_expectedness_display()),
        "subject_code": event.subject.code if event.subject_id else "",
    }


def safety_report_to_ec(
    *, event: SafetyEvent, actor: User, at: datetime.datetime | None = None, note: str = ""
) -> SafetyEvent:
    """Report to the ethics committee: files and submits an SAE submission to the committee that approved the trial
    for the site (its time is the submission's). Without such a committee in the system, records ``at``: when the
    report was made outside it (required then). Starts an SAE's committee-review clock."""
    from ethics import services

    with transaction.atomic():
        locked = _lock(event)
        _check(locked, REPORT_TO_EC, actor)
        committee = reviewing_committee(locked)
        if committee is not None:
            title = _("%(kind)s: %(term)s") % {"kind": locked.get_kind_display(), "term": locked.term}
            submission = services.submission_create(
                actor=actor,
                trial=locked.trial,
                kind=Submission.Kind.SAE,
                committee=committee,
                summary=title,
                details=_submission_details(locked),
            )
            submission = services.submission_submit(submission=submission, actor=actor)
            locked.ec_submission, at = submission, submission.submitted_at
        elif at is None:
            raise DomainError(
                _("No committee in the system has approved this trial for the site: say when you reported it."),
                field="at",
            )
        _check_moment(at, field="at", after=_start(locked))
        locked.ec_reported_at = at
        _move(locked, REPORT_TO_EC, actor, at=at, note=note, fields=["ec_reported_at", "ec_submission"])
        if locked.kind == K.SAE:
            clock = _open_clock(locked, C.COMMITTEE_REVIEW, "safety_committee_review_calendar_days", at)
            _schedule_timers([clock.pk])
        _tell(locked, "safety.reported", REPORTED_SUBJECT, REPORTED_BODY, _office(locked, Role.ETHICS_OFFICE))
    return locked


def safety_committee_review(
    *, event: SafetyEvent, actor: User, opinion: str, at: datetime.datetime | None = None
) -> SafetyEvent:
    """The committee reviewed the safety report and gives its opinion; its SAE submission is acknowledged."""
    from ethics import services

    if not opinion.strip():
        raise DomainError(_("Give the committee's opinion."), field="opinion")
    at = at or timezone.now()
    with transaction.atomic():
        locked = _lock(event)
        _check(locked, COMMITTEE_REVIEW, actor)
        _check_moment(at, field="at", after=locked.ec_reported_at)
        submission = locked.ec_submission
        if submission is not None and submission.status == Submission.Status.SUBMITTED:
            submission = services.submission_accept(submission=submission, actor=actor)
        if submission is not None and "acknowledge" in services.ALLOWED.get(submission.status, {}):
            services.submission_acknowledge(submission=submission, actor=actor, note=opinion)
        locked.committee_reviewed_at, locked.committee_reviewed_by = at, actor
        locked.committee_opinion = opinion.strip()
        _move(locked, COMMITTEE_REVIEW, actor, at=at, note=opinion,
              fields=["committee_reviewed_at", "committee_reviewed_by", "committee_opinion"])  # fmt: skip
        _tell(locked, "safety.reviewed", REVIEWED_SUBJECT, REVIEWED_BODY, _investigators(locked))
    return locked


def safety_withdraw(*, event: SafetyEvent, actor: User, reason: str) -> SafetyEvent:
    """A report entered in error, before anyone outside the site was told: its clocks stop and count nowhere."""
    if not reason.strip():
        raise DomainError(_("Say why the report is withdrawn."), field="reason")
    with transaction.atomic():
        locked = _lock(event)
        _move(locked, WITHDRAW, actor, at=timezone.now(), note=reason.strip())
        # Every clock, the met ones too (a SUSAR's expedited clock is met on receipt): none counts in a report.
        SafetyClock.objects.filter(event=locked).update(cancelled=True)
        refresh_next_due(locked.pk)
    return locked


# --- who is told ------------------------------------------------------------------------------------------------


def _investigators(event: SafetyEvent) -> set[User]:
    people = {event.site.site_pi, event.trial.pi, event.reported_by}
    return {person for person in people if person is not None and person.is_active}


def _office(event: SafetyEvent, role: str) -> list[User]:
    institution_id = event.site.institution_id
    if role == Role.ETHICS_OFFICE and event.ec_submission_id:
        institution_id = event.ec_submission.committee.institution_id
    return list(User.objects.office_of(institution_id, role))


def _clock_people(clock: SafetyClock) -> set[User]:
    if clock.kind in OFFICE_CLOCKS:
        return set(_office(clock.event, Role.ETHICS_OFFICE))
    return _investigators(clock.event)


def _params(event: SafetyEvent, clock: SafetyClock | None = None) -> dict:
    params = {
        "kind": event.get_kind_display(),
        "term": event.term,
        "protocol": event.trial.protocol_number,
        "site": event.site.institution,
    }
    if clock is not None:
        params |= {
            "clock": clock.get_kind_display(),
            "due": timezone.localtime(clock.due_at).strftime("%Y-%m-%d %H:%M"),
            "period": clock.period,
            "unit": PolicyParameter.Unit(clock.unit).label,
        }
    return params


def link(event: SafetyEvent, user: User | None = None) -> str:
    """Where a person handles the report: the PI's page in the portal, the admin page for an office."""
    if user is not None and user.role != Role.PI:
        return reverse("admin:ethics_safetyevent_change", args=[event.pk])
    return reverse("ethics_portal:safety_detail", args=[event.pk])


def _tell(event: SafetyEvent, topic: str, subject, body, recipients, clock: SafetyClock | None = None) -> None:
    """One notification per group of recipients that open the report in the same place."""
    params = _params(event, clock)
    key = f"safety:{event.pk}" + (f":{clock.kind}:{clock.due_at.isoformat()}" if clock else "")
    by_place: dict[str, list[User]] = {}
    for person in recipients:
        by_place.setdefault(link(event, person), []).append(person)
    for place, people in by_place.items():
        notify(
            recipients=people,
            topic=topic,
            event_key=key,
            subject=render_later(subject, **params),
            body=render_later(body, **params),
            link=place,
        )


RECEIVED_SUBJECT = gettext_lazy("SUSAR received for review: %(protocol)s, %(term)s")
RECEIVED_BODY = gettext_lazy(
    "A %(kind)s for “%(term)s” (%(protocol)s) reached %(site)s. Please sign for and review it, and report it to "
    "the ethics committee."
)
REPORTED_SUBJECT = gettext_lazy("Safety report to review: %(protocol)s, %(term)s")
REPORTED_BODY = gettext_lazy("%(site)s reported a %(kind)s for “%(term)s” (%(protocol)s) to the ethics committee.")
REVIEWED_SUBJECT = gettext_lazy("Committee reviewed the safety report: %(protocol)s, %(term)s")
REVIEWED_BODY = gettext_lazy("The ethics committee has reviewed the %(kind)s for “%(term)s” (%(protocol)s).")
REMINDER_SUBJECT = gettext_lazy("Safety reporting due %(due)s: %(clock)s, %(protocol)s")
REMINDER_BODY = gettext_lazy(
    "%(clock)s for the %(kind)s “%(term)s” (%(protocol)s, %(site)s) is due by %(due)s (%(period)s %(unit)s)."
)
ESCALATION_SUBJECT = gettext_lazy("Safety reporting overdue: %(clock)s, %(protocol)s")
ESCALATION_BODY = gettext_lazy(
    "%(clock)s for the %(kind)s “%(term)s” (%(protocol)s, %(site)s) was due by %(due)s (%(period)s %(unit)s) "
    "and has not been recorded as done."
)


# --- effects ----------------------------------------------------------------------------------------------------


def _record_effect(clock: SafetyClock, kind: str, now: datetime.datetime) -> bool:
    """Record the effect for this deadline; False if it already happened (another run got there first)."""
    try:
        with transaction.atomic():
            SafetyEffect.objects.create(clock=clock, kind=kind, due_at=clock.due_at, happened_at=now)
    except IntegrityError:
        return False
    return True


def _locked_clock(clock_id: int, **due):
    return (
        SafetyClock.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("event__site__institution", "event__site__site_pi", "event__trial__pi", "event__reported_by")
        .filter(pk=clock_id, **due)
        .open()
        .first()
    )


def safety_remind(clock_id: int, now: datetime.datetime | None = None) -> bool:
    """At ``remind_at``, tell whoever must act that the clock runs out soon, once."""
    now = now or timezone.now()
    with transaction.atomic():
        clock = _locked_clock(clock_id, remind_at__lte=now, due_at__gt=now)
        if clock is None or not _record_effect(clock, SafetyEffect.Kind.REMINDER, now):
            return False
        _tell(clock.event, "safety.reminder", REMINDER_SUBJECT, REMINDER_BODY, _clock_people(clock), clock)
    return True


def safety_escalate(clock_id: int, now: datetime.datetime | None = None) -> bool:
    """At ``due_at``, mark the clock overdue and tell those who must act and the site's research office, once."""
    now = now or timezone.now()
    with transaction.atomic():
        clock = _locked_clock(clock_id, due_at__lte=now)
        if clock is None or not _record_effect(clock, SafetyEffect.Kind.ESCALATION, now):
            return False
        clock.escalated_at = now
        clock.save(update_fields=["escalated_at"])
        recipients = _clock_people(clock) | set(_office(clock.event, Role.RESEARCH_OFFICE))
        _tell(clock.event, "safety.escalation", ESCALATION_SUBJECT, ESCALATION_BODY, recipients, clock)
    return True


def sweep(now: datetime.datetime | None = None) -> dict[str, int]:
    """Every due effect that has not happened yet; safe to run any number of times, from any process. A reminder
    whose deadline passed before it was sent is not sent: the escalation says more."""
    now = now or timezone.now()
    effects = SafetyEffect.objects.filter(clock=OuterRef("pk"), due_at=OuterRef("due_at"))
    open_clocks = SafetyClock.objects.open()
    to_remind = (
        open_clocks.filter(remind_at__lte=now, due_at__gt=now)
        .exclude(Exists(effects.filter(kind=SafetyEffect.Kind.REMINDER)))
        .values_list("pk", flat=True)
    )
    to_escalate = (
        open_clocks.filter(due_at__lte=now)
        .exclude(Exists(effects.filter(kind=SafetyEffect.Kind.ESCALATION)))
        .values_list("pk", flat=True)
    )
    done = {"reminders": 0, "escalations": 0}
    for pk in list(to_remind):
        done["reminders"] += safety_remind(pk, now)
    for pk in list(to_escalate):
        done["escalations"] += safety_escalate(pk, now)
    return done
