"""REST endpoints for mutual-recognition requests.

Rows come from ``RecognitionRequest.objects.visible_to(user)``; the lead's result (decision, letter, covered
documents, contact) only for the viewers ``recognition.requests_with_lead_result_visible_to`` admits. The steps
call one service each, which checks them against ``recognition.ALLOWED`` (DomainError becomes 400/403/409).
"""

from django.http import FileResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from cgtclinic.api.permissions import RolePermission
from ethics import recognition
from ethics.api import serializers
from ethics.models import RecognitionRequest
from trials.api.serializers import ErrorSerializer
from trials.models import Trial


class ViewThenServiceDecides(RolePermission):
    """Every method needs the role's view permission; the service then decides whether this actor may act."""

    perms_map = {
        method: ["%(app_label)s.view_%(model_name)s"]
        for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
    }


class RecognitionRequestFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(
        choices=RecognitionRequest.Status.choices, help_text=gettext_lazy("One or more statuses.")
    )
    trial = filters.ModelChoiceFilter(queryset=Trial.objects.all(), help_text=gettext_lazy("Trial id."))

    class Meta:
        model = RecognitionRequest
        fields = ("status", "trial")


def _errors(*codes: int) -> dict:
    described = {
        400: gettext_lazy("The input was refused: messages per field, or detail, code and field."),
        401: gettext_lazy("Not signed in."),
        403: gettext_lazy("Not allowed for this user."),
        404: gettext_lazy("Not found, or not visible to this user."),
        409: gettext_lazy("Not possible in the request's current status."),
    }
    responses = {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in codes}
    if 400 in codes:
        responses[400] = OpenApiResponse(OpenApiTypes.OBJECT, description=described[400])
    return responses


_FILE = {(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY), **_errors(401, 403, 404)}


def _file_response(stored, filename: str, content_type: str) -> FileResponse:
    try:
        handle = stored.open("rb")
    except FileNotFoundError as exc:
        raise NotFound(_("The stored file is missing. Please tell the system administrator.")) from exc
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    # Letters and consent forms may hold personal data: never kept by shared caches.
    response["Cache-Control"] = "private, no-store"
    return response


@extend_schema_view(
    list=extend_schema(
        operation_id="recognition_requests_list",
        summary=gettext_lazy("List the recognition requests visible to you"),
        responses={200: serializers.RecognitionRequestSerializer, **_errors(400, 401, 403)},
        tags=["recognition"],
    ),
    retrieve=extend_schema(
        operation_id="recognition_requests_retrieve",
        summary=gettext_lazy("Show one recognition request with the lead site's result"),
        description=gettext_lazy(
            "The lead decision, letter, covered documents and lead committee's contact are given to the "
            "participating committee's ethics office and the lead site's offices; empty for other viewers."
        ),
        responses={200: serializers.RecognitionRequestDetailSerializer, **_errors(401, 403, 404)},
        tags=["recognition"],
    ),
)
class RecognitionRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Requests to participating committees to recognise a lead site's ethics result. Answered and withdrawn
    through POST actions, never by writing ``status``."""

    queryset = RecognitionRequest.objects.none()
    serializer_class = serializers.RecognitionRequestSerializer
    permission_classes = (ViewThenServiceDecides,)
    parser_classes = (JSONParser, MultiPartParser, FormParser)
    filterset_class = RecognitionRequestFilter
    search_fields = ("trial__protocol_number", "trial__title_zh", "committee__name_zh")
    ordering_fields = ("received_at", "due_at", "status")
    ordering = ("-received_at", "-id")

    def get_queryset(self):
        return RecognitionRequest.objects.visible_to(self.request.user).select_related(
            "trial", "site__institution", "committee", "alliance", "lead_decision"
        )

    def get_serializer_class(self):
        if self.action == "respond":
            return serializers.RespondSerializer
        if self.action == "withdraw":
            return serializers.WithdrawSerializer
        if self.action == "list":
            return serializers.RecognitionRequestSerializer
        return serializers.RecognitionRequestDetailSerializer

    def _detail(self, instance) -> Response:
        fresh = self.get_queryset().get(pk=instance.pk)
        context = self.get_serializer_context()
        if recognition.may_open_lead_result(self.request.user, fresh):
            context["lead_result"] = recognition.lead_result(fresh)
        return Response(serializers.RecognitionRequestDetailSerializer(fresh, context=context).data)

    def retrieve(self, request, *args, **kwargs):
        return self._detail(self.get_object())

    def _with_lead_result(self) -> RecognitionRequest:
        """The request, if this user may open the lead's result; 404 otherwise (as if it did not exist)."""
        found = (
            recognition.requests_with_lead_result_visible_to(self.request.user)
            .select_related("lead_decision__committee", "external_lead_letter", "local_icf__document", "trial")
            .filter(pk=self.kwargs["pk"])
            .first()
        )
        if found is None:
            raise NotFound
        return found

    @extend_schema(
        operation_id="recognition_requests_lead_letter",
        summary=gettext_lazy("Download the lead committee's letter as stored"),
        description=gettext_lazy("Its SHA-256 is lead_letter_sha256 of the request."),
        responses=_FILE,
        tags=["recognition"],
    )
    @action(detail=True, methods=["get"], url_path="lead-letter", url_name="lead-letter")
    def lead_letter(self, request, pk=None):
        letter = recognition.lead_letter(self._with_lead_result())
        if letter is None:
            raise NotFound(_("The lead committee has not issued its letter yet."))
        return _file_response(letter["file"], letter["filename"], letter["content_type"])

    @extend_schema(
        operation_id="recognition_requests_document",
        summary=gettext_lazy("Download a document version the lead decision covers (or the local consent form)"),
        parameters=[OpenApiParameter("version_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses=_FILE,
        tags=["recognition"],
    )
    @action(detail=True, methods=["get"], url_path=r"documents/(?P<version_id>\d+)", url_name="document")
    def document(self, request, pk=None, version_id=None):
        version = recognition.downloadable_version(self._with_lead_result(), int(version_id))
        if version is None:
            raise NotFound
        return _file_response(version.file, version.original_name, version.content_type)

    @extend_schema(
        operation_id="recognition_requests_respond",
        summary=gettext_lazy("Answer a request: recognise, recognise with conditions, or decline"),
        description=gettext_lazy(
            "For the participating committee's ethics office. Conditions and reasons need a note; recognising "
            "with conditions may attach the site's consent form (multipart upload or an existing version's id)."
        ),
        request={
            "multipart/form-data": serializers.RespondSerializer,
            "application/json": serializers.RespondSerializer,
        },
        responses={200: serializers.RecognitionRequestDetailSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["recognition"],
    )
    @action(detail=True, methods=["post"])
    def respond(self, request, pk=None):
        found = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        recognition.recognition_respond(
            request=found,
            actor=request.user,
            outcome=data["outcome"],
            note=data["note"],
            local_icf_file=data["local_icf_file"],
            local_icf_version=data["local_icf_version"],
            local_icf_label=data["local_icf_label"],
        )
        return self._detail(found)

    @extend_schema(
        operation_id="recognition_requests_withdraw",
        summary=gettext_lazy("Withdraw an open request (the lead site's ethics office)"),
        request=serializers.WithdrawSerializer,
        responses={200: serializers.RecognitionRequestDetailSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["recognition"],
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        found = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        recognition.recognition_withdraw(request=found, actor=request.user, reason=serializer.validated_data["reason"])
        return self._detail(found)
