"""REST endpoints for subsidy programs and claims: hospitals prepare and submit, regulators review and decide.

Rows come from each model's ``visible_to(user)`` (a regulator sees the submitted claims of its region, never a
draft); every step is one service call in subsidies.services, which decides whether the actor may take it
(DomainError becomes 400/403/409 in cgtclinic.api.exceptions).
"""

from django.db.models import Prefetch
from django.http import HttpResponse
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from cgtclinic.i18n import requested_language
from subsidies import exports, services
from subsidies.api import filters, serializers
from subsidies.models import Claim, ClaimLine, ClaimPayment, ClaimStatusChange, SubsidyProgram
from trials.api.serializers import ErrorSerializer
from trials.api.views import ViewThenServiceDecides, _errors

_CONFLICT = gettext_lazy("Not allowed in the claim's current status.")


def _claim_errors(*codes: int) -> dict:
    responses = _errors(*codes)
    if 409 in codes:
        responses[409] = OpenApiResponse(ErrorSerializer, description=_CONFLICT)
    return responses


_LINE_PARAMETER = OpenApiParameter(
    "line_id", int, OpenApiParameter.PATH, description=gettext_lazy("Id of a line of this claim.")
)


def _step_schema(operation_id: str, summary: str, request=None, description: str | None = None, parameters=()):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        parameters=list(parameters),
        request=request,
        responses={200: serializers.ClaimDetailSerializer, **_claim_errors(400, 401, 403, 404, 409)},
        tags=["claims"],
    )


@extend_schema_view(
    list=extend_schema(
        operation_id="subsidy_programs_list",
        summary=gettext_lazy("List the subsidy programs visible to you"),
        description=gettext_lazy(
            "Hospital staff see every program; a regulator sees its region's. Each program carries its "
            "eligibility rules and the numbers of its amount rule in force today, with their source clause."
        ),
        responses={200: serializers.SubsidyProgramSerializer, **_errors(400, 401, 403)},
        tags=["subsidy programs"],
    ),
    retrieve=extend_schema(
        operation_id="subsidy_programs_retrieve",
        summary=gettext_lazy("Show one subsidy program"),
        responses={200: serializers.SubsidyProgramSerializer, **_errors(401, 403, 404)},
        tags=["subsidy programs"],
    ),
)
class SubsidyProgramViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Subsidy programs: policy data from the seeds. Only a fixed amount is set here, by the region's regulator."""

    serializer_class = serializers.SubsidyProgramSerializer
    filterset_class = filters.SubsidyProgramFilter
    search_fields = ("code", "name_zh", "name_en")
    ordering_fields = ("code", "year_from")
    ordering = ("region__code", "code")

    def get_queryset(self):
        return (
            SubsidyProgram.objects.visible_to(self.request.user)
            .select_related("region", "fixed_amount_set_by")
            .prefetch_related("eligibility_rules")
        )

    def get_serializer_class(self):
        if self.action == "set_fixed_amount":
            return serializers.FixedAmountSerializer
        return serializers.SubsidyProgramSerializer

    @extend_schema(
        operation_id="subsidy_programs_set_fixed_amount",
        summary=gettext_lazy("Set the fixed amount per project of a fixed-amount program"),
        description=gettext_lazy("For a regulator of the program's region. Claims already submitted keep theirs."),
        request=serializers.FixedAmountSerializer,
        responses={200: serializers.SubsidyProgramSerializer, **_errors(400, 401, 403, 404)},
        tags=["subsidy programs"],
    )
    @action(detail=True, methods=["post"], url_path="set-fixed-amount", permission_classes=[ViewThenServiceDecides])
    def set_fixed_amount(self, request, pk=None):
        program = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.program_set_fixed_amount(program=program, actor=request.user, **serializer.validated_data)
        fresh = self.get_queryset().get(pk=program.pk)
        return Response(serializers.SubsidyProgramSerializer(fresh, context=self.get_serializer_context()).data)


_LANGUAGE_PARAMETER = OpenApiParameter(
    "language",
    str,
    enum=list(exports.LANGUAGES),
    description=gettext_lazy("Language of the document; by default the request's."),
)
_SCOPE_NOTE = gettext_lazy(
    "A hospital's research office sees its hospital's claims; a regulator sees the submitted claims of its region "
    "(never a draft). Money is a string in RMB with two decimals; explanations and reasons come in the request's "
    "language."
)


@extend_schema_view(
    list=extend_schema(
        operation_id="claims_list",
        summary=gettext_lazy("List the subsidy claims visible to you, with their lines"),
        description=_SCOPE_NOTE,
        responses={200: serializers.ClaimSerializer, **_errors(400, 401, 403)},
        tags=["claims"],
    ),
    retrieve=extend_schema(
        operation_id="claims_retrieve",
        summary=gettext_lazy("Show one claim with its lines, history and frozen snapshot"),
        description=_SCOPE_NOTE,
        responses={200: serializers.ClaimDetailSerializer, **_errors(401, 403, 404)},
        tags=["claims"],
    ),
    create=extend_schema(
        operation_id="claims_open",
        summary=gettext_lazy("Open a draft claim; its lines are proposed from the enrolment ledger"),
        description=gettext_lazy(
            "For the hospital's research office. One claim per hospital and program can be open (draft, submitted "
            "or under review) at a time."
        ),
        request=serializers.ClaimOpenSerializer,
        responses={201: serializers.ClaimDetailSerializer, **_errors(400, 401, 403)},
        tags=["claims"],
    ),
    destroy=extend_schema(
        operation_id="claims_discard",
        summary=gettext_lazy("Discard a draft claim"),
        responses={204: None, **_claim_errors(401, 403, 404, 409)},
        tags=["claims"],
    ),
)
class ClaimViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Subsidy claims. The status moves only through the POST actions, each one service step."""

    input_serializer_classes = {
        "create": serializers.ClaimOpenSerializer,
        "cost_items": serializers.CostItemSerializer,
        "exclude_line": serializers.ExcludeSerializer,
        "decide": serializers.DecideSerializer,
        "pay": serializers.PaySerializer,
    }
    filterset_class = filters.ClaimFilter
    search_fields = ("program__code", "program__name_zh", "program__name_en", "institution__name_zh")
    ordering_fields = ("year", "opened_at", "submitted_at", "status_changed_at", "amount_claimed")
    ordering = ("-year", "-opened_at", "-id")

    def get_queryset(self):
        queryset = (
            Claim.objects.visible_to(self.request.user)
            .select_related("program__region", "institution", "opened_by", "submitted_by", "decided_by")
            .prefetch_related(
                Prefetch("lines", queryset=ClaimLine.objects.select_related("trial", "site")),
                Prefetch("payments", queryset=ClaimPayment.objects.select_related("recorded_by")),
            )
        )
        if self.action != "list":
            queryset = queryset.prefetch_related(
                Prefetch("status_changes", queryset=ClaimStatusChange.objects.select_related("actor"))
            )
        return queryset

    def get_serializer_class(self):
        if self.action in self.input_serializer_classes:
            return self.input_serializer_classes[self.action]
        if self.action == "list":
            return serializers.ClaimSerializer
        return serializers.ClaimDetailSerializer

    def _respond(self, claim: Claim, status_code=status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=claim.pk)
        data = serializers.ClaimDetailSerializer(fresh, context=self.get_serializer_context()).data
        return Response(data, status=status_code)

    def _input(self) -> dict:
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def create(self, request, *args, **kwargs):
        data = self._input()
        claim = services.claim_open(actor=request.user, **data)
        return self._respond(claim, status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.claim_discard(claim=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _step(self, step, **kwargs) -> Response:
        claim = self.get_object()
        if self.action in self.input_serializer_classes:
            kwargs.update(self._input())
        step(claim=claim, actor=self.request.user, **kwargs)
        return self._respond(claim)

    def _line(self, claim: Claim, line_id) -> ClaimLine:
        try:
            return claim.lines.select_related("claim").get(pk=line_id)
        except ClaimLine.DoesNotExist as exc:
            raise NotFound() from exc

    # The hospital's steps ---------------------------------------------------------------------------------

    @_step_schema("claims_recompute", gettext_lazy("Re-read the ledger and the policy values for a draft"))
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def recompute(self, request, pk=None):
        return self._step(services.claim_recompute)

    @_step_schema(
        "claims_add_cost_item",
        gettext_lazy("Add a cost item (an insurance policy and its premium) to a percentage program's draft"),
        serializers.CostItemSerializer,
    )
    @action(detail=True, methods=["post"], url_path="cost-items", permission_classes=[ViewThenServiceDecides])
    def cost_items(self, request, pk=None):
        return self._step(services.cost_item_add)

    @_step_schema(
        "claims_exclude_line",
        gettext_lazy("Leave a line out of the draft, with the reason"),
        serializers.ExcludeSerializer,
        gettext_lazy("The line's patients stay unclaimed, for a later claim."),
        [_LINE_PARAMETER],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"lines/(?P<line_id>[0-9]+)/exclude",
        permission_classes=[ViewThenServiceDecides],
    )
    def exclude_line(self, request, pk=None, line_id=None):
        claim = self.get_object()
        data = self._input()
        services.line_exclude(line=self._line(claim, line_id), actor=request.user, reason=data["reason"])
        return self._respond(claim)

    @_step_schema(
        "claims_include_line",
        gettext_lazy("Take an excluded line back into the draft"),
        description=gettext_lazy("The line is checked again like any other."),
        parameters=[_LINE_PARAMETER],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"lines/(?P<line_id>[0-9]+)/include",
        permission_classes=[ViewThenServiceDecides],
    )
    def include_line(self, request, pk=None, line_id=None):
        claim = self.get_object()
        services.line_include(line=self._line(claim, line_id), actor=request.user)
        return self._respond(claim)

    @_step_schema(
        "claims_submit",
        gettext_lazy("Submit a draft: recomputed once more and frozen for the regulator"),
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def submit(self, request, pk=None):
        return self._step(services.claim_submit)

    # The regulator's steps --------------------------------------------------------------------------------

    @_step_schema("claims_start_review", gettext_lazy("Start reviewing a submitted claim"))
    @action(detail=True, methods=["post"], url_path="start-review", permission_classes=[ViewThenServiceDecides])
    def start_review(self, request, pk=None):
        return self._step(services.claim_start_review)

    @_step_schema(
        "claims_decide",
        gettext_lazy("Approve, partially approve or reject a claim under review"),
        serializers.DecideSerializer,
        gettext_lazy(
            "A partial approval lowers at least one eligible line, each with a reason, and never raises one; a "
            "rejection needs a note."
        ),
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def decide(self, request, pk=None):
        return self._step(services.claim_decide)

    @_step_schema(
        "claims_pay",
        gettext_lazy("Record a payment of an approved claim"),
        serializers.PaySerializer,
        gettext_lazy(
            "At most the balance still owed; the whole balance pays the claim, a smaller payment leaves it partly "
            "paid with its balance. An overpayment is refused (400, code overpayment)."
        ),
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def pay(self, request, pk=None):
        return self._step(services.claim_pay)

    # Documents --------------------------------------------------------------------------------------------

    def _export_language(self) -> str:
        return requested_language(self.request.query_params)

    def _download(self, content: bytes, content_type: str, filename: str) -> HttpResponse:
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(
        operation_id="claims_workbook",
        summary=gettext_lazy("Download the claim as an Excel workbook"),
        parameters=[_LANGUAGE_PARAMETER],
        responses={
            (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiResponse(
                OpenApiTypes.BINARY
            ),
            **_errors(400, 401, 403, 404),
        },
        tags=["claims"],
    )
    @action(detail=True, methods=["get"])
    def workbook(self, request, pk=None):
        claim = self.get_object()
        language = self._export_language()
        content = exports.claim_workbook(claim, language)
        return self._download(
            content,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            exports.export_filename(claim, "workbook", language),
        )

    @extend_schema(
        operation_id="claims_cover_letter",
        summary=gettext_lazy("Download the claim's cover letter as PDF"),
        parameters=[_LANGUAGE_PARAMETER],
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY), **_errors(400, 401, 403, 404)},
        tags=["claims"],
    )
    @action(detail=True, methods=["get"], url_path="cover-letter")
    def cover_letter(self, request, pk=None):
        claim = self.get_object()
        language = self._export_language()
        content = exports.claim_cover_letter_pdf(claim, language)
        return self._download(content, "application/pdf", exports.export_filename(claim, "cover_letter", language))
