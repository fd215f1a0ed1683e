"""Writes to trials, sites and documents. Every lifecycle step is one function here."""

import uuid
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from trials import gates, qualifications
from trials.models import DocumentVersion, Trial, TrialDocument, TrialSite, TrialStatusChange
from trials.uploads import check_upload

S = Trial.Status

# Fields of the master record that staff edit directly; status only moves through the functions below.
TRIAL_EDITABLE_FIELDS = (
    "title_zh",
    "title_en",
    "protocol_number",
    "kind",
    "therapy_category",
    "phase",
    "sponsor",
    "lead_institution",
    "department",
    "pi",
    "target_enrolment",
    "nmpa_approval_number",
    "nmpa_approved_on",
    "filing_number",
    "filed_on",
    "chictr_id",
    "nct_id",
    "hgr_status",
    "hgr_approval_number",
)
SITE_EDITABLE_FIELDS = ("site_pi", "site_target", *TrialSite.MILESTONES)


def _as_domain_error(exc: ValidationError) -> DomainError:
    messages = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    field, texts = next(iter(messages.items()))
    return DomainError(" ".join(str(t) for t in texts), code="invalid", field=field if field != "__all__" else None)


def _deny(message=None) -> DomainError:
    return DomainError(message or _("You are not allowed to do this for this trial."), code="permission_denied")


def _acts_for_lead(actor: User, trial: Trial, roles: frozenset[str]) -> bool:
    """Whether the actor holds one of the roles on the trial's lead side."""
    if actor.is_superuser:
        return True
    if not actor.is_active or actor.role not in roles:
        return False
    if actor.role == Role.PI:
        return trial.pi_id == actor.pk
    return actor.institution_id == trial.lead_institution_id


# Who may take a step, on the lead side.
_PI_OR_OFFICE = frozenset({Role.PI, Role.RESEARCH_OFFICE})
_OFFICES = frozenset({Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE})
_RESEARCH_OFFICE = frozenset({Role.RESEARCH_OFFICE})

# Resuming leads back to the state the trial was suspended from.
PREVIOUS = "previous"

# The trial lifecycle, the one table of it: from each state, the steps it allows and the state each leads to.
# The admin buttons, the API's available_steps and the step functions below all read it.
ALLOWED: dict[str, dict[str, str]] = {
    S.DRAFT: {"submit": S.SUBMITTED, "withdraw": S.WITHDRAWN},
    S.SUBMITTED: {"start_review": S.UNDER_REVIEW, "withdraw": S.WITHDRAWN},
    S.UNDER_REVIEW: {"approve": S.APPROVED, "withdraw": S.WITHDRAWN},
    S.APPROVED: {"activate": S.ACTIVE, "suspend": S.SUSPENDED, "terminate": S.TERMINATED},
    S.ACTIVE: {"close_enrolment": S.ENROLMENT_CLOSED, "suspend": S.SUSPENDED, "terminate": S.TERMINATED},
    S.ENROLMENT_CLOSED: {"complete": S.COMPLETED, "suspend": S.SUSPENDED, "terminate": S.TERMINATED},
    S.SUSPENDED: {"resume": PREVIOUS, "terminate": S.TERMINATED},
}
# Which roles of the lead side may take each step.
STEP_ROLES: dict[str, frozenset[str]] = {
    "submit": _PI_OR_OFFICE,
    "start_review": _OFFICES,
    "approve": _OFFICES,
    "activate": _RESEARCH_OFFICE,
    "close_enrolment": _RESEARCH_OFFICE,
    "complete": _RESEARCH_OFFICE,
    "suspend": _OFFICES,
    "resume": _OFFICES,
    "terminate": _OFFICES,
    # The ethics office closes a trial its committee disapproved.
    "withdraw": _PI_OR_OFFICE | _OFFICES,
}
# Steps that must give a reason (kept in the trial's history); resume may give one.
REASON_REQUIRED = frozenset({"suspend", "terminate", "withdraw"})
STEPS = tuple(dict.fromkeys(step for steps in ALLOWED.values() for step in steps))


def may_take_step(user: User, trial: Trial, step: str) -> bool:
    """Whether the user's role on the trial's lead side allows the step (whatever the trial's state)."""
    return _acts_for_lead(user, trial, STEP_ROLES[step])


def available_steps(trial: Trial, user: User) -> list[str]:
    """The steps the trial's state allows and the user may take, in the table's order."""
    return [step for step in ALLOWED.get(trial.status, {}) if may_take_step(user, trial, step)]


def _sources(step: str) -> list[str]:
    return [status for status, steps in ALLOWED.items() if step in steps]


def _transition(*, trial: Trial, actor: User, step: str, reason: str = "") -> Trial:
    """Take one step of the table: check the actor and the source state, write the state and its history row."""
    if step in REASON_REQUIRED and not reason.strip():
        raise DomainError(_("Please give a reason."), code="reason_required", field="reason")
    with transaction.atomic():
        locked = Trial.objects.select_for_update().get(pk=trial.pk)
        if not may_take_step(actor, locked, step):
            raise _deny()
        to = ALLOWED.get(locked.status, {}).get(step)
        if to is None:
            targets = {target for status in _sources(step) if (target := ALLOWED[status][step]) != PREVIOUS}
            raise TransitionNotAllowed(
                _("A trial that is “%(current)s” cannot become “%(target)s”. It can from: %(allowed)s.")
                % {
                    "current": locked.get_status_display(),
                    "target": "、".join(str(S(t).label) for t in sorted(targets))
                    or _("the state before its suspension"),
                    "allowed": "、".join(str(S(s).label) for s in sorted(_sources(step))),
                }
            )
        if step == "activate":
            from trials import filings

            filings.check_activation(locked)
            gates.check(locked, sites=[], action=_("activate the trial"))
        from_status = locked.status
        if to == PREVIOUS:
            to = locked.status_before_suspension or S.ACTIVE
        now = timezone.now()
        if to == S.SUSPENDED:
            locked.status_before_suspension = from_status
        elif from_status == S.SUSPENDED:
            locked.status_before_suspension = ""
        locked.status = to
        locked.status_changed_at = now
        locked._history_user = actor
        locked.save(update_fields=["status", "status_changed_at", "status_before_suspension", "updated_at"])
        TrialStatusChange.objects.create(
            trial=locked, from_status=from_status, to_status=to, actor=actor, at=now, reason=reason.strip()
        )
        from trials import filings

        filings.after_transition(trial=locked, to_status=to, at=now)
    return locked


def trial_take_step(*, trial: Trial, actor: User, step: str, reason: str = "") -> Trial:
    """Take a step of the lifecycle by its name in ``ALLOWED`` (what the admin and API buttons call)."""
    if step not in STEP_ROLES:
        raise DomainError(_("Unknown step."), code="unknown_step")
    return _transition(trial=trial, actor=actor, step=step, reason=reason)


def trial_submit(*, trial: Trial, actor: User) -> Trial:
    """The PI or research office submits a drafted trial for review."""
    return _transition(trial=trial, actor=actor, step="submit")


def trial_start_review(*, trial: Trial, actor: User) -> Trial:
    return _transition(trial=trial, actor=actor, step="start_review")


def trial_approve(*, trial: Trial, actor: User) -> Trial:
    return _transition(trial=trial, actor=actor, step="approve")


def trial_activate(*, trial: Trial, actor: User) -> Trial:
    return _transition(trial=trial, actor=actor, step="activate")


def trial_close_enrolment(*, trial: Trial, actor: User) -> Trial:
    return _transition(trial=trial, actor=actor, step="close_enrolment")


def trial_complete(*, trial: Trial, actor: User) -> Trial:
    return _transition(trial=trial, actor=actor, step="complete")


def trial_suspend(*, trial: Trial, actor: User, reason: str) -> Trial:
    return _transition(trial=trial, actor=actor, step="suspend", reason=reason)


def trial_resume(*, trial: Trial, actor: User, reason: str = "") -> Trial:
    """Lift a suspension: the trial returns to the state it was suspended from."""
    return _transition(trial=trial, actor=actor, step="resume", reason=reason)


def trial_terminate(*, trial: Trial, actor: User, reason: str) -> Trial:
    return _transition(trial=trial, actor=actor, step="terminate", reason=reason)


def trial_withdraw(*, trial: Trial, actor: User, reason: str) -> Trial:
    return _transition(trial=trial, actor=actor, step="withdraw", reason=reason)


def check_trial_fields(*, actor: User, trial: Trial | None, data: dict) -> None:
    """Rules on the master record beyond field validation: who may create or change it, and what."""
    lead = data.get("lead_institution") or (trial.lead_institution if trial else None)
    if not actor.is_superuser:
        if actor.role == Role.PI:
            # A PI drafts their own project through the web forms; after submission the office keeps the record.
            pi = data.get("pi") or (trial.pi if trial else None)
            if pi is None or pi.pk != actor.pk or (trial is not None and trial.status != S.DRAFT):
                raise _deny(_("A PI may only draft their own projects, and only until they are submitted."))
        elif actor.role != Role.RESEARCH_OFFICE:
            raise _deny(_("Only the research office of the lead institution may create or edit a trial record."))
        if lead is None or lead.pk != actor.institution_id:
            raise DomainError(
                _("You can only record trials led by your own institution."),
                code="permission_denied",
                field="lead_institution",
            )
    lead_changed = "lead_institution" in data and trial is not None
    if lead_changed and trial.status != S.DRAFT and data["lead_institution"].pk != trial.lead_institution_id:
        raise DomainError(
            _("The lead institution cannot change once the trial has been submitted."),
            field="lead_institution",
        )
    pi = data.get("pi")
    if pi is not None and pi.role != Role.PI:
        raise DomainError(_("The principal investigator must be a person with the PI role."), field="pi")
    department = data.get("department")
    if department is not None and lead is not None and department.institution_id != lead.pk:
        raise DomainError(_("The department must belong to the lead institution."), field="department")


def trial_create(*, actor: User, **data) -> Trial:
    """Record a new trial as a draft, with its lead site."""
    unknown = set(data) - set(TRIAL_EDITABLE_FIELDS)
    if unknown:
        raise DomainError(_("Unknown fields: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    check_trial_fields(actor=actor, trial=None, data=data)
    trial = Trial(**data, status=S.DRAFT, created_by=actor)
    try:
        trial.full_clean()
    except ValidationError as exc:
        raise _as_domain_error(exc) from exc
    with transaction.atomic():
        trial._history_user = actor
        trial.save()
        site = TrialSite(
            trial=trial,
            institution=trial.lead_institution,
            role=TrialSite.SiteRole.LEAD,
            site_pi=trial.pi,
            site_target=trial.target_enrolment,
        )
        site._history_user = actor
        site.save()
    return trial


def trial_update(*, trial: Trial, actor: User, **data) -> Trial:
    unknown = set(data) - set(TRIAL_EDITABLE_FIELDS)
    if unknown:
        raise DomainError(_("Unknown fields: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    check_trial_fields(actor=actor, trial=trial, data=data)
    with transaction.atomic():
        locked = Trial.objects.select_for_update().get(pk=trial.pk)
        for field, value in data.items():
            setattr(locked, field, value)
        try:
            locked.full_clean()
        except ValidationError as exc:
            raise _as_domain_error(exc) from exc
        locked._history_user = actor
        locked.save()
    return locked


# A plausibility bound, not a policy value: China's first CGT clinical studies are from the 2000s, so an earlier
# start-up milestone is a mistyped year (0001-01-01 was accepted, and skewed every start-up report).
EARLIEST_PLAUSIBLE_DATE = date(2000, 1, 1)


def check_site_fields(*, actor: User, trial: Trial, site: TrialSite | None, data: dict) -> None:
    """Who may manage a site, and that its start-up milestones are real, in order and not in the future."""
    institution = data.get("institution") or (site.institution if site else None)
    drafting_pi = actor.role == Role.PI and trial.pi_id == actor.pk and trial.status == Trial.Status.DRAFT
    if not actor.is_superuser and not drafting_pi:
        if actor.role != Role.RESEARCH_OFFICE or actor.institution_id not in (
            trial.lead_institution_id,
            institution.pk if institution else None,
        ):
            raise _deny(_("Only the research office of the lead or of this site's institution may manage the site."))
        if site is None and actor.institution_id != trial.lead_institution_id:
            raise _deny(_("Only the lead institution's research office may add sites to a trial."))
    site_pi = data.get("site_pi")
    if site_pi is not None and (
        site_pi.role != Role.PI or institution is None or site_pi.institution_id != institution.pk
    ):
        raise DomainError(_("The site PI must be a PI of the site's institution."), field="site_pi")
    today = timezone.localdate()
    previous_name, previous_date = None, None
    for name in TrialSite.MILESTONES:
        value: date | None = data.get(name, getattr(site, name, None) if site else None)
        if value is None:
            continue
        if value < EARLIEST_PLAUSIBLE_DATE:
            raise DomainError(
                _("“%(milestone)s” (%(date)s) is earlier than any trial this system records; check the year.")
                % {"milestone": TrialSite._meta.get_field(name).verbose_name, "date": value.isoformat()},
                field=name,
            )
        if value > today:
            raise DomainError(
                _("“%(milestone)s” cannot be in the future.")
                % {"milestone": TrialSite._meta.get_field(name).verbose_name},
                field=name,
            )
        if previous_date and value < previous_date:
            raise DomainError(
                _("“%(later)s” (%(later_date)s) cannot be earlier than “%(earlier)s” (%(earlier_date)s).")
                % {
                    "later": TrialSite._meta.get_field(name).verbose_name,
                    "later_date": value,
                    "earlier": TrialSite._meta.get_field(previous_name).verbose_name,
                    "earlier_date": previous_date,
                },
                field=name,
            )
        previous_name, previous_date = name, value
    _check_initiation(trial=trial, site=site, data=data)


def _check_initiation(*, trial: Trial, site: TrialSite | None, data: dict) -> None:
    """A site is initiated (activated) only once the trial's and the site's gates are met and its PI holds a GCP
    certificate valid on the initiation day."""
    initiated_on = data.get("site_initiated_on")
    if initiated_on is None or (site is not None and site.site_initiated_on == initiated_on):
        return
    candidate = TrialSite(
        pk=site.pk if site else None,
        trial=trial,
        institution=data.get("institution") or site.institution,
        site_pi=data.get("site_pi", site.site_pi if site else None),
    )
    action = _("initiate the site")
    gates.check(trial, sites=[candidate], on=initiated_on, action=action)
    qualifications.check_site_pi_qualified(candidate, initiated_on, action=action)


def site_add(*, trial: Trial, actor: User, institution, site_pi=None, site_target: int = 0, **milestones) -> TrialSite:
    """Add a participating site to a trial (the lead site is created with the trial)."""
    data = {"institution": institution, "site_pi": site_pi, "site_target": site_target, **milestones}
    check_site_fields(actor=actor, trial=trial, site=None, data=data)
    if TrialSite.objects.filter(trial=trial, institution=institution).exists():
        raise DomainError(_("This institution is already a site of the trial."), field="institution")
    site = TrialSite(trial=trial, role=TrialSite.SiteRole.PARTICIPATING, **data)
    try:
        site.full_clean()
    except ValidationError as exc:
        raise _as_domain_error(exc) from exc
    site._history_user = actor
    site.save()
    return site


def site_update(*, site: TrialSite, actor: User, **data) -> TrialSite:
    unknown = set(data) - set(SITE_EDITABLE_FIELDS)
    if unknown:
        raise DomainError(_("Unknown fields: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    check_site_fields(actor=actor, trial=site.trial, site=site, data=data)
    with transaction.atomic():
        locked = TrialSite.objects.select_for_update().get(pk=site.pk)
        for field, value in data.items():
            setattr(locked, field, value)
        try:
            locked.full_clean()
        except ValidationError as exc:
            raise _as_domain_error(exc) from exc
        locked._history_user = actor
        locked.save()
    return locked


def site_pi_candidates(*, sites, actor: User) -> dict[int, list[User]]:
    """For each site (by id), the people its PI may be chosen from: the active PI-role accounts of the site's
    institution. A drafting PI sees only their names here (they may not browse another hospital's staff otherwise).
    One query, however many sites."""
    sites = list(sites)
    for site in sites:
        check_site_fields(actor=actor, trial=site.trial, site=site, data={})
    people = User.objects.filter(
        role=Role.PI, is_active=True, institution_id__in={site.institution_id for site in sites}
    ).order_by("full_name", "pk")
    by_institution: dict[int, list[User]] = {}
    for person in people:
        by_institution.setdefault(person.institution_id, []).append(person)
    return {site.pk: by_institution.get(site.institution_id, []) for site in sites}


def site_set_pi(
    *,
    site: TrialSite,
    actor: User,
    person: User | None = None,
    full_name: str = "",
    professional_title: str = "",
    phone: str = "",
    email: str = "",
) -> TrialSite:
    """Record a participating site's PI: a PI-role account of the site's institution, or a person put on record
    by name (without a login) when the site's PI has no account yet."""
    full_name = full_name.strip()
    if (person is None) == (not full_name):
        raise DomainError(
            _("Choose the site PI from the list, or enter the name of a person not yet on record (not both)."),
            code="invalid",
            field="full_name" if person is None else None,
        )
    if site.role == TrialSite.SiteRole.LEAD and not actor.is_superuser and actor.role == Role.PI:
        raise _deny(_("The lead site's PI is the trial's PI."))
    check_site_fields(actor=actor, trial=site.trial, site=site, data={})
    with transaction.atomic():
        if person is None:
            if User.objects.filter(
                role=Role.PI, institution_id=site.institution_id, full_name=full_name, is_active=True
            ).exists():
                raise DomainError(
                    _("%(name)s is already on record as a PI of %(institution)s: choose them from the list.")
                    % {"name": full_name, "institution": site.institution},
                    code="duplicate_person",
                    field="full_name",
                )
            person = User(
                username=f"site-pi-{uuid.uuid4().hex[:12]}",
                full_name=full_name,
                professional_title=professional_title.strip(),
                phone=phone.strip(),
                email=email.strip(),
                role=Role.PI,
                institution_id=site.institution_id,
            )
            person.set_unusable_password()
            try:
                person.full_clean(exclude=["password"])
            except ValidationError as exc:
                raise _as_domain_error(exc) from exc
            person._history_user = actor
            person.save()
        elif not person.is_active:
            raise DomainError(_("This person's account is no longer active."), field="site_pi")
        previous_pi_id = site.site_pi_id
        site = site_update(site=site, actor=actor, site_pi=person)
        if previous_pi_id != person.pk:
            _notify_site_pi_named(site, person)
        return site


SITE_PI_NAMED_SUBJECT = gettext_lazy("Named site PI: %(protocol)s at %(institution)s")
SITE_PI_NAMED_BODY = gettext_lazy(
    "%(person)s is now the site PI of “%(trial)s” at %(institution)s. The site PI reports the site's enrolment "
    "and answers for its conduct; the site's research office keeps the site's start-up milestones."
)


def _notify_site_pi_named(site: TrialSite, person: User) -> None:
    """The named PI (portal link, or e-mail only when on record without a login) and the site's research office."""
    trial = site.trial
    params = {
        "protocol": trial.protocol_number,
        "trial": lazy(lambda: trial.title, str)(),
        "institution": lazy(lambda: str(site.institution), str)(),
        "person": person.full_name or person.username,
    }
    event_key = f"site:{site.pk}:pi:{person.pk}"
    subject, body = render_later(SITE_PI_NAMED_SUBJECT, **params), render_later(SITE_PI_NAMED_BODY, **params)
    notify(
        recipients=[person],
        topic="site.pi_named",
        event_key=event_key,
        subject=subject,
        body=body,
        link=reverse("ethics_portal:trial_detail", args=[trial.pk]),
    )
    notify(
        recipients=User.objects.office_of(site.institution_id, Role.RESEARCH_OFFICE),
        topic="site.pi_named",
        event_key=event_key,
        subject=subject,
        body=body,
        link=reverse("admin:trials_trialsite_change", args=[site.pk]),
    )


def site_targets_differ(trial: Trial) -> tuple[int, int] | None:
    """(sum of the site targets, trial target) when they differ, or None when they agree."""
    total = sum(TrialSite.objects.filter(trial=trial).values_list("site_target", flat=True))
    return (total, trial.target_enrolment) if total != trial.target_enrolment else None


def check_site_targets(*, trial: Trial, confirmed: bool) -> None:
    """Site targets that do not add up to the trial target may be intended (a site still to be added, competitive
    enrolment), so they do not block a submission, but the applicant must confirm them rather than miss them."""
    differ = site_targets_differ(trial)
    if differ and not confirmed:
        raise DomainError(
            _(
                "The site targets add up to %(total)s but the trial target is %(target)s. Correct the targets on "
                "the Sites step, or confirm that they are intended."
            )
            % {"total": differ[0], "target": differ[1]},
            code="site_targets_differ",
            field="confirm_site_targets",
        )


def document_add_version(
    *,
    trial: Trial,
    actor: User,
    kind: str,
    title: str,
    uploaded_file,
    version_label: str = "",
    version_date: date | None = None,
    note: str = "",
) -> DocumentVersion:
    """Store a new version of a trial document. Earlier versions are kept; nothing is overwritten."""
    if not Trial.objects.visible_to(actor).filter(pk=trial.pk).exists() or not (
        actor.is_superuser or actor.role in (Role.RESEARCH_OFFICE, Role.PI)
    ):
        raise _deny()
    if kind not in TrialDocument.Kind.values:
        raise DomainError(_("Unknown document kind."), field="kind")
    if not title.strip():
        raise DomainError(_("Please give the document a title."), field="title")
    checked = check_upload(uploaded_file)
    with transaction.atomic():
        document, _created = TrialDocument.objects.get_or_create(trial=trial, kind=kind, title=title.strip())
        # Lock the document so two uploads at once get consecutive numbers.
        document = TrialDocument.objects.select_for_update().get(pk=document.pk)
        last = document.versions.order_by("-number").values_list("number", flat=True).first() or 0
        version = DocumentVersion(
            document=document,
            number=last + 1,
            version_label=version_label,
            version_date=version_date,
            original_name=uploaded_file.name[:255],
            content_type=checked.content_type,
            size=checked.size,
            sha256=checked.sha256,
            note=note,
            uploaded_by=actor,
        )
        version.file.save(uploaded_file.name, uploaded_file, save=False)
        version._history_user = actor
        version.save()
    return version
