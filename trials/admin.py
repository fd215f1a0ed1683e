from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import (
    CappedCountAdmin,
    KeyedSearchAdmin,
    ScopedAdmin,
    ServiceFormMixin,
    correlated_max,
    with_actor,
)
from cgtclinic.errors import DomainError
from cgtclinic.models import Institution
from cgtclinic.paging import CappedPaginator
from trials import enrolment, services
from trials.admin_filings import GovernanceAdminMixin, TrialReviewInline
from trials.models import (
    DocumentVersion,
    EnrolmentEntry,
    EnrolmentSubject,
    SiteEnrolment,
    Trial,
    TrialDocument,
    TrialSite,
    TrialStatusChange,
)
from trials.uploads import check_upload

# How each lifecycle step reads on its button; which steps are offered is services.available_steps.
STEP_LABELS = {
    "submit": _("Submit"),
    "start_review": _("Start review"),
    "approve": _("Approve"),
    "activate": _("Activate"),
    "close_enrolment": _("Close enrolment"),
    "complete": _("Complete"),
    "suspend": _("Suspend"),
    "resume": _("Resume"),
    "terminate": _("Terminate"),
    "withdraw": _("Withdraw"),
}


class TrialSiteInline(admin.TabularInline):
    """Sites at a glance; each is added and edited on its own page, through the site services."""

    model = TrialSite
    fields = ["institution", "role", "site_pi", "site_target", *TrialSite.MILESTONES]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("trial", "institution", "site_pi")


class TrialStatusChangeInline(admin.TabularInline):
    model = TrialStatusChange
    fields = ["at", "from_status", "to_status", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("lifecycle")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class TrialForm(ServiceFormMixin, forms.ModelForm):
    class Meta:
        model = Trial
        fields = list(services.TRIAL_EDITABLE_FIELDS)

    def clean(self):
        cleaned = super().clean()
        trial = self.instance if self.instance.pk else None
        data = {k: v for k, v in cleaned.items() if k in ("lead_institution", "pi", "department")}
        self.run_check(services.check_trial_fields, trial=trial, data=data)
        return cleaned


class TransitionForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), required=False)


@admin.register(Trial)
class TrialAdmin(GovernanceAdminMixin, ScopedAdmin):
    form = TrialForm
    change_form_template = "admin/trials/trial/change_form.html"
    list_display = [
        "protocol_number",
        "title_zh",
        "kind",
        "therapy_category",
        "phase",
        "status",
        "lead_institution",
        "pi",
        "target_enrolment",
        "created_at",
    ]
    list_filter = [
        "status",
        "kind",
        "therapy_category",
        "phase",
        "hgr_status",
        "lead_institution__region",
        "created_at",
    ]
    search_fields = ["protocol_number", "title_zh", "title_en", "pi__full_name", "chictr_id", "nct_id"]
    list_select_related = ["lead_institution", "pi", "sponsor"]
    autocomplete_fields = ["sponsor", "lead_institution", "department", "pi"]
    inlines = [TrialSiteInline, TrialStatusChangeInline, TrialReviewInline]
    fieldsets = [
        (None, {"fields": ["title_zh", "title_en", "protocol_number", "kind", "therapy_category", "phase"]}),
        (_("People and institutions"), {"fields": ["sponsor", "lead_institution", "department", "pi"]}),
        (_("Enrolment"), {"fields": ["target_enrolment"]}),
        (
            _("Registrations and approvals"),
            {
                "fields": [
                    "nmpa_approval_number",
                    "nmpa_approved_on",
                    "filing_number",
                    "filed_on",
                    "chictr_id",
                    "nct_id",
                    "hgr_status",
                    "hgr_approval_number",
                ]
            },
        ),
    ]

    def get_form(self, request, obj=None, **kwargs):
        return with_actor(super().get_form(request, obj, **kwargs), request.user)

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "lead_institution" and not request.user.is_superuser:
            kwargs["queryset"] = Institution.objects.editable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        fields = form.changed_data if change else list(form.cleaned_data)
        data = {name: form.cleaned_data[name] for name in fields if name in services.TRIAL_EDITABLE_FIELDS}
        if change:
            saved = services.trial_update(trial=obj, actor=request.user, **data)
        else:
            saved = services.trial_create(actor=request.user, **data)
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/transition/<slug:step>/",
                self.admin_site.admin_view(self.transition_view),
                name="trials_trial_transition",
            )
        ]
        return own + self.governance_urls() + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        trial = self.get_queryset(request).filter(pk=object_id).first()
        if trial is not None:
            extra_context.update(self.governance_context(request, trial))
            extra_context["transitions"] = [
                (step, STEP_LABELS[step]) for step in services.available_steps(trial, request.user)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def transition_view(self, request, object_id, step):
        """Confirm one lifecycle step (with a reason where the step needs one) and run its service."""
        step = step.replace("-", "_")  # the API's spelling (start-review) works here too
        if step not in services.STEP_ROLES:
            raise Http404
        trial = self.get_queryset(request).filter(pk=object_id).first()
        if trial is None:
            raise Http404
        if not self.has_view_permission(request, trial):
            raise PermissionDenied
        label, needs_reason = STEP_LABELS[step], step in services.REASON_REQUIRED
        if request.method != "POST" and step not in services.available_steps(trial, request.user):
            self.message_user(
                request,
                gettext("“%(step)s” is not a step you can take for %(trial)s in its current status (%(status)s).")
                % {"step": label, "trial": trial.protocol_number, "status": trial.get_status_display()},
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:trials_trial_change", args=[trial.pk]))
        form = TransitionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.trial_take_step(trial=trial, actor=request.user, step=step, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error("reason" if exc.field == "reason" else None, str(exc.message))
            else:
                trial.refresh_from_db()
                self.message_user(
                    request,
                    gettext("“%(trial)s” is now %(status)s.")
                    % {"trial": trial.protocol_number, "status": trial.get_status_display()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:trials_trial_change", args=[trial.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": trial,
            "title": gettext("%(step)s: %(trial)s") % {"step": label, "trial": trial.protocol_number},
            "step_label": label,
            "needs_reason": needs_reason,
            "form": form,
        }
        return TemplateResponse(request, "admin/trials/trial/transition.html", context)


class TrialSiteForm(ServiceFormMixin, forms.ModelForm):
    class Meta:
        model = TrialSite
        fields = ["trial", "institution", *services.SITE_EDITABLE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        trial = cleaned.get("trial") or (self.instance.trial if self.instance.pk else None)
        if trial is None:
            return cleaned
        site = self.instance if self.instance.pk else None
        data = {k: v for k, v in cleaned.items() if k != "trial"}
        self.run_check(services.check_site_fields, trial=trial, site=site, data=data)
        return cleaned


@admin.register(TrialSite)
class TrialSiteAdmin(KeyedSearchAdmin, ScopedAdmin):
    form = TrialSiteForm
    list_display = [
        "trial",
        "institution",
        "role",
        "site_pi",
        "site_target",
        "submission_received_on",
        "site_initiated_on",
        "first_patient_in_on",
        "startup_weeks",
    ]
    list_filter = ["role", "institution__region", "trial__status"]
    search_fields = ["trial__protocol_number", "trial__title_zh", "institution__name_zh", "site_pi__full_name"]
    keyed_search = {"trial": ("protocol_number", "title_zh"), "institution": ("name_zh",), "site_pi": ("full_name",)}
    list_select_related = ["trial", "institution", "site_pi"]
    autocomplete_fields = ["trial", "institution", "site_pi"]

    @admin.display(description=_("start-up (weeks)"))
    def startup_weeks(self, site):
        days = site.startup_days
        return None if days is None else f"{days / 7:.1f}"

    def get_form(self, request, obj=None, **kwargs):
        return with_actor(super().get_form(request, obj, **kwargs), request.user)

    def get_readonly_fields(self, request, obj=None):
        return ["trial", "institution", "role"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "trial":
            kwargs["queryset"] = Trial.objects.editable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.cleaned_data if name in services.SITE_EDITABLE_FIELDS}
        if change:
            saved = services.site_update(site=obj, actor=request.user, **data)
        else:
            saved = services.site_add(
                trial=form.cleaned_data["trial"],
                actor=request.user,
                institution=form.cleaned_data["institution"],
                **data,
            )
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()


class DocumentVersionInline(admin.TabularInline):
    model = DocumentVersion
    fields = ["number", "version_label", "version_date", "download", "size", "sha256", "uploaded_by", "uploaded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("uploaded_by")

    @admin.display(description=_("file"))
    def download(self, version):
        url = reverse("admin:trials_documentversion_download", args=[version.pk])
        return format_html('<a href="{}">{}</a>', url, version.original_name)


class TrialDocumentForm(ServiceFormMixin, forms.ModelForm):
    upload = forms.FileField(label=_("file"), help_text=_("PDF, Word, Excel, JPEG or PNG."))
    version_label = forms.CharField(label=_("version label"), max_length=50, required=False)
    version_date = forms.DateField(label=_("version date"), required=False)
    note = forms.CharField(label=_("change note"), max_length=300, required=False)

    class Meta:
        model = TrialDocument
        fields = ["trial", "kind", "title"]

    def clean_upload(self):
        uploaded = self.cleaned_data["upload"]
        try:
            check_upload(uploaded)
        except DomainError as exc:
            raise forms.ValidationError(str(exc.message)) from exc
        return uploaded


@admin.register(TrialDocument)
class TrialDocumentAdmin(ScopedAdmin):
    """A document and its versions; saving with a file stores a new version, never replacing one."""

    form = TrialDocumentForm
    list_display = ["title", "kind", "trial", "latest_version", "created_at"]
    list_filter = ["kind"]
    search_fields = ["title", "trial__protocol_number", "trial__title_zh"]
    list_select_related = ["trial"]
    autocomplete_fields = ["trial"]
    inlines = [DocumentVersionInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    @admin.display(description=_("latest version"))
    def latest_version(self, document):
        return document.latest_number

    def get_queryset(self, request):
        # Per row of the page, not a GROUP BY over every document's versions before the page is cut.
        versions = DocumentVersion.objects.filter(document=OuterRef("pk"))
        return super().get_queryset(request).annotate(latest_number=correlated_max(versions, "number"))

    def get_readonly_fields(self, request, obj=None):
        return ["trial", "kind", "title"] if obj else []

    def has_change_permission(self, request, obj=None):
        # "Changing" a document means adding a version to it, which anyone who may add documents can do.
        return self.has_add_permission(request) and (
            obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "trial":
            kwargs["queryset"] = Trial.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        document = obj if change else form.cleaned_data
        version = services.document_add_version(
            trial=obj.trial if change else document["trial"],
            actor=request.user,
            kind=obj.kind if change else document["kind"],
            title=obj.title if change else document["title"],
            uploaded_file=form.cleaned_data["upload"],
            version_label=form.cleaned_data["version_label"],
            version_date=form.cleaned_data["version_date"],
            note=form.cleaned_data["note"],
        )
        obj.pk = version.document_id
        obj._state.adding = False
        obj.refresh_from_db()

    def get_urls(self):
        own = [
            path(
                "versions/<int:version_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="trials_documentversion_download",
            )
        ]
        return own + super().get_urls()

    def download_view(self, request, version_id):
        version = DocumentVersion.objects.visible_to(request.user).filter(pk=version_id).first()
        if version is None:
            raise Http404
        return FileResponse(version.file.open("rb"), as_attachment=True, filename=version.original_name)


@admin.register(DocumentVersion)
class DocumentVersionAdmin(ScopedAdmin):
    """Read-only register of every stored file, searchable by SHA-256 to verify a copy."""

    list_display = [
        "document",
        "number",
        "version_label",
        "original_name",
        "size",
        "sha256",
        "uploaded_by",
        "uploaded_at",
    ]
    search_fields = ["sha256", "original_name", "document__title", "document__trial__protocol_number"]
    list_select_related = ["document__trial", "uploaded_by"]
    readonly_fields = [f.name for f in DocumentVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- enrolment ledger --------------------------------------------------------------------------------------------


class EnrolmentDateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class ReportableSiteAutocomplete(AutocompleteJsonView):
    """The sites the person may report enrolment for, searched by protocol number, trial title or institution."""

    paginator_class = CappedPaginator

    def get_queryset(self):
        sites = enrolment.sites_reportable_by(self.request.user)
        if self.term:
            sites = sites.filter(enrolment.sites_matching_q(self.term))
        return sites.select_related("trial", "institution").order_by("trial_id", "role", "institution_id")


class ReportableSiteSelect(AutocompleteSelect):
    def get_url(self):
        return reverse("admin:trials_enrolmententry_sites", current_app=self.admin_site.name)


class EnrolmentReportForm(forms.Form):
    """One ledger entry; the service decides whether it may be recorded."""

    # Searched, not listed: an office may report for thousands of sites, a system administrator for all of them.
    site = forms.ModelChoiceField(
        label=_("Trial site"),
        queryset=TrialSite.objects.none(),
        widget=ReportableSiteSelect(EnrolmentEntry._meta.get_field("site"), admin.site),
    )
    kind = forms.ChoiceField(label=_("Event"), choices=[("", "---------"), *EnrolmentEntry.Kind.choices])
    occurred_on = forms.DateField(label=_("Date"), widget=EnrolmentDateInput)
    count = forms.IntegerField(label=_("Number of subjects"), min_value=1, initial=1)
    subject_code = forms.CharField(
        label=_("Subject code"),
        max_length=30,
        required=False,
        help_text=_(
            "Optional: a pseudonymous code such as RK-001 for one subject (the number is then 1). "
            "Never a name, an ID-card number or a phone number."
        ),
    )
    note = forms.CharField(label=_("Note"), max_length=300, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = enrolment.sites_reportable_by(user).select_related("trial", "institution")


class EnrolmentReversalForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the correction"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )


def _show_error(form: forms.Form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))


class CorrectionFilter(admin.SimpleListFilter):
    title = _("correction")
    parameter_name = "correction"

    def lookups(self, request, model_admin):
        return [
            ("original", _("Reports still standing")),
            ("reversed", _("Reports reversed")),
            ("correction", _("Corrections")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "original":
            return queryset.filter(reverses__isnull=True, reversed_by__isnull=True)
        if self.value() == "reversed":
            return queryset.filter(reversed_by__isnull=False)
        if self.value() == "correction":
            return queryset.filter(reverses__isnull=False)
        return queryset


@admin.register(EnrolmentEntry)
class EnrolmentEntryAdmin(KeyedSearchAdmin, CappedCountAdmin, admin.ModelAdmin):
    """The ledger, read-only: entries are added through the service and corrected by reversing entries,
    never changed or deleted (the database refuses that too)."""

    change_form_template = "admin/trials/enrolmententry/change_form.html"
    change_list_template = "admin/trials/enrolmententry/change_list.html"
    list_display = [
        "occurred_on",
        "trial",
        "site_institution",
        "kind",
        "signed_count",
        "subject",
        "correction",
        "reported_by",
        "reported_at",
    ]
    list_filter = [
        "kind",
        CorrectionFilter,
        "trial__status",
        "site__institution__region",
        "occurred_on",
    ]
    search_fields = ["trial__protocol_number", "site__institution__name_zh", "subject__code", "reported_by__full_name"]
    search_help_text = _("A protocol number or trial title, an institution, a subject code (exact) or who reported.")
    keyed_search = {
        "trial": ("protocol_number", "title_zh"),
        "site": ("institution__name_zh__icontains", "institution__short_name__icontains"),
        "subject": ("code__exact",),
        "reported_by": ("full_name", "username__exact"),
    }
    list_select_related = ["trial", "site__institution", "subject", "reported_by", "reversed_by"]
    ordering = ["-reported_at", "-id"]
    # Sorting by a column without a matching index would sort the whole scoped ledger for one page.
    sortable_by = ["reported_at"]
    fields = [
        "trial",
        "site",
        "kind",
        "occurred_on",
        "signed_count",
        "subject",
        "note",
        "correction",
        "reported_by",
        "reported_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    @admin.display(description=_("site"), ordering="site__institution__name_zh")
    def site_institution(self, entry):
        return entry.site.institution

    @admin.display(description=_("number of subjects"))
    def signed_count(self, entry):
        return entry.signed_count

    @admin.display(description=_("correction"))
    def correction(self, entry):
        if entry.reverses_id:
            url = reverse("admin:trials_enrolmententry_change", args=[entry.reverses_id])
            return format_html(
                '{} <a href="{}">#{}</a>: {}', gettext("Reverses entry"), url, entry.reverses_id, entry.reason
            )
        if _has_reversal(entry):
            url = reverse("admin:trials_enrolmententry_change", args=[entry.reversed_by.pk])
            return format_html('{} <a href="{}">#{}</a>', gettext("Reversed by entry"), url, entry.reversed_by.pk)
        return ""

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        own = [
            path(
                "<int:pk>/reverse/",
                self.admin_site.admin_view(self.reverse_view),
                name="trials_enrolmententry_reverse",
            ),
            path("sites/", self.admin_site.admin_view(self.sites_view), name="trials_enrolmententry_sites"),
        ]
        return own + super().get_urls()

    def sites_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return ReportableSiteAutocomplete.as_view(admin_site=self.admin_site)(request)

    def _action_page(self, request, *, form, label, intro="", object_url, object_label, entry=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": label,
            "step_label": label,
            "form": form,
            "intro": intro,
            "entry": entry,
            "object_url": object_url,
            "object_label": object_label,
        }
        return TemplateResponse(request, "admin/trials/enrolmententry/action.html", context)

    def add_view(self, request, form_url="", extra_context=None):
        """Report enrolment: the service checks the site's ethics approval, the trial's status and the counts."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EnrolmentReportForm(
            request.POST if request.method == "POST" else None,
            user=request.user,
            initial={"occurred_on": timezone.localdate(), "count": 1},
        )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = enrolment.enrolment_report(
                    site=data["site"],
                    actor=request.user,
                    kind=data["kind"],
                    occurred_on=data["occurred_on"],
                    count=data["count"],
                    subject_code=data["subject_code"],
                    note=data["note"],
                )
            except DomainError as exc:
                _show_error(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Recorded: %(entry)s at %(site)s.") % {"entry": entry, "site": entry.site},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:trials_enrolmententry_changelist"))
        changelist = reverse("admin:trials_enrolmententry_changelist")
        return self._action_page(
            request,
            form=form,
            label=gettext("Report enrolment"),
            intro=gettext(
                "Sites report each event as it happens. A mistake is corrected by reversing the entry, never by "
                "editing it."
            ),
            object_url=changelist,
            object_label=str(self.model._meta.verbose_name_plural),
        )

    def reverse_view(self, request, pk):
        """Cancel an entry with a reversing one, giving the reason; the original stays in the ledger."""
        entry = (
            self.get_queryset(request)
            .select_related("trial", "site__institution", "subject", "reported_by")
            .filter(pk=pk)
            .first()
        )
        if entry is None:
            raise Http404
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EnrolmentReversalForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                correction = enrolment.enrolment_reverse(
                    entry=entry, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except DomainError as exc:
                _show_error(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Entry #%(entry)s is reversed by entry #%(correction)s.")
                    % {"entry": entry.pk, "correction": correction.pk},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:trials_enrolmententry_change", args=[correction.pk]))
        return self._action_page(
            request,
            form=form,
            label=gettext("Reverse this entry"),
            entry=entry,
            object_url=reverse("admin:trials_enrolmententry_change", args=[entry.pk]),
            object_label=f"#{entry.pk} {entry}",
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        entry = self.get_queryset(request).filter(pk=object_id).select_related("site__trial").first()
        extra_context["can_reverse"] = bool(
            entry is not None
            and self.has_add_permission(request)
            and not entry.reverses_id
            and not _has_reversal(entry)
            and enrolment.may_report(request.user, entry.site)
        )
        return super().change_view(request, object_id, form_url, extra_context)


def _has_reversal(entry: EnrolmentEntry) -> bool:
    try:
        entry.reversed_by  # noqa: B018 - the reverse one-to-one raises when nothing reverses this entry
    except EnrolmentEntry.DoesNotExist:
        return False
    return True


class SubjectStateFilter(admin.SimpleListFilter):
    title = _("current state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return enrolment.SubjectState.choices

    def queryset(self, request, queryset):
        # The state kept on the row (by the enrolment services), filtered with the list's order by one index.
        if self.value() in enrolment.SubjectState.values:
            return queryset.filter(state=self.value())
        return queryset


@admin.register(EnrolmentSubject)
class EnrolmentSubjectAdmin(KeyedSearchAdmin, CappedCountAdmin, admin.ModelAdmin):
    """Pseudonymous subject codes with the state their ledger entries give them; codes come from reports."""

    list_display = ["code", "trial", "site_institution", "state", "last_event_on", "created_at"]
    list_filter = [
        SubjectStateFilter,
        "trial__status",
        "site__institution__region",
    ]
    search_fields = ["code", "trial__protocol_number", "trial__title_zh"]
    search_help_text = _("A subject code (exact), a protocol number or a trial title.")
    exact_search = ("code",)
    keyed_search = {"trial": ("protocol_number", "title_zh")}
    list_select_related = ["trial", "site__institution"]
    sortable_by = []  # the default order (trial, code) is an index; any other would sort every subject
    fields = ["code", "trial", "site", "state", "last_event_on", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    @admin.display(description=_("site"), ordering="site__institution__name_zh")
    def site_institution(self, subject):
        return subject.site.institution

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ProgressFilterForm(forms.Form):
    SHOW = [
        ("", _("All sites")),
        ("over_target", _("Over target")),
        ("stalled", _("Stalled")),
    ]

    q = forms.CharField(
        label=_("Trial or site"),
        required=False,
        max_length=100,
        help_text=_("Part of a protocol number, a trial title or an institution's name."),
    )
    # A trial chosen by a link (its id); a select listing every visible trial would be tens of thousands long.
    trial = forms.ModelChoiceField(
        label=_("Trial"), queryset=Trial.objects.none(), required=False, widget=forms.HiddenInput
    )
    show = forms.ChoiceField(label=_("Show"), choices=SHOW, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["trial"].queryset = Trial.objects.visible_to(user)


@admin.register(SiteEnrolment)
class SiteEnrolmentAdmin(CappedCountAdmin, admin.ModelAdmin):
    """Targets against actuals, per trial and per site. The list is a page of its own: a site that has not
    reported yet has no counts row but belongs on it (often as stalled)."""

    list_display = ["site", "screened", "enrolled", "withdrawn", "completed", "last_enrolled_on"]
    list_select_related = ["site__trial", "site__institution"]
    fields = ["site", *enrolment.COUNT_FIELDS, "last_enrolled_on", "updated_at"]
    readonly_fields = fields
    sites_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        user = request.user
        today = timezone.localdate()
        filters = ProgressFilterForm(request.GET or None, user=user)
        sites = TrialSite.objects.visible_to(user)
        show = ""
        if filters.is_valid():
            if filters.cleaned_data["trial"] is not None:
                sites = sites.filter(trial=filters.cleaned_data["trial"])
            if filters.cleaned_data["q"]:
                sites = sites.filter(enrolment.sites_matching_q(filters.cleaned_data["q"]))
            show = filters.cleaned_data["show"]
        if show == "over_target":
            sites = sites.filter(enrolment.over_target_sites_q())
        elif show == "stalled":
            sites = sites.filter(enrolment.stalled_sites_q(today))
        ordered = enrolment.with_progress(sites).order_by("trial_id", "role", "pk")
        page = CappedPaginator(ordered, self.sites_per_page).get_page(request.GET.get("p"))
        # The per-trial totals cover the trials on this page only: the cost follows the page, not the history.
        on_page = {site.trial_id for site in page}
        trials = enrolment.trial_progress(sites.filter(trial_id__in=on_page), today) if on_page else []
        query = request.GET.copy()
        query.pop("p", None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Enrolment: targets against actuals"),
            "filters": filters,
            "trials": trials,
            "page": page,
            "sites": [enrolment.site_progress(site, today) for site in page],
            "stalled_days": enrolment.STALLED_AFTER_DAYS,
            "query": query.urlencode(),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/trials/siteenrolment/progress.html", context)


# The gates, certificates, delegation logs and consents have their own module (registered on import).
from trials import gate_admin  # noqa: E402, F401
