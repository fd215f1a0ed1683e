"""API shapes for trials, sites, documents and the public directory.

Read serializers are read-only and carry readable labels next to codes. Write serializers only check the
shape of the input; the services in trials.services decide whether the change is allowed.
"""

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cgtclinic.models import Institution, Region, Sponsor, User
from cgtclinic.roles import INSTITUTION_ROLES
from trials import services
from trials.api.filings import GovernanceFieldMixin
from trials.models import DocumentVersion, EnrolmentEntry, Trial, TrialDocument, TrialSite


def sees_personal_data(user) -> bool:
    """Contact details and user names are for the institutions' own people; everyone else gets names only."""
    return user.is_authenticated and (user.is_superuser or getattr(user, "role", None) in INSTITUTION_ROLES)


class VisibleTrialField(serializers.PrimaryKeyRelatedField):
    """A trial chosen by id, among the trials the requesting user may see (others read as not existing)."""

    def __init__(self, **kwargs):
        super().__init__(queryset=Trial.objects.all(), **kwargs)

    def get_queryset(self):
        return Trial.objects.visible_to(self.context["request"].user)


class ErrorSerializer(serializers.Serializer):
    """The body of a refused request."""

    detail = serializers.CharField(help_text=_("What went wrong, in the user's language."))
    code = serializers.CharField(required=False, help_text=_("A stable code for the error."))
    field = serializers.CharField(required=False, help_text=_("The input field the error is about, if any."))


# Directory ------------------------------------------------------------------------------------------------


class RegionSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)

    class Meta:
        model = Region
        fields = ("id", "code", "name", "name_zh", "name_en")
        read_only_fields = fields


class InstitutionSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)
    region_code = serializers.CharField(source="region.code", read_only=True)
    region_name = serializers.CharField(source="region.name", read_only=True)

    class Meta:
        model = Institution
        fields = (
            "id",
            "name",
            "name_zh",
            "name_en",
            "short_name",
            "grade",
            "credit_code",
            "region",
            "region_code",
            "region_name",
            "is_active",
        )
        read_only_fields = fields


class SponsorSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    region_code = serializers.CharField(source="region.code", read_only=True)
    region_name = serializers.CharField(source="region.name", read_only=True)

    class Meta:
        model = Sponsor
        fields = (
            "id",
            "name",
            "name_zh",
            "name_en",
            "kind",
            "kind_display",
            "credit_code",
            "is_cgt_enterprise",
            "region",
            "region_code",
            "region_name",
        )
        read_only_fields = fields


class PersonSerializer(serializers.ModelSerializer):
    """A person with contact details, shown to the institutions' own people."""

    class Meta:
        model = User
        fields = ("id", "username", "full_name", "professional_title", "email", "phone")
        read_only_fields = fields


# Trials ---------------------------------------------------------------------------------------------------

TRIAL_READ_FIELDS = (
    "id",
    "protocol_number",
    "title_zh",
    "title_en",
    "kind",
    "kind_display",
    "therapy_category",
    "therapy_category_display",
    "phase",
    "phase_display",
    "status",
    "status_display",
    "status_changed_at",
    "sponsor",
    "sponsor_name",
    "lead_institution",
    "lead_institution_name",
    "region_code",
    "region_name",
    "department",
    "department_name",
    "target_enrolment",
    "nmpa_approval_number",
    "nmpa_approved_on",
    "filing_number",
    "filed_on",
    "is_new_technology",
    "new_technology_reason",
    "governance",
    "chictr_id",
    "nct_id",
    "hgr_status",
    "hgr_status_display",
    "hgr_approval_number",
    "created_at",
    "updated_at",
    "available_steps",
)


class _TrialReadBase(GovernanceFieldMixin, serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    therapy_category_display = serializers.CharField(source="get_therapy_category_display", read_only=True)
    phase_display = serializers.CharField(source="get_phase_display", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    hgr_status_display = serializers.CharField(source="get_hgr_status_display", read_only=True)
    sponsor_name = serializers.CharField(source="sponsor.name", read_only=True, allow_null=True)
    lead_institution_name = serializers.CharField(source="lead_institution.name", read_only=True)
    region_code = serializers.CharField(source="lead_institution.region.code", read_only=True)
    region_name = serializers.CharField(source="lead_institution.region.name", read_only=True)
    department_name = serializers.CharField(source="department.name", read_only=True, allow_null=True)
    available_steps = serializers.SerializerMethodField(
        help_text=_(
            "The lifecycle steps the trial's status allows and you may take now, each a POST action on the trial "
            "(start_review is /start-review/)."
        )
    )

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=services.STEPS)))
    def get_available_steps(self, trial) -> list[str]:
        request = self.context.get("request")
        return services.available_steps(trial, request.user) if request is not None else []


class TrialSerializer(_TrialReadBase):
    """A trial as the institutions' own people see it."""

    pi = PersonSerializer(read_only=True)
    created_by = PersonSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Trial
        fields = (*TRIAL_READ_FIELDS, "pi", "created_by")
        read_only_fields = fields


class TrialRegulatorSerializer(_TrialReadBase):
    """A trial without personal data: the PI by name only, and no record of who entered it."""

    pi_name = serializers.CharField(source="pi.full_name", read_only=True)

    class Meta:
        model = Trial
        fields = (*TRIAL_READ_FIELDS, "pi_name")
        read_only_fields = fields


class TrialWriteSerializer(serializers.ModelSerializer):
    """The master-record fields staff may set; the status only moves through the lifecycle actions."""

    class Meta:
        model = Trial
        fields = services.TRIAL_EDITABLE_FIELDS
        # Uniqueness is checked once, by the service.
        validators = []


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        allow_blank=True, max_length=2000, help_text=_("Why this step is taken; kept in the trial's history.")
    )


class OptionalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text=_("Optional note kept in the trial's history.")
    )


# Sites ----------------------------------------------------------------------------------------------------

SITE_READ_FIELDS = (
    "id",
    "trial",
    "trial_protocol_number",
    "trial_title",
    "trial_status",
    "institution",
    "institution_name",
    "region_code",
    "role",
    "role_display",
    "site_target",
    *TrialSite.MILESTONES,
    "startup_days",
    "days_to_first_patient",
)


class _SiteReadBase(serializers.ModelSerializer):
    trial_protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)
    trial_title = serializers.CharField(source="trial.title", read_only=True)
    trial_status = serializers.ChoiceField(source="trial.status", choices=Trial.Status.choices, read_only=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True)
    region_code = serializers.CharField(source="institution.region.code", read_only=True)
    role_display = serializers.CharField(source="get_role_display", read_only=True)
    startup_days = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text=_("Calendar days from submission received to site initiation."),
    )
    days_to_first_patient = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text=_("Calendar days from submission received to the first patient in."),
    )


class TrialSiteSerializer(_SiteReadBase):
    site_pi = PersonSerializer(read_only=True, allow_null=True)

    class Meta:
        model = TrialSite
        fields = (*SITE_READ_FIELDS, "site_pi")
        read_only_fields = fields


class TrialSiteRegulatorSerializer(_SiteReadBase):
    """A site without personal data: the site PI by name only."""

    site_pi_name = serializers.CharField(source="site_pi.full_name", read_only=True, allow_null=True)

    class Meta:
        model = TrialSite
        fields = (*SITE_READ_FIELDS, "site_pi_name")
        read_only_fields = fields


class TrialSiteCreateSerializer(serializers.ModelSerializer):
    trial = VisibleTrialField(help_text=_("The trial to add the site to."))

    class Meta:
        model = TrialSite
        fields = ("trial", "institution", "site_pi", "site_target", *TrialSite.MILESTONES)
        validators = []


class TrialSiteUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrialSite
        fields = services.SITE_EDITABLE_FIELDS


# Documents ------------------------------------------------------------------------------------------------


class DocumentVersionSerializer(serializers.ModelSerializer):
    """A stored version of a trial document. The file is only reachable through ``download_url``."""

    trial = serializers.IntegerField(source="document.trial_id", read_only=True)
    trial_protocol_number = serializers.CharField(source="document.trial.protocol_number", read_only=True)
    kind = serializers.ChoiceField(source="document.kind", choices=TrialDocument.Kind.choices, read_only=True)
    kind_display = serializers.CharField(source="document.get_kind_display", read_only=True)
    title = serializers.CharField(source="document.title", read_only=True)
    uploaded_by_name = serializers.CharField(source="uploaded_by.full_name", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DocumentVersion
        fields = (
            "id",
            "trial",
            "trial_protocol_number",
            "document",
            "kind",
            "kind_display",
            "title",
            "number",
            "version_label",
            "version_date",
            "original_name",
            "content_type",
            "size",
            "sha256",
            "note",
            "uploaded_by_name",
            "uploaded_at",
            "download_url",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_download_url(self, version: DocumentVersion) -> str:
        url = reverse("documents-download", args=[version.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class DocumentUploadSerializer(serializers.Serializer):
    trial = VisibleTrialField()
    kind = serializers.ChoiceField(choices=TrialDocument.Kind.choices)
    title = serializers.CharField(
        max_length=200, help_text=_("Versions of a document share its kind and title; a new title starts a document.")
    )
    file = serializers.FileField(help_text=_("PDF, Word, Excel, JPEG or PNG."))
    version_label = serializers.CharField(max_length=50, allow_blank=True, default="")
    version_date = serializers.DateField(allow_null=True, default=None)
    note = serializers.CharField(max_length=300, allow_blank=True, default="")


# Enrolment ------------------------------------------------------------------------------------------------


class VisibleSiteField(serializers.PrimaryKeyRelatedField):
    """A trial site chosen by id, among the sites the requesting user may see (others read as not existing)."""

    def __init__(self, **kwargs):
        super().__init__(queryset=TrialSite.objects.all(), **kwargs)

    def get_queryset(self):
        return TrialSite.objects.visible_to(self.context["request"].user).select_related("trial")


class VisibleDocumentVersionField(serializers.PrimaryKeyRelatedField):
    """A document version chosen by id, among those the requesting user may see."""

    def __init__(self, **kwargs):
        super().__init__(queryset=DocumentVersion.objects.all(), **kwargs)

    def get_queryset(self):
        return DocumentVersion.objects.visible_to(self.context["request"].user).select_related("document")


class EnrolmentEntrySerializer(serializers.ModelSerializer):
    """One ledger line. A correction has ``reverses`` set and a negative ``signed_count``; an entry that has
    been corrected has ``reversed_by``."""

    trial_protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)
    institution = serializers.IntegerField(source="site.institution_id", read_only=True)
    institution_name = serializers.CharField(source="site.institution.name", read_only=True)
    kind = serializers.ChoiceField(choices=EnrolmentEntry.Kind.choices, read_only=True)
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    signed_count = serializers.IntegerField(
        read_only=True, help_text=_("The count as it moves the totals: negative for a correction.")
    )
    subject_code = serializers.CharField(source="subject.code", read_only=True, allow_null=True)
    is_correction = serializers.BooleanField(read_only=True)
    reversed_by = serializers.IntegerField(
        source="reversed_by.pk", read_only=True, allow_null=True, help_text=_("The entry that reverses this one.")
    )
    reported_by_name = serializers.CharField(source="reported_by.full_name", read_only=True)

    class Meta:
        model = EnrolmentEntry
        fields = (
            "id",
            "trial",
            "trial_protocol_number",
            "site",
            "institution",
            "institution_name",
            "kind",
            "kind_display",
            "occurred_on",
            "count",
            "signed_count",
            "subject_code",
            "note",
            "is_correction",
            "reverses",
            "reason",
            "reversed_by",
            "reported_by_name",
            "reported_at",
        )
        read_only_fields = fields


class EnrolmentEntryCreateSerializer(serializers.Serializer):
    """An enrolment event to add to a site's ledger; the service checks approval, trial status and counts."""

    site = VisibleSiteField(help_text=_("The trial site reporting."))
    kind = serializers.ChoiceField(choices=EnrolmentEntry.Kind.choices)
    occurred_on = serializers.DateField(help_text=_("The day the event happened (not in the future)."))
    count = serializers.IntegerField(min_value=1, default=1, help_text=_("Number of subjects; 1 with a subject code."))
    subject_code = serializers.CharField(
        max_length=30,
        allow_blank=True,
        default="",
        help_text=_("Optional pseudonymous code such as RK-001. Never a name, an ID-card number or a phone number."),
    )
    note = serializers.CharField(max_length=300, allow_blank=True, default="")
    icf_version = VisibleDocumentVersionField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_(
            "For the enrolment of a named subject: the approved ICF version (document version id) they signed; "
            "required once the trial has an approved ICF."
        ),
    )
    consented_on = serializers.DateField(
        required=False, allow_null=True, default=None, help_text=_("The consent date, on or before the enrolment.")
    )


class CorrectionReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        allow_blank=True, max_length=2000, help_text=_("Why the entry is reversed; kept in the ledger.")
    )


class SiteEnrolmentSerializer(serializers.Serializer):
    """A site's enrolment against its target, from the ledger's cached counts. No subject codes, no people."""

    site = serializers.IntegerField(source="site.pk", read_only=True)
    trial = serializers.IntegerField(source="site.trial_id", read_only=True)
    trial_protocol_number = serializers.CharField(source="site.trial.protocol_number", read_only=True)
    trial_title = serializers.CharField(source="site.trial.title", read_only=True)
    trial_status = serializers.ChoiceField(source="site.trial.status", choices=Trial.Status.choices, read_only=True)
    institution = serializers.IntegerField(source="site.institution_id", read_only=True)
    institution_name = serializers.CharField(source="site.institution.name", read_only=True)
    region_code = serializers.CharField(source="site.institution.region.code", read_only=True)
    role = serializers.ChoiceField(source="site.role", choices=TrialSite.SiteRole.choices, read_only=True)
    target = serializers.IntegerField(read_only=True)
    screened = serializers.IntegerField(read_only=True)
    enrolled = serializers.IntegerField(read_only=True)
    screen_failed = serializers.IntegerField(read_only=True)
    withdrawn = serializers.IntegerField(read_only=True)
    completed = serializers.IntegerField(read_only=True)
    on_study = serializers.IntegerField(read_only=True, help_text=_("Enrolled, neither withdrawn nor completed."))
    percent = serializers.IntegerField(
        read_only=True, allow_null=True, help_text=_("Enrolled as a percentage of the target.")
    )
    last_enrolled_on = serializers.DateField(read_only=True, allow_null=True)
    over_target = serializers.BooleanField(read_only=True)
    stalled = serializers.BooleanField(
        read_only=True,
        help_text=_("An active trial's initiated site below target with no enrolment for a long time."),
    )


class TrialEnrolmentSerializer(serializers.Serializer):
    """A trial's enrolment summed over the sites the caller may see, against the sum of their targets."""

    trial = serializers.IntegerField(source="trial.pk", read_only=True)
    trial_protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)
    trial_title = serializers.CharField(source="trial.title", read_only=True)
    trial_status = serializers.ChoiceField(source="trial.status", choices=Trial.Status.choices, read_only=True)
    trial_target_enrolment = serializers.IntegerField(source="trial.target_enrolment", read_only=True)
    sites = serializers.IntegerField(read_only=True, help_text=_("Sites counted (those visible to the caller)."))
    target = serializers.IntegerField(read_only=True, help_text=_("Sum of the counted sites' targets."))
    screened = serializers.IntegerField(read_only=True)
    enrolled = serializers.IntegerField(read_only=True)
    on_study = serializers.IntegerField(read_only=True)
    percent = serializers.IntegerField(read_only=True, allow_null=True)
    last_enrolled_on = serializers.DateField(read_only=True, allow_null=True)
    over_target = serializers.BooleanField(read_only=True)
    over_target_sites = serializers.IntegerField(read_only=True)
    stalled_sites = serializers.IntegerField(read_only=True)
