"""Scoped reads for ethics reports: mutual-recognition timeliness per alliance or per institution."""

import datetime
from decimal import Decimal

from django.db.models import (
    Count,
    DateField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic import workdays
from cgtclinic.reporting.sql import PercentileCont
from cgtclinic.roles import Role
from cgtclinic.workdays import day_start
from cgtclinic.workqueue import ITEMS_PER_KIND, Section, WorkItem, capped_count, section
from ethics.models import (
    AgendaItem,
    Decision,
    Meeting,
    RecognitionRequest,
    ReviewAssignment,
    SafetyClock,
    SafetyEvent,
    Submission,
)
from trials.models import Trial

R = RecognitionRequest.Status
ANSWERED = [R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED]
# Plain columns (no aliases), so that the groups and their total can come from one GROUPING SETS statement.
GROUPS = {
    "alliance": ("alliance_id", "alliance__name_zh"),
    "institution": ("committee__institution_id", "committee__institution__name_zh"),
}


def recognition_timeliness_groups(*, requests, by: str, now: datetime.datetime | None = None) -> QuerySet:
    """The grouped QuerySet behind ``recognition_timeliness``, keyed by the plain group columns (``GROUPS``)."""
    key, name = GROUPS[by]
    now = now or timezone.now()
    answered = Q(status__in=ANSWERED)
    hours = DecimalField(max_digits=10, decimal_places=2)
    return (
        requests.exclude(status__in=[R.WITHDRAWN, R.SUPERSEDED])
        .values(key, name)
        .annotate(
            received=Count("pk"),
            answered_on_time=Count("pk", filter=answered & Q(late=False)),
            answered_late=Count("pk", filter=answered & Q(late=True)),
            open=Count("pk", filter=Q(status=R.OPEN, due_at__gt=now)),
            overdue=Count("pk", filter=Q(status=R.OPEN, due_at__lte=now)),
            median_working_hours=PercentileCont("response_working_hours", 0.5, filter=answered, output_field=hours),
            p90_working_hours=PercentileCont("response_working_hours", 0.9, filter=answered, output_field=hours),
        )
        .order_by(name, key)
    )


def recognition_timeliness(*, requests, by: str, now: datetime.datetime | None = None) -> list[dict]:
    """Per alliance or institution: received, answered on time, late, still open, overdue, and the median and
    90th percentile of the response time in working hours. ``requests`` is already scoped to the viewer."""
    return [timeliness_group(row, by) for row in recognition_timeliness_groups(requests=requests, by=by, now=now)]


def timeliness_group(row: dict, by: str) -> dict:
    """A row of ``recognition_timeliness_groups`` with its keys named ``group_id`` and ``group_name``."""
    key, name = GROUPS[by]
    row["group_id"] = row.pop(key)
    row["group_name"] = row.pop(name)
    return _rounded(row)


def _rounded(row: dict) -> dict:
    for field in ("median_working_hours", "p90_working_hours"):
        if row.get(field) is not None:
            row[field] = Decimal(row[field]).quantize(Decimal("0.01"))
    return row


# --- work queue (cgtclinic.workqueue): what waits on each person -------------------------------------------------

S = Submission.Status
K = Submission.Kind
MODIFICATION_OUTCOMES = (Decision.Outcome.APPROVE_AFTER_MODIFICATION, Decision.Outcome.MODIFY_AND_RESUBMIT)
# A continuing-review report in one of these states is still the applicant's to finish.
EDITABLE = (S.DRAFT, S.RETURNED)


def _admin_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _filed_continuing_review(*, editable: bool) -> QuerySet:
    """The trial's continuing-review reports filed since the decision (as a subquery on Decision)."""
    reports = Submission.objects.filter(
        trial_id=OuterRef("submission__trial_id"), kind=K.CONTINUING_REVIEW, created_at__gte=OuterRef("decided_at")
    ).exclude(status=S.WITHDRAWN)
    return reports.filter(status__in=EDITABLE) if editable else reports.exclude(status__in=EDITABLE)


def continuing_reviews_due(decisions: QuerySet, today: datetime.date) -> QuerySet:
    """Decisions whose continuing review is due within their committee's reminder window (or overdue) and whose
    report has not been filed yet; soonest first. The range scan uses the partial index on the due date."""
    window_end = ExpressionWrapper(
        Value(today, output_field=DateField()) + F("committee__continuing_review_reminder_days"),
        output_field=DateField(),
    )
    return (
        decisions.filter(next_continuing_review_due__isnull=False)
        .alias(window_end=window_end)
        .filter(next_continuing_review_due__lte=F("window_end"))
        .filter(~Exists(_filed_continuing_review(editable=False)))
        .select_related("submission__trial", "committee")
        .order_by("next_continuing_review_due", "pk")
    )


def _continuing_review_item(decision: Decision, today: datetime.date, url: str) -> WorkItem:
    due = decision.next_continuing_review_due
    overdue = due < today
    title = _("Continuing review overdue: %(protocol)s") if overdue else _("Continuing review due: %(protocol)s")
    return WorkItem(
        kind="continuing_review.due",
        title=title % {"protocol": decision.submission.trial.protocol_number},
        url=url,
        due_at=day_start(due),
        overdue=overdue,
        all_day=True,
        detail=decision.letter_number,
    )


def _recognition_item(request: RecognitionRequest, now: datetime.datetime, calendar, *, kind: str) -> WorkItem:
    overdue = request.due_at <= now
    detail = ""
    if overdue:
        detail = _("Overdue since %(due)s") % {"due": timezone.localtime(request.due_at).strftime("%Y-%m-%d %H:%M")}
    elif calendar is not None:
        hours = workdays.working_hours_between(now, request.due_at, calendar=calendar).total_seconds() / 3600
        detail = _("%(hours)s working hours left") % {"hours": f"{hours:.1f}"}
    params = {"protocol": request.trial.protocol_number, "committee": request.committee}
    if kind == "recognition.answer":
        # The office answers for its own committee: what it needs is whose result it is asked to recognise.
        title = _("Recognise the ethics result of %(lead)s: %(protocol)s") % {
            **params,
            "lead": request.trial.lead_institution,
        }
    elif overdue:
        title = _("Recognition feedback overdue: %(protocol)s at %(committee)s") % params
    else:
        title = _("Recognition feedback due: %(protocol)s at %(committee)s") % params
    return WorkItem(
        kind=kind,
        title=title,
        url=_admin_url(request),
        due_at=request.due_at,
        overdue=overdue,
        detail=detail,
        provisional=request.provisional,
    )


def _recognition_section(kind: str, label, requests: QuerySet, now: datetime.datetime) -> Section:
    """Open requests, soonest deadline first, each with the working time left (one calendar for the page)."""
    requests = requests.select_related("trial__lead_institution", "committee").order_by("due_at", "pk")
    rows = list(requests[:ITEMS_PER_KIND])
    calendar = None
    upcoming = [r.due_at for r in rows if r.due_at > now]
    if upcoming:
        try:
            calendar = workdays.Calendar.load(timezone.localdate(now), timezone.localdate(max(upcoming)))
        except workdays.CalendarUnavailable:
            calendar = None
    items = []
    for request in rows:
        try:
            items.append(_recognition_item(request, now, calendar, kind=kind))
        except workdays.CalendarUnavailable:
            items.append(_recognition_item(request, now, None, kind=kind))
    return Section(kind, str(label), items, *capped_count(requests, len(rows), ITEMS_PER_KIND))


def _submission_item(kind: str, title, submission: Submission) -> WorkItem:
    return WorkItem(
        kind=kind,
        title=title % {"kind": submission.get_kind_display(), "protocol": submission.trial.protocol_number},
        url=_admin_url(submission),
        # Waiting since it was filed: the reference (once accepted) and the filing day, in Beijing time.
        detail=" · ".join(
            filter(
                None,
                [submission.reference, submission.submitted_at and f"{timezone.localdate(submission.submitted_at)}"],
            )
        ),
    )


def submissions_to_decide(submissions: QuerySet) -> QuerySet:
    """Expedited reviews with every opinion recorded, and full-board items whose meeting has been held."""
    assignments = ReviewAssignment.objects.filter(submission=OuterRef("pk"))
    held = AgendaItem.objects.filter(submission=OuterRef("pk")).exclude(
        meeting__status__in=[Meeting.Status.PLANNED, Meeting.Status.CANCELLED]
    )
    return submissions.alias(
        has_assignments=Exists(assignments),
        has_open_assignments=Exists(assignments.filter(recorded_at__isnull=True)),
        has_held_meeting=Exists(held),
    ).filter(
        Q(status=S.EXPEDITED_REVIEW, has_assignments=True, has_open_assignments=False)
        | Q(status=S.AWAITING_MEETING, has_held_meeting=True)
    )


def meetings_to_hold(meetings: QuerySet) -> QuerySet:
    """Meetings still to be held or, once held, to be closed (every status but the finished ones); soonest first."""
    return (
        meetings.filter(status__in=[Meeting.Status.PLANNED, Meeting.Status.HELD])
        .select_related("committee")
        .order_by("scheduled_at", "pk")
    )


def _meeting_item(meeting: Meeting, now: datetime.datetime) -> WorkItem:
    local = timezone.localtime(meeting.scheduled_at)
    return WorkItem(
        kind="meeting.hold",
        title=_("Meeting of %(committee)s on %(date)s")
        % {"committee": meeting.committee, "date": local.strftime("%Y-%m-%d %H:%M")},
        url=_admin_url(meeting),
        due_at=meeting.scheduled_at,
        # A planned meeting past its time has not been recorded; a held one waits only to be closed.
        overdue=meeting.status == Meeting.Status.PLANNED and meeting.scheduled_at < now,
        detail=meeting.get_status_display(),
    )


def ethics_office_work(user, *, now: datetime.datetime) -> list[Section]:
    """An ethics office: recognition requests to answer, applications to accept, route and decide, meetings to
    hold, continuing reviews coming due for its committee's decisions."""
    institution = user.institution_id
    today = timezone.localdate(now)
    submissions = Submission.objects.filter(committee__institution_id=institution).select_related("trial")
    oldest_first = ("submitted_at", "pk")
    return [
        _recognition_section(
            "recognition.answer",
            _("Recognition requests to answer"),
            RecognitionRequest.objects.open().filter(committee__institution_id=institution),
            now,
        ),
        section(
            "submission.accept",
            _("Applications to accept or return"),
            submissions.filter(status=S.SUBMITTED).order_by(*oldest_first),
            lambda s: _submission_item("submission.accept", _("Accept or return: %(kind)s · %(protocol)s"), s),
        ),
        section(
            "submission.route",
            _("Applications to route"),
            submissions.filter(status=S.ACCEPTED).order_by(*oldest_first),
            lambda s: _submission_item("submission.route", _("Route: %(kind)s · %(protocol)s"), s),
        ),
        section(
            "submission.decide",
            _("Decisions to record"),
            submissions_to_decide(submissions).order_by(*oldest_first),
            lambda s: _submission_item("submission.decide", _("Record the decision: %(kind)s · %(protocol)s"), s),
        ),
        section(
            "meeting.hold",
            _("Meetings to hold"),
            meetings_to_hold(Meeting.objects.filter(committee__institution_id=institution)),
            lambda m: _meeting_item(m, now),
        ),
        section(
            "continuing_review.due",
            _("Continuing reviews due"),
            continuing_reviews_due(Decision.objects.filter(committee__institution_id=institution), today),
            lambda d: _continuing_review_item(d, today, _admin_url(d)),
        ),
    ]


def research_office_ethics_work(user, *, now: datetime.datetime) -> list[Section]:
    """A research office: its hospital's overdue recognition requests (escalated to it), and continuing reviews
    due for the trials it leads."""
    institution = user.institution_id
    today = timezone.localdate(now)
    return [
        _recognition_section(
            "recognition.escalated",
            _("Overdue recognition requests at this hospital"),
            RecognitionRequest.objects.open().filter(committee__institution_id=institution, escalated_at__isnull=False),
            now,
        ),
        section(
            "continuing_review.due",
            _("Continuing reviews due"),
            continuing_reviews_due(Decision.objects.filter(submission__trial__lead_institution_id=institution), today),
            lambda d: _continuing_review_item(d, today, _admin_url(d)),
        ),
    ]


def _pi_edit_url(submission: Submission) -> str:
    if submission.kind == K.INITIAL:
        step = 1 if submission.status == S.DRAFT and submission.trial.status == Trial.Status.DRAFT else 3
        return reverse("ethics_portal:project_edit", args=[submission.trial_id, step])
    return reverse("ethics_portal:submission_edit", args=[submission.pk])


def pi_waiting(user, *, today: datetime.date | None = None, limit: int = ITEMS_PER_KIND) -> dict:
    """What waits on a PI, as the portal's dashboard shows it: applications returned as incomplete, decisions
    asking for modifications not yet answered, continuing reviews due (each with its draft report, if any) and
    the other drafts. Each list holds at most ``limit`` rows; a constant number of queries."""
    today = today or timezone.localdate()
    querysets = _pi_waiting_querysets(user, today)
    waiting = {key: list(queryset[:limit]) for key, queryset in querysets.items()}
    drafts = Submission.objects.in_bulk([d.draft_id for d in waiting["continuing_due"] if d.draft_id])
    waiting["continuing_due"] = [
        {
            "decision": decision,
            "due": decision.next_continuing_review_due,
            "overdue": decision.next_continuing_review_due < today,
            "draft": drafts.get(decision.draft_id),
        }
        for decision in waiting["continuing_due"]
    ]
    return waiting


def _pi_waiting_querysets(user, today: datetime.date) -> dict[str, QuerySet]:
    submissions = Submission.objects.visible_to(user).select_related("trial", "committee")
    decisions = Decision.objects.visible_to(user)
    answered = Submission.objects.filter(responds_to=OuterRef("submission_id"), kind=K.MODIFICATION_RESPONSE).exclude(
        status=S.WITHDRAWN
    )
    draft_report = _filed_continuing_review(editable=True).order_by("-created_at").values("pk")[:1]
    continuing = continuing_reviews_due(decisions, today).annotate(draft_id=Subquery(draft_report))
    return {
        "returned": submissions.filter(status=S.RETURNED).order_by("-created_at", "-id"),
        "modifications": decisions.filter(outcome__in=MODIFICATION_OUTCOMES)
        .filter(~Exists(answered))
        .select_related("submission__trial", "committee")
        .order_by("-decided_at", "-id"),
        "continuing_due": continuing,
        # A draft continuing-review report shows with its due date, not a second time as a draft.
        "drafts": submissions.filter(status=S.DRAFT)
        .exclude(pk__in=continuing.filter(draft_id__isnull=False).values("draft_id"))
        .order_by("-created_at", "-id"),
    }


def pi_work(user, *, now: datetime.datetime) -> list[Section]:
    """A PI's work queue: the dashboard's "waiting on you", with links into the portal."""
    today = timezone.localdate(now)
    querysets = _pi_waiting_querysets(user, today)
    waiting = pi_waiting(user, today=today)
    labels = {
        "returned": _("Applications returned as incomplete"),
        "modifications": _("Modifications requested"),
        "continuing_due": _("Continuing reviews due"),
        "drafts": _("Drafts"),
    }
    items = {
        "returned": [
            WorkItem(
                kind="submission.returned",
                title=_("Complete and resubmit: %(kind)s · %(protocol)s")
                % {"kind": s.get_kind_display(), "protocol": s.trial.protocol_number},
                url=_pi_edit_url(s),
                detail=s.reference,
            )
            for s in waiting["returned"]
        ],
        "modifications": [
            WorkItem(
                kind="decision.modifications",
                title=_("Respond to the requested modifications: %(protocol)s")
                % {"protocol": d.submission.trial.protocol_number},
                url=reverse("ethics_portal:respond", args=[d.submission_id]),
                detail=d.letter_number,
            )
            for d in waiting["modifications"]
        ],
        "continuing_due": [
            _continuing_review_item(
                row["decision"],
                today,
                reverse("ethics_portal:submission_edit", args=[row["draft"].pk])
                if row["draft"]
                else reverse(
                    "ethics_portal:report_file", args=[row["decision"].submission.trial_id, K.CONTINUING_REVIEW]
                ),
            )
            for row in waiting["continuing_due"]
        ],
        "drafts": [
            WorkItem(
                kind="submission.draft",
                title=_("Draft: %(kind)s · %(protocol)s")
                % {"kind": s.get_kind_display(), "protocol": s.trial.protocol_number},
                url=_pi_edit_url(s),
            )
            for s in waiting["drafts"]
        ],
    }
    kinds = {
        "returned": "submission.returned",
        "modifications": "decision.modifications",
        "continuing_due": "continuing_review.due",
        "drafts": "submission.draft",
    }
    return [
        Section(
            kinds[key], str(labels[key]), items[key], *capped_count(querysets[key], len(items[key]), ITEMS_PER_KIND)
        )
        for key in labels
    ]


def system_admin_ethics_work(user, *, now: datetime.datetime) -> list[Section]:
    """A system administrator: what is overdue anywhere, and deadlines computed without a published schedule."""
    today = timezone.localdate(now)
    overdue_reviews = continuing_reviews_due(Decision.objects.all(), today).filter(next_continuing_review_due__lt=today)
    return [
        _recognition_section(
            "recognition.overdue",
            _("Overdue recognition requests"),
            RecognitionRequest.objects.open().filter(due_at__lte=now),
            now,
        ),
        _recognition_section(
            "recognition.provisional",
            _("Recognition deadlines that are provisional"),
            RecognitionRequest.objects.open().filter(provisional=True),
            now,
        ),
        section(
            "meeting.hold",
            _("Meetings past their time and not recorded"),
            meetings_to_hold(Meeting.objects.filter(status=Meeting.Status.PLANNED, scheduled_at__lt=now)),
            lambda m: _meeting_item(m, now),
        ),
        section(
            "continuing_review.due",
            _("Overdue continuing reviews"),
            overdue_reviews,
            lambda d: _continuing_review_item(d, today, _admin_url(d)),
        ),
    ]


def work(user, *, now: datetime.datetime) -> list[Section]:
    """The ethics part of each person's work queue (registered in EthicsConfig.ready)."""
    if user.is_superuser:
        return system_admin_ethics_work(user, now=now)
    if user.role == Role.ETHICS_OFFICE and user.institution_id:
        return ethics_office_work(user, now=now)
    if user.role == Role.RESEARCH_OFFICE and user.institution_id:
        return research_office_ethics_work(user, now=now)
    if user.role == Role.PI:
        return pi_work(user, now=now)
    return []


# --- safety reports: the clocks that wait on each person -----------------------------------------------------------


def _safety_item(clock: SafetyClock, now: datetime.datetime, url: str) -> WorkItem:
    event = clock.event
    return WorkItem(
        kind=f"safety.{clock.kind}",
        title=f"{clock.get_kind_display()} · {event.trial.protocol_number} · {event.term}",
        url=url,
        due_at=clock.due_at,
        overdue=clock.due_at <= now,
        detail=str(event.site.institution),
    )


def _open_safety_clocks(events: QuerySet, kinds) -> QuerySet:
    # Overdue first falls out of the order: the earliest deadline is the longest overdue.
    return (
        SafetyClock.objects.open()
        .filter(kind__in=kinds, event__in=events.values("pk"))
        .select_related("event__trial", "event__site__institution")
        .order_by("due_at", "pk")
    )


def safety_work(user, *, now: datetime.datetime) -> list[Section]:
    """Only the sections with something in them (see ``_safety_sections``)."""
    return [found for found in _safety_sections(user, now=now) if found.count]


def _safety_sections(user, *, now: datetime.datetime) -> list[Section]:
    """The safety clocks waiting on ``user`` (registered in EthicsConfig.ready): an investigator's reports to the
    sponsor and committee and SUSAR reviews; the ethics office's committee reviews; the research office's overdue
    clocks at its sites (it is told of every escalation)."""
    from ethics import safety

    events = SafetyEvent.objects.visible_to(user)

    def one(kind: str, label, clocks: QuerySet, url_name: str) -> list[Section]:
        return [section(kind, label, clocks, lambda c: _safety_item(c, now, reverse(url_name, args=[c.event_id])))]

    admin_url = "admin:ethics_safetyevent_change"
    if user.role == Role.PI:
        mine = events.filter(Q(site__site_pi_id=user.pk) | Q(trial__pi_id=user.pk))
        clocks = _open_safety_clocks(mine, safety.INVESTIGATOR_CLOCKS)
        return one("safety.investigator", _("Safety reports due"), clocks, "ethics_portal:safety_detail")
    if user.role == Role.ETHICS_OFFICE and user.institution_id:
        clocks = _open_safety_clocks(events, safety.OFFICE_CLOCKS)
        return one("safety.committee_review", _("Safety reports for the committee to review"), clocks, admin_url)
    if (user.role == Role.RESEARCH_OFFICE and user.institution_id) or user.is_superuser:
        overdue = _open_safety_clocks(events, SafetyClock.Kind.values).filter(due_at__lte=now)
        if not user.is_superuser:
            overdue = overdue.filter(event__site__institution_id=user.institution_id)
        return one("safety.overdue", _("Overdue safety reporting"), overdue, admin_url)
    return []
