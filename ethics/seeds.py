"""The recognition alliances (seeds/policy/alliances.yaml), and the demo ethics committees (seeds/demo/ethics.yaml),
their alliance memberships (seeds/demo/alliance_members.yaml) and submissions (seeds/demo/ethics_submissions.yaml).

``load_policy`` runs at the end of the policy set: an alliance's feedback deadline and its source clause are copied
from the seeded PolicyParameter the row names, never typed in the file.

Called by ``manage.py load_seeds --demo`` through ``cgtclinic.seeding.load_demo``, after the demo trials, in the
demo set's transaction. Committees, members and training records are upserted on their natural keys. A
submission is replayed step by step through ``ethics.services`` (and its documents through
``trials.services.document_add_version``) with the demo people as actors, each step at its seeded date, so the
timeline, meetings, votes, decisions and letters are the ones the system itself would have produced. A
submission that already exists (see ``_already_loaded``) is left as it is, whatever happened to it since.
A lead approval opens recognition requests through ``ethics.recognition`` as it does in the app; before each step
the loader runs the deadline timers that fell due since (``recognition.sweep`` at each reminder and deadline
moment, as the beat would have), so a late answer comes after its reminder and escalation.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.core.files.base import ContentFile
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import PolicyParameter, User
from cgtclinic.seeding import (
    CHANGE_REASON,
    DemoSeeds,
    PolicySeeds,
    Row,
    SeedError,
    check_keys,
    demo_pdf,
    field_value,
    field_values,
    parse_date,
    read_rows,
    ref,
    refused,
    seed_clock,
    step_moment,
    upsert,
)
from ethics import recognition, services
from ethics.models import (
    AgendaItem,
    Alliance,
    AllianceMembership,
    CommitteeMember,
    Decision,
    EthicsCommittee,
    Meeting,
    RecognitionEffect,
    RecognitionRequest,
    ReviewAssignment,
    Submission,
    TrainingRecord,
)
from trials.models import Trial, TrialDocument, TrialSite
from trials.services import document_add_version

# The policy value that sets how long an approval lasts and how often continuing review falls due.
REVIEW_INTERVAL_CODE = "continuing_review_interval_months"

COMMITTEE_FIELDS = (
    "name_en",
    "letter_prefix",
    "registration_number",
    "contact_person",
    "contact_phone",
    "contact_email",
    "address",
    "quorum_fraction",
    "quorum_requires_non_medical",
    "quorum_requires_non_affiliated",
    "quorum_requires_both_genders",
    "continuing_review_reminder_days",
    "is_active",
)
MEMBER_FIELDS = ("member_role", "specialty", "gender", "affiliation", "is_affiliated", "is_active")
TRAINING_FIELDS = ("provider", "hours", "certificate_number")

# Each step a submission's history may take: (required fields, optional fields) besides ``do``.
STEP_FIELDS = {
    "submit": ({"date", "by"}, set()),
    "return": ({"date", "by", "items"}, set()),
    "accept": ({"date", "by"}, set()),
    "route": ({"date", "by", "review", "reason"}, set()),
    "assign": ({"date", "by", "reviewers"}, set()),
    "opinion": ({"date", "by", "reviewer", "opinion"}, {"risk_benefit", "consent", "comment"}),
    "schedule": ({"date", "by"}, {"meeting_date", "meeting_in_days", "location"}),
    "hold": ({"by", "vote"}, {"absent", "conflicts", "dissent"}),
    "decide": ({"date", "by", "outcome"}, {"modifications"}),
    "acknowledge": ({"date", "by"}, {"note"}),
    "withdraw": ({"date", "by", "reason"}, set()),
    "recognise": ({"date", "by", "site", "outcome"}, {"note"}),
}
ALLIANCE_FIELDS = ("name_en", "reminder_time", "close_of_business", "is_active")


# --- Policy: alliances ------------------------------------------------------------------------------------


def load_policy(policy: PolicySeeds) -> None:
    """Load the recognition alliances, each taking its deadline and source clause from a seeded policy value."""
    rows = read_rows(
        policy.directory / "alliances.yaml",
        required={"name_zh", "regions", "feedback_parameter", "reminder_time"},
        optional=set(ALLIANCE_FIELDS),
        key=("name_zh",),
        label="name_zh",
    )
    today = timezone.localdate()
    for row in rows:
        codes = row.data["regions"]
        if not isinstance(codes, list) or not codes:
            raise row.error(_("“regions” must be a list of one or more region codes."))
        regions = [
            policy.regions.get(Row(row.file, row.number, {"region": code}, row.label), "region") for code in codes
        ]
        parameter = _feedback_parameter(row, regions[0], today)
        values = {
            **field_values(row, Alliance, ALLIANCE_FIELDS),
            "feedback_working_days": int(parameter.value),
            "source_document": parameter.source_document,
            "source_clause": parameter.source_clause,
        }
        tally = policy.report.tally(Alliance)
        unchanged = tally.unchanged
        alliance = upsert(policy.report, row, Alliance, {"name_zh": field_value(row, Alliance, "name_zh")}, values)
        if {r.pk for r in alliance.regions.all()} != {r.pk for r in regions}:
            alliance.regions.set(regions)
            if tally.unchanged > unchanged:
                # Only the regions changed: the row was updated after all.
                tally.unchanged -= 1
                tally.updated += 1


def _feedback_parameter(row: Row, region, today: date) -> PolicyParameter:
    """The policy row in force today that sets the alliance's feedback deadline (the region's, else national)."""
    code = row.data["feedback_parameter"]
    parameter = (
        PolicyParameter.objects.filter(code=code, effective_from__lte=today)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=today))
        .filter(Q(region=region) | Q(region__isnull=True))
        .order_by(F("region").asc(nulls_last=True), "-effective_from")
        .first()
    )
    if parameter is None:
        raise row.error(
            _("No policy value “%(code)s” is in force for %(region)s; add it to parameters.yaml.")
            % {"code": code, "region": region.code}
        )
    if (
        parameter.unit != PolicyParameter.Unit.WORKING_DAYS
        or parameter.value != parameter.value.to_integral_value()
        or parameter.value < 1
    ):
        raise row.error(_("The policy value “%(code)s” must be a whole number of working days.") % {"code": code})
    return parameter


def load_demo(demo: DemoSeeds) -> None:
    """Load the demo committees with their members and training, then replay the demo submissions."""
    _load_committees(demo.directory / "ethics.yaml", demo)
    _load_alliance_members(demo.directory / "alliance_members.yaml", demo)
    _load_submissions(demo.directory / "ethics_submissions.yaml", demo)
    # Safety reports last: reporting to the committee needs the approvals the submissions replay.
    from ethics.safety_seeds import load_demo_safety

    load_demo_safety(demo)


# --- Committees -------------------------------------------------------------------------------------------


def _review_interval(row: Row, committee_region, today: date) -> int:
    """The policy's continuing-review interval in whole months, read from the seeded PolicyParameter."""
    try:
        value = PolicyParameter.value_for(REVIEW_INTERVAL_CODE, region=committee_region, on=today)
    except PolicyParameter.DoesNotExist as exc:
        raise row.error(
            _("No policy value “%(code)s” is in force; load the policy seeds first.") % {"code": REVIEW_INTERVAL_CODE}
        ) from exc
    if value != value.to_integral_value() or value < 1:
        raise row.error(
            _("The policy value “%(code)s” must be a whole number of months.") % {"code": REVIEW_INTERVAL_CODE}
        )
    return int(value)


def _load_committees(path: Path, demo: DemoSeeds) -> None:
    rows = read_rows(
        path,
        required={"institution", "name_zh", "letter_prefix", "term_start", "members"},
        optional={*COMMITTEE_FIELDS, "term_end"},
        key=("institution", "name_zh"),
        label="name_zh",
    )
    today = timezone.localdate()
    for row in rows:
        institution = ref(row, "institution", demo.institutions, "institutions.yaml")
        months = _review_interval(row, institution.region, today)
        values = {
            **field_values(row, EthicsCommittee, COMMITTEE_FIELDS),
            "approval_validity_months": months,
            "continuing_review_months": months,
        }
        lookup = {"institution": institution, "name_zh": field_value(row, EthicsCommittee, "name_zh")}
        committee = upsert(demo.report, row, EthicsCommittee, lookup, values)
        term = {
            "term_start": field_value(row, CommitteeMember, "term_start"),
            "term_end": field_value(row, CommitteeMember, "term_end"),
        }
        names = set()
        for part in row.parts("members", _("member %(number)d")):
            check_keys(
                part,
                required={"full_name", "member_role", "specialty", "gender", "affiliation"},
                optional={"is_affiliated", "is_active", "term_start", "term_end", "account", "training"},
            )
            name = field_value(part, CommitteeMember, "full_name")
            if name in names:
                raise part.error(_("Two members have the same name; the name tells them apart."))
            names.add(name)
            account = ref(part, "account", demo.people, "people.yaml", required=False)
            if account is not None and account.institution_id != institution.pk:
                raise part.error(_("The account must be someone at the committee's institution."))
            values = {
                **field_values(part, CommitteeMember, MEMBER_FIELDS),
                **{key: field_value(part, CommitteeMember, key) if key in part.data else term[key] for key in term},
                "user": account,
            }
            member = upsert(demo.report, part, CommitteeMember, {"committee": committee, "full_name": name}, values)
            for course in part.parts("training", _("training %(number)d")):
                check_keys(course, required={"course", "completed_on"}, optional=set(TRAINING_FIELDS))
                lookup = {
                    "member": member,
                    "course": field_value(course, TrainingRecord, "course"),
                    "completed_on": field_value(course, TrainingRecord, "completed_on"),
                }
                upsert(
                    demo.report, course, TrainingRecord, lookup, field_values(course, TrainingRecord, TRAINING_FIELDS)
                )


# --- Alliance members -------------------------------------------------------------------------------------


def _load_alliance_members(path: Path, demo: DemoSeeds) -> None:
    """Which demo committees belong to which policy alliance, and the alliance's coordinator."""
    rows = read_rows(
        path, required={"alliance", "members"}, optional={"coordinator"}, key=("alliance",), label="alliance"
    )
    for row in rows:
        alliance = Alliance.objects.filter(name_zh=row.data["alliance"]).first()
        if alliance is None:
            raise row.error(
                _("“alliance”: “%(name)s” is not an alliance in policy/alliances.yaml.")
                % {"name": row.data["alliance"]}
            )
        coordinator = ref(row, "coordinator", demo.people, "people.yaml", required=False)
        if coordinator != alliance.coordinator:
            alliance.coordinator = coordinator
            alliance._change_reason = CHANGE_REASON
            alliance.save(update_fields=["coordinator"])
            demo.report.tally(Alliance).updated += 1
        seen = set()
        for part in row.parts("members", _("member %(number)d")):
            check_keys(part, required={"institution", "joined_on"}, optional=set())
            institution = ref(part, "institution", demo.institutions, "institutions.yaml")
            committees = list(EthicsCommittee.objects.filter(institution=institution))
            if len(committees) != 1:
                raise part.error(_("The institution must have exactly one committee in ethics.yaml."))
            if committees[0].pk in seen:
                raise part.error(_("This committee is listed twice."))
            seen.add(committees[0].pk)
            upsert(
                demo.report,
                part,
                AllianceMembership,
                {"alliance": alliance, "committee": committees[0]},
                {"joined_on": field_value(part, AllianceMembership, "joined_on")},
            )


# --- Submissions ------------------------------------------------------------------------------------------


@dataclass
class _Step:
    part: Row
    verb: str
    actor: User
    day: date | None = None
    moment: datetime | None = None
    meeting_day: date | None = None
    site: TrialSite | None = None


@dataclass
class _Plan:
    """A submission to replay: what to create, and each step with its actor and moment."""

    row: Row
    trial: Trial
    committee: EthicsCommittee
    kind: str
    summary: str
    details: dict
    declarations: dict
    documents: list[Row]
    steps: list[_Step]
    members: dict[str, CommitteeMember]


@dataclass
class _Replay:
    plan: _Plan
    submission: Submission | None = None
    meeting: Meeting | None = None


def _load_submissions(path: Path, demo: DemoSeeds) -> None:
    rows = read_rows(
        path,
        required={"trial", "kind", "summary", "by", "date"},
        optional={"details", "declarations", "documents", "steps", "due_in_days", "feedback_due_next"},
        key=("trial", "kind", "summary"),
        label="trial",
    )
    for row in rows:
        plan = _plan(row, demo)
        if _already_loaded(plan):
            demo.report.tally(Submission).unchanged += 1
            continue
        _replay(plan)
        demo.report.tally(Submission).created += 1


def _already_loaded(plan: _Plan) -> bool:
    """Whether the row's submission exists: the same trial, kind and summary, or (the summary of a draft being
    editable in the app) created at the row's own moment; and a trial has only one initial application."""
    same_kind = Submission.objects.filter(trial=plan.trial, kind=plan.kind)
    if same_kind.filter(Q(summary=plan.summary) | Q(created_at=plan.steps[0].moment)).exists():
        return True
    if plan.kind != Submission.Kind.INITIAL:
        return False
    return same_kind.filter(committee=plan.committee).exclude(status=Submission.Status.WITHDRAWN).exists()


def _trial(row: Row) -> Trial:
    trials = list(Trial.objects.filter(protocol_number=row.data["trial"]))
    if len(trials) != 1:
        raise row.error(
            _("“trial”: “%(trial)s” must be the protocol number of exactly one trial in trials.yaml.")
            % {"trial": row.data["trial"]}
        )
    return trials[0]


def _json_ready(row: Row, name: str) -> dict:
    """A mapping from the YAML as the web forms store it: dates as ISO text."""
    raw = row.data.get(name) or {}
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        raise row.error(_("“%(field)s” must be a mapping of names to values.") % {"field": name})
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in raw.items()}


def _plan(row: Row, demo: DemoSeeds) -> _Plan:
    people = demo.people
    trial = _trial(row)
    kind = row.data["kind"]
    if kind not in Submission.Kind.values:
        raise row.error(_("Unknown kind of submission “%(kind)s”.") % {"kind": kind})
    committee = services.committee_for_trial(trial)
    if committee is None:
        raise row.error(_("The trial's lead institution has no committee in ethics.yaml."))
    documents = row.parts("documents", _("document %(number)d"))
    for part in documents:
        check_keys(part, required={"kind", "title"}, optional={"version_label", "version_date"})
        if part.data["kind"] not in TrialDocument.Kind.values:
            raise part.error(_("Unknown document kind “%(kind)s”.") % {"kind": part.data["kind"]})
    steps = [_Step(row, "create", ref(row, "by", people, "people.yaml"), day=parse_date(row, "date"))]
    for part in row.parts("steps", _("step %(number)d")):
        verb = part.data.get("do")
        if verb not in STEP_FIELDS:
            raise part.error(
                _("Unknown step “%(verb)s”; “do” must be one of: %(verbs)s.")
                % {"verb": verb, "verbs": ", ".join(STEP_FIELDS)}
            )
        required, optional = STEP_FIELDS[verb]
        check_keys(part, required=required | {"do"}, optional=optional)
        step = _Step(part, verb, ref(part, "by", people, "people.yaml"))
        if "date" in required:
            step.day = parse_date(part, "date")
        if verb == "recognise":
            step.site = _participating_site(part, trial, demo)
        steps.append(step)
    plan = _Plan(
        row=row,
        trial=trial,
        committee=committee,
        kind=kind,
        summary=field_value(row, Submission, "summary"),
        details=_json_ready(row, "details"),
        declarations=_json_ready(row, "declarations"),
        documents=documents,
        steps=steps,
        members={m.full_name: m for m in CommitteeMember.objects.filter(committee=committee).current()},
    )
    _date_steps(plan)
    return plan


def _participating_site(part: Row, trial: Trial, demo: DemoSeeds) -> TrialSite:
    institution = ref(part, "site", demo.institutions, "institutions.yaml")
    site = TrialSite.objects.filter(trial=trial, institution=institution, role=TrialSite.SiteRole.PARTICIPATING).first()
    if site is None:
        raise part.error(
            _("“site”: %(institution)s is not a participating site of %(trial)s in trials.yaml.")
            % {"institution": institution.name_zh, "trial": trial.protocol_number}
        )
    return site


def _date_steps(plan: _Plan) -> None:
    """Give every step its moment: its own date, the meeting's day for ``hold``, all moved together when the
    row asks for its approval to fall due for continuing review soon, or for the recognition feedback it asks
    for to fall due at the next close of business; then check they run forward, in the past."""
    if "due_in_days" in plan.row.data and "feedback_due_next" in plan.row.data:
        raise plan.row.error(_("Give either “due_in_days” or “feedback_due_next”, not both."))
    shift = _shift_for_feedback(plan) if plan.row.data.get("feedback_due_next") else _shift_for_due_date(plan)
    today = timezone.localdate()
    meeting_day = None
    for step in plan.steps:
        if step.day is not None:
            step.day += shift
        if step.verb == "schedule":
            meeting_day = step.meeting_day = _meeting_day(step, today, shift)
        elif step.verb == "hold":
            if meeting_day is None:
                raise step.part.error(_("Schedule the meeting (a “schedule” step) before holding it."))
            step.day = meeting_day
    now = timezone.now()
    previous = None
    for position, step in enumerate(plan.steps):
        step.moment = step_moment(step.day, position)
        if step.moment > now:
            if step.verb == "hold":
                raise step.part.error(_("The meeting is still to come; it cannot be held yet."))
            raise step.part.error(_("The step is dated in the future."))
        if previous is not None and step.moment < previous:
            raise step.part.error(_("The step is dated before the previous one."))
        previous = step.moment


def _meeting_day(step: _Step, today: date, shift: timedelta) -> date:
    data = step.part.data
    if ("meeting_date" in data) == ("meeting_in_days" in data):
        raise step.part.error(_("Give either “meeting_date” or “meeting_in_days”."))
    if "meeting_date" in data:
        day = parse_date(step.part, "meeting_date") + shift
        if day < step.day:
            raise step.part.error(_("The meeting is dated before the day it was scheduled."))
        return day
    days = data["meeting_in_days"]
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise step.part.error(_("“meeting_in_days” must be a whole number of days from today, at least 1."))
    return today + timedelta(days=days)


def _shift_for_due_date(plan: _Plan) -> timedelta:
    """With ``due_in_days``, the days by which every step moves so that the approval the row ends with falls due
    for continuing review that many days from today: the one place where demo dates follow today, not the file."""
    row = plan.row
    due_in_days = row.data.get("due_in_days")
    if due_in_days is None:
        return timedelta(0)
    if not isinstance(due_in_days, int) or isinstance(due_in_days, bool) or due_in_days < 0:
        raise row.error(_("“due_in_days” must be a whole number of days, 0 or more."))
    decide = _last_approval(plan, "due_in_days")
    months = relativedelta(months=plan.committee.continuing_review_months)
    decided_on = timezone.localdate() + timedelta(days=due_in_days) - months
    return decided_on - decide.day


def _last_approval(plan: _Plan, key: str) -> _Step:
    decisions = [step for step in plan.steps if step.verb == "decide"]
    if not decisions or decisions[-1].part.data.get("outcome") != Decision.Outcome.APPROVE:
        raise plan.row.error(
            _("“%(field)s” needs the submission to end with an approval (a “decide” step).") % {"field": key}
        )
    return decisions[-1]


def _shift_for_feedback(plan: _Plan) -> timedelta:
    """With ``feedback_due_next``, the days by which every step moves so that the recognition requests the row's
    approval opens fall due at the earliest deadline still ahead: today's close of business on a working day
    (or the next working day's). Their reminder is then either still to come today or already due, which the
    beat's first sweep after loading sends; the escalation follows at the deadline."""
    row = plan.row
    if row.data["feedback_due_next"] is not True:
        raise row.error(_("“feedback_due_next” must be true when given."))
    decide = _last_approval(plan, "feedback_due_next")
    alliance = next(
        (
            found
            for site in TrialSite.objects.filter(trial=plan.trial, role=TrialSite.SiteRole.PARTICIPATING)
            for committee in EthicsCommittee.objects.filter(institution_id=site.institution_id, is_active=True)[:1]
            if (found := recognition.shared_alliance(plan.committee, committee)) is not None
        ),
        None,
    )
    if alliance is None:
        raise row.error(_("“feedback_due_next”: no participating site's committee shares an alliance with the lead's."))
    position = plan.steps.index(decide)
    now = timezone.now()
    day, chosen = timezone.localdate(now), None
    # The deadline moves later with the day of approval: walk back to the earliest day whose deadline is ahead.
    while True:
        received = step_moment(day, position)
        if received <= now:
            if recognition.compute_deadline(alliance, received)["due_at"] <= now:
                break
            chosen = day
        day -= timedelta(days=1)
    return chosen - decide.day


def _run_timers(until: datetime) -> None:
    """The recognition reminders and escalations due by ``until`` that have not happened, each at its own moment,
    as the beat (which sweeps every minute) would have run them."""
    effects = RecognitionEffect.objects.filter(request=OuterRef("pk"), due_at=OuterRef("due_at"))
    open_requests = RecognitionRequest.objects.open()
    while True:
        pending = [
            open_requests.filter(remind_at__lte=until)
            .exclude(Exists(effects.filter(kind=RecognitionEffect.Kind.REMINDER)))
            .order_by("remind_at")
            .values_list("remind_at", flat=True)
            .first(),
            open_requests.filter(due_at__lte=until)
            .exclude(Exists(effects.filter(kind=RecognitionEffect.Kind.ESCALATION)))
            .order_by("due_at")
            .values_list("due_at", flat=True)
            .first(),
        ]
        moments = [moment for moment in pending if moment is not None]
        if not moments:
            return
        with seed_clock(min(moments)):
            recognition.sweep(now=min(moments))


def _replay(plan: _Plan) -> None:
    replay = _Replay(plan)
    for step in plan.steps:
        _run_timers(step.moment)
        with seed_clock(step.moment):
            try:
                STEP_HANDLERS[step.verb](replay, step)
            except SeedError:
                raise
            except DomainError as exc:
                raise refused(step.part, exc) from exc


def _member(step: _Step, plan: _Plan, name) -> CommitteeMember:
    member = plan.members.get(name)
    if member is None:
        raise step.part.error(
            _("“%(name)s” is not a current member of %(committee)s in ethics.yaml.")
            % {"name": name, "committee": plan.committee.name_zh}
        )
    return member


def _names(step: _Step, name: str) -> list:
    value = step.part.data.get(name) or []
    if not isinstance(value, list):
        raise step.part.error(_("“%(field)s” must be a list.") % {"field": name})
    return value


def _mapping(step: _Step, name: str) -> dict:
    value = step.part.data.get(name) or {}
    if not isinstance(value, dict):
        raise step.part.error(_("“%(field)s” must be a mapping of names to values.") % {"field": name})
    return value


def _create(replay: _Replay, step: _Step) -> None:
    plan = replay.plan
    replay.submission = services.submission_create(
        actor=step.actor,
        trial=plan.trial,
        kind=plan.kind,
        committee=plan.committee,
        summary=plan.summary,
        details=plan.details,
        declarations=plan.declarations,
    )
    versions = []
    for part in plan.documents:
        label = part.data.get("version_label") or ""
        kind = part.data["kind"]
        name = "-".join(filter(None, [plan.trial.protocol_number, kind, label])) + ".pdf"
        try:
            versions.append(
                document_add_version(
                    trial=plan.trial,
                    actor=step.actor,
                    kind=kind,
                    title=field_value(part, TrialDocument, "title"),
                    uploaded_file=ContentFile(demo_pdf(f"DEMO {name[:-4]}"), name=name),
                    version_label=label,
                    version_date=parse_date(part, "version_date") if part.data.get("version_date") else None,
                )
            )
        except SeedError:
            raise
        except DomainError as exc:
            raise refused(part, exc) from exc
    if versions:
        replay.submission = services.submission_update_draft(
            submission=replay.submission, actor=step.actor, documents=versions
        )


def _submit(replay: _Replay, step: _Step) -> None:
    replay.submission = services.submission_submit(submission=replay.submission, actor=step.actor)


def _return(replay: _Replay, step: _Step) -> None:
    items = [str(item) for item in _names(step, "items")]
    replay.submission = services.submission_return_incomplete(
        submission=replay.submission, actor=step.actor, items=items
    )


def _accept(replay: _Replay, step: _Step) -> None:
    replay.submission = services.submission_accept(submission=replay.submission, actor=step.actor)


def _route(replay: _Replay, step: _Step) -> None:
    replay.submission = services.submission_route(
        submission=replay.submission,
        actor=step.actor,
        review_type=step.part.data["review"],
        reason=str(step.part.data["reason"]),
    )


def _assign(replay: _Replay, step: _Step) -> None:
    for name in _names(step, "reviewers"):
        member = _member(step, replay.plan, name)
        services.reviewer_assign(submission=replay.submission, actor=step.actor, member=member)


def _opinion(replay: _Replay, step: _Step) -> None:
    data = step.part.data
    member = _member(step, replay.plan, data["reviewer"])
    assignment = ReviewAssignment.objects.filter(submission=replay.submission, member=member).first()
    if assignment is None:
        raise step.part.error(_("Assign %(name)s as a reviewer (an “assign” step) first.") % {"name": member.full_name})
    services.opinion_record(
        assignment=assignment,
        actor=step.actor,
        opinion=data["opinion"],
        risk_benefit_comment=str(data.get("risk_benefit", "")),
        consent_comment=str(data.get("consent", "")),
        other_comment=str(data.get("comment", "")),
    )


def _schedule(replay: _Replay, step: _Step) -> None:
    replay.meeting = services.meeting_schedule(
        committee=replay.plan.committee,
        actor=step.actor,
        scheduled_at=step_moment(step.meeting_day, 0),
        location=str(step.part.data.get("location", "")),
    )
    services.meeting_add_submission(meeting=replay.meeting, actor=step.actor, submission=replay.submission)


def _hold(replay: _Replay, step: _Step) -> None:
    """The meeting of the ``schedule`` step: attendance (everyone but ``absent``), conflicts, then the vote."""
    plan, meeting = replay.plan, replay.meeting
    absent = {_member(step, plan, name).pk for name in _names(step, "absent")}
    present = [member for member in plan.members.values() if member.pk not in absent]
    services.meeting_record_attendance(meeting=meeting, actor=step.actor, members=present)
    item = AgendaItem.objects.get(meeting=meeting, submission=replay.submission)
    recused = set()
    for name, description in _mapping(step, "conflicts").items():
        member = _member(step, plan, name)
        services.conflict_declare(agenda_item=item, actor=step.actor, member=member, description=str(description))
        recused.add(member.pk)
    dissent = {_member(step, plan, name).pk: choice for name, choice in _mapping(step, "dissent").items()}
    votes = {m: dissent.get(m.pk, step.part.data["vote"]) for m in present if m.pk not in recused}
    services.vote_record(agenda_item=item, actor=step.actor, votes=votes)


def _decide(replay: _Replay, step: _Step) -> None:
    decision = services.decision_record(
        submission=replay.submission,
        actor=step.actor,
        outcome=step.part.data["outcome"],
        requested_modifications=str(step.part.data.get("modifications", "")),
    )
    if decision.meeting is not None:
        # The row's meeting had this one item: once decided, the office closes it.
        services.meeting_close(meeting=decision.meeting, actor=step.actor)


def _acknowledge(replay: _Replay, step: _Step) -> None:
    replay.submission = services.submission_acknowledge(
        submission=replay.submission, actor=step.actor, note=str(step.part.data.get("note", ""))
    )


def _recognise(replay: _Replay, step: _Step) -> None:
    """The participating site's ethics office answers the request the row's approval opened for its site."""
    request = RecognitionRequest.objects.filter(
        site=step.site, lead_decision__submission=replay.submission, status=RecognitionRequest.Status.OPEN
    ).first()
    if request is None:
        raise step.part.error(
            _(
                "No open recognition request for this site: the row's approval must come first, and the site's "
                "committee must share an alliance with the lead's (alliance_members.yaml)."
            )
        )
    recognition.recognition_respond(
        request=request, actor=step.actor, outcome=step.part.data["outcome"], note=str(step.part.data.get("note", ""))
    )


def _withdraw(replay: _Replay, step: _Step) -> None:
    replay.submission = services.submission_withdraw(
        submission=replay.submission, actor=step.actor, reason=str(step.part.data["reason"])
    )


STEP_HANDLERS = {
    "create": _create,
    "submit": _submit,
    "return": _return,
    "accept": _accept,
    "route": _route,
    "assign": _assign,
    "opinion": _opinion,
    "schedule": _schedule,
    "hold": _hold,
    "decide": _decide,
    "acknowledge": _acknowledge,
    "withdraw": _withdraw,
    "recognise": _recognise,
}
