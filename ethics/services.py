"""Ethics review: one function per step of a submission's path, each checking the source state and the actor,
writing the new state and a timeline event, and refusing anything else with a translated message."""

import datetime
from dataclasses import dataclass, field

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import User
from cgtclinic.roles import Role
from ethics import letters, recognition
from ethics.models import (
    AgendaItem,
    Attendance,
    CommitteeMember,
    ConflictOfInterest,
    Decision,
    EthicsCommittee,
    LetterCounter,
    Meeting,
    RecognitionRequest,
    ReviewAssignment,
    Submission,
    SubmissionEvent,
    Vote,
)
from trials import services as trial_services
from trials.models import DocumentVersion, Trial, TrialDocument, TrialSite

S = Submission.Status
K = Submission.Kind
E = SubmissionEvent.Kind
Outcome = Decision.Outcome

# Documents an initial application must carry, and the declarations the PI must make.
INITIAL_REQUIRED_DOCUMENTS = (
    TrialDocument.Kind.PROTOCOL,
    TrialDocument.Kind.ICF,
    TrialDocument.Kind.IB,
    TrialDocument.Kind.CV,
    TrialDocument.Kind.INSURANCE,
)
DECLARATIONS = {
    "information_true": gettext_lazy("The information and documents submitted are true, accurate and complete."),
    "conflicts_declared": gettext_lazy(
        "All financial and other conflicts of interest of the research team are declared."
    ),
    "gcp_trained": gettext_lazy("The research team has current GCP training."),
    "protect_subjects": gettext_lazy(
        "The rights, safety and privacy of subjects will be protected as the protocol describes."
    ),
}
# Report details the committee needs before a report can be accepted, per kind.
REPORT_FIELDS = {
    K.AMENDMENT: {"changes": gettext_lazy("the changes made"), "reason": gettext_lazy("the reason for the amendment")},
    K.CONTINUING_REVIEW: {
        "enrolled_to_date": gettext_lazy("the number enrolled to date"),
        "safety_summary": gettext_lazy("the safety summary since the last review"),
        "progress": gettext_lazy("the progress of the study"),
    },
    K.SAE: {
        "event_date": gettext_lazy("the date of the event"),
        "description": gettext_lazy("a description of the event"),
        "causality": gettext_lazy("the assessed relation to the intervention"),
        "outcome": gettext_lazy("the outcome of the event"),
    },
    K.DEVIATION: {
        "occurred_on": gettext_lazy("the date of the deviation"),
        "description": gettext_lazy("a description of the deviation"),
        "corrective_action": gettext_lazy("the corrective and preventive action"),
    },
    K.SUSPENSION_TERMINATION: {
        "action": gettext_lazy("whether the study is suspended or terminated"),
        "reason": gettext_lazy("the reason"),
        "subject_follow_up": gettext_lazy("the arrangements for enrolled subjects"),
    },
    K.FINAL_REPORT: {
        "enrolled_total": gettext_lazy("the total number enrolled"),
        "completed_on": gettext_lazy("the completion date"),
        "results_summary": gettext_lazy("a summary of results"),
    },
    K.MODIFICATION_RESPONSE: {"response": gettext_lazy("the point-by-point response to the requested modifications")},
}
# Reports the office may acknowledge (备案/知悉) without a decision.
ACKNOWLEDGEABLE = {K.SAE, K.DEVIATION, K.SUSPENSION_TERMINATION, K.FINAL_REPORT, K.CONTINUING_REVIEW}
# Outcomes an expedited review may reach; the others need a meeting.
EXPEDITED_OUTCOMES = {Outcome.APPROVE, Outcome.APPROVE_AFTER_MODIFICATION, Outcome.MODIFY_AND_RESUBMIT}
# Outcomes that approve the study (or keep its approval).
APPROVING = {Outcome.APPROVE}


# --- who may act ------------------------------------------------------------------------------------------


def _deny(message=None) -> DomainError:
    return DomainError(message or _("You are not allowed to do this for this submission."), code="permission_denied")


def _require_applicant(actor: User, trial: Trial) -> None:
    """The trial's PI or a site PI, or the research office of the lead institution, may file for a trial."""
    if actor.is_superuser:
        return
    if actor.role == Role.PI and (trial.pi_id == actor.pk or trial.sites.filter(site_pi_id=actor.pk).exists()):
        return
    if actor.role == Role.RESEARCH_OFFICE and Trial.objects.visible_to(actor).filter(pk=trial.pk).exists():
        return
    raise _deny()


def _require_office(actor: User, committee: EthicsCommittee) -> None:
    """The committee's own ethics office runs its reviews."""
    if actor.is_superuser:
        return
    if actor.is_active and actor.role == Role.ETHICS_OFFICE and actor.institution_id == committee.institution_id:
        return
    raise _deny(_("Only the ethics office of this committee may do this."))


# --- state machine core ---------------------------------------------------------------------------------------


def _event(submission, kind, actor, *, from_status="", to_status="", note="", at=None) -> SubmissionEvent:
    return SubmissionEvent.objects.create(
        submission=submission,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        at=at or timezone.now(),
        note=note,
    )


def _lock(submission: Submission) -> Submission:
    return Submission.objects.select_for_update().select_related("committee", "trial").get(pk=submission.pk)


def _move(
    locked: Submission,
    *,
    to: str,
    allowed_from: set[str],
    actor: User,
    event: str,
    note: str = "",
    update_fields: tuple[str, ...] = (),
) -> Submission:
    if locked.status not in allowed_from:
        raise TransitionNotAllowed(
            _("A submission that is “%(current)s” cannot become “%(target)s”.")
            % {"current": locked.get_status_display(), "target": S(to).label}
        )
    from_status = locked.status
    locked.status = to
    locked._history_user = actor
    locked.save(update_fields=["status", *update_fields])
    _event(locked, event, actor, from_status=from_status, to_status=to, note=note)
    return locked


# --- applicant side --------------------------------------------------------------------------------------------


def committee_for_trial(trial: Trial) -> EthicsCommittee | None:
    """The lead institution's active committee, which reviews the trial's applications."""
    return EthicsCommittee.objects.filter(institution_id=trial.lead_institution_id, is_active=True).first()


def submission_create(
    *,
    actor: User,
    trial: Trial,
    kind: str,
    committee: EthicsCommittee | None = None,
    responds_to: Submission | None = None,
    summary: str = "",
    details: dict | None = None,
    declarations: dict | None = None,
) -> Submission:
    """Start a draft application or report; nothing reaches the committee until it is submitted."""
    _require_applicant(actor, trial)
    if kind not in K.values:
        raise DomainError(_("Unknown kind of submission."), field="kind")
    committee = committee or committee_for_trial(trial)
    if committee is None:
        raise DomainError(_("The lead institution has no active ethics committee in the system."), field="committee")
    if kind == K.MODIFICATION_RESPONSE:
        if responds_to is None or responds_to.trial_id != trial.pk:
            raise DomainError(_("Say which decision this responds to."), field="responds_to")
        outcome = getattr(getattr(responds_to, "decision", None), "outcome", None)
        if outcome not in (Outcome.APPROVE_AFTER_MODIFICATION, Outcome.MODIFY_AND_RESUBMIT):
            raise DomainError(_("That decision did not ask for modifications."), field="responds_to")
    elif kind == K.INITIAL:
        if (
            Submission.objects.filter(trial=trial, committee=committee, kind=K.INITIAL)
            .exclude(status=S.WITHDRAWN)
            .exists()
        ):
            raise DomainError(_("This trial already has an initial application to this committee."), field="kind")
    elif not Decision.objects.filter(submission__trial=trial, committee=committee, outcome=Outcome.APPROVE).exists():
        raise DomainError(
            _("Reports and amendments can be filed only for a study this committee approved."), field="kind"
        )
    with transaction.atomic():
        submission = Submission(
            trial=trial,
            committee=committee,
            kind=kind,
            responds_to=responds_to,
            summary=summary,
            details=details or {},
            declarations=declarations or {},
            submitted_by=actor,
        )
        submission._history_user = actor
        submission.save()
        _event(submission, E.CREATED, actor, to_status=S.DRAFT)
    return submission


def submission_update_draft(
    *,
    submission: Submission,
    actor: User,
    summary: str | None = None,
    details: dict | None = None,
    declarations: dict | None = None,
    documents: list[DocumentVersion] | None = None,
) -> Submission:
    """Save a draft (or a returned submission) as it is; completeness is checked only on submit."""
    _require_applicant(actor, submission.trial)
    with transaction.atomic():
        locked = _lock(submission)
        if locked.status not in (S.DRAFT, S.RETURNED):
            raise TransitionNotAllowed(_("Only a draft or a returned submission can be edited."))
        fields = []
        for name, value in (("summary", summary), ("details", details), ("declarations", declarations)):
            if value is not None:
                setattr(locked, name, value)
                fields.append(name)
        if fields:
            locked._history_user = actor
            locked.save(update_fields=fields)
        if documents is not None:
            foreign = [v for v in documents if v.document.trial_id != locked.trial_id]
            if foreign:
                raise DomainError(_("Documents must belong to the same trial."), field="documents")
            locked.documents.set(documents)
    return locked


def missing_items(submission: Submission) -> list[str]:
    """Everything a submission still lacks, as one list of translated sentences (empty when complete)."""
    missing = []
    if not submission.summary.strip():
        missing.append(_("A summary of the submission."))
    kinds = set(submission.documents.values_list("document__kind", flat=True))
    if submission.kind == K.INITIAL:
        for kind in INITIAL_REQUIRED_DOCUMENTS:
            if kind not in kinds:
                missing.append(_("Document: %(kind)s.") % {"kind": TrialDocument.Kind(kind).label})
        for key, text in DECLARATIONS.items():
            if submission.declarations.get(key) is not True:
                missing.append(_("Declaration: %(text)s") % {"text": text})
        if not submission.trial.sites.exists():
            missing.append(_("At least one site."))
        without_pi = submission.trial.sites.filter(site_pi__isnull=True).select_related("institution")
        for site in without_pi.order_by("role", "pk"):
            missing.append(_("Site PI of %(institution)s.") % {"institution": site.institution})
    for key, label in REPORT_FIELDS.get(submission.kind, {}).items():
        if not str(submission.details.get(key, "")).strip():
            missing.append(_("Report detail: %(label)s.") % {"label": label})
    if submission.kind in (K.AMENDMENT, K.MODIFICATION_RESPONSE) and not kinds:
        missing.append(_("The revised documents (upload new versions)."))
    return missing


def submission_submit(*, submission: Submission, actor: User) -> Submission:
    """Send a complete draft (or a completed returned submission) to the committee's office."""
    _require_applicant(actor, submission.trial)
    with transaction.atomic():
        locked = _lock(submission)
        if locked.status not in (S.DRAFT, S.RETURNED):
            raise TransitionNotAllowed(
                _("A submission that is “%(current)s” cannot be submitted.") % {"current": locked.get_status_display()}
            )
        problems = missing_items(locked)
        if problems:
            raise DomainError(
                _("The submission is incomplete: %(items)s") % {"items": " ".join(problems)}, code="incomplete"
            )
        now = timezone.now()
        if locked.submitted_at is None:
            locked.submitted_at = now
            locked.reference = f"{locked.committee.letter_prefix}受〔{timezone.localdate(now).year}〕{locked.pk:05d}"
        locked.missing_items = []
        _move(
            locked,
            to=S.SUBMITTED,
            allowed_from={S.DRAFT, S.RETURNED},
            actor=actor,
            event=E.SUBMITTED,
            update_fields=("submitted_at", "reference", "missing_items"),
        )
        if locked.kind == K.INITIAL and locked.trial.status == Trial.Status.DRAFT:
            trial_services.trial_submit(trial=locked.trial, actor=actor)
    return locked


def submission_withdraw(*, submission: Submission, actor: User, reason: str) -> Submission:
    _require_applicant(actor, submission.trial)
    if not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = _lock(submission)
        return _move(
            locked,
            to=S.WITHDRAWN,
            allowed_from={S.DRAFT, S.SUBMITTED, S.RETURNED, S.ACCEPTED},
            actor=actor,
            event=E.WITHDRAWN,
            note=reason.strip(),
        )


# --- office side -----------------------------------------------------------------------------------------------


def submission_return_incomplete(*, submission: Submission, actor: User, items: list[str]) -> Submission:
    """Intake found gaps: send it back to the applicant with every missing item listed."""
    _require_office(actor, submission.committee)
    items = [item.strip() for item in items if item.strip()]
    if not items:
        raise DomainError(_("List what is missing."), field="items")
    with transaction.atomic():
        locked = _lock(submission)
        locked.missing_items = items
        return _move(
            locked,
            to=S.RETURNED,
            allowed_from={S.SUBMITTED},
            actor=actor,
            event=E.RETURNED,
            note="\n".join(items),
            update_fields=("missing_items",),
        )


def submission_accept(*, submission: Submission, actor: User) -> Submission:
    """Intake found the submission complete."""
    _require_office(actor, submission.committee)
    with transaction.atomic():
        locked = _lock(submission)
        _move(locked, to=S.ACCEPTED, allowed_from={S.SUBMITTED}, actor=actor, event=E.ACCEPTED)
        if locked.kind == K.INITIAL and locked.trial.status == Trial.Status.SUBMITTED:
            trial_services.trial_start_review(trial=locked.trial, actor=actor)
    return locked


def submission_route(*, submission: Submission, actor: User, review_type: str, reason: str) -> Submission:
    """Send an accepted submission to a full-board meeting or to expedited review, saying why."""
    _require_office(actor, submission.committee)
    if review_type not in Submission.ReviewType.values:
        raise DomainError(_("Choose full-board or expedited review."), field="review_type")
    if not reason.strip():
        raise DomainError(_("Please give the reason for this routing."), code="reason_required", field="reason")
    target = S.EXPEDITED_REVIEW if review_type == Submission.ReviewType.EXPEDITED else S.AWAITING_MEETING
    with transaction.atomic():
        locked = _lock(submission)
        locked.review_type = review_type
        locked.routing_reason = reason.strip()
        return _move(
            locked,
            to=target,
            allowed_from={S.ACCEPTED},
            actor=actor,
            event=E.ROUTED,
            note=f"{Submission.ReviewType(review_type).label}: {reason.strip()}",
            update_fields=("review_type", "routing_reason"),
        )


def submission_refer_to_meeting(*, submission: Submission, actor: User, reason: str) -> Submission:
    """An expedited review that needs the full board (e.g. a reviewer would disapprove)."""
    _require_office(actor, submission.committee)
    if not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = _lock(submission)
        locked.review_type = Submission.ReviewType.FULL_BOARD
        locked.routing_reason = reason.strip()
        return _move(
            locked,
            to=S.AWAITING_MEETING,
            allowed_from={S.EXPEDITED_REVIEW},
            actor=actor,
            event=E.ROUTED,
            note=reason.strip(),
            update_fields=("review_type", "routing_reason"),
        )


def submission_acknowledge(*, submission: Submission, actor: User, note: str = "") -> Submission:
    """File a report that needs no decision (e.g. an expected SAE already handled)."""
    _require_office(actor, submission.committee)
    if submission.kind not in ACKNOWLEDGEABLE:
        raise DomainError(_("Only reports can be acknowledged; applications need a decision."), field="kind")
    with transaction.atomic():
        locked = _lock(submission)
        locked.decided_at = timezone.now()
        _move(
            locked,
            to=S.ACKNOWLEDGED,
            allowed_from={S.ACCEPTED, S.EXPEDITED_REVIEW},
            actor=actor,
            event=E.ACKNOWLEDGED,
            note=note,
            update_fields=("decided_at",),
        )
        if locked.kind == K.FINAL_REPORT:
            _close_continuing_review(locked.trial, locked.committee)
    return locked


def reviewer_assign(*, submission: Submission, actor: User, member: CommitteeMember) -> ReviewAssignment:
    _require_office(actor, submission.committee)
    if member.committee_id != submission.committee_id or not member.is_active:
        raise DomainError(_("The reviewer must be a current member of this committee."), field="member")
    with transaction.atomic():
        locked = _lock(submission)
        if locked.status not in (S.EXPEDITED_REVIEW, S.AWAITING_MEETING):
            raise TransitionNotAllowed(_("Reviewers are assigned once a submission is routed."))
        if ReviewAssignment.objects.filter(submission=locked, member=member).exists():
            raise DomainError(_("This member is already a reviewer of the submission."), field="member")
        assignment = ReviewAssignment.objects.create(submission=locked, member=member, assigned_at=timezone.now())
        _event(locked, E.REVIEWER_ASSIGNED, actor, note=member.full_name)
    return assignment


def opinion_record(
    *,
    assignment: ReviewAssignment,
    actor: User,
    opinion: str,
    risk_benefit_comment: str = "",
    consent_comment: str = "",
    other_comment: str = "",
) -> ReviewAssignment:
    """A reviewer's opinion form, entered by the reviewer (with an account) or by the office for them."""
    submission = assignment.submission
    if not (assignment.member.user_id == actor.pk and actor.is_active):
        _require_office(actor, submission.committee)
    if opinion not in ReviewAssignment.Opinion.values:
        raise DomainError(_("Choose an opinion."), field="opinion")
    if submission.status not in (S.EXPEDITED_REVIEW, S.AWAITING_MEETING):
        raise TransitionNotAllowed(_("Opinions are recorded while the submission is under review."))
    with transaction.atomic():
        assignment.opinion = opinion
        assignment.risk_benefit_comment = risk_benefit_comment
        assignment.consent_comment = consent_comment
        assignment.other_comment = other_comment
        assignment.recorded_at = timezone.now()
        assignment._history_user = actor
        assignment.save()
        _event(
            submission,
            E.OPINION_RECORDED,
            actor,
            note=f"{assignment.member.full_name}: {assignment.get_opinion_display()}",
        )
    return assignment


# --- meetings ----------------------------------------------------------------------------------------------------


def meeting_schedule(
    *, committee: EthicsCommittee, actor: User, scheduled_at: datetime.datetime, location: str = ""
) -> Meeting:
    _require_office(actor, committee)
    meeting = Meeting(committee=committee, scheduled_at=scheduled_at, location=location)
    meeting._history_user = actor
    meeting.save()
    return meeting


def meeting_add_submission(*, meeting: Meeting, actor: User, submission: Submission) -> AgendaItem:
    _require_office(actor, meeting.committee)
    if meeting.status != Meeting.Status.PLANNED:
        raise TransitionNotAllowed(_("Only a planned meeting's agenda can change."))
    if submission.committee_id != meeting.committee_id:
        raise DomainError(_("The submission belongs to another committee."), field="submission")
    if submission.status != S.AWAITING_MEETING:
        raise TransitionNotAllowed(_("Only a submission awaiting a meeting can be put on the agenda."))
    if AgendaItem.objects.filter(submission=submission, meeting__status=Meeting.Status.PLANNED).exists():
        raise DomainError(_("The submission is already on a planned meeting's agenda."), field="submission")
    with transaction.atomic():
        position = meeting.agenda.count() + 1
        item = AgendaItem.objects.create(meeting=meeting, submission=submission, position=position)
        _event(submission, E.SCHEDULED, actor, note=str(meeting))
    return item


def meeting_record_attendance(*, meeting: Meeting, actor: User, members: list[CommitteeMember]) -> Meeting:
    """Record who is present; the meeting is then held and its quorum checked and kept."""
    _require_office(actor, meeting.committee)
    if meeting.status == Meeting.Status.CANCELLED:
        raise TransitionNotAllowed(_("The meeting was cancelled."))
    if any(m.committee_id != meeting.committee_id for m in members):
        raise DomainError(_("Only members of this committee can attend."), field="members")
    with transaction.atomic():
        Attendance.objects.filter(meeting=meeting).exclude(member__in=members).delete()
        for member in members:
            Attendance.objects.get_or_create(meeting=meeting, member=member)
        result = quorum_check(meeting=meeting)
        meeting.status = Meeting.Status.HELD
        meeting.quorum_met = result.met
        meeting.quorum_note = result.explanation
        meeting._history_user = actor
        meeting.save(update_fields=["status", "quorum_met", "quorum_note"])
    return meeting


def conflict_declare(
    *, agenda_item: AgendaItem, actor: User, member: CommitteeMember, description: str
) -> ConflictOfInterest:
    _require_office(actor, agenda_item.meeting.committee)
    if member.committee_id != agenda_item.meeting.committee_id:
        raise DomainError(_("Only members of this committee declare conflicts here."), field="member")
    if not description.strip():
        raise DomainError(_("Describe the conflict."), field="description")
    if Vote.objects.filter(agenda_item=agenda_item).exists():
        raise TransitionNotAllowed(_("Conflicts must be declared before the vote."))
    conflict, _created = ConflictOfInterest.objects.update_or_create(
        agenda_item=agenda_item, member=member, defaults={"description": description.strip()}
    )
    return conflict


@dataclass
class QuorumResult:
    met: bool
    present: int
    required: int
    members: int
    problems: list[str] = field(default_factory=list)

    @property
    def explanation(self) -> str:
        head = _("%(present)s of %(members)s members present; %(required)s required.") % {
            "present": self.present,
            "members": self.members,
            "required": self.required,
        }
        return " ".join([head, *self.problems])


def quorum_check(*, meeting: Meeting, agenda_item: AgendaItem | None = None) -> QuorumResult:
    """Whether those present (less those recused from the item) make a quorum under the committee's rule."""
    committee = meeting.committee
    member_count = CommitteeMember.objects.filter(committee=committee).current().count()
    present = [a.member for a in meeting.attendance.select_related("member")]
    if agenda_item is not None:
        recused = set(agenda_item.conflicts.values_list("member_id", flat=True))
        present = [m for m in present if m.pk not in recused]
    required = committee.quorum_size(member_count)
    problems = []
    if len(present) < required:
        problems.append(_("Too few members present."))
    if committee.quorum_requires_non_medical and not any(not m.is_medical for m in present):
        problems.append(_("No non-medical member present."))
    if committee.quorum_requires_non_affiliated and not any(not m.is_affiliated for m in present):
        problems.append(_("No member from outside the institution present."))
    if committee.quorum_requires_both_genders and len({m.gender for m in present}) < 2:
        problems.append(_("Members of both genders must be present."))
    return QuorumResult(
        met=not problems, present=len(present), required=required, members=member_count, problems=problems
    )


def vote_record(*, agenda_item: AgendaItem, actor: User, votes: dict[CommitteeMember, str]) -> list[Vote]:
    """Record each present, non-recused member's vote on one agenda item; needs a quorum for that item."""
    meeting = agenda_item.meeting
    _require_office(actor, meeting.committee)
    if meeting.status != Meeting.Status.HELD:
        raise TransitionNotAllowed(_("Record attendance before the vote."))
    result = quorum_check(meeting=meeting, agenda_item=agenda_item)
    if not result.met:
        raise DomainError(_("No quorum for this item: %(why)s") % {"why": result.explanation}, code="no_quorum")
    present = set(meeting.attendance.values_list("member_id", flat=True))
    recused = set(agenda_item.conflicts.values_list("member_id", flat=True))
    allowed = {choice for choice, _label in Vote._meta.get_field("choice").choices}
    for member, choice in votes.items():
        if member.pk in recused:
            raise DomainError(
                _("%(name)s declared a conflict of interest and cannot vote.") % {"name": member.full_name},
                field="votes",
            )
        if member.pk not in present:
            raise DomainError(_("%(name)s is not recorded as present.") % {"name": member.full_name}, field="votes")
        if choice not in allowed:
            raise DomainError(_("Unknown vote."), field="votes")
    with transaction.atomic():
        Vote.objects.filter(agenda_item=agenda_item).delete()
        saved = [Vote.objects.create(agenda_item=agenda_item, member=m, choice=c) for m, c in votes.items()]
        _event(agenda_item.submission, E.VOTED, actor, note=str(meeting))
    return saved


# --- decisions -----------------------------------------------------------------------------------------------------


def _close_continuing_review(trial: Trial, committee: EthicsCommittee) -> None:
    Decision.objects.filter(submission__trial=trial, committee=committee).exclude(
        next_continuing_review_due=None
    ).update(next_continuing_review_due=None)


def _majority(agenda_item: AgendaItem) -> tuple[str | None, int, int]:
    votes = list(agenda_item.votes.values_list("choice", flat=True))
    if not votes:
        return None, 0, 0
    best = max(set(votes), key=votes.count)
    count = votes.count(best)
    return (best if count * 2 > len(votes) else None), count, len(votes) - count


def decision_record(
    *,
    submission: Submission,
    actor: User,
    outcome: str,
    requested_modifications: str = "",
    meeting: Meeting | None = None,
) -> Decision:
    """The committee's decision, with its effect on the trial (approval, suspension, termination), the approval's
    validity and the next continuing-review date. Expedited decisions need every reviewer's opinion and may not
    be negative; meeting decisions need the vote's majority."""
    committee = submission.committee
    _require_office(actor, committee)
    if outcome not in Outcome.values:
        raise DomainError(_("Choose a decision."), field="outcome")
    needs_text = {
        Outcome.APPROVE_AFTER_MODIFICATION,
        Outcome.MODIFY_AND_RESUBMIT,
        Outcome.DISAPPROVE,
        Outcome.SUSPEND,
        Outcome.TERMINATE,
    }
    if outcome in needs_text and not requested_modifications.strip():
        raise DomainError(_("State the modifications requested or the reasons."), field="requested_modifications")
    with transaction.atomic():
        locked = _lock(submission)
        votes_for = votes_against = None
        if locked.status == S.EXPEDITED_REVIEW:
            if outcome not in EXPEDITED_OUTCOMES:
                raise DomainError(
                    _("An expedited review cannot reach this decision; refer the submission to a meeting."),
                    field="outcome",
                )
            assignments = list(locked.assignments.all())
            if not assignments or any(not a.opinion for a in assignments):
                raise DomainError(_("Every assigned reviewer must record an opinion first."), code="opinions_missing")
            meeting = None
        elif locked.status == S.AWAITING_MEETING:
            item = (
                AgendaItem.objects.filter(submission=locked, meeting__status=Meeting.Status.HELD)
                .select_related("meeting__committee")
                .order_by("-meeting__scheduled_at")
                .first()
            )
            if item is None:
                raise DomainError(_("The submission has not been discussed at a held meeting."), code="no_meeting")
            if not quorum_check(meeting=item.meeting, agenda_item=item).met:
                raise DomainError(_("The meeting had no quorum for this item."), code="no_quorum")
            majority, votes_for, votes_against = _majority(item)
            vote_outcome = {Outcome.SUSPEND: None, Outcome.TERMINATE: None}.get(outcome, outcome)
            if majority is None or (vote_outcome is not None and majority != vote_outcome):
                raise DomainError(
                    _("The decision must be the one a majority voted for."), code="no_majority", field="outcome"
                )
            meeting = item.meeting
        else:
            raise TransitionNotAllowed(
                _("A submission that is “%(current)s” cannot be decided.") % {"current": locked.get_status_display()}
            )

        now = timezone.now()
        today = timezone.localdate(now)
        kind = locked.root_kind
        decision = Decision(
            submission=locked,
            committee=committee,
            outcome=outcome,
            decided_at=now,
            decided_by=actor,
            meeting=meeting,
            votes_for=votes_for,
            votes_against=votes_against,
            requested_modifications=requested_modifications.strip(),
        )
        if outcome in APPROVING and kind in (K.INITIAL, K.CONTINUING_REVIEW):
            # A new approval (initial or after continuing review) restarts the validity and review clock.
            _close_continuing_review(locked.trial, committee)
            decision.valid_until = today + relativedelta(months=committee.approval_validity_months)
            decision.continuing_review_months = committee.continuing_review_months
            decision.next_continuing_review_due = today + relativedelta(months=committee.continuing_review_months)
        decision.letter_year = today.year
        decision.letter_sequence = _next_letter_number(committee, today.year)
        decision.letter_number = f"{committee.letter_prefix}〔{today.year}〕{decision.letter_sequence:03d}号"
        decision._history_user = actor
        decision.save()
        locked.decided_at = now
        _move(
            locked,
            to=S.DECIDED,
            allowed_from={S.EXPEDITED_REVIEW, S.AWAITING_MEETING},
            actor=actor,
            event=E.DECIDED,
            note=f"{decision.get_outcome_display()} {decision.letter_number}",
            update_fields=("decided_at",),
        )
        _apply_to_trial(decision, kind, actor, today)
        letters.letter_issue(decision=decision, actor=actor)
        recognition.requests_open_for_decision(decision=decision, actor=actor)
    return decision


def _next_letter_number(committee: EthicsCommittee, year: int) -> int:
    counter, _created = LetterCounter.objects.get_or_create(committee=committee, year=year)
    counter = LetterCounter.objects.select_for_update().get(pk=counter.pk)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def _apply_to_trial(decision: Decision, kind: str, actor: User, today: datetime.date) -> None:
    """What a decision changes on the trial: its lifecycle and the site's ethics-approval milestone."""
    trial = Trial.objects.get(pk=decision.submission.trial_id)
    outcome = decision.outcome
    reason = decision.requested_modifications or decision.letter_number
    if outcome == Outcome.APPROVE and kind == K.INITIAL:
        if trial.status == Trial.Status.UNDER_REVIEW:
            trial_services.trial_approve(trial=trial, actor=actor)
        TrialSite.objects.filter(
            trial=trial, institution_id=decision.committee.institution_id, ethics_approved_on=None
        ).update(ethics_approved_on=today)
    if outcome == Outcome.APPROVE and decision.valid_until:
        _extend_site_validity(trial, decision)
    if (
        outcome == Outcome.DISAPPROVE
        and kind == K.INITIAL
        and trial.status
        in (
            Trial.Status.SUBMITTED,
            Trial.Status.UNDER_REVIEW,
        )
    ):
        trial_services.trial_withdraw(trial=trial, actor=actor, reason=reason)
    elif outcome == Outcome.SUSPEND:
        trial_services.trial_suspend(trial=trial, actor=actor, reason=reason)
    elif outcome == Outcome.TERMINATE:
        trial_services.trial_terminate(trial=trial, actor=actor, reason=reason)
        _close_continuing_review(trial, decision.committee)


def _extend_site_validity(trial: Trial, decision: Decision) -> None:
    """An approval (initial or continuing review) sets how long the committee's own site may enrol, and the
    sites that recognised this committee's result for the trial follow it."""
    recognising = RecognitionRequest.objects.filter(
        trial=trial,
        lead_decision__committee=decision.committee,
        status__in=(RecognitionRequest.Status.RECOGNISED, RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS),
    ).values("site_id")
    TrialSite.objects.filter(trial=trial).filter(
        Q(institution_id=decision.committee.institution_id, ethics_approved_on__isnull=False) | Q(pk__in=recognising)
    ).update(ethics_valid_until=decision.valid_until)
