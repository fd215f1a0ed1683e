"""IIT governance and research filings.

An investigator-initiated trial passes academic (scientific) review and institutional approval (立项), both
recorded by the lead institution's research office, before it may be activated. It then owes filings in the
national medical-research filing system (医学研究登记备案信息系统, 国卫科教发〔2024〕32号): the initial upload, an
annual progress report each year, a change filing after each approved amendment and a completion summary at
closure. Biomedical new-technology clinical research (State Council Order No. 818) is also filed with the health
commission within a number of working days after passing both academic and ethics review.

Each filing is a ``FilingObligation`` with a computed ``due_at``; reminders and escalations follow the timers
pattern of ethics/recognition.py: the beat sweep is enough on its own, ETA tasks add precision for short waits,
and every effect is recorded under a unique key (``FilingEffect``) before anyone is told, so each happens once.
"""

import datetime
import logging

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic import workdays
from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import PolicyParameter, User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from trials.models import DocumentVersion, FilingEffect, FilingObligation, Trial, TrialDocument, TrialReview, TrialSite

logger = logging.getLogger(__name__)
K = FilingObligation.Kind
O = TrialReview.Outcome  # noqa: E741
RK = TrialReview.Kind
ETA_HORIZON = datetime.timedelta(
    seconds=min(3600, settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600) // 2)
)

# --- academic review and institutional approval -----------------------------------------------------------------

NOT_REVIEWED = "not_reviewed"
# The one table of an IIT review's transitions, per review kind: {state: {outcome recorded: new state}}. A review
# not passed is final (the PI applies again as a new project); revise-and-resubmit returns to the reviewers.
REVIEW_ALLOWED: dict[str, dict[str, str]] = {
    NOT_REVIEWED: {O.PASSED: O.PASSED, O.NOT_PASSED: O.NOT_PASSED, O.REVISE: O.REVISE},
    O.REVISE: {O.PASSED: O.PASSED, O.NOT_PASSED: O.NOT_PASSED, O.REVISE: O.REVISE},
}
# The trial statuses in which the reviews are recorded: after submission, before activation.
REVIEW_STATUSES = (Trial.Status.SUBMITTED, Trial.Status.UNDER_REVIEW, Trial.Status.APPROVED)
STATE_LABELS = {NOT_REVIEWED: gettext_lazy("Not yet reviewed"), **dict(O.choices)}


def needs_reviews(trial: Trial) -> bool:
    """Academic review and institutional approval are the institution's steps for investigator-initiated trials."""
    return trial.kind == Trial.Kind.IIT


def latest_reviews(trial: Trial) -> dict[str, TrialReview | None]:
    """The latest recorded outcome of each review kind (one query, or none when prefetched)."""
    latest: dict[str, TrialReview | None] = dict.fromkeys(RK.values)
    # Read through the relation, so that a list that prefetched "reviews" asks nothing more.
    for review in sorted(trial.reviews.all(), key=lambda row: (row.recorded_at, row.pk)):
        latest[review.kind] = review
    return latest


def review_state(trial: Trial, kind: str, latest: dict | None = None) -> str:
    review = (latest if latest is not None else latest_reviews(trial))[kind]
    return review.outcome if review else NOT_REVIEWED


def lead_ethics_approved_on(trial: Trial) -> datetime.date | None:
    return (
        TrialSite.objects.filter(trial=trial, role=TrialSite.SiteRole.LEAD)
        .values_list("ethics_approved_on", flat=True)
        .first()
    )


def may_record_review(user: User, trial: Trial) -> bool:
    """The lead institution's research office (and system administrators)."""
    from trials.services import _RESEARCH_OFFICE, _acts_for_lead

    return _acts_for_lead(user, trial, _RESEARCH_OFFICE)


def available_review_steps(trial: Trial, user: User, latest: dict | None = None) -> dict[str, list[str]]:
    """For each review kind, the outcomes ``user`` may record now (empty when none): read by the admin's buttons,
    the API's ``available_review_steps`` and the portal."""
    if not needs_reviews(trial) or trial.status not in REVIEW_STATUSES or not may_record_review(user, trial):
        return {kind: [] for kind in RK.values}
    latest = latest if latest is not None else latest_reviews(trial)
    return {kind: list(REVIEW_ALLOWED.get(review_state(trial, kind, latest), {})) for kind in RK.values}


def missing_before_activation(trial: Trial, latest: dict | None = None) -> list[str]:
    """What an IIT still lacks before it may be activated, as translated phrases (empty when nothing)."""
    if not needs_reviews(trial):
        return []
    latest = latest if latest is not None else latest_reviews(trial)
    missing = []
    for kind in RK.values:
        state = review_state(trial, kind, latest)
        if state != O.PASSED:
            missing.append(_("%(review)s (now: %(state)s)") % {"review": RK(kind).label, "state": STATE_LABELS[state]})
    return missing


def check_activation(trial: Trial) -> None:
    """Refuse to activate an IIT before both its academic review and its institutional approval have passed."""
    missing = missing_before_activation(trial)
    if missing:
        raise DomainError(
            _("This investigator-initiated trial cannot be activated before it has passed: %(missing)s.")
            % {"missing": "; ".join(missing)},
            code="reviews_missing",
        )


def review_record(
    *,
    trial: Trial,
    actor: User,
    kind: str,
    outcome: str,
    decided_on: datetime.date | None = None,
    comments: str = "",
) -> TrialReview:
    """The research office records an outcome of the academic review or the institutional approval (立项).

    Institutional approval follows a passed academic review and the lead committee's ethics approval. A pass
    of both opens the initial filing; a passed academic review may start a new-technology filing clock."""
    if kind not in RK.values:
        raise DomainError(_("Choose the academic review or the institutional approval."), field="kind")
    if outcome not in O.values:
        raise DomainError(_("Choose passed, not passed or revise and resubmit."), field="outcome")
    now = timezone.now()
    decided_on = decided_on or timezone.localdate(now)
    if decided_on > timezone.localdate(now):
        raise DomainError(_("The decision date cannot be in the future."), field="decided_on")
    if outcome != O.PASSED and not comments.strip():
        raise DomainError(_("State the reviewers' comments or reasons."), field="comments")
    with transaction.atomic():
        locked = Trial.objects.select_for_update().get(pk=trial.pk)
        if not may_record_review(actor, locked):
            raise DomainError(
                _("Only the lead institution's research office records these reviews."), code="permission_denied"
            )
        if not needs_reviews(locked):
            raise DomainError(_("Academic review and institutional approval are recorded for IITs only."))
        if locked.status not in REVIEW_STATUSES:
            raise TransitionNotAllowed(
                _("Reviews are recorded for a submitted trial before it is activated; this trial is “%(status)s”.")
                % {"status": locked.get_status_display()}
            )
        latest = latest_reviews(locked)
        state = review_state(locked, kind, latest)
        if outcome not in REVIEW_ALLOWED.get(state, {}):
            raise TransitionNotAllowed(
                _("The %(review)s is “%(state)s”: no further outcome can be recorded.")
                % {"review": RK(kind).label, "state": STATE_LABELS[state]}
            )
        if kind == RK.INSTITUTIONAL and outcome == O.PASSED:
            academic = latest[RK.ACADEMIC]
            if review_state(locked, RK.ACADEMIC, latest) != O.PASSED:
                raise DomainError(_("Institutional approval follows a passed academic review."), code="order")
            if decided_on < academic.decided_on:
                raise DomainError(
                    _("Institutional approval cannot be earlier than the academic review (%(date)s).")
                    % {"date": academic.decided_on},
                    field="decided_on",
                )
            if lead_ethics_approved_on(locked) is None:
                raise DomainError(
                    _("Institutional approval follows the lead ethics committee's approval, which is not recorded."),
                    code="order",
                )
        review = TrialReview.objects.create(
            trial=locked,
            kind=kind,
            outcome=outcome,
            decided_on=decided_on,
            comments=comments.strip(),
            recorded_by=actor,
            recorded_at=now,
        )
        if outcome == O.PASSED and kind == RK.INSTITUTIONAL:
            _open_initial(locked, decided_on, actor)
        if outcome == O.PASSED and kind == RK.ACADEMIC:
            new_technology_sync(trial=locked)
        _notify_review(locked, review)
    return review


# --- biomedical new-technology clinical research ----------------------------------------------------------------


def new_technology_set(*, trial: Trial, actor: User, answer: bool, reason: str) -> Trial:
    """The research office answers whether the trial is biomedical new-technology clinical research (Order 818),
    with its reason; a "yes" starts the filing clock once academic and ethics review have both passed."""
    if not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = Trial.objects.select_for_update().get(pk=trial.pk)
        if not may_record_review(actor, locked):
            raise DomainError(
                _("Only the lead institution's research office answers this question."), code="permission_denied"
            )
        locked.is_new_technology = bool(answer)
        locked.new_technology_reason = reason.strip()
        locked.new_technology_set_by = actor
        locked.new_technology_set_at = timezone.now()
        locked._history_user = actor
        locked.save(
            update_fields=[
                "is_new_technology",
                "new_technology_reason",
                "new_technology_set_by",
                "new_technology_set_at",
                "updated_at",
            ]
        )
        new_technology_sync(trial=locked)
    return locked


def new_technology_basis(trial: Trial) -> datetime.date | None:
    """The later of the days the academic review and the (lead) ethics review were passed, or None."""
    academic = (
        TrialReview.objects.filter(trial=trial, kind=RK.ACADEMIC)
        .order_by("-recorded_at", "-pk")
        .values_list("outcome", "decided_on")
        .first()
    )
    ethics = lead_ethics_approved_on(trial)
    if not academic or academic[0] != O.PASSED or ethics is None:
        return None
    return max(academic[1], ethics)


def new_technology_sync(*, trial: Trial) -> FilingObligation | None:
    """Open the new-technology filing when the trial counts and both reviews have passed; cancel it when the
    research office answers "no" before it is filed. Called inside the caller's transaction."""
    if not trial.is_new_technology:
        FilingObligation.objects.open().filter(trial=trial, kind=K.NEW_TECHNOLOGY).update(
            status=FilingObligation.Status.CANCELLED,
            note=_("Not biomedical new-technology clinical research: %(reason)s")
            % {"reason": trial.new_technology_reason},
        )
        return None
    basis = new_technology_basis(trial)
    if basis is None:
        return None
    return _open(trial, K.NEW_TECHNOLOGY, "reviews", basis)


# --- opening obligations -----------------------------------------------------------------------------------------


def _parameter(code: str, trial: Trial, on: datetime.date) -> int | None:
    """A seeded period in force on ``on``; None before the rule was in force."""
    try:
        return int(PolicyParameter.value_for(code, region=trial.lead_institution.region, on=on))
    except PolicyParameter.DoesNotExist:
        return None


def _end_of(day: datetime.date) -> datetime.datetime:
    """24:00 (Beijing) of a period's last day (Civil Code art. 203)."""
    return datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(0), tzinfo=workdays.CALENDAR_TZ)


# Calendar periods: the parameter and how it counts from the basis day (the start day itself is not counted).
CALENDAR_PERIODS = {
    K.INITIAL: ("research_filing_initial_days", "days"),
    K.CHANGE: ("research_filing_change_days", "days"),
    K.COMPLETION: ("research_filing_completion_months", "months"),
    K.ANNUAL: ("research_filing_annual_report_months", "months"),
}
NEW_TECHNOLOGY_DAYS = "new_technology_filing_working_days"
NEW_TECHNOLOGY_REMINDER = "new_technology_filing_reminder_working_days"
REMINDER_DAYS = "research_filing_reminder_days"


def compute_deadline(trial: Trial, kind: str, basis_on: datetime.date, *, sequence: int = 1, calendar=None) -> dict:
    """due_at, remind_at and the provisional flags of a filing counted from ``basis_on``, or {} when no rule in
    force on that day asks for it. Working days (new technology) follow the State Council's holiday schedule."""
    if kind == K.NEW_TECHNOLOGY:
        days = _parameter(NEW_TECHNOLOGY_DAYS, trial, basis_on)
        if days is None:
            return {}
        result = workdays.add_working_days(basis_on, days, calendar=calendar)
        ahead = _parameter(NEW_TECHNOLOGY_REMINDER, trial, basis_on) or 0
        # At the start of the working day ``ahead`` working days before the last one (at once for a short period).
        if 0 < ahead < days:
            remind_at = workdays.add_working_days(basis_on, days - ahead, calendar=calendar).due_at
        else:
            remind_at = _end_of(basis_on - datetime.timedelta(days=1))
        return {
            "due_at": result.due_at,
            "remind_at": min(remind_at, result.due_at),
            "provisional": result.provisional,
            "provisional_years": list(result.provisional_years),
        }
    code, unit = CALENDAR_PERIODS[kind]
    period = _parameter(code, trial, basis_on)
    if period is None:
        return {}
    last_day = basis_on + (
        datetime.timedelta(days=period) if unit == "days" else relativedelta(months=period * sequence)
    )
    due_at = _end_of(last_day)
    ahead = _parameter(REMINDER_DAYS, trial, basis_on) or 0
    return {
        "due_at": due_at,
        "remind_at": max(due_at - datetime.timedelta(days=ahead), _end_of(basis_on - datetime.timedelta(days=1))),
        "provisional": False,
        "provisional_years": [],
    }


def _open(trial: Trial, kind: str, source_key: str, basis_on: datetime.date, *, sequence: int = 1):
    """Open an obligation once per (trial, kind, source); tell the PI and the lead research office."""
    deadline = compute_deadline(trial, kind, basis_on, sequence=sequence)
    if not deadline:
        return None
    existing = FilingObligation.objects.filter(trial=trial, kind=kind, source_key=source_key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            obligation = FilingObligation.objects.create(
                trial=trial, kind=kind, source_key=source_key, basis_on=basis_on, **deadline
            )
    except IntegrityError:
        return FilingObligation.objects.get(trial=trial, kind=kind, source_key=source_key)
    _notify(obligation, "opened")
    _schedule_timers([obligation.pk])
    return obligation


def _open_initial(trial: Trial, approved_on: datetime.date, actor: User) -> FilingObligation | None:
    obligation = _open(trial, K.INITIAL, "approval", approved_on)
    if obligation is not None and obligation.status == FilingObligation.Status.OPEN and trial.filing_number:
        # Filed before the system knew of it (the number is on the master record): recorded as filed then.
        filing_record(
            obligation=obligation,
            actor=actor,
            filed_on=trial.filed_on or approved_on,
            filing_number=trial.filing_number,
        )
    return obligation


def _open_next_annual(obligation: FilingObligation) -> FilingObligation | None:
    """After the initial filing, and after each annual report (filed or overdue), the next one while running."""
    trial = obligation.trial
    if trial.status in CLOSED_STATUSES or trial.filed_on is None:
        return None
    sequence = 1 if obligation.kind == K.INITIAL else int(obligation.source_key.split(":")[1]) + 1
    return _open(trial, K.ANNUAL, f"year:{sequence}", trial.filed_on, sequence=sequence)


def on_lead_ethics_approval(*, trial: Trial, amendment: bool, approved_on: datetime.date, key: str) -> None:
    """The lead committee approved the trial (or an amendment): the ethics app calls this inside its transaction.
    An approved amendment of a filed trial owes a change filing; an initial approval may start the new-technology
    clock."""
    if amendment:
        if needs_reviews(trial) and trial.filing_number:
            _open(trial, K.CHANGE, key, approved_on)
        return
    new_technology_sync(trial=trial)


CLOSED_STATUSES = (Trial.Status.COMPLETED, Trial.Status.TERMINATED, Trial.Status.WITHDRAWN)


def after_transition(*, trial: Trial, to_status: str, at: datetime.datetime) -> None:
    """A lifecycle step happened (inside its transaction): closure owes the completion summary, and annual reports
    not yet due lapse; a withdrawn trial owes nothing more."""
    if to_status not in CLOSED_STATUSES:
        return
    today = timezone.localdate(at)
    lapsed = FilingObligation.objects.open().filter(trial=trial)
    if to_status == Trial.Status.WITHDRAWN:
        lapsed.update(status=FilingObligation.Status.CANCELLED, note=_("The trial was withdrawn."))
        return
    lapsed.filter(kind=K.ANNUAL, due_at__gt=_end_of(today)).update(
        status=FilingObligation.Status.CANCELLED, note=_("The trial closed: the completion summary replaces it.")
    )
    if needs_reviews(trial) and trial.filing_number:
        _open(trial, K.COMPLETION, "closure", today)


# --- recording a filing ------------------------------------------------------------------------------------------


def may_record_filing(user: User, trial: Trial) -> bool:
    """The lead research office, the trial's PI, and system administrators."""
    from trials.services import _PI_OR_OFFICE, _acts_for_lead

    return _acts_for_lead(user, trial, _PI_OR_OFFICE)


def filing_record(
    *,
    obligation: FilingObligation,
    actor: User,
    filed_on: datetime.date,
    filing_number: str = "",
    document_file=None,
    note: str = "",
) -> FilingObligation:
    """Record that a filing was made (with its number, date and the document filed); a filing after its deadline
    is accepted and marked late. The initial filing's number and date go onto the trial."""
    from trials.services import document_add_version

    if not may_record_filing(actor, obligation.trial):
        raise DomainError(
            _("Only the lead research office or the trial's PI records filings."), code="permission_denied"
        )
    if filed_on > timezone.localdate():
        raise DomainError(_("The filing date cannot be in the future."), field="filed_on")
    needs_number = obligation.kind in (K.INITIAL, K.NEW_TECHNOLOGY)
    if needs_number and not filing_number.strip():
        raise DomainError(_("Give the filing number the system issued."), field="filing_number")
    with transaction.atomic():
        locked = FilingObligation.objects.select_for_update(of=("self",)).select_related("trial").get(pk=obligation.pk)
        if locked.status != FilingObligation.Status.OPEN:
            raise TransitionNotAllowed(
                _("This filing is “%(status)s”; it cannot be recorded again.") % {"status": locked.get_status_display()}
            )
        if filed_on < locked.basis_on and locked.kind != K.INITIAL:
            raise DomainError(
                _("The filing date cannot be earlier than %(date)s, when it became due.") % {"date": locked.basis_on},
                field="filed_on",
            )
        if document_file is not None:
            locked.document = document_add_version(
                trial=locked.trial,
                actor=actor,
                kind=TrialDocument.Kind.OTHER,
                title=f"{locked.get_kind_display()} {filing_number.strip() or filed_on.isoformat()}"[:200],
                uploaded_file=document_file,
                version_date=filed_on,
            )
        locked.status = FilingObligation.Status.FILED
        locked.filed_on = filed_on
        locked.filing_number = filing_number.strip()
        locked.filed_by = actor
        locked.filed_at = timezone.now()
        locked.late = _end_of(filed_on) > locked.due_at
        locked.note = note.strip()
        locked._history_user = actor
        locked.save()
        if locked.kind == K.INITIAL:
            trial = Trial.objects.select_for_update().get(pk=locked.trial_id)
            trial.filing_number, trial.filed_on = locked.filing_number, filed_on
            trial._history_user = actor
            trial.save(update_fields=["filing_number", "filed_on", "updated_at"])
            locked.trial = trial
        if locked.kind in (K.INITIAL, K.ANNUAL):
            _open_next_annual(locked)
    return locked


def filing_document(obligation: FilingObligation) -> DocumentVersion | None:
    return obligation.document


# --- who is told -------------------------------------------------------------------------------------------------

OPENED_SUBJECT = gettext_lazy("Filing due %(due)s: %(filing)s (%(protocol)s)")
OPENED_BODY = gettext_lazy(
    "“%(trial)s” owes a filing: %(filing)s, counted from %(basis)s and due by %(due)s. Record it in the system "
    "once it is filed."
)
REMINDER_SUBJECT = gettext_lazy("Filing due soon (%(due)s): %(filing)s (%(protocol)s)")
REMINDER_BODY = gettext_lazy("The filing “%(filing)s” for “%(trial)s” is due by %(due)s and is not yet recorded.")
ESCALATION_SUBJECT = gettext_lazy("Filing overdue: %(filing)s (%(protocol)s)")
ESCALATION_BODY = gettext_lazy(
    "The filing “%(filing)s” for “%(trial)s” was due by %(due)s and is not recorded. File it now and record it."
)
REVIEW_SUBJECT = gettext_lazy("%(review)s: %(outcome)s (%(protocol)s)")
REVIEW_BODY = gettext_lazy("The %(review)s of “%(trial)s” on %(date)s: %(outcome)s. %(comments)s")


def _params(obligation: FilingObligation) -> dict:
    return {
        "protocol": obligation.trial.protocol_number,
        "trial": obligation.trial,
        "filing": K(obligation.kind).label,
        "basis": obligation.basis_on.isoformat(),
        "due": timezone.localtime(obligation.due_at).strftime("%Y-%m-%d %H:%M"),
    }


def office_link(trial_id: int) -> str:
    return reverse("admin:trials_trial_change", args=[trial_id]) + "#filings"


def pi_link(trial_id: int) -> str:
    return reverse("ethics_portal:trial_detail", args=[trial_id]) + "#filings"


def _notify(obligation: FilingObligation, event: str) -> None:
    """The lead research office (admin link) and the PI (portal link); an escalation also the lead ethics office,
    which shares the duty to keep the national system up to date."""
    subject, body = {
        "opened": (OPENED_SUBJECT, OPENED_BODY),
        "reminder": (REMINDER_SUBJECT, REMINDER_BODY),
        "escalation": (ESCALATION_SUBJECT, ESCALATION_BODY),
    }[event]
    params = _params(obligation)
    trial = obligation.trial
    key = f"filing:{obligation.pk}:{obligation.due_at.isoformat()}"
    offices = {*User.objects.office_of(trial.lead_institution_id, Role.RESEARCH_OFFICE)}
    if event == "escalation":
        offices |= {*User.objects.office_of(trial.lead_institution_id, Role.ETHICS_OFFICE)}
    common = {"topic": f"filing.{event}", "event_key": key}
    common["subject"], common["body"] = render_later(subject, **params), render_later(body, **params)
    notify(recipients=offices, link=office_link(trial.pk), **common)
    notify(recipients=User.objects.filter(pk=trial.pi_id), link=pi_link(trial.pk), **common)


def _notify_review(trial: Trial, review: TrialReview) -> None:
    params = {
        "review": RK(review.kind).label,
        "outcome": O(review.outcome).label,
        "protocol": trial.protocol_number,
        "trial": trial,
        "date": review.decided_on.isoformat(),
        "comments": review.comments,
    }
    notify(
        recipients=User.objects.filter(pk=trial.pi_id),
        topic="trial.review",
        event_key=f"review:{review.pk}",
        subject=render_later(REVIEW_SUBJECT, **params),
        body=render_later(REVIEW_BODY, **params),
        link=pi_link(trial.pk),
    )


# --- deadline effects --------------------------------------------------------------------------------------------


def _schedule_timers(ids: list[int]) -> None:
    """After commit, queue ETA tasks for effects due soon; the sweep covers the rest."""
    from trials import tasks

    def enqueue():
        now = timezone.now()
        for obligation in FilingObligation.objects.filter(pk__in=ids).open():
            for when, task in ((obligation.remind_at, tasks.filing_remind), (obligation.due_at, tasks.filing_escalate)):
                if when - now <= ETA_HORIZON:
                    task.apply_async((obligation.pk,), eta=max(when, now))

    transaction.on_commit(enqueue)


def _record_effect(obligation: FilingObligation, kind: str, now: datetime.datetime) -> bool:
    try:
        with transaction.atomic():
            FilingEffect.objects.create(obligation=obligation, kind=kind, due_at=obligation.due_at, happened_at=now)
    except IntegrityError:
        return False
    return True


def _claim(obligation_id: int, field: str, now: datetime.datetime) -> FilingObligation | None:
    return (
        # Only the obligation's own row: a sibling's timer must not skip it (SKIP LOCKED) for a joined row.
        FilingObligation.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("trial")
        .filter(pk=obligation_id, status=FilingObligation.Status.OPEN, **{f"{field}__lte": now})
        .first()
    )


def filing_remind(obligation_id: int, now: datetime.datetime | None = None) -> bool:
    """Remind the PI and the lead research office before the deadline, once."""
    now = now or timezone.now()
    with transaction.atomic():
        obligation = _claim(obligation_id, "remind_at", now)
        if obligation is None or not _record_effect(obligation, FilingEffect.Kind.REMINDER, now):
            return False
        _notify(obligation, "reminder")
    return True


def filing_escalate(obligation_id: int, now: datetime.datetime | None = None) -> bool:
    """At the deadline, mark the filing overdue and tell the PI and the lead's research and ethics offices, once.
    An overdue annual report opens the next year's."""
    now = now or timezone.now()
    with transaction.atomic():
        obligation = _claim(obligation_id, "due_at", now)
        if obligation is None or not _record_effect(obligation, FilingEffect.Kind.ESCALATION, now):
            return False
        obligation.escalated_at = now
        obligation.save(update_fields=["escalated_at"])
        _notify(obligation, "escalation")
        if obligation.kind == K.ANNUAL:
            _open_next_annual(obligation)
    return True


def sweep(now: datetime.datetime | None = None) -> dict[str, int]:
    """Every due effect that has not happened yet; safe to run any number of times, from any process."""
    now = now or timezone.now()
    effects = FilingEffect.objects.filter(obligation=OuterRef("pk"), due_at=OuterRef("due_at"))
    open_rows = FilingObligation.objects.open()
    to_remind = open_rows.filter(remind_at__lte=now).exclude(Exists(effects.filter(kind=FilingEffect.Kind.REMINDER)))
    to_escalate = open_rows.filter(due_at__lte=now).exclude(Exists(effects.filter(kind=FilingEffect.Kind.ESCALATION)))
    done = {"reminders": 0, "escalations": 0}
    for pk in list(to_remind.values_list("pk", flat=True)):
        done["reminders"] += filing_remind(pk, now)
    for pk in list(to_escalate.values_list("pk", flat=True)):
        done["escalations"] += filing_escalate(pk, now)
    return done


def recompute_deadlines(years: tuple[int, ...]) -> int:
    """A holiday schedule was entered or changed: recompute the open working-day deadlines touching those years."""
    if not years:
        return 0
    first = datetime.datetime(min(years), 1, 1, tzinfo=workdays.CALENDAR_TZ)
    affected = (
        FilingObligation.objects.open()
        .filter(kind=K.NEW_TECHNOLOGY)
        .filter(Q(provisional=True) | Q(due_at__gte=first))
        .select_related("trial__lead_institution__region")
    )
    changed = []
    with transaction.atomic():
        for obligation in affected.select_for_update(of=("self",)):
            new = compute_deadline(obligation.trial, obligation.kind, obligation.basis_on)
            if new and any(getattr(obligation, k) != v for k, v in new.items()):
                for key, value in new.items():
                    setattr(obligation, key, value)
                obligation.save(update_fields=list(new))
                changed.append(obligation.pk)
        _schedule_timers(changed)
    logger.info("recomputed %d filing deadlines for years %s", len(changed), years)
    return len(changed)


def open_deadline_horizon() -> datetime.date | None:
    """The latest day an open working-day filing deadline reaches (for the calendar admin's missing years)."""
    latest = (
        FilingObligation.objects.open()
        .filter(kind=K.NEW_TECHNOLOGY)
        .order_by("-due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    return timezone.localdate(latest) if latest else None


# --- what a page shows -------------------------------------------------------------------------------------------


def governance(trial: Trial, user: User) -> dict:
    """The reviews, the activation check and the filings of a trial, as plain data for the admin, API and portal."""
    latest = latest_reviews(trial)
    reviews = []
    for kind in RK.values:
        review = latest[kind]
        reviews.append(
            {
                "kind": kind,
                "label": RK(kind).label,
                "state": review_state(trial, kind, latest),
                "state_display": STATE_LABELS[review_state(trial, kind, latest)],
                "decided_on": review.decided_on if review else None,
                "comments": review.comments if review else "",
                "recorded_by": review.recorded_by.get_full_name() if review else "",
            }
        )
    return {
        "applies": needs_reviews(trial),
        "reviews": reviews,
        "missing": missing_before_activation(trial, latest),
        "steps": available_review_steps(trial, user, latest),
        "filings": list(FilingObligation.objects.filter(trial=trial).select_related("document").order_by("due_at")),
        "may_record_filing": may_record_filing(user, trial),
        "may_answer": may_record_review(user, trial),
    }
