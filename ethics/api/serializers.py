"""Shapes of the recognition-request API. The lead's result (decision, letter, documents, contact) is filled only
for a viewer ``recognition.requests_with_lead_result_visible_to`` admits; the view decides, not the serializer."""

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ethics import recognition
from ethics.models import EthicsCommittee, RecognitionRequest
from trials.models import DocumentVersion, TrialDocument


def _overdue(request: RecognitionRequest) -> bool:
    return request.status == RecognitionRequest.Status.OPEN and request.due_at <= timezone.now()


class RecognitionRequestSerializer(serializers.ModelSerializer):
    """A recognition request as listed: whose, for which trial, its status and deadline."""

    trial_protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)
    trial_title = serializers.CharField(source="trial.title_zh", read_only=True)
    site_institution = serializers.IntegerField(source="site.institution_id", read_only=True)
    site_institution_name = serializers.CharField(source="site.institution.name_zh", read_only=True)
    committee_name = serializers.CharField(source="committee.name_zh", read_only=True)
    alliance_name = serializers.CharField(source="alliance.name_zh", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    subject_display = serializers.CharField(source="get_subject_display", read_only=True)
    lead_letter_number = serializers.SerializerMethodField(help_text=_("The lead committee's letter number."))
    overdue = serializers.SerializerMethodField(help_text=_("Open and past its deadline."))

    class Meta:
        model = RecognitionRequest
        fields = (
            "id",
            "trial",
            "trial_protocol_number",
            "trial_title",
            "site",
            "site_institution",
            "site_institution_name",
            "committee",
            "committee_name",
            "alliance",
            "alliance_name",
            "subject",
            "subject_display",
            "status",
            "status_display",
            "lead_letter_number",
            "received_at",
            "due_at",
            "overdue",
            "provisional",
            "responded_at",
            "response_note",
            "late",
            "escalated_at",
            "superseded_by",
            "local_review",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_lead_letter_number(self, obj) -> str:
        if obj.lead_decision_id:
            return obj.lead_decision.letter_number
        return obj.external_lead_letter_number

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_overdue(self, obj) -> bool:
        return _overdue(obj)


class LeadDecisionSerializer(serializers.Serializer):
    letter_number = serializers.CharField()
    decided_at = serializers.DateTimeField(
        allow_null=True, help_text=_("In Beijing time; empty for an approval recorded from outside the system.")
    )
    outcome = serializers.CharField()
    outcome_display = serializers.CharField()
    conditions = serializers.CharField(allow_blank=True, help_text=_("Conditions or requested modifications."))
    valid_until = serializers.DateField(allow_null=True)


class LeadCommitteeSerializer(serializers.ModelSerializer):
    class Meta:
        model = EthicsCommittee
        fields = ("id", "name_zh", "name_en", "contact_person", "contact_phone", "contact_email", "address")
        read_only_fields = fields


class CoveredDocumentSerializer(serializers.ModelSerializer):
    """A document version the lead decision approved, downloadable through this request."""

    kind = serializers.ChoiceField(source="document.kind", choices=TrialDocument.Kind.choices, read_only=True)
    kind_display = serializers.CharField(source="document.get_kind_display", read_only=True)
    title = serializers.CharField(source="document.title", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DocumentVersion
        fields = (
            "id",
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
            "download_url",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_download_url(self, obj) -> str:
        url = reverse("recognition-requests-document", args=[self.context["recognition_request"].pk, obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class RecognitionRequestDetailSerializer(RecognitionRequestSerializer):
    """One request with what its participating office judges. ``lead_decision``, ``lead_letter_url``,
    ``documents`` and ``lead_committee`` are empty for viewers who may not open the lead's result."""

    lead_decision = serializers.SerializerMethodField()
    lead_letter_url = serializers.SerializerMethodField()
    lead_letter_sha256 = serializers.SerializerMethodField()
    documents = serializers.SerializerMethodField()
    lead_committee = serializers.SerializerMethodField()
    local_icf = serializers.SerializerMethodField()
    working_hours_left = serializers.SerializerMethodField(
        help_text=_("Working hours until the deadline (Beijing working days); 0 once past or answered.")
    )
    available_steps = serializers.SerializerMethodField(
        help_text=_("The steps you may take now: recognise, recognise_with_conditions, decline, withdraw.")
    )

    class Meta(RecognitionRequestSerializer.Meta):
        fields = (
            *RecognitionRequestSerializer.Meta.fields,
            "lead_decision",
            "lead_letter_url",
            "lead_letter_sha256",
            "documents",
            "lead_committee",
            "local_icf",
            "working_hours_left",
            "available_steps",
        )
        read_only_fields = fields

    def _result(self) -> dict | None:
        return self.context.get("lead_result")

    def _absolute(self, url: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    @extend_schema_field(LeadDecisionSerializer(allow_null=True))
    def get_lead_decision(self, obj):
        result = self._result()
        if not result or result["decision"] is None:
            return None
        return LeadDecisionSerializer(result["decision"]).data

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_lead_letter_url(self, obj):
        result = self._result()
        if not result or result["letter"] is None:
            return None
        return self._absolute(reverse("recognition-requests-lead-letter", args=[obj.pk]))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_lead_letter_sha256(self, obj):
        result = self._result()
        if not result or result["letter"] is None:
            return None
        return result["letter"]["sha256"]

    @extend_schema_field(CoveredDocumentSerializer(many=True))
    def get_documents(self, obj):
        result = self._result()
        if not result:
            return []
        context = {**self.context, "recognition_request": obj}
        return CoveredDocumentSerializer(result["documents"], many=True, context=context).data

    @extend_schema_field(LeadCommitteeSerializer(allow_null=True))
    def get_lead_committee(self, obj):
        result = self._result()
        if not result or result["committee"] is None:
            return None
        return LeadCommitteeSerializer(result["committee"]).data

    @extend_schema_field(CoveredDocumentSerializer(allow_null=True))
    def get_local_icf(self, obj):
        result = self._result()
        if not result or result["local_icf"] is None:
            return None
        return CoveredDocumentSerializer(result["local_icf"], context={**self.context, "recognition_request": obj}).data

    @extend_schema_field(serializers.DecimalField(max_digits=8, decimal_places=2))
    def get_working_hours_left(self, obj):
        left = recognition.working_time_left(obj)
        return f"{left.total_seconds() / 3600:.2f}"

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_available_steps(self, obj):
        request = self.context.get("request")
        return recognition.available_steps(obj, request.user) if request else []


class RespondSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in RecognitionRequest.Status if s.value in recognition.OUTCOMES]
    )
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Required when recognising with conditions or declining."),
    )
    local_icf_file = serializers.FileField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_("Only with recognised_with_conditions: this site's consent form, kept as a new version."),
    )
    local_icf_label = serializers.CharField(required=False, allow_blank=True, default="", max_length=50)
    local_icf_version = serializers.PrimaryKeyRelatedField(
        queryset=DocumentVersion.objects.select_related("document"),
        required=False,
        allow_null=True,
        default=None,
        help_text=_("… or the id of an existing consent-form version of the trial."),
    )


class WithdrawSerializer(serializers.Serializer):
    reason = serializers.CharField()
