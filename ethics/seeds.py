"""The demo ethics committees (seeds/demo/ethics.yaml) and their submissions (seeds/demo/ethics_submissions.yaml).

Called by ``manage.py load_seeds --demo`` through ``cgtclinic.seeding.load_demo``, after the demo trials, in the
demo set's transaction. Committees, members and training records are upserted on their natural keys. A
submission is replayed step by step through ``ethics.services`` (and its documents through
``trials.services.document_add_version``) with the demo people as actors, each step at its seeded date, so the
timeline, meetings, votes, decisions and letters are the ones the system itself would have produced. A
submission that already exists (see ``_already_loaded``) is left as it is, whatever happened to it since.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.core.files.base import ContentFile
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import PolicyParameter, User
from cgtclinic.seeding import (
    DemoSeeds,
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
from ethics import services
from ethics.models import (
    AgendaItem,
    CommitteeMember,
    Decision,
    EthicsCommittee,
    Meeting,
    ReviewAssignment,
    Submission,
    TrainingRecord,
)
from trials.models import Trial, TrialDocument
from trials.services import document_add_version

# The policy value that sets how long an approval lasts and how often continuing review falls due.
REVIEW_INTERVAL_CODE = "continuing_review_interval_months"

COMMITTEE_FIELDS = (
    "name_en",
    "letter_prefix",
    "registration_number",
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
}


def load_demo(demo: DemoSeeds) -> None:
    """Load the demo committees with their members and training, then replay the demo submissions."""
    _load_committees(demo.directory / "ethics.yaml", demo)
    _load_submissions(demo.directory / "ethics_submissions.yaml", demo)


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


# --- Submissions ------------------------------------------------------------------------------------------


@dataclass
class _Step:
    part: Row
    verb: str
    actor: User
    day: date | None = None
    moment: datetime | None = None
    meeting_day: date | None = None


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
        optional={"details", "declarations", "documents", "steps", "due_in_days"},
        key=("trial", "kind", "summary"),
        label="trial",
    )
    for row in rows:
        plan = _plan(row, demo.people)
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


def _plan(row: Row, people: dict[str, User]) -> _Plan:
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


def _date_steps(plan: _Plan) -> None:
    """Give every step its moment: its own date, the meeting's day for ``hold``, all moved together when the
    row asks for its approval to fall due for continuing review soon; then check they run forward, in the past."""
    shift = _shift_for_due_date(plan)
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
    decisions = [step for step in plan.steps if step.verb == "decide"]
    if not decisions or decisions[-1].part.data.get("outcome") != Decision.Outcome.APPROVE:
        raise row.error(_("“due_in_days” needs the submission to end with an approval (a “decide” step)."))
    months = relativedelta(months=plan.committee.continuing_review_months)
    decided_on = timezone.localdate() + timedelta(days=due_in_days) - months
    return decided_on - decisions[-1].day


def _replay(plan: _Plan) -> None:
    replay = _Replay(plan)
    for step in plan.steps:
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
    services.decision_record(
        submission=replay.submission,
        actor=step.actor,
        outcome=step.part.data["outcome"],
        requested_modifications=str(step.part.data.get("modifications", "")),
    )


def _acknowledge(replay: _Replay, step: _Step) -> None:
    replay.submission = services.submission_acknowledge(
        submission=replay.submission, actor=step.actor, note=str(step.part.data.get("note", ""))
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
}
