"""Ethics review: one function per step of a submission's path, each checking the source state and the actor,
writing the new state and a timeline event, and refusing anything else with a translated message."""

import datetime
from dataclasses import dataclass, field

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from ethics import letters, recognition, rollups
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
    ReferenceCounter,
    ReviewAssignment,
    Submission,
    SubmissionEvent,
    Vote,
)
from trials import filings
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
# Outcomes that ask the applicant to change something and answer.
ASKS_FOR_MODIFICATIONS = {Outcome.APPROVE_AFTER_MODIFICATION, Outcome.MODIFY_AND_RESUBMIT}

# --- what can happen next ----------------------------------------------------------------------------------------
# The one table of a submission's steps: {from status: {step: to status}}. The services check it, and the admin's
# buttons and the PI portal read it through ``available_steps``; steps that leave the status as it is
# (assigning a reviewer, recording an opinion, editing a draft) are listed too, so the table says where they apply.
ALLOWED = {
    S.DRAFT: {"edit": S.DRAFT, "submit": S.SUBMITTED, "withdraw": S.WITHDRAWN},
    S.RETURNED: {"edit": S.RETURNED, "submit": S.SUBMITTED, "withdraw": S.WITHDRAWN},
    S.SUBMITTED: {"accept": S.ACCEPTED, "return": S.RETURNED, "withdraw": S.WITHDRAWN},
    S.ACCEPTED: {
        "route_full_board": S.AWAITING_MEETING,
        "route_expedited": S.EXPEDITED_REVIEW,
        "acknowledge": S.ACKNOWLEDGED,
        "withdraw": S.WITHDRAWN,
    },
    S.EXPEDITED_REVIEW: {
        "assign": S.EXPEDITED_REVIEW,
        "opinion": S.EXPEDITED_REVIEW,
        "refer": S.AWAITING_MEETING,
        "decide": S.DECIDED,
        "acknowledge": S.ACKNOWLEDGED,
    },
    S.AWAITING_MEETING: {
        "assign": S.AWAITING_MEETING,
        "opinion": S.AWAITING_MEETING,
        "schedule": S.AWAITING_MEETING,
        "decide": S.DECIDED,
    },
}
# Who takes each step: the applicant (PI, site PI, lead research office) or the committee's ethics office.
APPLICANT_STEPS = frozenset({"edit", "submit", "withdraw"})
ROUTE_STEPS = {Submission.ReviewType.FULL_BOARD: "route_full_board", Submission.ReviewType.EXPEDITED: "route_expedited"}
# Statuses in which the applicant can still change the submission (the portal's edit links read this).
EDITABLE_STATUSES = tuple(status for status, steps in ALLOWED.items() if "edit" in steps)

M = Meeting.Status
# Meetings whose agenda is open: a submission is on at most one of them at a time.
OPEN_MEETING_STATUSES = (M.PLANNED, M.HELD)
# A meeting: planned → in session (attendance recorded; agenda, conflicts, votes and decisions) → closed; a meeting
# at which nothing was decided may be cancelled instead. Recording attendance again while in session corrects it.
MEETING_ALLOWED = {
    M.PLANNED: {"agenda": M.PLANNED, "attendance": M.HELD, "cancel": M.CANCELLED},
    M.HELD: {"agenda": M.HELD, "attendance": M.HELD, "vote": M.HELD, "close": M.CLOSED, "cancel": M.CANCELLED},
}


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


def _allowed(submission: Submission, step: str) -> bool:
    if step == "acknowledge" and submission.kind not in ACKNOWLEDGEABLE:
        return False
    return step in ALLOWED.get(submission.status, {})


def _may(actor: User, submission: Submission, step: str) -> bool:
    try:
        if step in APPLICANT_STEPS:
            _require_applicant(actor, submission.trial)
        else:
            _require_office(actor, submission.committee)
    except DomainError:
        return False
    return True


def available_steps(submission: Submission, user: User) -> list[str]:
    """The steps this person can take on the submission now, in the table's order (for buttons and links)."""
    steps = [step for step in ALLOWED.get(submission.status, {}) if _allowed(submission, step)]
    if not steps:
        return []
    applicant = _may(user, submission, "submit") if APPLICANT_STEPS.intersection(steps) else False
    office = _may(user, submission, "accept") if set(steps) - APPLICANT_STEPS else False
    return [step for step in steps if (applicant if step in APPLICANT_STEPS else office)]


def _check_step(locked: Submission, step: str) -> str:
    """The status ``step`` leads to from the submission's status, or a refusal naming both."""
    if not _allowed(locked, step):
        raise TransitionNotAllowed(
            _("A submission that is “%(current)s” cannot be %(step)s.")
            % {"current": locked.get_status_display(), "step": STEP_LABELS.get(step, step)}
        )
    return ALLOWED[locked.status][step]


STEP_LABELS = {
    "edit": pgettext_lazy("submission step", "edited"),
    "submit": pgettext_lazy("submission step", "submitted"),
    "withdraw": pgettext_lazy("submission step", "withdrawn"),
    "accept": pgettext_lazy("submission step", "accepted"),
    "return": pgettext_lazy("submission step", "returned as incomplete"),
    "route_full_board": pgettext_lazy("submission step", "routed to a full-board meeting"),
    "route_expedited": pgettext_lazy("submission step", "routed to expedited review"),
    "acknowledge": pgettext_lazy("submission step", "acknowledged"),
    "assign": pgettext_lazy("submission step", "given a reviewer"),
    "opinion": pgettext_lazy("submission step", "given a reviewer's opinion"),
    "refer": pgettext_lazy("submission step", "referred to a meeting"),
    "schedule": pgettext_lazy("submission step", "put on a meeting agenda"),
    "decide": pgettext_lazy("submission step", "decided"),
}


def _move(
    locked: Submission,
    *,
    step: str,
    actor: User,
    event: str,
    note: str = "",
    update_fields: tuple[str, ...] = (),
) -> Submission:
    to = _check_step(locked, step)
    from_status = locked.status
    locked.status = to
    locked._history_user = actor
    locked.save(update_fields=["status", *update_fields])
    locked.last_event = _event(locked, event, actor, from_status=from_status, to_status=to, note=note)
    # Routing, referral and the decision (with decided_at and review_type) all end here, under the row lock.
    rollups.refresh_turnaround_fact(locked.pk)
    return locked


# --- telling the applicant side ------------------------------------------------------------------------------------

NOTICES = {
    "returned": (
        gettext_lazy("%(reference)s returned as incomplete"),
        gettext_lazy(
            "%(committee)s returned the %(kind)s %(reference)s for %(protocol)s %(trial)s as incomplete. "
            "Missing: %(items)s. Complete it and submit it again."
        ),
    ),
    "accepted": (
        gettext_lazy("%(reference)s accepted for review"),
        gettext_lazy(
            "%(committee)s accepted the %(kind)s %(reference)s for %(protocol)s %(trial)s; it will be routed for "
            "review."
        ),
    ),
    "routed": (
        gettext_lazy("%(reference)s routed: %(review_type)s"),
        gettext_lazy(
            "%(committee)s routed the %(kind)s %(reference)s for %(protocol)s %(trial)s to %(review_type)s. "
            "Reason: %(reason)s"
        ),
    ),
    "decided": (
        gettext_lazy("Decision on %(reference)s: %(outcome)s"),
        gettext_lazy(
            "%(committee)s decided on the %(kind)s %(reference)s for %(protocol)s %(trial)s: %(outcome)s, "
            "letter %(letter)s. %(reasons)s"
        ),
    ),
    "modifications_requested": (
        gettext_lazy("Modifications requested for %(reference)s"),
        gettext_lazy(
            "%(committee)s asks for modifications to the %(kind)s %(reference)s for %(protocol)s %(trial)s "
            "(%(outcome)s, letter %(letter)s): %(reasons)s Respond with the revised documents from the "
            "submission's page."
        ),
    ),
}


def _notify_applicants(submission: Submission, notice: str, *, items=(), decision: Decision | None = None) -> None:
    """Tell the trial's PI, the submitter and the lead institution's research office about a step, once each:
    PIs get the portal page, office staff the admin page."""
    trial = submission.trial
    people = {trial.pi, submission.submitted_by}
    people.update(User.objects.office_of(trial.lead_institution_id, Role.RESEARCH_OFFICE))
    params = {
        "reference": submission.reference or f"#{submission.pk}",
        "committee": submission.committee,
        "kind": K(submission.kind).label,
        "protocol": trial.protocol_number,
        # The title alone (the messages name the protocol already), in the language of each recipient.
        "trial": lazy(lambda: trial.title, str)(),
        "items": "; ".join(items),
        "review_type": Submission.ReviewType(submission.review_type).label if submission.review_type else "",
        "reason": submission.routing_reason,
        "outcome": Outcome(decision.outcome).label if decision else "",
        "letter": decision.letter_number if decision else "",
        "reasons": decision.requested_modifications if decision else "",
    }
    subject, body = NOTICES[notice]
    # A submission is returned or routed more than once; the timeline entry names this occurrence.
    occurrence = decision.pk if decision else submission.last_event.pk
    links = {
        True: reverse("ethics_portal:submission_detail", args=[submission.pk]),
        False: reverse("admin:ethics_submission_change", args=[submission.pk]),
    }
    for is_pi, link in links.items():
        recipients = [person for person in people if (person.role == Role.PI) == is_pi]
        if recipients:
            notify(
                recipients=recipients,
                topic=f"submission.{notice}",
                event_key=f"submission:{submission.pk}:{occurrence}",
                subject=render_later(subject, **params),
                body=render_later(body, **params),
                link=link,
            )


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
        if not _allowed(locked, "edit"):
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
        _check_step(locked, "submit")
        problems = missing_items(locked)
        if problems:
            raise DomainError(
                _("The submission is incomplete: %(items)s") % {"items": " ".join(problems)}, code="incomplete"
            )
        now = timezone.now()
        first = locked.submitted_at is None
        if first:
            # 受理号: the committee's own sequence for the Beijing-time year of first submission, taken under a lock.
            year = timezone.localdate(now).year
            locked.submitted_at = now
            locked.reference = (
                f"{locked.committee.letter_prefix}受〔{year}〕{_next_reference_number(locked.committee, year):05d}"
            )
        locked.missing_items = []
        _move(
            locked,
            step="submit",
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
            step="withdraw",
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
        _move(
            locked,
            step="return",
            actor=actor,
            event=E.RETURNED,
            note="\n".join(items),
            update_fields=("missing_items",),
        )
        _notify_applicants(locked, "returned", items=items)
    return locked


def submission_accept(*, submission: Submission, actor: User) -> Submission:
    """Intake found the submission complete."""
    _require_office(actor, submission.committee)
    with transaction.atomic():
        locked = _lock(submission)
        _move(locked, step="accept", actor=actor, event=E.ACCEPTED)
        if locked.kind == K.INITIAL and locked.trial.status == Trial.Status.SUBMITTED:
            trial_services.trial_start_review(trial=locked.trial, actor=actor)
        _notify_applicants(locked, "accepted")
    return locked


def submission_route(*, submission: Submission, actor: User, review_type: str, reason: str) -> Submission:
    """Send an accepted submission to a full-board meeting or to expedited review, saying why."""
    _require_office(actor, submission.committee)
    if review_type not in Submission.ReviewType.values:
        raise DomainError(_("Choose full-board or expedited review."), field="review_type")
    if not reason.strip():
        raise DomainError(_("Please give the reason for this routing."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = _lock(submission)
        _check_step(locked, ROUTE_STEPS[review_type])
        locked.review_type = review_type
        locked.routing_reason = reason.strip()
        _move(
            locked,
            step=ROUTE_STEPS[review_type],
            actor=actor,
            event=E.ROUTED,
            note=f"{Submission.ReviewType(review_type).label}: {reason.strip()}",
            update_fields=("review_type", "routing_reason"),
        )
        _notify_applicants(locked, "routed")
    return locked


def submission_refer_to_meeting(*, submission: Submission, actor: User, reason: str) -> Submission:
    """An expedited review that needs the full board (e.g. a reviewer would disapprove)."""
    _require_office(actor, submission.committee)
    if not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = _lock(submission)
        _check_step(locked, "refer")
        locked.review_type = Submission.ReviewType.FULL_BOARD
        locked.routing_reason = reason.strip()
        _move(
            locked,
            step="refer",
            actor=actor,
            event=E.ROUTED,
            note=reason.strip(),
            update_fields=("review_type", "routing_reason"),
        )
        _notify_applicants(locked, "routed")
    return locked


def submission_acknowledge(*, submission: Submission, actor: User, note: str = "") -> Submission:
    """File a report that needs no decision (e.g. an expected SAE already handled)."""
    _require_office(actor, submission.committee)
    if submission.kind not in ACKNOWLEDGEABLE:
        raise DomainError(_("Only reports can be acknowledged; applications need a decision."), field="kind")
    with transaction.atomic():
        locked = _lock(submission)
        _check_step(locked, "acknowledge")
        locked.decided_at = timezone.now()
        _move(
            locked,
            step="acknowledge",
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
        if not _allowed(locked, "assign"):
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
    if not _allowed(submission, "opinion"):
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


def meeting_available_steps(meeting: Meeting, user: User) -> list[str]:
    """The meeting steps this person can take now (the admin's buttons read this)."""
    try:
        _require_office(user, meeting.committee)
    except DomainError:
        return []
    steps = list(MEETING_ALLOWED.get(meeting.status, {}))
    if "cancel" in steps and meeting.decisions.exists():
        steps.remove("cancel")
    return steps


MEETING_STEP_LABELS = {
    "agenda": pgettext_lazy("meeting step", "have its agenda changed"),
    "attendance": pgettext_lazy("meeting step", "have its attendance recorded"),
    "vote": pgettext_lazy("meeting step", "take a vote"),
    "close": pgettext_lazy("meeting step", "be closed"),
    "cancel": pgettext_lazy("meeting step", "be cancelled"),
}


def _meeting_step(meeting: Meeting, step: str) -> str:
    """The status ``step`` leads to from the meeting's status, or a refusal naming both."""
    steps = MEETING_ALLOWED.get(meeting.status, {})
    if step not in steps:
        raise TransitionNotAllowed(
            _("A meeting that is “%(current)s” cannot %(step)s.")
            % {"current": meeting.get_status_display(), "step": MEETING_STEP_LABELS[step]}
        )
    return steps[step]


def _lock_meeting(meeting: Meeting) -> Meeting:
    """Lock the meeting's row and bring the caller's instance up to date, so the caller sees the new status."""
    list(Meeting.objects.select_for_update().filter(pk=meeting.pk).values_list("pk"))
    meeting.refresh_from_db()
    return meeting


def _require_started(meeting: Meeting, now: datetime.datetime, what) -> None:
    """Votes and decisions happen at the meeting, so not before the time it is set for."""
    if now < meeting.scheduled_at:
        raise DomainError(
            _("The meeting starts at %(start)s (Beijing time); %(what)s cannot be recorded before it starts.")
            % {"start": f"{timezone.localtime(meeting.scheduled_at):%Y-%m-%d %H:%M}", "what": what},
            code="meeting_not_started",
        )


def meeting_add_submission(*, meeting: Meeting, actor: User, submission: Submission) -> AgendaItem:
    """Put a submission awaiting a meeting on the agenda; the agenda stays open until the meeting is closed."""
    _require_office(actor, meeting.committee)
    if submission.committee_id != meeting.committee_id:
        raise DomainError(_("The submission belongs to another committee."), field="submission")
    with transaction.atomic():
        meeting = _lock_meeting(meeting)
        _meeting_step(meeting, "agenda")
        if not _allowed(submission, "schedule"):
            raise TransitionNotAllowed(_("Only a submission awaiting a meeting can be put on the agenda."))
        if AgendaItem.objects.filter(submission=submission, meeting__status__in=OPEN_MEETING_STATUSES).exists():
            raise DomainError(_("The submission is already on an open meeting's agenda."), field="submission")
        position = meeting.agenda.count() + 1
        item = AgendaItem.objects.create(meeting=meeting, submission=submission, position=position)
        _event(submission, E.SCHEDULED, actor, note=str(meeting))
    return item


def meeting_record_attendance(*, meeting: Meeting, actor: User, members: list[CommitteeMember]) -> Meeting:
    """Record who is present: the meeting is then in session, with its quorum checked and kept. The agenda stays
    open, and attendance can be corrected, until the meeting is closed."""
    _require_office(actor, meeting.committee)
    if any(m.committee_id != meeting.committee_id for m in members):
        raise DomainError(_("Only members of this committee can attend."), field="members")
    with transaction.atomic():
        meeting = _lock_meeting(meeting)
        to = _meeting_step(meeting, "attendance")
        Attendance.objects.filter(meeting=meeting).exclude(member__in=members).delete()
        for member in members:
            Attendance.objects.get_or_create(meeting=meeting, member=member)
        result = quorum_check(meeting=meeting)
        meeting.status = to
        meeting.quorum_met = result.met
        meeting.quorum_note = result.explanation
        meeting._history_user = actor
        meeting.save(update_fields=["status", "quorum_met", "quorum_note"])
    return meeting


def meeting_close(*, meeting: Meeting, actor: User) -> Meeting:
    """End the meeting: no more agenda changes, votes or decisions under it. Items it did not decide are deferred:
    they stay awaiting a meeting, each with a timeline entry, and go on the next meeting's agenda (a secretariat
    closes the minutes of the day, and an item the board did not reach is carried over, not kept open)."""
    _require_office(actor, meeting.committee)
    with transaction.atomic():
        meeting = _lock_meeting(meeting)
        to = _meeting_step(meeting, "close")
        now = timezone.now()
        meeting.status = to
        meeting.closed_at = now
        meeting._history_user = actor
        meeting.save(update_fields=["status", "closed_at"])
        for item in meeting.agenda.select_related("submission").filter(submission__status=S.AWAITING_MEETING):
            _event(
                item.submission,
                E.DEFERRED,
                actor,
                note=_("Not decided at %(meeting)s; to be put on a later meeting's agenda.") % {"meeting": meeting},
                at=now,
            )
    return meeting


def meeting_cancel(*, meeting: Meeting, actor: User, reason: str) -> Meeting:
    """Call off a meeting at which nothing was decided, with the reason; its agenda items may go on another
    meeting's agenda. A meeting with a decision cannot be cancelled: it happened, and is closed instead."""
    _require_office(actor, meeting.committee)
    if not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        meeting = _lock_meeting(meeting)
        to = _meeting_step(meeting, "cancel")
        if meeting.decisions.exists():
            raise TransitionNotAllowed(
                _("Decisions were recorded at this meeting, so it cannot be cancelled; close it instead.")
            )
        now = timezone.now()
        meeting.status = to
        meeting.cancelled_at = now
        meeting.cancellation_reason = reason.strip()
        meeting._history_user = actor
        meeting.save(update_fields=["status", "cancelled_at", "cancellation_reason"])
        for item in meeting.agenda.select_related("submission").filter(submission__status=S.AWAITING_MEETING):
            _event(
                item.submission,
                E.DEFERRED,
                actor,
                note=_("%(meeting)s was cancelled: %(reason)s") % {"meeting": meeting, "reason": reason.strip()},
                at=now,
            )
    return meeting


def conflict_declare(
    *, agenda_item: AgendaItem, actor: User, member: CommitteeMember, description: str
) -> ConflictOfInterest:
    _require_office(actor, agenda_item.meeting.committee)
    if member.committee_id != agenda_item.meeting.committee_id:
        raise DomainError(_("Only members of this committee declare conflicts here."), field="member")
    if not description.strip():
        raise DomainError(_("Describe the conflict."), field="description")
    if agenda_item.meeting.status not in OPEN_MEETING_STATUSES:
        raise TransitionNotAllowed(_("Conflicts are declared while the meeting is planned or in session."))
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
    meeting = Meeting.objects.select_related("committee").get(pk=agenda_item.meeting_id)
    _require_office(actor, meeting.committee)
    if meeting.status == M.PLANNED:
        raise TransitionNotAllowed(_("Record attendance before the vote."))
    _meeting_step(meeting, "vote")
    _require_started(meeting, timezone.now(), _("a vote"))
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
            _require_started(item.meeting, timezone.now(), _("a decision"))
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
            step="decide",
            actor=actor,
            event=E.DECIDED,
            note=f"{decision.get_outcome_display()} {decision.letter_number}",
            update_fields=("decided_at",),
        )
        _apply_to_trial(decision, kind, actor, today)
        letters.letter_issue(decision=decision, actor=actor)
        recognition.requests_open_for_decision(decision=decision, actor=actor)
        _notify_applicants(locked, "decided", decision=decision)
        if outcome in ASKS_FOR_MODIFICATIONS:
            _notify_applicants(locked, "modifications_requested", decision=decision)
    return decision


def _next_number(counter_model, committee: EthicsCommittee, year: int) -> int:
    """The next number of a per-committee, per-year counter. The row lock is held until the caller's transaction
    ends, so concurrent callers queue and a rolled-back caller gives its number back: no gaps, no repeats."""
    counter, _created = counter_model.objects.get_or_create(committee=committee, year=year)
    counter = counter_model.objects.select_for_update().get(pk=counter.pk)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def _next_letter_number(committee: EthicsCommittee, year: int) -> int:
    return _next_number(LetterCounter, committee, year)


def _next_reference_number(committee: EthicsCommittee, year: int) -> int:
    return _next_number(ReferenceCounter, committee, year)


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
    if outcome == Outcome.APPROVE and decision.committee.institution_id == trial.lead_institution_id:
        filings.on_lead_ethics_approval(
            trial=trial, amendment=kind == K.AMENDMENT, approved_on=today, key=f"decision:{decision.pk}"
        )
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
