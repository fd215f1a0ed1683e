"""REST endpoints for the gates, GCP certificates, delegation logs and subject consents.

Rows come from each model's ``visible_to(user)``; each POST is one service call, which decides whether the actor
may act (DomainError becomes 400/403/409 in cgtclinic.api.exceptions).
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from cgtclinic.api.permissions import RolePermission
from cgtclinic.models import User
from trials import consent, gates, qualifications
from trials.api.serializers import ErrorSerializer, VisibleDocumentVersionField, VisibleSiteField
from trials.models import (
    Delegation,
    Duty,
    EnrolmentSubject,
    Gate,
    GateAnswer,
    GcpCertificate,
    SubjectConsent,
    Trial,
    TrialSite,
)


def _errors(*codes: int) -> dict:
    described = {
        400: _("The input was refused: messages per field, or detail, code and field when a business rule refused it."),
        401: _("Not signed in."),
        403: _("Not allowed for this user."),
        404: _("Not found, or not visible to this user."),
        409: _("Clashes with what is already recorded."),
    }
    responses = {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in codes}
    if 400 in codes:
        # Shape errors come per field from the serializer; rule errors as detail, code and field.
        responses[400] = OpenApiResponse(OpenApiTypes.OBJECT, description=described[400])
    return responses


def _schemas(prefix: str, tag: str, read, write, summaries: tuple, create_response=None, conflict: bool = True):
    """The list, retrieve and create operations of one of these viewsets, documented alike."""
    listed, shown, created = summaries
    return extend_schema_view(
        list=extend_schema(
            operation_id=f"{prefix}_list", summary=listed, responses={200: read, **_errors(400, 401, 403)}, tags=[tag]
        ),
        retrieve=extend_schema(
            operation_id=f"{prefix}_retrieve",
            summary=shown,
            responses={200: read, **_errors(401, 403, 404)},
            tags=[tag],
        ),
        create=extend_schema(
            operation_id=f"{prefix}_create",
            summary=created,
            request=write,
            responses={201: create_response or read, **_errors(400, 401, 403, *((409,) if conflict else ()))},
            tags=[tag],
        ),
    )


class _Visible(serializers.PrimaryKeyRelatedField):
    """A row chosen by id among those the requesting user may see (others read as not existing)."""

    model = None

    def __init__(self, **kwargs):
        super().__init__(queryset=self.model.objects.all(), **kwargs)

    def get_queryset(self):
        return self.model.objects.visible_to(self.context["request"].user)


class VisibleTrialField(_Visible):
    model = Trial


class VisibleSubjectField(_Visible):
    model = EnrolmentSubject


class ColleagueField(serializers.PrimaryKeyRelatedField):
    """A person chosen by id among the active staff of the requesting user's institution (superusers: anyone)."""

    def __init__(self, **kwargs):
        super().__init__(queryset=User.objects.all(), **kwargs)

    def get_queryset(self):
        user = self.context["request"].user
        people = User.objects.filter(is_active=True)
        return people if user.is_superuser else people.filter(institution_id=user.institution_id)


# --- serializers ------------------------------------------------------------------------------------------------


class GateAnswerSerializer(serializers.ModelSerializer):
    gate_display = serializers.CharField(source="get_gate_display", read_only=True)
    outcome_display = serializers.CharField(source="get_outcome_display", read_only=True)
    recorded_by_name = serializers.CharField(source="recorded_by.full_name", read_only=True)

    class Meta:
        model = GateAnswer
        fields = (
            "id",
            "trial",
            "site",
            "gate",
            "gate_display",
            "outcome",
            "outcome_display",
            "reference_number",
            "met_on",
            "reason",
            "recorded_by",
            "recorded_by_name",
            "recorded_at",
        )
        read_only_fields = fields


class GateAnswerWriteSerializer(serializers.Serializer):
    trial = VisibleTrialField()
    site = VisibleSiteField(required=False, allow_null=True, default=None, help_text=_("For a site gate only."))
    gate = serializers.ChoiceField(choices=Gate.choices)
    outcome = serializers.ChoiceField(choices=GateAnswer.Outcome.choices)
    reference_number = serializers.CharField(max_length=100, allow_blank=True, default="")
    met_on = serializers.DateField(required=False, allow_null=True, default=None)
    reason = serializers.CharField(max_length=2000, allow_blank=True, default="")


class GateStateSerializer(serializers.Serializer):
    gate = serializers.ChoiceField(choices=Gate.choices)
    label = serializers.CharField()
    site = serializers.IntegerField(source="site.pk", allow_null=True, default=None)
    outcome = serializers.CharField(source="answer.outcome", allow_null=True, default=None)
    met_today = serializers.SerializerMethodField()
    how_to_meet = serializers.SerializerMethodField()

    def get_met_today(self, state) -> bool:
        return state.met_on(None)

    def get_how_to_meet(self, state) -> str:
        return str(gates.HOW_TO_MEET[state.gate])


class CertificateSerializer(serializers.ModelSerializer):
    person_name = serializers.CharField(source="person.full_name", read_only=True)

    class Meta:
        model = GcpCertificate
        fields = ("id", "person", "person_name", "number", "issuer", "issued_on", "expires_on", "recorded_at")
        read_only_fields = fields


class CertificateWriteSerializer(serializers.Serializer):
    person = ColleagueField(help_text=_("The holder: yourself, or (research and ethics offices) a colleague."))
    number = serializers.CharField(max_length=100)
    issuer = serializers.CharField(max_length=200)
    issued_on = serializers.DateField()
    expires_on = serializers.DateField()


class DelegationSerializer(serializers.ModelSerializer):
    person_name = serializers.CharField(source="person.full_name", read_only=True)
    duty_display = serializers.CharField(source="get_duty_display", read_only=True)

    class Meta:
        model = Delegation
        fields = ("id", "site", "person", "person_name", "duty", "duty_display", "starts_on", "ends_on")
        read_only_fields = fields


class DelegationWriteSerializer(serializers.Serializer):
    site = VisibleSiteField()
    person = ColleagueField()
    duties = serializers.ListField(child=serializers.ChoiceField(choices=Duty.choices), min_length=1, max_length=10)
    starts_on = serializers.DateField()
    ends_on = serializers.DateField(required=False, allow_null=True, default=None)


class DelegationEndSerializer(serializers.Serializer):
    ends_on = serializers.DateField()


class ConsentSerializer(serializers.ModelSerializer):
    subject_code = serializers.CharField(source="subject.code", read_only=True)

    class Meta:
        model = SubjectConsent
        fields = ("id", "subject", "subject_code", "icf_version", "consented_on", "is_reconsent", "recorded_at")
        read_only_fields = fields


class ConsentWriteSerializer(serializers.Serializer):
    subject = VisibleSubjectField()
    icf_version = VisibleDocumentVersionField()
    consented_on = serializers.DateField()
    note = serializers.CharField(max_length=300, allow_blank=True, default="")


class ReconsentDueSerializer(serializers.Serializer):
    subject = serializers.IntegerField(source="subject.pk")
    subject_code = serializers.CharField(source="subject.code")
    site = serializers.IntegerField(source="subject.site_id")
    signed_version = serializers.IntegerField(source="signed.pk")
    current_version = serializers.IntegerField(source="current.pk")


# --- views --------------------------------------------------------------------------------------------------------


class _ServiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [RolePermission]
    write_serializer_class = None

    def get_serializer_class(self):
        if self.action == "create":
            return self.write_serializer_class
        return self.serializer_class

    def respond_with(self, instance, code=status.HTTP_201_CREATED) -> Response:
        fresh = self.get_queryset().get(pk=instance.pk)
        return Response(self.serializer_class(fresh, context=self.get_serializer_context()).data, status=code)


@_schemas(
    "gate_answers",
    "gates",
    GateAnswerSerializer,
    GateAnswerWriteSerializer,
    (
        _("List the gate answers of the trials visible to you"),
        _("Show one gate answer"),
        _("Answer a trial's (or a site's) gate: met, not applicable (with the reason) or pending"),
    ),
    conflict=False,
)
class GateAnswerViewSet(_ServiceViewSet):
    serializer_class = GateAnswerSerializer
    write_serializer_class = GateAnswerWriteSerializer

    def get_queryset(self):
        return (
            GateAnswer.objects.visible_to(self.request.user)
            .select_related("recorded_by")
            .order_by("trial_id", "gate", "site_id", "pk")
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        answer = gates.gate_answer(actor=request.user, **serializer.validated_data)
        return self.respond_with(answer)

    @extend_schema(
        operation_id="gate_answers_status",
        summary=_("Every gate that applies to a trial, its answer and whether it is met today"),
        parameters=[OpenApiParameter("trial", int, required=True, description=_("The trial's id."))],
        responses={200: GateStateSerializer(many=True), **_errors(400, 401, 403, 404)},
        tags=["gates"],
    )
    @action(detail=False, methods=["get"], url_path="status", pagination_class=None)
    def gate_status(self, request):
        try:
            trial_id = int(request.query_params.get("trial", ""))
        except ValueError as exc:
            raise ValidationError({"trial": [_("Give the trial's id.")]}) from exc
        trial = Trial.objects.visible_to(request.user).filter(pk=trial_id).first()
        if trial is None:
            return Response({"detail": str(_("Not found.")), "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
        sites = list(TrialSite.objects.visible_to(request.user).filter(trial=trial).select_related("institution"))
        return Response(GateStateSerializer(gates.gate_states(trial, sites), many=True).data)


@_schemas(
    "gcp_certificates",
    "qualifications",
    CertificateSerializer,
    CertificateWriteSerializer,
    (
        _("List the GCP training certificates visible to you"),
        _("Show one GCP training certificate"),
        _("Record a GCP training certificate"),
    ),
)
class GcpCertificateViewSet(_ServiceViewSet):
    serializer_class = CertificateSerializer
    write_serializer_class = CertificateWriteSerializer

    def get_queryset(self):
        return (
            GcpCertificate.objects.visible_to(self.request.user).select_related("person").order_by("-expires_on", "-pk")
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.respond_with(qualifications.certificate_record(actor=request.user, **serializer.validated_data))


@_schemas(
    "delegations",
    "qualifications",
    DelegationSerializer,
    DelegationWriteSerializer,
    (
        _("List the delegation-log lines of the sites visible to you"),
        _("Show one delegation-log line"),
        _("Delegate duties at a site to a person from a day (one line per duty)"),
    ),
    create_response=DelegationSerializer(many=True),
)
class DelegationViewSet(_ServiceViewSet):
    serializer_class = DelegationSerializer
    write_serializer_class = DelegationWriteSerializer

    def get_queryset(self):
        return Delegation.objects.visible_to(self.request.user).select_related("person").order_by("site_id", "pk")

    def get_serializer_class(self):
        if self.action == "end":
            return DelegationEndSerializer
        return super().get_serializer_class()

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lines = qualifications.delegation_record(actor=request.user, **serializer.validated_data)
        data = DelegationSerializer(lines, many=True, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="delegations_end",
        summary=_("End a delegation-log line on a day"),
        request=DelegationEndSerializer,
        responses={200: DelegationSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["qualifications"],
    )
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        line = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ended = qualifications.delegation_end(delegation=line, actor=request.user, **serializer.validated_data)
        return self.respond_with(ended, status.HTTP_200_OK)


class _ViewConsents(RolePermission):
    """Reading consents follows the subject codes (regulators see none); recording needs the add permission."""

    def get_required_permissions(self, method, model_cls):
        if method in ("GET", "HEAD", "OPTIONS"):
            return ["trials.view_enrolmentsubject"]
        return ["trials.add_subjectconsent"]


@_schemas(
    "subject_consents",
    "enrolment",
    ConsentSerializer,
    ConsentWriteSerializer,
    (
        _("List the consents of the subjects visible to you"),
        _("Show one consent"),
        _("Record a subject's (re-)consent to an approved ICF version"),
    ),
)
class SubjectConsentViewSet(_ServiceViewSet):
    serializer_class = ConsentSerializer
    write_serializer_class = ConsentWriteSerializer
    permission_classes = [_ViewConsents]
    queryset = SubjectConsent.objects.none()

    def get_queryset(self):
        subjects = EnrolmentSubject.objects.visible_to(self.request.user)
        return SubjectConsent.objects.filter(subject__in=subjects).select_related("subject").order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.respond_with(consent.consent_record(actor=request.user, **serializer.validated_data))

    @extend_schema(
        operation_id="subject_consents_reconsent_due",
        summary=_("Subjects on study whose latest consent is on an earlier ICF version than the newest approved"),
        responses={200: ReconsentDueSerializer(many=True), **_errors(401, 403)},
        tags=["enrolment"],
    )
    @action(detail=False, methods=["get"], url_path="reconsent-due", pagination_class=None)
    def reconsent_due(self, request):
        sites = TrialSite.objects.visible_to(request.user)
        due = consent.reconsent_due(sites, limit=200)
        return Response(ReconsentDueSerializer(due, many=True).data)
