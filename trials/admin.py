from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import ScopedAdmin, ServiceFormMixin, with_actor
from cgtclinic.errors import DomainError
from cgtclinic.models import Institution
from trials import services
from trials.models import DocumentVersion, Trial, TrialDocument, TrialSite, TrialStatusChange
from trials.uploads import check_upload

# The lifecycle steps offered on a trial's page: (url name, service, button label, needs a reason).
TRANSITIONS = {
    "submit": (services.trial_submit, _("Submit"), False),
    "start-review": (services.trial_start_review, _("Start review"), False),
    "approve": (services.trial_approve, _("Approve"), False),
    "activate": (services.trial_activate, _("Activate"), False),
    "close-enrolment": (services.trial_close_enrolment, _("Close enrolment"), False),
    "complete": (services.trial_complete, _("Complete"), False),
    "suspend": (services.trial_suspend, _("Suspend"), True),
    "resume": (services.trial_resume, _("Resume"), False),
    "terminate": (services.trial_terminate, _("Terminate"), True),
    "withdraw": (services.trial_withdraw, _("Withdraw"), True),
}
# Which steps a trial in each state can take, for showing only meaningful buttons; the services decide.
STEPS_FROM = {
    Trial.Status.DRAFT: ["submit", "withdraw"],
    Trial.Status.SUBMITTED: ["start-review", "withdraw"],
    Trial.Status.UNDER_REVIEW: ["approve", "withdraw"],
    Trial.Status.APPROVED: ["activate", "suspend", "terminate"],
    Trial.Status.ACTIVE: ["close-enrolment", "suspend", "terminate"],
    Trial.Status.ENROLMENT_CLOSED: ["complete", "suspend", "terminate"],
    Trial.Status.SUSPENDED: ["resume", "terminate"],
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
        return super().get_queryset(request).select_related("institution", "site_pi")


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
class TrialAdmin(ScopedAdmin):
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
    list_filter = ["status", "kind", "therapy_category", "phase", "hgr_status", "lead_institution__region"]
    search_fields = ["protocol_number", "title_zh", "title_en", "pi__full_name", "chictr_id", "nct_id"]
    list_select_related = ["lead_institution", "pi", "sponsor"]
    autocomplete_fields = ["sponsor", "lead_institution", "department", "pi"]
    date_hierarchy = "created_at"
    inlines = [TrialSiteInline, TrialStatusChangeInline]
    fieldsets = [
        (None, {"fields": ["title_zh", "title_en", "protocol_number", "kind", "therapy_category", "phase"]}),
        (_("People and institutions"), {"fields": ["sponsor", "lead_institution", "department", "pi"]}),
        (_("Enrolment"), {"fields": ["target_enrolment"]}),
        (
            _("Registrations and approvals"),
            {
                "fields": [
                    "nmpa_approval_number",
                    "filing_number",
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
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        trial = self.get_queryset(request).filter(pk=object_id).first()
        if trial is not None:
            extra_context["transitions"] = [(step, TRANSITIONS[step][1]) for step in STEPS_FROM.get(trial.status, [])]
        return super().change_view(request, object_id, form_url, extra_context)

    def transition_view(self, request, object_id, step):
        """Confirm one lifecycle step (with a reason where the step needs one) and run its service."""
        if step not in TRANSITIONS:
            raise Http404
        trial = self.get_queryset(request).filter(pk=object_id).first()
        if trial is None:
            raise Http404
        if not self.has_view_permission(request, trial):
            raise PermissionDenied
        service, label, needs_reason = TRANSITIONS[step]
        form = TransitionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            kwargs = {"reason": form.cleaned_data["reason"]} if needs_reason or step == "resume" else {}
            try:
                service(trial=trial, actor=request.user, **kwargs)
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
class TrialSiteAdmin(ScopedAdmin):
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
        return super().get_queryset(request).annotate(latest_number=Max("versions__number"))

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
