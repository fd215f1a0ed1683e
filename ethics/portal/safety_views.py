"""The PI portal's safety pages: the reports of the PI's sites, a new SAE or SUSAR, and the steps on one report.
Each view parses input and calls one service of ethics.safety; the steps offered come from its table."""

from django.contrib import messages
from django.db.models import Prefetch, Q
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cgtclinic.errors import DomainError
from ethics import safety
from ethics.models import SafetyClock, SafetyEvent
from ethics.portal.forms import add_domain_error
from ethics.portal.safety_forms import SafetyEventForm, SafetyStepForm
from ethics.portal.views import _page, pi_required
from trials.models import TrialSite

# The steps a PI takes on this page, each calling one service with (event, actor, at, note).
STEP_SERVICES = {
    safety.SEND_TO_SPONSOR: safety.safety_send_to_sponsor,
    safety.REPORT_TO_EC: safety.safety_report_to_ec,
    safety.PI_REVIEW: safety.safety_pi_review,
}
LIST_LIMIT = 100


def _events(user):
    return SafetyEvent.objects.visible_to(user).select_related("trial", "site__institution", "subject")


def _own_sites(user):
    return TrialSite.objects.filter(Q(site_pi_id=user.pk) | Q(trial__pi_id=user.pk))


@pi_required
def safety_list(request):
    """The reports of the PI's sites, those with an open clock first (soonest due first), then the newest."""
    now = timezone.now()
    # In the database's order (the index safety_event_next_due), so a report with an open clock is never cut off
    # by newer ones whose clocks are all met.
    events = list(
        _events(request.user)
        .prefetch_related(Prefetch("clocks", queryset=SafetyClock.objects.open().order_by("due_at")))
        .order_by("next_due_at", "-created_at", "-id")[:LIST_LIMIT]
    )
    for event in events:
        event.open_clocks = list(event.clocks.all())
    return _page(request, "ethics/portal/safety_list.html", {"events": events, "now": now})


def record_from_form(actor, form, follow_up_of: SafetyEvent | None = None) -> SafetyEvent | None:
    """Record the report a valid ``SafetyEventForm`` describes; a refusal goes on the form (None is returned).
    The admin's "record a safety report" page uses it too."""
    data = form.cleaned_data
    try:
        return safety.safety_event_record(
            actor=actor,
            site=follow_up_of.site if follow_up_of else data["site"],
            kind=follow_up_of.kind if follow_up_of else data["kind"],
            term=data["term"],
            description=data["description"],
            criteria=data["criteria"],
            expectedness=data["expectedness"],
            causality=data["causality"],
            outcome=data["outcome"],
            subject=data["subject"],
            onset_on=data["onset_on"],
            aware_at=data["aware_at"],
            sponsor_aware_on=data["sponsor_aware_on"],
            received_at=data["received_at"],
            sponsor_reference=data["sponsor_reference"],
            follow_up_of=follow_up_of,
        )
    except DomainError as exc:
        add_domain_error(form, exc)
        return None


def _record(request, form, follow_up_of=None):
    event = record_from_form(request.user, form, follow_up_of)
    if event is None:
        return None
    messages.success(request, _("Recorded. Its reporting clocks are running."))
    return redirect("ethics_portal:safety_detail", event.pk)


@pi_required
def safety_new(request):
    sites = _own_sites(request.user)
    initial = {}
    # From a trial's page (?trial=): that trial's site among the PI's own, so the report starts where it belongs.
    trial_id = request.GET.get("trial", "")
    if trial_id.isdigit():
        site = sites.filter(trial_id=int(trial_id)).order_by("pk").first()
        if site is not None:
            initial = {"site": site.pk}
    form = SafetyEventForm(request.POST or None, sites=sites, initial=initial)
    if request.method == "POST" and form.is_valid():
        done = _record(request, form)
        if done:
            return done
    status = 400 if request.method == "POST" else 200
    return _page(request, "ethics/portal/safety_form.html", {"form": form}, status=status)


@pi_required
def safety_follow_up(request, pk: int):
    first = get_object_or_404(_events(request.user), pk=pk)
    if safety.FOLLOW_UP not in safety.available_steps(first, request.user):
        messages.error(request, _("A follow-up cannot be filed on this report."))
        return redirect("ethics_portal:safety_detail", first.pk)
    form = SafetyEventForm(request.POST or None, sites=_own_sites(request.user), follow_up_of=first)
    if request.method == "POST" and form.is_valid():
        done = _record(request, form, follow_up_of=first)
        if done:
            return done
    status = 400 if request.method == "POST" else 200
    return _page(request, "ethics/portal/safety_form.html", {"form": form, "first": first}, status=status)


@pi_required
def safety_detail(request, pk: int):
    user = request.user
    event = get_object_or_404(_events(user).select_related("ec_submission", "follow_up_of"), pk=pk)
    steps = [step for step in safety.available_steps(event, user) if step in STEP_SERVICES]
    return _page(
        request,
        "ethics/portal/safety_detail.html",
        {
            "event": event,
            "now": timezone.now(),
            "clocks": event.clocks.order_by("due_at"),
            "timeline": [
                (row, safety.STEP_LABELS.get(row.step, row.step)) for row in event.steps.select_related("actor")
            ],
            "criteria": [SafetyEvent.Criterion(code).label for code in event.criteria],
            "follow_ups": event.follow_ups.order_by("sequence"),
            "steps": [(step, safety.STEP_LABELS[step]) for step in steps],
            "can_follow_up": safety.FOLLOW_UP in safety.available_steps(event, user),
            "form": SafetyStepForm(),
        },
    )


@pi_required
@require_POST
def safety_step(request, pk: int, step: str):
    event = get_object_or_404(_events(request.user), pk=pk)
    service = STEP_SERVICES.get(step)
    form = SafetyStepForm(request.POST)
    if service is None or not form.is_valid():
        messages.error(request, _("That step was not recognised, or its time is not valid."))
        return redirect("ethics_portal:safety_detail", event.pk)
    try:
        service(event=event, actor=request.user, at=form.cleaned_data["at"], note=form.cleaned_data["note"])
    except DomainError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Recorded: %(step)s.") % {"step": safety.STEP_LABELS[step]})
    return redirect("ethics_portal:safety_detail", event.pk)
