"""The PI portal: plain web pages where a principal investigator drafts, files and follows ethics submissions.

Views parse input, call the services and render the result; every row shown comes through ``visible_to``, so a
PI sees their own trials and submissions and nothing else (another PI's gets a 404, like a missing row)."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from cgtclinic.errors import DomainError
from cgtclinic.models import Notification
from cgtclinic.paging import CappedPaginator
from cgtclinic.roles import Role
from ethics import letters, selectors
from ethics.models import Decision, RecognitionRequest, Submission, SubmissionEvent
from ethics.portal import lookups
from ethics.portal.forms import (
    REPORT_KINDS,
    DeclarationsForm,
    DocumentSlotForm,
    DocumentUploadFormSet,
    EnrolmentReportForm,
    EnrolmentReversalForm,
    ReportForm,
    SiteAddForm,
    SitePIForm,
    SiteTargetsForm,
    TrialDetailsForm,
    add_domain_error,
)
from ethics.services import (
    DECLARATIONS,
    EDITABLE_STATUSES,
    INITIAL_REQUIRED_DOCUMENTS,
    missing_items,
    submission_create,
    submission_submit,
    submission_update_draft,
)
from trials import enrolment, filings
from trials.filing_forms import FilingForm
from trials.models import (
    DocumentVersion,
    EnrolmentEntry,
    EnrolmentSubject,
    FilingObligation,
    Trial,
    TrialDocument,
    TrialSite,
)
from trials.services import (
    check_site_targets,
    document_add_version,
    site_add,
    site_pi_candidates,
    site_set_pi,
    site_targets_differ,
    site_update,
    trial_create,
    trial_update,
)

S = Submission.Status
K = Submission.Kind
Outcome = Decision.Outcome

# Where the applicant can still edit: read from the services' transitions table.
EDITABLE = EDITABLE_STATUSES
MODIFICATION_OUTCOMES = (Outcome.APPROVE_AFTER_MODIFICATION, Outcome.MODIFY_AND_RESUBMIT)
STEPS = (
    (1, gettext_lazy("Trial details")),
    (2, gettext_lazy("Sites")),
    (3, gettext_lazy("Documents")),
    (4, gettext_lazy("Declarations")),
    (5, gettext_lazy("Review and submit")),
)
LAST_STEP = len(STEPS)
# Submissions and due dates shown on the dashboard; every one of them stays on its trial's page.
DASHBOARD_ROWS = 50
# Trials whose enrolment is shown: from the approval on (exits are still reported after enrolment closed).
ENROLMENT_SHOWN = (
    Trial.Status.APPROVED,
    Trial.Status.ACTIVE,
    Trial.Status.ENROLMENT_CLOSED,
    Trial.Status.SUSPENDED,
    Trial.Status.COMPLETED,
    Trial.Status.TERMINATED,
)
# Timeline events whose note the applicant may read; the others (reviewer names, votes) stay with the committee.
PUBLIC_NOTE_EVENTS = {
    SubmissionEvent.Kind.RETURNED,
    SubmissionEvent.Kind.ROUTED,
    SubmissionEvent.Kind.SCHEDULED,
    SubmissionEvent.Kind.DECIDED,
    SubmissionEvent.Kind.ACKNOWLEDGED,
    SubmissionEvent.Kind.WITHDRAWN,
    SubmissionEvent.Kind.LETTER_ISSUED,
}


# --- access --------------------------------------------------------------------------------------------------


def pi_required(view):
    """Signed-in PIs only: anonymous visitors go to the portal's login, other roles get a friendly 403 page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.role != Role.PI:
            return render(request, "ethics/portal/403.html", status=403)
        return view(request, *args, **kwargs)

    return login_required(wrapper, login_url="ethics_portal:login")


class PortalLoginView(auth_views.LoginView):
    template_name = "ethics/portal/login.html"
    next_page = reverse_lazy("ethics_portal:dashboard")


class PortalLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("ethics_portal:login")


def _error_summary(forms) -> list[tuple[str, str]]:
    """Every error of the page's forms as (input id, message), for the summary at the top of the page."""
    rows = []
    for form in forms:
        if hasattr(form, "non_form_errors"):
            rows += [("", str(error)) for error in form.non_form_errors()]
            rows += _error_summary(form.forms)
            continue
        rows += [("", str(error)) for error in form.non_field_errors()]
        for name, errors in form.errors.items():
            if name in form.fields:
                bound = form[name]
                rows += [(bound.id_for_label, f"{bound.label}: {error}") for error in errors]
    return rows


def _page(request, template: str, context: dict, status: int = 200):
    forms = context.get("forms") or ([context["form"]] if "form" in context else [])
    context["error_summary"] = _error_summary(forms)
    context["unread_count"] = Notification.objects.visible_to(request.user).unread().count()
    return render(request, template, context, status=status)


# --- reads -----------------------------------------------------------------------------------------------------


def _submissions(user):
    return Submission.objects.visible_to(user).select_related("trial", "committee")


def _initial_submission(user, trial: Trial) -> Submission | None:
    return _submissions(user).filter(trial=trial, kind=K.INITIAL).exclude(status=S.WITHDRAWN).first()


def _current_versions(user, trial: Trial) -> list[DocumentVersion]:
    """The newest version of each of the trial's documents."""
    latest = {}
    versions = (
        DocumentVersion.objects.visible_to(user)
        .filter(document__trial=trial)
        .select_related("document")
        .order_by("document__kind", "document__title", "number")
    )
    for version in versions:
        latest[version.document_id] = version
    return list(latest.values())


def _decision(user, submission: Submission) -> Decision | None:
    return Decision.objects.visible_to(user).filter(submission=submission).first()


def _response(user, submission: Submission) -> Submission | None:
    """The applicant's (not withdrawn) response to this submission's decision, if there is one."""
    return (
        _submissions(user)
        .filter(responds_to=submission, kind=K.MODIFICATION_RESPONSE)
        .exclude(status=S.WITHDRAWN)
        .order_by("-created_at")
        .first()
    )


def _recognition_requests(user):
    """Participating committees' recognition of the lead site's ethics result, as the user may see them."""
    return (
        RecognitionRequest.objects.visible_to(user)
        .select_related("committee", "site__institution", "lead_decision")
        .order_by("-received_at", "committee__name_zh")
    )


def _edit_url(submission: Submission) -> str:
    if submission.kind == K.INITIAL:
        step = 1 if submission.trial.status == Trial.Status.DRAFT else 3
        return reverse("ethics_portal:project_edit", args=[submission.trial_id, step])
    return reverse("ethics_portal:submission_edit", args=[submission.pk])


# --- dashboard and inbox -----------------------------------------------------------------------------------------


@pi_required
def dashboard(request):
    user = request.user
    today = timezone.localdate()
    trials = list(Trial.objects.visible_to(user).select_related("lead_institution"))
    # The sites of the trials listed, found by their trial index rather than by testing every site's scope.
    enrolling = TrialSite.objects.visible_to(user).filter(
        trial__in=[trial.pk for trial in trials if trial.status in ENROLMENT_SHOWN]
    )
    progress = {row.trial.pk: row for row in enrolment.trial_progress(enrolling, today)}
    # The newest submissions and the nearest dates only: a long-serving PI's history stays on the trials' pages.
    submissions = list(_submissions(user).order_by("-created_at", "-id")[: DASHBOARD_ROWS + 1])
    decisions = Decision.objects.visible_to(user).select_related("submission__trial", "committee")
    continuing = decisions.filter(next_continuing_review_due__isnull=False).order_by("next_continuing_review_due")
    valid = decisions.filter(valid_until__gte=today).order_by("valid_until")
    due_dates = [
        {"date": decision.next_continuing_review_due, "what": _("Continuing review due"), "decision": decision}
        for decision in continuing[: DASHBOARD_ROWS + 1]
    ] + [
        {"date": decision.valid_until, "what": _("Approval valid until"), "decision": decision}
        for decision in valid[: DASHBOARD_ROWS + 1]
    ]
    due_dates.sort(key=lambda row: row["date"])
    awaiting_recognition = {}
    for pending in _recognition_requests(user).open().select_related("trial"):
        awaiting_recognition.setdefault(pending.trial, []).append(pending)

    waiting = selectors.pi_waiting(user, today=today)
    return _page(
        request,
        "ethics/portal/dashboard.html",
        {
            "trials": [(trial, progress.get(trial.pk)) for trial in trials],
            "submissions": submissions[:DASHBOARD_ROWS],
            "more_submissions": len(submissions) > DASHBOARD_ROWS,
            "waiting": waiting,
            "waiting_count": sum(len(v) for v in waiting.values()),
            "due_dates": due_dates[:DASHBOARD_ROWS],
            "more_due_dates": len(due_dates) > DASHBOARD_ROWS,
            "dashboard_rows": DASHBOARD_ROWS,
            "today": today,
            "awaiting_recognition": [
                {"trial": trial, "count": len(requests), "overdue": sum(r.escalated_at is not None for r in requests)}
                for trial, requests in awaiting_recognition.items()
            ],
        },
    )


def inbox(request):
    """PIs read their messages here; office staff, who work in the admin, are sent to their inbox there."""
    if request.user.is_authenticated and request.user.is_staff:
        return redirect("admin:cgtclinic_notification_changelist")
    return _pi_inbox(request)


@pi_required
def _pi_inbox(request):
    notifications = Notification.objects.visible_to(request.user)
    page = Paginator(notifications, 50).get_page(request.GET.get("page"))
    return _page(request, "ethics/portal/inbox.html", {"page": page})


@require_POST
@pi_required
def notification_read(request, pk: int):
    notification = get_object_or_404(Notification.objects.visible_to(request.user), pk=pk)
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return redirect("ethics_portal:inbox")


@require_POST
@pi_required
def notifications_read_all(request):
    Notification.objects.visible_to(request.user).unread().update(read_at=timezone.now())
    messages.success(request, _("All messages are marked as read."))
    return redirect("ethics_portal:inbox")


# --- new project wizard -------------------------------------------------------------------------------------------


def _after_save(request, trial: Trial, step: int):
    """“Save draft” stays on the step; “Save and continue” goes to the next one."""
    if request.POST.get("action") == "next" and step < LAST_STEP:
        step += 1
    return redirect("ethics_portal:project_edit", trial.pk, step)


def _wizard(request, template: str, *, step: int, trial: Trial | None, submission=None, **context):
    context.update(
        step=step,
        steps=STEPS,
        trial=trial,
        submission=submission,
        step_title=dict(STEPS)[step],
        trial_editable=trial is None or trial.status == Trial.Status.DRAFT,
    )
    # A POST that is shown again (instead of redirected) was refused.
    return _page(request, template, context, status=400 if request.method == "POST" else 200)


@pi_required
def lookup(request, directory: str):
    """GET ?q=…: suggestions for a sponsor or hospital lookup box, as JSON ({"results": [labels], "more": bool})."""
    labels, more = lookups.suggestions(lookups.directory_queryset(directory, request.user), request.GET.get("q", ""))
    return JsonResponse({"results": labels, "more": more})


@pi_required
def project_new(request):
    """Step 1 of a new project: saving it creates the draft trial and its draft initial application."""
    user = request.user
    form = TrialDetailsForm(request.POST or None, pi=user)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                trial = trial_create(actor=user, pi=user, lead_institution=user.institution, **form.cleaned_data)
                submission_create(actor=user, trial=trial, kind=K.INITIAL)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("The project is saved as a draft. You can come back to it at any time."))
            return _after_save(request, trial, 1)
    return _wizard(request, "ethics/portal/wizard_details.html", step=1, trial=None, form=form)


@pi_required
def project_edit(request, trial_id: int, step: int):
    user = request.user
    if step not in dict(STEPS):
        raise Http404
    trial = get_object_or_404(
        Trial.objects.visible_to(user).filter(pi=user).select_related("lead_institution"), pk=trial_id
    )
    submission = _initial_submission(user, trial)
    if submission is not None and submission.status not in EDITABLE:
        messages.info(request, _("This application has been submitted and can no longer be changed here."))
        return redirect("ethics_portal:submission_detail", submission.pk)
    if submission is None:
        if trial.status != Trial.Status.DRAFT:
            return redirect("ethics_portal:trial_detail", trial.pk)
        if request.method == "POST":
            try:
                submission = submission_create(actor=user, trial=trial, kind=K.INITIAL)
            except DomainError as exc:
                messages.error(request, str(exc.message))
                return redirect("ethics_portal:project_edit", trial.pk, step)
            if request.POST.get("action") == "start":
                return redirect("ethics_portal:project_edit", trial.pk, step)
        elif step >= 3:
            return _wizard(request, "ethics/portal/wizard_start.html", step=step, trial=trial)
    handler = {1: _step_details, 2: _step_sites, 3: _step_documents, 4: _step_declarations, 5: _step_submit}[step]
    return handler(request, trial, submission)


def _step_details(request, trial: Trial, submission: Submission | None):
    user = request.user
    editable = trial.status == Trial.Status.DRAFT
    # The form works on its own copy: a failed save must not change the trial shown beside it.
    form = TrialDetailsForm(
        request.POST if editable and request.method == "POST" else None,
        instance=Trial.objects.get(pk=trial.pk),
        pi=user,
    )
    if not editable:
        # Once submitted, the record is the office's: the step is shown read-only and only moves on.
        if request.method == "POST":
            return _after_save(request, trial, 1)
        for field in form.fields.values():
            field.disabled = True
    elif request.method == "POST" and form.is_valid():
        try:
            trial_update(trial=trial, actor=user, **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Draft saved."))
            return _after_save(request, trial, 1)
    return _wizard(request, "ethics/portal/wizard_details.html", step=1, trial=trial, submission=submission, form=form)


def _site_pi_forms(request, user, sites, *, bound_site_id: int | None) -> list[SitePIForm]:
    """One site-PI form per participating site; only the one the applicant posted is bound."""
    participating = [site for site in sites if site.role == TrialSite.SiteRole.PARTICIPATING]
    candidates = site_pi_candidates(sites=participating, actor=user)
    return [
        SitePIForm(
            request.POST if site.pk == bound_site_id else None,
            site=site,
            candidates=candidates[site.pk],
            prefix=f"pi{site.pk}",
            initial={"site_pi": site.site_pi_id},
        )
        for site in participating
    ]


def _step_sites(request, trial: Trial, submission: Submission | None):
    user = request.user
    editable = trial.status == Trial.Status.DRAFT
    sites = list(
        TrialSite.objects.visible_to(user)
        .filter(trial=trial)
        .select_related("trial", "institution", "site_pi")
        .order_by("role", "pk")
    )
    action = request.POST.get("action") if request.method == "POST" else None
    if action and not editable:
        return _after_save(request, trial, 2)
    add_form = SiteAddForm(request.POST if action == "add" else None, trial=trial, user=user)
    posted_targets = action in ("save", "next") and any(key.startswith("target_") for key in request.POST)
    targets_form = SiteTargetsForm(request.POST if posted_targets else None, sites=sites)
    bound_site_id = None
    if action == "site_pi" and request.POST.get("site", "").isdigit():
        bound_site_id = int(request.POST["site"])
    pi_forms = _site_pi_forms(request, user, sites, bound_site_id=bound_site_id) if editable else []

    if action == "add" and add_form.is_valid():
        try:
            site_add(
                trial=trial,
                actor=user,
                institution=add_form.cleaned_data["institution"],
                site_target=add_form.cleaned_data["site_target"],
            )
        except DomainError as exc:
            add_domain_error(add_form, exc)
        else:
            messages.success(
                request,
                _("%(institution)s is added as a site. Now record its site PI.")
                % {"institution": add_form.cleaned_data["institution"]},
            )
            return redirect("ethics_portal:project_edit", trial.pk, 2)
    elif action == "site_pi":
        form = next((f for f in pi_forms if f.site.pk == bound_site_id), None)
        if form is None:
            raise Http404
        if form.is_valid():
            try:
                site = site_set_pi(site=form.site, actor=user, **form.person_data())
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(
                    request,
                    _("%(person)s is recorded as the site PI of %(institution)s.")
                    % {"person": site.site_pi.full_name, "institution": site.institution},
                )
                return redirect("ethics_portal:project_edit", trial.pk, 2)
    elif action in ("save", "next"):
        if not posted_targets:
            return _after_save(request, trial, 2)
        if targets_form.is_valid():
            try:
                with transaction.atomic():
                    for site, target in targets_form.changed_targets():
                        site_update(site=site, actor=user, site_target=target)
            except DomainError as exc:
                add_domain_error(targets_form, exc)
            else:
                differ = site_targets_differ(trial)
                if differ:
                    messages.warning(request, _targets_warning(differ))
                else:
                    messages.success(request, _("Draft saved."))
                return _after_save(request, trial, 2)
    return _wizard(
        request,
        "ethics/portal/wizard_sites.html",
        step=2,
        trial=trial,
        submission=submission,
        form=add_form,
        targets_form=targets_form,
        pi_forms=pi_forms,
        forms=[targets_form, add_form, *pi_forms],
        sites=sites,
        targets_total=sum(site.site_target for site in sites),
        targets_differ=site_targets_differ(trial),
    )


def _targets_warning(differ: tuple[int, int]) -> str:
    return _(
        "The site targets add up to %(total)s, but the trial target is %(target)s. Please check them: you will be "
        "asked to confirm them before you submit."
    ) % {"total": differ[0], "target": differ[1]}


def _document_slots(data, files, user, trial: Trial, current: list[DocumentVersion]) -> list[DocumentSlotForm]:
    slots = []
    for kind in (*INITIAL_REQUIRED_DOCUMENTS, TrialDocument.Kind.OTHER):
        existing = [v for v in current if v.document.kind == kind]
        default_title = existing[0].document.title if existing else ""
        if not default_title and kind != TrialDocument.Kind.OTHER:
            default_title = str(TrialDocument.Kind(kind).label)
        form = DocumentSlotForm(data, files, kind=kind, prefix=kind, initial={"title": default_title})
        form.current_versions = existing
        form.required_kind = kind != TrialDocument.Kind.OTHER
        slots.append(form)
    return slots


def _step_documents(request, trial: Trial, submission: Submission):
    """Each file is checked on its own: the valid ones of a batch are stored even when another is refused, and the
    page shows what was kept beside the refusal."""
    user = request.user
    slots = _document_slots(request.POST or None, request.FILES or None, user, trial, _current_versions(user, trial))
    kept = []
    if request.method == "POST":
        refused = [form for form in slots if not form.is_valid()]
        try:
            with transaction.atomic():
                for form in slots:
                    if form not in refused and form.cleaned_data.get("file"):
                        try:
                            kept.append(_upload_slot(user, trial, form))
                        except DomainError:
                            refused.append(form)
                if kept or not refused:
                    submission_update_draft(submission=submission, actor=user, documents=_current_versions(user, trial))
        except DomainError as exc:
            kept = []
            messages.error(request, str(exc.message))
        else:
            if not refused:
                messages.success(request, _("Draft saved."))
                return _after_save(request, trial, 3)
        # Show the refused slots with their errors; the others afresh, with what is now stored.
        fresh = {form.kind: form for form in _document_slots(None, None, user, trial, _current_versions(user, trial))}
        slots = [form if form in refused else fresh[form.kind] for form in slots]
        for form in refused:
            form.current_versions = fresh[form.kind].current_versions
    return _wizard(
        request,
        "ethics/portal/wizard_documents.html",
        step=3,
        trial=trial,
        submission=submission,
        slots=slots,
        forms=slots,
        kept=kept,
    )


def _upload_slot(user, trial: Trial, form: DocumentSlotForm) -> DocumentVersion:
    try:
        return document_add_version(
            trial=trial,
            actor=user,
            kind=form.kind,
            title=form.cleaned_data["title"],
            uploaded_file=form.cleaned_data["file"],
            version_label=form.cleaned_data["version_label"],
            version_date=form.cleaned_data["version_date"],
        )
    except DomainError as exc:
        add_domain_error(form, exc)
        raise


def _step_declarations(request, trial: Trial, submission: Submission):
    user = request.user
    form = DeclarationsForm(request.POST or None, initial=DeclarationsForm.initial_for(submission))
    if request.method == "POST" and form.is_valid():
        try:
            submission_update_draft(
                submission=submission,
                actor=user,
                summary=form.cleaned_data["summary"].strip(),
                declarations=form.declarations(),
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Draft saved."))
            return _after_save(request, trial, 4)
    return _wizard(
        request, "ethics/portal/wizard_declarations.html", step=4, trial=trial, submission=submission, form=form
    )


def _step_submit(request, trial: Trial, submission: Submission):
    user = request.user
    error = None
    if request.method == "POST":
        try:
            check_site_targets(trial=trial, confirmed=request.POST.get("confirm_site_targets") == "on")
            submission = submission_submit(submission=submission, actor=user)
        except DomainError as exc:
            error = str(exc.message)
        else:
            messages.success(
                request,
                _("The application is submitted to %(committee)s with reference %(reference)s.")
                % {"committee": submission.committee, "reference": submission.reference},
            )
            return redirect("ethics_portal:submission_detail", submission.pk)
    submission.refresh_from_db()
    sites = list(
        TrialSite.objects.visible_to(user)
        .filter(trial=trial)
        .select_related("institution", "site_pi")
        .order_by("role", "pk")
    )
    return _wizard(
        request,
        "ethics/portal/wizard_submit.html",
        step=5,
        trial=trial,
        submission=submission,
        error=error,
        missing=missing_items(submission),
        sites=sites,
        targets_total=sum(site.site_target for site in sites),
        targets_differ=site_targets_differ(trial),
        documents=submission.documents.select_related("document").order_by("document__kind", "document__title"),
        declarations=[(text, submission.declarations.get(key) is True) for key, text in DECLARATIONS.items()],
    )


# --- trials, submissions, files ------------------------------------------------------------------------------------


@pi_required
def trial_detail(request, pk: int):
    user = request.user
    trial = get_object_or_404(
        Trial.objects.visible_to(user).select_related("lead_institution", "sponsor", "department", "pi"), pk=pk
    )
    documents = TrialDocument.objects.visible_to(user).filter(trial=trial).prefetch_related("versions")
    sites = list(
        enrolment.with_progress(TrialSite.objects.visible_to(user).filter(trial=trial)).select_related("site_pi")
    )
    enrolment_rows = []
    if trial.status in ENROLMENT_SHOWN:
        reportable = set(enrolment.sites_reportable_by(user).filter(trial=trial).values_list("pk", flat=True))
        today = timezone.localdate()
        enrolment_rows = [(enrolment.site_progress(site, today), site.pk in reportable) for site in sites]
    return _page(
        request,
        "ethics/portal/trial_detail.html",
        {
            "trial": trial,
            "sites": sites,
            "enrolment_rows": enrolment_rows,
            "enrolment_total": {
                "target": sum(row.target for row, _reportable in enrolment_rows),
                "enrolled": sum(row.enrolled for row, _reportable in enrolment_rows),
                "on_study": sum(row.on_study for row, _reportable in enrolment_rows),
            },
            "documents": documents,
            "submissions": _submissions(user).filter(trial=trial).order_by("-created_at"),
            "recognition_requests": _recognition_requests(user).filter(trial=trial),
            "report_kinds": [(kind, K(kind).label) for kind in REPORT_KINDS],
            "is_pi": trial.pi_id == user.pk,
            "governance": filings.governance(trial, user),
        },
    )


@pi_required
def filing_record(request, trial_id: int, pk: int):
    """The PI records a filing made in the national system (or with the health commission)."""
    trial = get_object_or_404(Trial.objects.visible_to(request.user), pk=trial_id)
    obligation = get_object_or_404(FilingObligation.objects.filter(trial=trial), pk=pk)
    form = FilingForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.record(obligation=obligation, actor=request.user):
        messages.success(request, _("The filing is recorded."))
        return redirect(reverse("ethics_portal:trial_detail", args=[trial.pk]) + "#filings")
    return _page(request, "ethics/portal/filing_record.html", {"trial": trial, "obligation": obligation, "form": form})


@pi_required
def submission_detail(request, pk: int):
    user = request.user
    submission = get_object_or_404(_submissions(user).select_related("responds_to"), pk=pk)
    decision = _decision(user, submission)
    events = [
        {"event": event, "note": event.note if event.kind in PUBLIC_NOTE_EVENTS else ""}
        for event in submission.events.all()
    ]
    details = []
    if submission.kind != K.INITIAL:
        labels = {f.name.removeprefix("detail_"): f.label for f in ReportForm(kind=submission.kind).detail_fields}
        details = [(labels.get(key, key), value) for key, value in submission.details.items()]
    can_respond = (
        decision is not None and decision.outcome in MODIFICATION_OUTCOMES and _response(user, submission) is None
    )
    return _page(
        request,
        "ethics/portal/submission_detail.html",
        {
            "submission": submission,
            "decision": decision,
            "events": events,
            "details": details,
            "documents": DocumentVersion.objects.visible_to(user)
            .filter(submissions=submission)
            .select_related("document"),
            "responses": _submissions(user).filter(responds_to=submission),
            "editable": submission.status in EDITABLE,
            "edit_url": _edit_url(submission) if submission.status in EDITABLE else "",
            "missing": missing_items(submission) if submission.status in EDITABLE else [],
            "can_respond": can_respond,
            "recognition_requests": (
                _recognition_requests(user).filter(lead_decision=decision) if decision is not None else []
            ),
        },
    )


def _private_file(handle, *, filename: str, content_type: str) -> FileResponse:
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    # Letters and documents may hold personal data: never kept by shared caches.
    response["Cache-Control"] = "private, no-store"
    return response


@pi_required
def letter_download(request, pk: int):
    decision = get_object_or_404(Decision.objects.visible_to(request.user), submission_id=pk)
    if not decision.letter_file:
        raise Http404(_("The decision letter is being prepared."))
    try:
        handle = decision.letter_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404(_("The decision letter file is missing. Please tell the ethics office.")) from exc
    filename = letters.letter_filename(decision, letters.AUTHORITATIVE_LANGUAGE)
    return _private_file(handle, filename=filename, content_type="application/pdf")


@pi_required
def document_download(request, pk: int):
    version = get_object_or_404(DocumentVersion.objects.visible_to(request.user), pk=pk)
    try:
        handle = version.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404(_("The stored file of this version is missing. Please tell the system administrator.")) from exc
    return _private_file(handle, filename=version.original_name, content_type=version.content_type)


# --- reports, amendments and responses ----------------------------------------------------------------------------


@pi_required
def report_file(request, trial_id: int, kind: str):
    trial = get_object_or_404(Trial.objects.visible_to(request.user), pk=trial_id)
    if kind == K.SAE:  # the safety report runs the reporting clocks and files the SAE submission itself
        return redirect(f"{reverse('ethics_portal:safety_new')}?trial={trial.pk}")
    if kind not in REPORT_KINDS:
        raise Http404
    return _report_page(request, trial=trial, kind=kind, submission=None)


@pi_required
def submission_edit(request, pk: int):
    submission = get_object_or_404(_submissions(request.user), pk=pk)
    if submission.status not in EDITABLE:
        messages.info(request, _("This submission has been submitted and can no longer be changed."))
        return redirect("ethics_portal:submission_detail", submission.pk)
    if submission.kind == K.INITIAL:
        return redirect(_edit_url(submission))
    return _report_page(request, trial=submission.trial, kind=submission.kind, submission=submission)


@pi_required
def respond(request, pk: int):
    """Answer a decision that asked for modifications: revised documents and a point-by-point response."""
    user = request.user
    decided = get_object_or_404(_submissions(user), pk=pk)
    decision = _decision(user, decided)
    if decision is None or decision.outcome not in MODIFICATION_OUTCOMES:
        messages.error(request, _("That decision did not ask for modifications."))
        return redirect("ethics_portal:submission_detail", decided.pk)
    existing = _response(user, decided)
    if existing is not None:
        if existing.status in EDITABLE:
            return redirect("ethics_portal:submission_edit", existing.pk)
        messages.info(request, _("You have already responded to this decision."))
        return redirect("ethics_portal:submission_detail", existing.pk)
    return _report_page(
        request,
        trial=decided.trial,
        kind=K.MODIFICATION_RESPONSE,
        submission=None,
        responds_to=decided,
        decision=decision,
        initial={
            "summary": _("Response to the modifications requested in %(letter)s.")
            % {"letter": decision.letter_number or decided.reference}
        },
    )


def _report_page(
    request,
    *,
    trial: Trial,
    kind: str,
    submission: Submission | None,
    responds_to: Submission | None = None,
    decision: Decision | None = None,
    initial: dict | None = None,
):
    """One form for every report kind: save it as a draft, or save and submit it."""
    user = request.user
    if submission is not None:
        initial = ReportForm.initial_for(submission)
        responds_to = submission.responds_to
        decision = _decision(user, responds_to) if responds_to else None
    form = ReportForm(request.POST or None, kind=kind, initial=initial)
    uploads = DocumentUploadFormSet(
        request.POST or None,
        request.FILES or None,
        form_kwargs={"trial": trial, "user": user},
        prefix="upload",
    )
    if request.method == "POST" and form.is_valid() and uploads.is_valid():
        detach = {int(pk) for pk in request.POST.getlist("detach") if pk.isdigit()}
        try:
            with transaction.atomic():
                saved = _save_report(
                    user, trial=trial, kind=kind, submission=submission, responds_to=responds_to, form=form
                )
                new_versions = [_upload(user, trial, upload) for upload in uploads if upload.cleaned_data.get("file")]
                if new_versions or detach:
                    replaced = {v.document_id for v in new_versions}
                    kept = [v for v in saved.documents.all() if v.pk not in detach and v.document_id not in replaced]
                    submission_update_draft(submission=saved, actor=user, documents=kept + new_versions)
        except DomainError as exc:
            if not any(upload.errors for upload in uploads):
                add_domain_error(form, exc)
        else:
            if request.POST.get("action") != "submit":
                messages.success(request, _("Draft saved."))
                return redirect("ethics_portal:submission_edit", saved.pk)
            try:
                submit = submission_submit(submission=saved, actor=user)
            except DomainError as exc:
                # An incomplete report's gaps are listed on the page it returns to; other refusals are said here.
                messages.error(request, _("Your draft is saved, but it cannot be submitted yet."))
                if exc.code != "incomplete":
                    messages.error(request, str(exc.message))
                return redirect("ethics_portal:submission_edit", saved.pk)
            messages.success(request, _("Submitted with reference %(reference)s.") % {"reference": submit.reference})
            return redirect("ethics_portal:submission_detail", submit.pk)
    attached = list(submission.documents.select_related("document")) if submission else []
    return _page(
        request,
        "ethics/portal/report_form.html",
        {
            "trial": trial,
            "kind": kind,
            "kind_label": K(kind).label,
            "submission": submission,
            "responds_to": responds_to,
            "decision": decision,
            "form": form,
            "uploads": uploads,
            "forms": [form, uploads],
            "attached": attached,
            "missing": missing_items(submission) if submission else [],
        },
        status=400 if request.method == "POST" else 200,
    )


def _save_report(user, *, trial, kind, submission, responds_to, form) -> Submission:
    summary = form.cleaned_data["summary"].strip()
    if submission is None:
        return submission_create(
            actor=user, trial=trial, kind=kind, responds_to=responds_to, summary=summary, details=form.details()
        )
    return submission_update_draft(submission=submission, actor=user, summary=summary, details=form.details())


def _upload(user, trial: Trial, upload) -> DocumentVersion:
    kind, title = upload.upload_target()
    try:
        return document_add_version(
            trial=trial,
            actor=user,
            kind=kind,
            title=title,
            uploaded_file=upload.cleaned_data["file"],
            version_label=upload.cleaned_data["version_label"],
            note=upload.cleaned_data["note"],
        )
    except DomainError as exc:
        add_domain_error(upload, exc)
        raise


# --- enrolment ----------------------------------------------------------------------------------------------------


def _refusal_status(exc: DomainError) -> int:
    return 403 if exc.code == "permission_denied" else 400


@pi_required
def site_enrolment(request, pk: int):
    """A site's enrolment: counts against the target, the report form (for those who may report), the ledger
    newest first with its corrections, and the subjects by pseudonymous code."""
    user = request.user
    site = get_object_or_404(
        enrolment.with_progress(TrialSite.objects.visible_to(user)).select_related("site_pi", "trial__pi"), pk=pk
    )
    today = timezone.localdate()
    can_report = enrolment.may_report(user, site)
    form = EnrolmentReportForm(
        request.POST if request.method == "POST" else None,
        initial={"occurred_on": today, "count": 1},
        trial_id=site.trial_id,
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                entry = enrolment.enrolment_report(site=site, actor=user, **form.cleaned_data)
            except DomainError as exc:
                add_domain_error(form, exc)
                status = _refusal_status(exc)
            else:
                values = {"event": entry.get_kind_display(), "date": entry.occurred_on.isoformat()}
                if entry.subject:
                    recorded = _("Recorded: %(event)s of subject %(code)s on %(date)s.") % {
                        **values,
                        "code": entry.subject.code,
                    }
                else:
                    recorded = _("Recorded: %(event)s, %(count)d on %(date)s.") % {**values, "count": entry.count}
                messages.success(request, recorded)
                return redirect("ethics_portal:site_enrolment", site.pk)
    entries = (
        EnrolmentEntry.objects.visible_to(user)
        .filter(site=site)
        .select_related("subject", "reported_by", "reversed_by__reported_by")
        .order_by("-reported_at", "-id")
    )
    subjects = EnrolmentSubject.objects.visible_to(request.user).filter(site=site).order_by("code", "pk")
    # A busy site has thousands of codes: a page of them, with the state each row keeps.
    subjects_page = CappedPaginator(subjects, 50).get_page(request.GET.get("subjects"))
    return _page(
        request,
        "ethics/portal/site_enrolment.html",
        {
            "site": site,
            "trial": site.trial,
            "progress": enrolment.site_progress(site, today),
            "valid_until": enrolment.ethics_valid_until(site) if site.ethics_approved_on else None,
            "can_report": can_report,
            "form": form,
            "ledger": CappedPaginator(entries, 50).get_page(request.GET.get("page")),
            "subjects": [(subject, enrolment.subject_state(subject)) for subject in subjects_page],
            "subjects_page": subjects_page,
            "stalled_days": enrolment.STALLED_AFTER_DAYS,
        },
        status=status,
    )


@pi_required
def enrolment_entry_reverse(request, pk: int):
    """Correct a ledger entry by adding a reversing entry with the reason; the entry itself stays."""
    user = request.user
    entry = get_object_or_404(
        EnrolmentEntry.objects.visible_to(user).select_related(
            "site__trial", "site__institution", "subject", "reported_by", "reversed_by"
        ),
        pk=pk,
    )
    form = EnrolmentReversalForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                correction = enrolment.enrolment_reverse(entry=entry, actor=user, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                add_domain_error(form, exc)
                status = _refusal_status(exc)
            else:
                messages.success(
                    request,
                    _("Entry #%(entry)s is reversed by entry #%(correction)s.")
                    % {"entry": entry.pk, "correction": correction.pk},
                )
                return redirect("ethics_portal:site_enrolment", entry.site_id)
    return _page(
        request,
        "ethics/portal/enrolment_reverse.html",
        {
            "entry": entry,
            "site": entry.site,
            "trial": entry.site.trial,
            "can_report": enrolment.may_report(user, entry.site),
            "form": form,
        },
        status=status,
    )
