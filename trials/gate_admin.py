"""Admin pages for the gates (research office), GCP certificates (research and ethics offices), the delegation
logs and subject consents. Each form runs its service in ``clean()``, so a refusal shows on the form (never a
500) and the row is written only by the service; ``save_model`` then just points the admin at that row."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import CappedCountAdmin, KeyedSearchAdmin, ScopedAdmin
from cgtclinic.errors import DomainError
from trials import consent, gates, qualifications
from trials.models import (
    Delegation,
    DocumentVersion,
    Duty,
    EnrolmentSubject,
    GateAnswer,
    GateRule,
    GcpCertificate,
    SubjectConsent,
    Trial,
    TrialSite,
)


class _ServiceForm(forms.ModelForm):
    """Runs ``self.write()`` (one service call) in clean(); its refusal becomes a form error."""

    actor = None
    saved = None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.saved = self.write(cleaned)
        except DomainError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc.message))
        return cleaned

    def _post_clean(self):
        # The service validated and wrote the row; the model form's own checks would see that row as a duplicate.
        pass


def _with_actor(form_class, actor):
    return type(form_class.__name__, (form_class,), {"actor": actor})


class _ServiceMixin:
    def get_form(self, request, obj=None, **kwargs):
        return _with_actor(super().get_form(request, obj, **kwargs), request.user)

    def save_model(self, request, obj, form, change):
        saved = form.saved[0] if isinstance(form.saved, list) else form.saved
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False


class _ServiceAdmin(_ServiceMixin, ScopedAdmin):
    """Scoped by ``visible_to``, with history."""


@admin.register(GateRule)
class GateRuleAdmin(CappedCountAdmin, admin.ModelAdmin):
    """The seeded rules, read-only: they change with seeds/policy/gates.yaml."""

    list_display = ["gate", "trial_kind", "therapy_category", "source_document", "source_clause"]
    list_filter = ["gate", "trial_kind", "therapy_category"]
    search_fields = ["source_document", "source_clause", "note"]
    readonly_fields = [
        "gate",
        "trial_kind",
        "therapy_category",
        "source_document",
        "source_clause",
        "source_quote",
        "note",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GateAnswerForm(_ServiceForm):
    class Meta:
        model = GateAnswer
        fields = ["trial", "gate", "site", "outcome", "reference_number", "met_on", "reason", "document"]

    def write(self, cleaned):
        return gates.gate_answer(
            trial=cleaned["trial"],
            actor=self.actor,
            gate=cleaned["gate"],
            outcome=cleaned["outcome"],
            site=cleaned.get("site"),
            reference_number=cleaned.get("reference_number") or "",
            met_on=cleaned.get("met_on"),
            reason=cleaned.get("reason") or "",
            document=cleaned.get("document") or None,
        )


@admin.register(GateAnswer)
class GateAnswerAdmin(_ServiceAdmin):
    form = GateAnswerForm
    list_display = ["trial", "gate", "site", "outcome", "reference_number", "met_on", "recorded_by", "recorded_at"]
    list_filter = ["gate", "outcome", "trial__status"]
    search_fields = ["trial__protocol_number", "trial__title_zh", "reference_number", "reason"]
    list_select_related = ["trial", "site__institution", "recorded_by"]
    autocomplete_fields = ["trial", "site"]

    def get_readonly_fields(self, request, obj=None):
        return ["trial", "gate", "site", "recorded_by", "recorded_at"] if obj else []

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            # The key of a changed answer is the row's own; only the answer itself is edited.
            def write(self, cleaned, _obj=obj):
                return gates.gate_answer(
                    trial=_obj.trial,
                    actor=self.actor,
                    gate=_obj.gate,
                    outcome=cleaned["outcome"],
                    site=_obj.site,
                    reference_number=cleaned.get("reference_number") or "",
                    met_on=cleaned.get("met_on"),
                    reason=cleaned.get("reason") or "",
                    document=cleaned.get("document") or None,
                )

            form = type(form.__name__, (form,), {"write": write})
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "trial":
            kwargs["queryset"] = Trial.objects.visible_to(request.user)
        if db_field.name == "site":
            kwargs["queryset"] = TrialSite.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class GcpCertificateForm(_ServiceForm):
    class Meta:
        model = GcpCertificate
        fields = ["person", "number", "issuer", "issued_on", "expires_on", "file"]

    def write(self, cleaned):
        return qualifications.certificate_record(
            actor=self.actor,
            person=cleaned["person"],
            number=cleaned["number"],
            issuer=cleaned["issuer"],
            issued_on=cleaned["issued_on"],
            expires_on=cleaned["expires_on"],
            file=cleaned.get("file") or None,
        )


@admin.register(GcpCertificate)
class GcpCertificateAdmin(_ServiceAdmin):
    """Certificates are added, never edited: a renewal is a new certificate."""

    form = GcpCertificateForm
    list_display = ["person", "number", "issuer", "issued_on", "expires_on", "recorded_by"]
    list_filter = ["issuer", "expires_on"]
    search_fields = ["person__full_name", "number", "issuer"]
    list_select_related = ["person", "recorded_by"]
    autocomplete_fields = ["person"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)


class DelegationForm(_ServiceForm):
    duties = forms.MultipleChoiceField(label=_("duties"), choices=Duty.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Delegation
        fields = ["site", "person", "starts_on", "ends_on"]

    def write(self, cleaned):
        return qualifications.delegation_record(
            site=cleaned["site"],
            actor=self.actor,
            person=cleaned["person"],
            duties=cleaned["duties"],
            starts_on=cleaned["starts_on"],
            ends_on=cleaned.get("ends_on"),
        )


class DelegationEndForm(_ServiceForm):
    class Meta:
        model = Delegation
        fields = ["ends_on"]

    def write(self, cleaned):
        if cleaned.get("ends_on") is None:
            raise DomainError(_("Give the last day of the delegation."), field="ends_on")
        return qualifications.delegation_end(delegation=self.instance, actor=self.actor, ends_on=cleaned["ends_on"])


@admin.register(Delegation)
class DelegationAdmin(KeyedSearchAdmin, _ServiceAdmin):
    """The sites' delegation logs: lines are added by duty and ended on a day, never deleted."""

    list_display = ["site", "person", "duty", "starts_on", "ends_on", "recorded_by"]
    list_filter = ["duty", "site__institution__region", "site__trial__status"]
    search_fields = ["person__full_name", "site__trial__protocol_number", "site__institution__name_zh"]
    keyed_search = {"person": ("full_name",), "site__trial": ("protocol_number",), "site__institution": ("name_zh",)}
    list_select_related = ["site__trial", "site__institution", "person", "recorded_by"]
    autocomplete_fields = ["site", "person"]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = DelegationEndForm if obj else DelegationForm
        if obj is None:
            kwargs["fields"] = ["site", "person", "duties", "starts_on", "ends_on"]
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["site", "person", "duty", "starts_on", "recorded_by", "recorded_at"] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["site", "person", "duties", "starts_on", "ends_on"]
        return ["site", "person", "duty", "starts_on", "ends_on", "recorded_by", "recorded_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "site":
            kwargs["queryset"] = TrialSite.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SubjectConsentForm(_ServiceForm):
    class Meta:
        model = SubjectConsent
        fields = ["subject", "icf_version", "consented_on", "note"]

    def write(self, cleaned):
        return consent.consent_record(
            subject=cleaned["subject"],
            actor=self.actor,
            icf_version=cleaned["icf_version"],
            consented_on=cleaned["consented_on"],
            note=cleaned.get("note") or "",
        )


@admin.register(SubjectConsent)
class SubjectConsentAdmin(KeyedSearchAdmin, _ServiceMixin, CappedCountAdmin, admin.ModelAdmin):
    """Consents per subject: the one at enrolment comes with the ledger entry; re-consents are added here."""

    form = SubjectConsentForm
    list_display = ["subject", "icf_version", "consented_on", "is_reconsent", "recorded_by", "recorded_at"]
    list_filter = ["is_reconsent"]
    search_fields = ["subject__code", "subject__trial__protocol_number"]
    # Subject codes match exactly (the subject table is large), as on the subjects list.
    keyed_search = {"subject": ("code__exact",), "subject__trial": ("protocol_number",)}
    list_select_related = ["subject", "icf_version__document", "recorded_by"]
    autocomplete_fields = ["subject"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(subject__in=EnrolmentSubject.objects.visible_to(request.user))

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "icf_version":
            kwargs["queryset"] = DocumentVersion.objects.visible_to(request.user).filter(document__kind="icf")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
