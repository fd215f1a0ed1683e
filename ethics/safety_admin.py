"""The offices' admin for safety reports: the list with each report's next deadline (overdue first), the report's
clocks and timeline, the step buttons ``safety.available_steps`` offers, the institution's own reporting periods,
and the timeliness of its sites' reporting (the same figures regulators read in the ``safety-timeliness`` report).
Imported by ethics/admin.py."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import KeyedSearchAdmin, ScopedAdmin
from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from ethics import reports, safety

# ethics/admin.py imports this module at its end, after defining the inline base.
from ethics.admin import ReadOnlyInline
from ethics.models import SafetyClock, SafetyEvent, SafetyEventStep, SafetyReportingSettings
from trials.models import TrialSite


class SafetyClockInline(ReadOnlyInline):
    model = SafetyClock
    fields = [
        "kind",
        "period",
        "unit",
        "period_source",
        "started_at",
        "due_at",
        "time_left",
        "met_at",
        "late",
        "escalated_at",
    ]
    readonly_fields = fields

    @admin.display(description=_("time left"))
    def time_left(self, clock):
        if clock.met_at or clock.cancelled:
            return "—"
        left = safety.time_left(clock)
        hours = abs(left.total_seconds()) / 3600
        if left.total_seconds() <= 0:
            return format_html(
                '<strong class="errornote">{}</strong>', gettext("overdue by %(hours).1f h") % {"hours": hours}
            )
        return gettext("%(hours).1f h left") % {"hours": hours}


class SafetyEventStepInline(ReadOnlyInline):
    model = SafetyEventStep
    fields = ["step", "from_status", "to_status", "actor", "happened_at", "recorded_at", "note"]
    readonly_fields = fields


class OverdueFilter(admin.SimpleListFilter):
    title = _("deadline")
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return [("overdue", _("Open clock past its deadline")), ("open", _("Any open clock"))]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(next_due_at__lte=timezone.now())
        if self.value() == "open":
            return queryset.filter(next_due_at__isnull=False)
        return queryset


class SafetyStepForm(forms.Form):
    at = forms.DateTimeField(
        label=pgettext_lazy("safety", "When"), required=False, help_text=_("Beijing time; leave empty for now.")
    )
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 3}))


class CommitteeReviewForm(forms.Form):
    at = forms.DateTimeField(
        label=pgettext_lazy("safety", "When"), required=False, help_text=_("Beijing time; leave empty for now.")
    )
    opinion = forms.CharField(label=_("Committee's opinion"), widget=forms.Textarea(attrs={"rows": 4}))


class WithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


# step: (form, service call with the form's data)
ADMIN_STEPS = {
    safety.SEND_TO_SPONSOR: (SafetyStepForm, safety.safety_send_to_sponsor),
    safety.REPORT_TO_EC: (SafetyStepForm, safety.safety_report_to_ec),
    safety.PI_REVIEW: (SafetyStepForm, safety.safety_pi_review),
    safety.COMMITTEE_REVIEW: (CommitteeReviewForm, safety.safety_committee_review),
    safety.WITHDRAW: (WithdrawForm, safety.safety_withdraw),
}


@admin.register(SafetyEvent)
class SafetyEventAdmin(KeyedSearchAdmin, ScopedAdmin):
    list_display = ["__str__", "kind", "site_institution", "status", "next_due_display", "created_at"]
    list_filter = [OverdueFilter, "kind", "status", "expectedness", "site__institution__region"]
    search_fields = ["term", "trial__protocol_number", "sponsor_reference", "subject__code"]
    search_help_text = _("Part of the event term, a protocol number, the sponsor's case number or a subject code.")
    # The protocol and the subject code are looked up in their own tables first, so the ORed match reads the
    # report's own columns; the term is matched in the same pass over the reports in view (about 100 ms for all
    # 300,000 of a national data set), where an OR across joins took seconds.
    exact_search = ("sponsor_reference",)
    keyed_search = {"trial": ("protocol_number",), "subject": ("code__exact",)}
    list_select_related = ["trial", "site__institution"]
    autocomplete_fields = ["trial"]
    inlines = [SafetyClockInline, SafetyEventStepInline]
    change_form_template = "admin/ethics/safetyevent/change_form.html"
    change_list_template = "admin/ethics/safetyevent/change_list.html"
    exclude = ["pi_reviewed_by", "committee_reviewed_by"]

    # Reports with an open clock first, soonest (or longest overdue) first, then the newest (the index
    # safety_event_next_due, in this order).
    ordering = ["next_due_at", "-created_at", "-id"]

    def term_search(self, term: str):
        return Q(term__icontains=term)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in SafetyEvent._meta.fields if field.name not in self.exclude]

    @admin.display(description=_("site"), ordering="site__institution__name_zh")
    def site_institution(self, obj):
        return obj.site.institution

    @admin.display(description=_("next deadline"), ordering="next_due_at")
    def next_due_display(self, obj):
        if obj.next_due_at is None:
            return "—"
        text = timezone.localtime(obj.next_due_at).strftime("%Y-%m-%d %H:%M")
        if obj.next_due_at <= timezone.now():
            return format_html('<strong class="errornote">{} · {}</strong>', text, gettext("overdue"))
        return text

    def has_add_permission(self, request):
        return False  # PIs report in their portal (or the API); the steps are buttons here.

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        own = [
            path(
                "<int:pk>/step/<slug:step>/",
                self.admin_site.admin_view(self.step_view),
                name="ethics_safetyevent_step",
            ),
            path("record/", self.admin_site.admin_view(self.record_view), name="ethics_safetyevent_record"),
            path(
                "timeliness/",
                self.admin_site.admin_view(self.timeliness_view),
                name="ethics_safetyevent_timeliness",
            ),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        can_record = request.user.is_superuser or request.user.role == Role.RESEARCH_OFFICE
        return super().changelist_view(request, {**(extra_context or {}), "can_record": can_record})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        found = self.get_queryset(request).filter(pk=object_id).first()
        if found is not None:
            extra_context["safety_steps"] = [
                (step, safety.STEP_LABELS[step])
                for step in safety.available_steps(found, request.user)
                if step in ADMIN_STEPS
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def step_view(self, request, pk, step):
        event = self.get_queryset(request).filter(pk=pk).first()
        if event is None or step not in ADMIN_STEPS:
            raise Http404
        form_class, service = ADMIN_STEPS[step]
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                service(event=event, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))
            else:
                self.message_user(request, gettext("Saved."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:ethics_safetyevent_change", args=[pk]))
        label = str(safety.STEP_LABELS[step])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": event,
            "title": f"{label}: {event}",
            "step_label": label,
            "form": form,
            "object_url": reverse("admin:ethics_safetyevent_change", args=[pk]),
            "object_label": str(event),
        }
        return TemplateResponse(request, "admin/ethics/action.html", context)

    def record_view(self, request):
        """The site's research office (机构办公室) records a SUSAR the sponsor sent (or an SAE a PI reported on paper);
        ``safety_event_record`` decides whether this person may, for this site."""
        from ethics.portal.safety_forms import SafetyEventForm
        from ethics.portal.safety_views import record_from_form

        if not (request.user.is_superuser or request.user.role == Role.RESEARCH_OFFICE):
            raise Http404
        sites = (
            TrialSite.objects.all()
            if request.user.is_superuser
            else TrialSite.objects.filter(institution_id=request.user.institution_id)
        )
        form = SafetyEventForm(request.POST or None, sites=sites, initial={"kind": SafetyEvent.Kind.SUSAR})
        if request.method == "POST" and form.is_valid():
            event = record_from_form(request.user, form)
            if event is not None:
                self.message_user(request, gettext("Saved."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:ethics_safetyevent_change", args=[event.pk]))
        label = gettext("Record a safety report")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": label,
            "step_label": label,
            "form": form,
            "object_url": reverse("admin:ethics_safetyevent_changelist"),
        }
        return TemplateResponse(request, "admin/ethics/action.html", context)

    def timeliness_view(self, request):
        """The timeliness of the reports the viewer sees, per institution or per trial and per clock."""
        if not self.has_view_permission(request):
            raise Http404
        by = request.GET.get("by") if request.GET.get("by") in reports.SAFETY_GROUPS else "institution"
        now = timezone.now()
        rows, total = reports.safety_timeliness(clocks=reports.safety_clocks(viewer=request.user), by=by, now=now)
        for row in rows:
            row["kind_label"] = SafetyClock.Kind(row["kind"]).label
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Safety reporting timeliness"),
            "rows": rows,
            "total": total,
            "by": by,
        }
        return TemplateResponse(request, "admin/ethics/safetyevent/timeliness.html", context)


@admin.register(SafetyReportingSettings)
class SafetyReportingSettingsAdmin(ScopedAdmin):
    """The institution's own periods, kept by its ethics office; an empty value uses the national default."""

    list_display = ["institution", "ec_report_hours", "pi_review_days", "committee_review_days", "updated_at"]
    list_select_related = ["institution"]
    search_fields = ["institution__name_zh"]
    autocomplete_fields = ["institution"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(institution_id=request.user.institution_id)

    def get_readonly_fields(self, request, obj=None):
        return ["institution"] if not request.user.is_superuser else []

    def add_view(self, request, form_url="", extra_context=None):
        # One row per institution: an office that has one edits it (no query in has_add_permission, which the
        # admin's menu asks on every page).
        own = SafetyReportingSettings.objects.filter(institution_id=request.user.institution_id).first()
        if own is not None and not request.user.is_superuser and self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:ethics_safetyreportingsettings_change", args=[own.pk]))
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            if request.user.role != Role.ETHICS_OFFICE or not request.user.institution_id:
                raise Http404
            obj.institution_id = request.user.institution_id
        super().save_model(request, obj, form, change)
