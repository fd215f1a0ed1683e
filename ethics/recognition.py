"""Mutual recognition of ethics results: requests to participating committees, their working-day deadlines,
responses, and the deadline effects (reminder, escalation), each of which happens exactly once.

The database is the source of truth for every deadline (``due_at``, ``remind_at``). Celery ETA tasks give
timely effects for short waits; the beat sweep (every minute) is enough on its own and catches anything a lost
message missed. Every effect is recorded in ``RecognitionEffect`` under a unique key before anyone is notified.
"""

import datetime
import logging
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic import workdays
from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from ethics import rollups
from ethics.models import (
    Alliance,
    CommitteeMember,
    Decision,
    EthicsCommittee,
    RecognitionEffect,
    RecognitionRequest,
    Submission,
)
from trials.models import DocumentVersion, Trial, TrialDocument, TrialSite

logger = logging.getLogger(__name__)
R = RecognitionRequest.Status
# What a lead approval can ask participating sites to recognise.
RECOGNISABLE = {Submission.Kind.INITIAL, Submission.Kind.AMENDMENT}
# An ETA further away than this is left to the sweep: Redis redelivers unacknowledged tasks after the
# visibility timeout, and a worker killed while holding ETA tasks loses them.
ETA_HORIZON = datetime.timedelta(
    seconds=min(3600, settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600) // 2)
)


# --- what can happen next ---------------------------------------------------------------------------------------

RECOGNISE, RECOGNISE_WITH_CONDITIONS, DECLINE = "recognise", "recognise_with_conditions", "decline"
WITHDRAW, SUPERSEDE = "withdraw", "supersede"
# The one table of a request's transitions: {from status: {step: to status}}. The admin's buttons, the API's
# actions and the services below all read it.
ALLOWED: dict[str, dict[str, str]] = {
    R.OPEN: {
        RECOGNISE: R.RECOGNISED,
        RECOGNISE_WITH_CONDITIONS: R.RECOGNISED_WITH_CONDITIONS,
        DECLINE: R.DECLINED,
        WITHDRAW: R.WITHDRAWN,
        SUPERSEDE: R.SUPERSEDED,
    },
}
# The participating committee's office answers; the lead's office withdraws; only a new lead approval supersedes.
RESPONSE_STEPS = (RECOGNISE, RECOGNISE_WITH_CONDITIONS, DECLINE)
OUTCOME_STEP = {ALLOWED[R.OPEN][step]: step for step in RESPONSE_STEPS}
OUTCOMES = set(OUTCOME_STEP)


def is_participating_office(user: User, request: RecognitionRequest) -> bool:
    """An active ethics-office account of the institution whose committee the request is addressed to."""
    return bool(
        user.is_active
        and user.role == Role.ETHICS_OFFICE
        and user.institution_id is not None
        and user.institution_id == request.committee.institution_id
    )


def is_lead_office(user: User, request: RecognitionRequest) -> bool:
    """An active ethics-office account of the trial's lead institution, when that institution has a committee."""
    return bool(
        user.is_active
        and user.role == Role.ETHICS_OFFICE
        and user.institution_id is not None
        and user.institution_id == request.trial.lead_institution_id
        and EthicsCommittee.objects.filter(institution_id=request.trial.lead_institution_id).exists()
    )


_TAKEN_BY = {
    RECOGNISE: is_participating_office,
    RECOGNISE_WITH_CONDITIONS: is_participating_office,
    DECLINE: is_participating_office,
    WITHDRAW: is_lead_office,
}


def available_steps(request: RecognitionRequest, user: User) -> list[str]:
    """The steps ``user`` may take on the request now, in the table's order (``supersede`` is never a person's)."""
    steps = [step for step in ALLOWED.get(request.status, {}) if step in _TAKEN_BY]
    if user.is_superuser:
        return steps
    return [step for step in steps if _TAKEN_BY[step](user, request)]


def _target(request: RecognitionRequest, step: str) -> str:
    """The status ``step`` leads to from the request's status, or TransitionNotAllowed."""
    target = ALLOWED.get(request.status, {}).get(step)
    if target is None:
        if step in RESPONSE_STEPS:
            raise TransitionNotAllowed(
                _("This request is “%(status)s” and no longer takes feedback.")
                % {"status": request.get_status_display()}
            )
        if step == WITHDRAW:
            raise TransitionNotAllowed(_("Only an open request can be withdrawn."))
        raise TransitionNotAllowed(
            _("This request is “%(status)s”; that step is not possible.") % {"status": request.get_status_display()}
        )
    return target


# --- who may open the lead's result ------------------------------------------------------------------------------


def requests_with_lead_result_visible_to(user: User):
    """The requests whose lead decision, letter, covered documents and lead contact ``user`` may open: the
    participating committee's ethics office for the requests addressed to it (whatever their status), the lead
    institution's ethics and research offices, and superusers. Nobody else: not another hospital, not a
    regulator, not a PI. The one place this rule lives; the admin and the API read it."""
    requests = RecognitionRequest.objects.all()
    if not user.is_authenticated or not user.is_active:
        return requests.none()
    if user.is_superuser:
        return requests
    if user.role == Role.ETHICS_OFFICE:
        return requests.filter(
            Q(committee__institution_id=user.institution_id) | Q(trial__lead_institution_id=user.institution_id)
        )
    if user.role == Role.RESEARCH_OFFICE:
        return requests.filter(trial__lead_institution_id=user.institution_id)
    return requests.none()


def may_open_lead_result(user: User, request: RecognitionRequest) -> bool:
    return requests_with_lead_result_visible_to(user).filter(pk=request.pk).exists()


def covered_versions(request: RecognitionRequest) -> list[DocumentVersion]:
    """The document versions the lead decision approved: those of the decided submission and, for an approval
    of a response to requested modifications, of the submissions it answers (the newest version of each
    document wins). Empty for a lead approval recorded from outside the system."""
    if request.lead_decision_id is None:
        return []
    submission = request.lead_decision.submission
    chain = [submission.pk]
    while submission.kind == Submission.Kind.MODIFICATION_RESPONSE and submission.responds_to_id:
        submission = submission.responds_to
        chain.append(submission.pk)
    versions = (
        DocumentVersion.objects.filter(submissions__in=chain)
        .select_related("document")
        .distinct()
        .order_by("document__kind", "document__title", "-number")
    )
    newest = {}
    for version in versions:
        newest.setdefault(version.document_id, version)
    # Protocol, consent form, brochure, … as the kinds are declared; then by title.
    rank = {kind: position for position, kind in enumerate(TrialDocument.Kind.values)}
    return sorted(newest.values(), key=lambda v: (rank.get(v.document.kind, len(rank)), v.document.title))


def lead_committee(request: RecognitionRequest) -> EthicsCommittee | None:
    """The committee that approved at the lead site, if it is in the system."""
    if request.lead_decision_id:
        return request.lead_decision.committee
    return (
        EthicsCommittee.objects.filter(institution_id=request.trial.lead_institution_id, is_active=True)
        .order_by("pk")
        .first()
    )


def lead_letter(request: RecognitionRequest) -> dict | None:
    """The lead's letter as stored: the issued decision letter, or the letter recorded from outside."""
    from ethics import letters

    decision = request.lead_decision
    if decision is not None and decision.letter_file:
        return {
            "file": decision.letter_file,
            "filename": letters.letter_filename(decision, letters.AUTHORITATIVE_LANGUAGE),
            "content_type": "application/pdf",
            "sha256": decision.letter_sha256,
            "number": decision.letter_number,
        }
    version = request.external_lead_letter
    if version is not None:
        return {
            "file": version.file,
            "filename": version.original_name,
            "content_type": version.content_type,
            "sha256": version.sha256,
            "number": request.external_lead_letter_number,
        }
    return None


def lead_result(request: RecognitionRequest) -> dict:
    """What the participating office judges, as plain data for the admin page and the API: the lead decision
    (times in Beijing), its letter, the versions it covers, the lead committee and the local consent form.
    Call it only for a user ``may_open_lead_result`` admits."""
    decision = request.lead_decision
    if decision is not None:
        summary = {
            "letter_number": decision.letter_number,
            "decided_at": timezone.localtime(decision.decided_at),
            "outcome": decision.outcome,
            "outcome_display": decision.get_outcome_display(),
            "conditions": decision.requested_modifications,
            "valid_until": decision.valid_until,
        }
    elif request.external_lead_letter_number:
        summary = {
            "letter_number": request.external_lead_letter_number,
            "decided_at": None,
            "outcome": Decision.Outcome.APPROVE,
            "outcome_display": Decision.Outcome.APPROVE.label,
            "conditions": "",
            "valid_until": None,
        }
    else:
        summary = None
    return {
        "decision": summary,
        "external": decision is None,
        "letter": lead_letter(request),
        "documents": covered_versions(request),
        "committee": lead_committee(request),
        "local_icf": request.local_icf,
    }


def downloadable_version(request: RecognitionRequest, version_id: int) -> DocumentVersion | None:
    """A version the request's page offers for download: one the lead decision covers, or the local consent form."""
    if request.local_icf_id == version_id:
        return request.local_icf
    return next((version for version in covered_versions(request) if version.pk == version_id), None)


def working_time_left(
    request: RecognitionRequest, now: datetime.datetime | None = None, calendar=None
) -> datetime.timedelta:
    """Working time until the deadline (zero once it has passed or the request is answered)."""
    now = now or timezone.now()
    if request.status != R.OPEN or now >= request.due_at:
        return datetime.timedelta(0)
    return workdays.working_hours_between(now, request.due_at, calendar=calendar)


# --- deadlines --------------------------------------------------------------------------------------------------


def shared_alliance(lead: EthicsCommittee, participating: EthicsCommittee) -> Alliance | None:
    """The active alliance both committees belong to; with several, the one with the shortest deadline."""
    return (
        Alliance.objects.filter(is_active=True, committees=lead)
        .filter(committees=participating)
        .order_by("feedback_working_days", "pk")
        .first()
    )


def compute_deadline(alliance: Alliance, received_at: datetime.datetime, calendar=None) -> dict:
    """due_at, remind_at and the provisional flag for a request received at ``received_at``."""
    result = workdays.add_working_days(
        received_at, alliance.feedback_working_days, close_of_business=alliance.close_of_business, calendar=calendar
    )
    remind_at = datetime.datetime.combine(result.last_day, alliance.reminder_time, tzinfo=workdays.CALENDAR_TZ)
    remind_at = max(min(remind_at, result.due_at), received_at)
    return {
        "due_at": result.due_at,
        "remind_at": remind_at,
        "provisional": result.provisional,
        "provisional_years": list(result.provisional_years),
    }


def _schedule_timers(request_ids: list[int]) -> None:
    """After commit, queue ETA tasks for effects due soon; the sweep covers the rest."""
    from ethics import tasks

    def enqueue():
        now = timezone.now()
        for request in RecognitionRequest.objects.filter(pk__in=request_ids).open():
            for when, task in (
                (request.remind_at, tasks.recognition_remind),
                (request.due_at, tasks.recognition_escalate),
            ):
                if when - now <= ETA_HORIZON:
                    task.apply_async((request.pk,), eta=max(when, now))

    transaction.on_commit(enqueue)


# --- opening requests --------------------------------------------------------------------------------------------


def requests_open_for_decision(*, decision: Decision, actor: User) -> list[RecognitionRequest]:
    """A lead committee approved a multi-centre trial (or its amendment): ask every participating site whose
    committee shares an alliance with the lead to recognise it. Earlier open requests of those sites are
    superseded by the new ones. Called by ``decision_record``, inside its transaction."""
    subject = decision.submission.root_kind
    if decision.outcome != Decision.Outcome.APPROVE or subject not in RECOGNISABLE:
        return []
    trial = decision.submission.trial
    lead = decision.committee
    if trial.lead_institution_id != lead.institution_id:
        return []
    created = []
    sites = TrialSite.objects.filter(trial=trial, role=TrialSite.SiteRole.PARTICIPATING).select_related("institution")
    calendar = workdays.Calendar.load(
        timezone.localdate(decision.decided_at), timezone.localdate(decision.decided_at) + datetime.timedelta(days=62)
    )
    for site in sites:
        committee = EthicsCommittee.objects.filter(institution_id=site.institution_id, is_active=True).first()
        alliance = committee and shared_alliance(lead, committee)
        if alliance is None:
            continue
        created.append(
            _open_request(
                alliance=alliance,
                trial=trial,
                site=site,
                committee=committee,
                subject=subject,
                received_at=decision.decided_at,
                actor=actor,
                calendar=calendar,
                lead_decision=decision,
            )
        )
    _schedule_timers([r.pk for r in created])
    return created


def _open_request(
    *, alliance, trial, site, committee, subject, received_at, actor, calendar=None, **lead
) -> RecognitionRequest:
    superseded = []
    for earlier in RecognitionRequest.objects.select_for_update().filter(site=site).open():
        earlier.status = _target(earlier, SUPERSEDE)
        earlier._history_user = actor
        earlier.save(update_fields=["status"])
        superseded.append(earlier)
    request = RecognitionRequest(
        alliance=alliance,
        trial=trial,
        site=site,
        committee=committee,
        subject=subject,
        received_at=received_at,
        **compute_deadline(alliance, received_at, calendar),
        **lead,
    )
    request._history_user = actor
    request.save()
    RecognitionRequest.objects.filter(site=site, status=R.SUPERSEDED, superseded_by=None).exclude(pk=request.pk).update(
        superseded_by=request
    )
    for earlier in superseded:
        _notify_superseded(earlier, request)
    _notify_opened(request)
    return request


def request_record_external(
    *,
    actor: User,
    site: TrialSite,
    alliance: Alliance,
    letter_number: str,
    letter_file,
    subject: str = Submission.Kind.INITIAL,
    received_at: datetime.datetime | None = None,
) -> RecognitionRequest:
    """The participating site's ethics office records a lead approval received from outside the system."""
    committee = EthicsCommittee.objects.filter(institution_id=site.institution_id, is_active=True).first()
    if committee is None:
        raise DomainError(_("The site's institution has no active ethics committee."), field="site")
    _require_office(actor, committee)
    if site.role != TrialSite.SiteRole.PARTICIPATING:
        raise DomainError(_("Only a participating site recognises the lead site's result."), field="site")
    if not alliance.is_active or not alliance.committees.filter(pk=committee.pk).exists():
        raise DomainError(_("Your committee is not a member of this alliance."), field="alliance")
    if subject not in RECOGNISABLE:
        raise DomainError(_("Only initial approvals and amendments are recognised."), field="subject")
    if not letter_number.strip():
        raise DomainError(_("Give the lead committee's letter number."), field="letter_number")
    received_at = received_at or timezone.now()
    if received_at > timezone.now():
        raise DomainError(_("The letter cannot have been received in the future."), field="received_at")
    with transaction.atomic():
        letter = _store_lead_letter(site.trial, actor, letter_number, letter_file)
        request = _open_request(
            alliance=alliance,
            trial=site.trial,
            site=site,
            committee=committee,
            subject=subject,
            received_at=received_at,
            actor=actor,
            external_lead_letter_number=letter_number.strip(),
            external_lead_letter=letter,
        )
    _schedule_timers([request.pk])
    return request


def _store_lead_letter(trial: Trial, actor: User, letter_number: str, letter_file) -> DocumentVersion:
    """The lead's letter, kept as a version of a trial document (checked, hashed, never overwritten)."""
    return _store_version(
        trial=trial,
        actor=actor,
        kind=TrialDocument.Kind.OTHER,
        title=f"牵头单位伦理批件 {letter_number.strip()}",
        uploaded_file=letter_file,
        version_label=letter_number.strip(),
    )


def _store_version(*, trial: Trial, actor: User, kind: str, title: str, uploaded_file, version_label: str = ""):
    """A new version of a trial document, after the upload checks every document passes."""
    from trials.uploads import check_upload

    checked = check_upload(uploaded_file)
    document, _created = TrialDocument.objects.get_or_create(trial=trial, kind=kind, title=title)
    # Locked so two uploads at once get consecutive numbers.
    document = TrialDocument.objects.select_for_update().get(pk=document.pk)
    last = document.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = DocumentVersion(
        document=document,
        number=last + 1,
        original_name=uploaded_file.name[:255],
        content_type=checked.content_type,
        size=checked.size,
        sha256=checked.sha256,
        uploaded_by=actor,
        version_label=version_label[:50],
    )
    version.file.save(uploaded_file.name, uploaded_file, save=False)
    version._history_user = actor
    version.save()
    return version


def local_icf_title(site: TrialSite) -> str:
    """The participating site's own consent-form document (kept apart from the lead's, whose versions it would
    otherwise overtake)."""
    return f"知情同意书（{site.institution.name_zh}）"


# --- responding -------------------------------------------------------------------------------------------------


def _require_office(actor: User, committee: EthicsCommittee) -> None:
    if actor.is_superuser:
        return
    if actor.is_active and actor.role == Role.ETHICS_OFFICE and actor.institution_id == committee.institution_id:
        return
    raise DomainError(_("Only the ethics office of the participating committee may do this."), code="permission_denied")


def _local_icf(
    request: RecognitionRequest, actor: User, outcome: str, upload, version: DocumentVersion | None, label: str
) -> DocumentVersion | None:
    """The local consent-form version to keep with the answer: an upload (stored as a new version) or a chosen
    existing version of one of the trial's consent forms. Only with a recognition with conditions."""
    if upload is None and version is None:
        return None
    if outcome != R.RECOGNISED_WITH_CONDITIONS:
        raise DomainError(
            _("A local consent form is attached only when recognising with conditions."), field="local_icf"
        )
    if upload is not None and version is not None:
        raise DomainError(_("Upload a consent form or choose an existing version, not both."), field="local_icf")
    if version is not None:
        if version.document.trial_id != request.trial_id or version.document.kind != TrialDocument.Kind.ICF:
            raise DomainError(_("Choose a consent-form version of this trial."), field="local_icf")
        return version
    return _store_version(
        trial=request.trial,
        actor=actor,
        kind=TrialDocument.Kind.ICF,
        title=local_icf_title(request.site),
        uploaded_file=upload,
        version_label=label.strip(),
    )


def recognition_respond(
    *,
    request: RecognitionRequest,
    actor: User,
    outcome: str,
    note: str = "",
    local_icf_file=None,
    local_icf_version: DocumentVersion | None = None,
    local_icf_label: str = "",
) -> RecognitionRequest:
    """The participating committee's feedback. After ``due_at`` it is still accepted, and marked late.
    Declining opens a full local review (a draft initial application to the participating committee).
    Recognising with conditions may keep the site's own consent-form version (uploaded or chosen).
    The lead's ethics office and the lead PI are told."""
    _require_office(actor, request.committee)
    if outcome not in OUTCOMES:
        raise DomainError(_("Choose recognise, recognise with conditions, or decline."), field="outcome")
    if outcome != R.RECOGNISED and not note.strip():
        raise DomainError(_("State the conditions or the reasons."), field="note")
    with transaction.atomic():
        locked = (
            RecognitionRequest.objects.select_for_update(of=("self",))
            .select_related("site__institution", "trial", "committee")
            .get(pk=request.pk)
        )
        locked.status = _target(locked, OUTCOME_STEP[outcome])
        icf = _local_icf(locked, actor, outcome, local_icf_file, local_icf_version, local_icf_label)
        now = timezone.now()
        locked.responded_at = now
        locked.responded_by = actor
        locked.response_note = note.strip()
        locked.late = now > locked.due_at
        if icf is not None:
            locked.local_icf = icf
        hours = workdays.working_hours_between(locked.received_at, now)
        locked.response_working_hours = (Decimal(hours.total_seconds()) / 3600).quantize(Decimal("0.01"))
        if outcome == R.DECLINED:
            locked.local_review = Submission.objects.create(
                trial=locked.trial,
                committee=locked.committee,
                kind=Submission.Kind.INITIAL,
                summary=_("Full local review after the lead site's result was not recognised: %(reasons)s")
                % {"reasons": note.strip()},
                submitted_by=locked.trial.pi,
            )
        else:
            TrialSite.objects.filter(pk=locked.site_id, ethics_approved_on=None).update(
                ethics_approved_on=timezone.localdate(now)
            )
            # A recognised result is valid as long as the lead's approval (then renewed with it).
            lead_valid_until = locked.lead_decision.valid_until if locked.lead_decision_id else None
            if lead_valid_until:
                TrialSite.objects.filter(pk=locked.site_id).update(ethics_valid_until=lead_valid_until)
        locked._history_user = actor
        locked.save()
        rollups.refresh_recognition_fact(locked.pk)
        _notify_answered(locked)
    return locked


def recognition_withdraw(*, request: RecognitionRequest, actor: User, reason: str) -> RecognitionRequest:
    """The lead's ethics office withdraws a request (e.g. the approval was issued in error); the participating
    office is told."""
    if not actor.is_superuser and not is_lead_office(actor, request):
        raise DomainError(_("Only the lead site's ethics office may withdraw a request."), code="permission_denied")
    if not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = (
            RecognitionRequest.objects.select_for_update(of=("self",))
            .select_related("trial", "committee")
            .get(pk=request.pk)
        )
        locked.status = _target(locked, WITHDRAW)
        locked.response_note = reason.strip()
        locked._history_user = actor
        locked.save(update_fields=["status", "response_note"])
        _notify_withdrawn(locked)
    return locked


# --- who is told -------------------------------------------------------------------------------------------------

OPENED_SUBJECT = gettext_lazy("Recognition requested: %(protocol)s, feedback due %(due)s")
OPENED_BODY = gettext_lazy(
    "The lead site's ethics result for “%(trial)s” (%(lead_letter)s) awaits your committee's recognition. "
    "Feedback is due by %(due)s (%(alliance)s: %(days)s working days)."
)
ANSWERED_SUBJECT = gettext_lazy("%(committee)s answered: %(status)s (%(protocol)s)")
ANSWERED_BODY = gettext_lazy(
    "%(committee)s answered the request to recognise the lead site's ethics result for “%(trial)s”: "
    "%(status)s. %(note)s"
)
DECLINED_SUBJECT = gettext_lazy("%(committee)s declined to recognise: %(protocol)s")
DECLINED_BODY = gettext_lazy(
    "%(committee)s did not recognise the lead site's ethics result for “%(trial)s” and opens a full local "
    "review. Reasons: %(note)s"
)
SUPERSEDED_SUBJECT = gettext_lazy("Recognition request superseded: %(protocol)s")
SUPERSEDED_BODY = gettext_lazy(
    "The request to recognise the lead site's ethics result for “%(trial)s” received on %(received)s is "
    "superseded by a newer lead approval; answer the new request instead."
)
WITHDRAWN_SUBJECT = gettext_lazy("Recognition request withdrawn: %(protocol)s")
WITHDRAWN_BODY = gettext_lazy(
    "The lead site's ethics office withdrew its request to recognise the ethics result for “%(trial)s”. "
    "Reason: %(note)s"
)


def _lead_letter_number(request: RecognitionRequest) -> str:
    if request.lead_decision_id:
        return request.lead_decision.letter_number or str(request.lead_decision)
    return request.external_lead_letter_number


def _notify_opened(request: RecognitionRequest) -> None:
    params = {**_params(request), "lead_letter": _lead_letter_number(request)}
    notify(
        recipients=User.objects.office_of(request.committee.institution_id, Role.ETHICS_OFFICE),
        topic="recognition.opened",
        event_key=f"request:{request.pk}",
        subject=render_later(OPENED_SUBJECT, **params),
        body=render_later(OPENED_BODY, **params),
        link=_link(request),
    )


def _notify_superseded(earlier: RecognitionRequest, newer: RecognitionRequest) -> None:
    params = {**_params(earlier), "received": timezone.localtime(earlier.received_at).strftime("%Y-%m-%d %H:%M")}
    notify(
        recipients=User.objects.office_of(earlier.committee.institution_id, Role.ETHICS_OFFICE),
        topic="recognition.superseded",
        event_key=f"request:{earlier.pk}",
        subject=render_later(SUPERSEDED_SUBJECT, **params),
        body=render_later(SUPERSEDED_BODY, **params),
        link=_link(newer),
    )


def _notify_answered(request: RecognitionRequest) -> None:
    """The lead's ethics office (admin link) and the lead PI (portal link), once each."""
    # The status's lazy label, so that each recipient reads it in their own language.
    params = {**_params(request), "status": R(request.status).label, "note": request.response_note}
    declined = request.status == R.DECLINED
    topic = "recognition.declined" if declined else "recognition.answered"
    subject = render_later(DECLINED_SUBJECT if declined else ANSWERED_SUBJECT, **params)
    body = render_later(DECLINED_BODY if declined else ANSWERED_BODY, **params)
    key = f"request:{request.pk}"
    notify(
        recipients=User.objects.office_of(request.trial.lead_institution_id, Role.ETHICS_OFFICE),
        topic=topic,
        event_key=key,
        subject=subject,
        body=body,
        link=_link(request),
    )
    if request.trial.pi_id:
        notify(
            recipients=User.objects.filter(pk=request.trial.pi_id),
            topic=topic,
            event_key=key,
            subject=subject,
            body=body,
            link=reverse("ethics_portal:trial_detail", args=[request.trial_id]),
        )


def _notify_withdrawn(request: RecognitionRequest) -> None:
    params = {**_params(request), "note": request.response_note}
    notify(
        recipients=User.objects.office_of(request.committee.institution_id, Role.ETHICS_OFFICE),
        topic="recognition.withdrawn",
        event_key=f"request:{request.pk}",
        subject=render_later(WITHDRAWN_SUBJECT, **params),
        body=render_later(WITHDRAWN_BODY, **params),
        link=_link(request),
    )


# --- deadline effects --------------------------------------------------------------------------------------------


def _record_effect(request: RecognitionRequest, kind: str, now: datetime.datetime) -> bool:
    """Record the effect for this deadline; False if it already happened (another run got there first)."""
    try:
        with transaction.atomic():
            RecognitionEffect.objects.create(request=request, kind=kind, due_at=request.due_at, happened_at=now)
    except IntegrityError:
        return False
    return True


REMINDER_SUBJECT = gettext_lazy("Recognition feedback due %(due)s: %(protocol)s")
REMINDER_BODY = gettext_lazy(
    "Your committee's feedback on recognising the lead site's ethics result for “%(trial)s” is due by %(due)s "
    "(%(alliance)s: %(days)s working days)."
)
ESCALATION_SUBJECT = gettext_lazy("Recognition feedback overdue: %(protocol)s at %(committee)s")
ESCALATION_BODY = gettext_lazy(
    "%(committee)s has not given its feedback on recognising the lead site's ethics result for “%(trial)s”; "
    "it was due by %(due)s (%(alliance)s: %(days)s working days)."
)


def _params(request: RecognitionRequest) -> dict:
    return {
        "protocol": request.trial.protocol_number,
        "trial": request.trial,
        "committee": request.committee,
        "alliance": request.alliance,
        "days": request.alliance.feedback_working_days,
        "due": timezone.localtime(request.due_at).strftime("%Y-%m-%d %H:%M"),
    }


def _link(request: RecognitionRequest) -> str:
    return reverse("admin:ethics_recognitionrequest_change", args=[request.pk])


def recognition_remind(request_id: int, now: datetime.datetime | None = None) -> bool:
    """Remind the participating committee's office at the start of the last working day, once."""
    now = now or timezone.now()
    with transaction.atomic():
        request = (
            # Only the request's own row: locking the joined alliance, committee and trial would make a sibling
            # request's timer skip its row (SKIP LOCKED) and wait for the next sweep.
            RecognitionRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("trial", "committee", "alliance")
            .filter(pk=request_id, status=R.OPEN, remind_at__lte=now)
            .first()
        )
        if request is None or not _record_effect(request, RecognitionEffect.Kind.REMINDER, now):
            return False
        notify(
            recipients=User.objects.office_of(request.committee.institution_id, Role.ETHICS_OFFICE),
            topic="recognition.reminder",
            event_key=f"request:{request.pk}:{request.due_at.isoformat()}",
            subject=render_later(REMINDER_SUBJECT, **_params(request)),
            body=render_later(REMINDER_BODY, **_params(request)),
            link=_link(request),
        )
    return True


def recognition_escalate(request_id: int, now: datetime.datetime | None = None) -> bool:
    """At ``due_at``, mark the request overdue and tell the chair, the research office and the coordinator, once."""
    now = now or timezone.now()
    with transaction.atomic():
        request = (
            # Only the request's own row: locking the joined alliance, committee and trial would make a sibling
            # request's timer skip its row (SKIP LOCKED) and wait for the next sweep.
            RecognitionRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("trial", "committee", "alliance")
            .filter(pk=request_id, status=R.OPEN, due_at__lte=now)
            .first()
        )
        if request is None or not _record_effect(request, RecognitionEffect.Kind.ESCALATION, now):
            return False
        request.escalated_at = now
        request.save(update_fields=["escalated_at"])
        chairs = User.objects.filter(
            committee_memberships__committee=request.committee,
            committee_memberships__member_role=CommitteeMember.MemberRole.CHAIR,
            committee_memberships__is_active=True,
        )
        recipients = {
            *chairs,
            *User.objects.office_of(request.committee.institution_id, Role.RESEARCH_OFFICE),
            *User.objects.office_of(request.committee.institution_id, Role.ETHICS_OFFICE),
        }
        if request.alliance.coordinator_id:
            recipients.add(request.alliance.coordinator)
        notify(
            recipients=recipients,
            topic="recognition.escalation",
            event_key=f"request:{request.pk}:{request.due_at.isoformat()}",
            subject=render_later(ESCALATION_SUBJECT, **_params(request)),
            body=render_later(ESCALATION_BODY, **_params(request)),
            link=_link(request),
        )
    return True


def sweep(now: datetime.datetime | None = None) -> dict[str, int]:
    """Every due effect that has not happened yet; safe to run any number of times, from any process."""
    now = now or timezone.now()
    effects = RecognitionEffect.objects.filter(request=OuterRef("pk"), due_at=OuterRef("due_at"))
    open_requests = RecognitionRequest.objects.open()
    to_remind = (
        open_requests.filter(remind_at__lte=now)
        .exclude(Exists(effects.filter(kind=RecognitionEffect.Kind.REMINDER)))
        .values_list("pk", flat=True)
    )
    to_escalate = (
        open_requests.filter(due_at__lte=now)
        .exclude(Exists(effects.filter(kind=RecognitionEffect.Kind.ESCALATION)))
        .values_list("pk", flat=True)
    )
    done = {"reminders": 0, "escalations": 0}
    for pk in list(to_remind):
        done["reminders"] += recognition_remind(pk, now)
    for pk in list(to_escalate):
        done["escalations"] += recognition_escalate(pk, now)
    return done


def recompute_deadlines(years: tuple[int, ...]) -> int:
    """A holiday schedule was entered or changed: recompute open deadlines that touch those years."""
    if not years:
        return 0
    first = datetime.datetime(min(years), 1, 1, tzinfo=workdays.CALENDAR_TZ)
    affected = RecognitionRequest.objects.open().filter(Q(provisional=True) | Q(due_at__gte=first))
    calendar = None
    changed = []
    with transaction.atomic():
        for request in affected.select_for_update().select_related("alliance"):
            if calendar is None:
                calendar = workdays.Calendar.load(request.received_at.date(), request.received_at.date())
            new = compute_deadline(request.alliance, request.received_at, calendar)
            if any(getattr(request, k) != v for k, v in new.items()):
                for key, value in new.items():
                    setattr(request, key, value)
                request.save(update_fields=list(new))
                changed.append(request.pk)
        _schedule_timers(changed)
    logger.info("recomputed %d recognition deadlines for years %s", len(changed), years)
    return len(changed)


def open_deadline_horizon() -> datetime.date | None:
    """The latest day an open deadline reaches, for the calendar admin's list of missing years."""
    latest = RecognitionRequest.objects.open().order_by("-due_at").values_list("due_at", flat=True).first()
    return timezone.localdate(latest) if latest else None
