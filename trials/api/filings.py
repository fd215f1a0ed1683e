"""REST for IIT governance and research filings: the review and new-technology actions on a trial, the trial
payload's governance block, and the filings list with its record action. Each write is one trials.filings call."""

from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from trials import filings
from trials.models import FilingObligation, TrialReview


class ReviewStateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TrialReview.Kind.choices)
    state = serializers.ChoiceField(choices=[(filings.NOT_REVIEWED, "not_reviewed"), *TrialReview.Outcome.choices])
    state_display = serializers.CharField()
    decided_on = serializers.DateField(allow_null=True)
    comments = serializers.CharField(allow_blank=True)


class GovernanceSerializer(serializers.Serializer):
    applies = serializers.BooleanField(help_text=_("Whether the trial (an IIT) needs academic review and 立项."))
    reviews = ReviewStateSerializer(many=True)
    missing_before_activation = serializers.ListField(
        child=serializers.CharField(), help_text=_("What the trial still lacks before it may be activated.")
    )
    available_review_steps = serializers.DictField(
        child=serializers.ListField(child=serializers.ChoiceField(choices=TrialReview.Outcome.choices)),
        help_text=_("Per review kind, the outcomes you may record now with POST /trials/{id}/review/."),
    )


def governance_payload(trial, user) -> dict:
    """The governance block of the trial payload (no query beyond the prefetched reviews)."""
    latest = filings.latest_reviews(trial)
    return {
        "applies": filings.needs_reviews(trial),
        "reviews": [
            {
                "kind": kind,
                "state": (state := filings.review_state(trial, kind, latest)),
                "state_display": str(filings.STATE_LABELS[state]),
                "decided_on": latest[kind].decided_on if latest[kind] else None,
                "comments": latest[kind].comments if latest[kind] else "",
            }
            for kind in TrialReview.Kind.values
        ],
        "missing_before_activation": filings.missing_before_activation(trial, latest),
        "available_review_steps": filings.available_review_steps(trial, user, latest),
    }


class GovernanceFieldMixin(serializers.Serializer):
    governance = serializers.SerializerMethodField()

    @extend_schema_field(GovernanceSerializer)
    def get_governance(self, trial) -> dict:
        request = self.context.get("request")
        return governance_payload(trial, request.user) if request is not None else {}


class ReviewInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TrialReview.Kind.choices)
    outcome = serializers.ChoiceField(choices=TrialReview.Outcome.choices)
    decided_on = serializers.DateField(required=False, help_text=_("Defaults to today (Beijing)."))
    comments = serializers.CharField(
        required=False, allow_blank=True, max_length=4000, help_text=_("Required unless the outcome is passed.")
    )


class NewTechnologyInputSerializer(serializers.Serializer):
    answer = serializers.BooleanField(help_text=_("Whether the trial is biomedical new-technology clinical research."))
    reason = serializers.CharField(max_length=4000)


class FilingSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)

    class Meta:
        model = FilingObligation
        fields = (
            "id",
            "trial",
            "protocol_number",
            "kind",
            "kind_display",
            "basis_on",
            "due_at",
            "remind_at",
            "provisional",
            "provisional_years",
            "status",
            "status_display",
            "filed_on",
            "filing_number",
            "document",
            "late",
            "escalated_at",
            "note",
        )
        read_only_fields = fields


class FilingRecordSerializer(serializers.Serializer):
    filed_on = serializers.DateField()
    filing_number = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text=_("Required for the initial filing and the new-technology filing."),
    )
    document = serializers.FileField(required=False, help_text=_("The document filed (PDF or image)."))
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class FilingFilter(django_filters.FilterSet):
    class Meta:
        model = FilingObligation
        fields = ("trial", "kind", "status", "late")


ERRORS = {
    400: _("The input was refused: messages per field, or detail, code and field when a business rule refused it."),
    401: _("Not signed in."),
    403: _("Not allowed for this user."),
    404: _("Not found, or not visible to this user."),
    409: _("This filing is no longer due: it cannot be recorded again."),
}


def _errors(*codes):
    # Kept here rather than imported from trials.api.views, which imports this module through its serializers.
    return {code: OpenApiResponse(OpenApiTypes.OBJECT, description=ERRORS[code]) for code in codes}


@extend_schema_view(
    list=extend_schema(
        operation_id="filings_list",
        summary=_("List the research filings of the trials visible to you"),
        responses={200: FilingSerializer(many=True), **_errors(400, 401, 403)},
        tags=["filings"],
    ),
    retrieve=extend_schema(
        operation_id="filings_retrieve",
        summary=_("Show one research filing"),
        responses={200: FilingSerializer, **_errors(401, 403, 404)},
        tags=["filings"],
    ),
)
class FilingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Research filings and their deadlines; a filing is recorded with POST /filings/{id}/record/."""

    serializer_class = FilingSerializer
    filterset_class = FilingFilter
    ordering = ("due_at", "id")

    def get_permissions(self):
        from trials.api.views import ViewThenServiceDecides  # views imports this module

        return [ViewThenServiceDecides()]

    def get_queryset(self):
        return FilingObligation.objects.visible_to(self.request.user).select_related("trial").order_by("due_at", "id")

    def get_serializer_class(self):
        return FilingRecordSerializer if self.action == "record" else FilingSerializer

    @extend_schema(
        operation_id="filings_record",
        summary=_("Record that a filing was made"),
        request={"multipart/form-data": FilingRecordSerializer, "application/json": FilingRecordSerializer},
        responses={200: FilingSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["filings"],
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def record(self, request, pk=None):
        obligation = self.get_object()
        serializer = FilingRecordSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        filings.filing_record(
            obligation=obligation,
            actor=request.user,
            filed_on=data["filed_on"],
            filing_number=data.get("filing_number", ""),
            document_file=data.get("document"),
            note=data.get("note", ""),
        )
        fresh = self.get_queryset().get(pk=obligation.pk)
        return Response(FilingSerializer(fresh, context=self.get_serializer_context()).data, status=status.HTTP_200_OK)
