"""REST endpoints for trials, sites, documents and the directory.

Rows come from each model's ``visible_to(user)``; writes go through one service call each, which decides
whether the actor may make them (DomainError becomes 400/403/409 in cgtclinic.api.exceptions).
"""

from django.http import FileResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import MethodNotAllowed, NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from cgtclinic.api.permissions import RolePermission
from cgtclinic.models import Institution, Region, Sponsor
from trials import enrolment, filings, services
from trials.api import filings as filings_api
from trials.api import filters, serializers
from trials.models import DocumentVersion, EnrolmentEntry, Trial, TrialSite


class ViewThenServiceDecides(RolePermission):
    """Any request needs the role's view permission on the model; the service then decides if the actor may act.

    Used for lifecycle steps and uploads, where who may act depends on the row (lead institution, PI), not
    only on the role.
    """

    perms_map = {
        method: ["%(app_label)s.view_%(model_name)s"]
        for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
    }


class ViewerSerializerMixin:
    """The one place a serializer is chosen: input shape per write action, output shape per viewer."""

    serializer_class = None
    regulator_serializer_class = None
    input_serializer_classes: dict = {}

    def get_serializer_class(self):
        if self.action in self.input_serializer_classes:
            return self.input_serializer_classes[self.action]
        return self.get_output_serializer_class()

    def get_output_serializer_class(self):
        if self.regulator_serializer_class and not serializers.sees_personal_data(self.request.user):
            return self.regulator_serializer_class
        return self.serializer_class

    def respond_with(self, instance, status_code=status.HTTP_200_OK) -> Response:
        """Render a row, re-read through the scoped queryset, for the requesting user."""
        fresh = self.get_queryset().get(pk=instance.pk)
        serializer = self.get_output_serializer_class()(fresh, context=self.get_serializer_context())
        return Response(serializer.data, status=status_code)


def _errors(*codes: int) -> dict:
    described = {
        400: gettext_lazy(
            "The input was refused: messages per field, or detail, code and field when a business rule refused it."
        ),
        401: gettext_lazy("Not signed in."),
        403: gettext_lazy("Not allowed for this user."),
        404: gettext_lazy("Not found, or not visible to this user."),
        409: gettext_lazy("Not allowed in the trial's current status."),
    }
    responses = {code: OpenApiResponse(serializers.ErrorSerializer, description=described[code]) for code in codes}
    if 400 in codes:
        # Shape errors come per field from the serializer; rule errors as detail, code and field.
        responses[400] = OpenApiResponse(OpenApiTypes.OBJECT, description=described[400])
    return responses


TRIAL_FOR_VIEWER = PolymorphicProxySerializer(
    component_name="TrialForViewer",
    serializers=[serializers.TrialSerializer, serializers.TrialRegulatorSerializer],
    resource_type_field_name=None,
)
SITE_FOR_VIEWER = PolymorphicProxySerializer(
    component_name="TrialSiteForViewer",
    serializers=[serializers.TrialSiteSerializer, serializers.TrialSiteRegulatorSerializer],
    resource_type_field_name=None,
)
_VIEWER_NOTE = gettext_lazy("Regulators receive the shape without personal data: people by name only.")


def _transition_schema(operation_id: str, summary: str, request=None):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        request=request,
        responses={200: serializers.TrialSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["trials"],
    )


@extend_schema_view(
    list=extend_schema(
        operation_id="trials_list",
        summary=gettext_lazy("List the trials visible to you"),
        description=_VIEWER_NOTE,
        responses={200: TRIAL_FOR_VIEWER, **_errors(400, 401, 403)},
        tags=["trials"],
    ),
    retrieve=extend_schema(
        operation_id="trials_retrieve",
        summary=gettext_lazy("Show one trial"),
        description=_VIEWER_NOTE,
        responses={200: TRIAL_FOR_VIEWER, **_errors(401, 403, 404)},
        tags=["trials"],
    ),
    create=extend_schema(
        operation_id="trials_create",
        summary=gettext_lazy("Record a new trial as a draft"),
        request=serializers.TrialWriteSerializer,
        responses={201: serializers.TrialSerializer, **_errors(400, 401, 403)},
        tags=["trials"],
    ),
    partial_update=extend_schema(
        operation_id="trials_partial_update",
        summary=gettext_lazy("Change a trial's master record"),
        request=serializers.TrialWriteSerializer,
        responses={200: serializers.TrialSerializer, **_errors(400, 401, 403, 404)},
        tags=["trials"],
    ),
)
class TrialViewSet(ViewerSerializerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Trials. The status changes only through the lifecycle actions, each a POST."""

    serializer_class = serializers.TrialSerializer
    regulator_serializer_class = serializers.TrialRegulatorSerializer
    input_serializer_classes = {
        "create": serializers.TrialWriteSerializer,
        "partial_update": serializers.TrialWriteSerializer,
        "suspend": serializers.ReasonSerializer,
        "terminate": serializers.ReasonSerializer,
        "withdraw": serializers.ReasonSerializer,
        "resume": serializers.OptionalReasonSerializer,
        "review": filings_api.ReviewInputSerializer,
        "new_technology": filings_api.NewTechnologyInputSerializer,
    }
    filterset_class = filters.TrialFilter
    search_fields = ("title_zh", "title_en", "protocol_number")
    ordering_fields = ("created_at", "updated_at", "status_changed_at", "protocol_number", "title_zh", "status")
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return (
            Trial.objects.visible_to(self.request.user)
            .select_related("sponsor", "lead_institution__region", "department", "pi", "created_by")
            .prefetch_related("reviews")
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        trial = services.trial_create(actor=request.user, **serializer.validated_data)
        return self.respond_with(trial, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        trial = self.get_object()
        serializer = self.get_serializer(trial, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.trial_update(trial=trial, actor=request.user, **serializer.validated_data)
        return self.respond_with(trial)

    def _step(self, step: str) -> Response:
        """Take one step of trials.services.ALLOWED by its name; the service checks the state and the actor."""
        trial = self.get_object()
        kwargs = {}
        if self.action in self.input_serializer_classes:
            serializer = self.get_serializer(data=self.request.data)
            serializer.is_valid(raise_exception=True)
            kwargs.update(serializer.validated_data)
        services.trial_take_step(trial=trial, actor=self.request.user, step=step, **kwargs)
        return self.respond_with(trial)

    @_transition_schema("trials_submit", gettext_lazy("Submit a drafted trial for review"))
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def submit(self, request, pk=None):
        return self._step("submit")

    @_transition_schema("trials_start_review", gettext_lazy("Start reviewing a submitted trial"))
    @action(detail=True, methods=["post"], url_path="start-review", permission_classes=[ViewThenServiceDecides])
    def start_review(self, request, pk=None):
        return self._step("start_review")

    @_transition_schema("trials_approve", gettext_lazy("Approve a trial under review"))
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def approve(self, request, pk=None):
        return self._step("approve")

    @_transition_schema("trials_activate", gettext_lazy("Activate an approved trial"))
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def activate(self, request, pk=None):
        return self._step("activate")

    @_transition_schema("trials_close_enrolment", gettext_lazy("Close enrolment of an active trial"))
    @action(detail=True, methods=["post"], url_path="close-enrolment", permission_classes=[ViewThenServiceDecides])
    def close_enrolment(self, request, pk=None):
        return self._step("close_enrolment")

    @_transition_schema("trials_complete", gettext_lazy("Mark a trial whose enrolment is closed as completed"))
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def complete(self, request, pk=None):
        return self._step("complete")

    @_transition_schema("trials_suspend", gettext_lazy("Suspend a trial"), serializers.ReasonSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def suspend(self, request, pk=None):
        return self._step("suspend")

    @_transition_schema(
        "trials_resume",
        gettext_lazy("Lift a suspension; the trial returns to where it was"),
        serializers.OptionalReasonSerializer,
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def resume(self, request, pk=None):
        return self._step("resume")

    @_transition_schema("trials_terminate", gettext_lazy("Terminate a trial early"), serializers.ReasonSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def terminate(self, request, pk=None):
        return self._step("terminate")

    @_transition_schema(
        "trials_withdraw", gettext_lazy("Withdraw a trial before approval"), serializers.ReasonSerializer
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def withdraw(self, request, pk=None):
        return self._step("withdraw")

    @_transition_schema(
        "trials_review",
        gettext_lazy("Record an IIT's academic review or institutional approval (立项)"),
        request=filings_api.ReviewInputSerializer,
    )
    @action(detail=True, methods=["post"], permission_classes=[ViewThenServiceDecides])
    def review(self, request, pk=None):
        return self._call(filings.review_record)

    @_transition_schema(
        "trials_new_technology",
        gettext_lazy("Answer whether the trial is biomedical new-technology clinical research"),
        request=filings_api.NewTechnologyInputSerializer,
    )
    @action(detail=True, methods=["post"], url_path="new-technology", permission_classes=[ViewThenServiceDecides])
    def new_technology(self, request, pk=None):
        return self._call(filings.new_technology_set)

    def _call(self, service) -> Response:
        """Run one trials.filings service on the trial with the action's validated input."""
        trial = self.get_object()
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        service(trial=trial, actor=self.request.user, **serializer.validated_data)
        return self.respond_with(trial)


@extend_schema_view(
    list=extend_schema(
        operation_id="sites_list",
        summary=gettext_lazy("List the trial sites visible to you"),
        description=_VIEWER_NOTE,
        responses={200: SITE_FOR_VIEWER, **_errors(400, 401, 403)},
        tags=["sites"],
    ),
    retrieve=extend_schema(
        operation_id="sites_retrieve",
        summary=gettext_lazy("Show one trial site with its start-up milestones"),
        description=_VIEWER_NOTE,
        responses={200: SITE_FOR_VIEWER, **_errors(401, 403, 404)},
        tags=["sites"],
    ),
    create=extend_schema(
        operation_id="sites_create",
        summary=gettext_lazy("Add a participating site to a trial"),
        request=serializers.TrialSiteCreateSerializer,
        responses={201: serializers.TrialSiteSerializer, **_errors(400, 401, 403)},
        tags=["sites"],
    ),
    partial_update=extend_schema(
        operation_id="sites_partial_update",
        summary=gettext_lazy("Record a site's PI, target or start-up milestones"),
        request=serializers.TrialSiteUpdateSerializer,
        responses={200: serializers.TrialSiteSerializer, **_errors(400, 401, 403, 404)},
        tags=["sites"],
    ),
)
class TrialSiteViewSet(
    ViewerSerializerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Trial sites with their start-up milestones and the durations computed from them."""

    serializer_class = serializers.TrialSiteSerializer
    regulator_serializer_class = serializers.TrialSiteRegulatorSerializer
    input_serializer_classes = {
        "create": serializers.TrialSiteCreateSerializer,
        "partial_update": serializers.TrialSiteUpdateSerializer,
    }
    filterset_class = filters.TrialSiteFilter
    search_fields = ("trial__protocol_number", "trial__title_zh", "institution__name_zh", "institution__name_en")
    ordering_fields = ("trial", "institution", "role", *TrialSite.MILESTONES)
    ordering = ("trial_id", "role", "id")

    def get_queryset(self):
        return TrialSite.objects.visible_to(self.request.user).select_related("trial", "institution__region", "site_pi")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        site = services.site_add(trial=data.pop("trial"), actor=request.user, **data)
        return self.respond_with(site, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        site = self.get_object()
        serializer = self.get_serializer(site, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.site_update(site=site, actor=request.user, **serializer.validated_data)
        return self.respond_with(site)


@extend_schema_view(
    list=extend_schema(
        operation_id="documents_list",
        summary=gettext_lazy("List the document versions visible to you"),
        responses={200: serializers.DocumentVersionSerializer, **_errors(400, 401, 403)},
        tags=["documents"],
    ),
    retrieve=extend_schema(
        operation_id="documents_retrieve",
        summary=gettext_lazy("Show one document version"),
        responses={200: serializers.DocumentVersionSerializer, **_errors(401, 403, 404)},
        tags=["documents"],
    ),
    create=extend_schema(
        operation_id="documents_create",
        summary=gettext_lazy("Upload a new version of a trial document"),
        request={"multipart/form-data": serializers.DocumentUploadSerializer},
        responses={201: serializers.DocumentVersionSerializer, **_errors(400, 401, 403)},
        tags=["documents"],
    ),
)
class DocumentVersionViewSet(
    ViewerSerializerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Versions of trial documents. Files are served only through ``download``, after the same scoping."""

    serializer_class = serializers.DocumentVersionSerializer
    input_serializer_classes = {"create": serializers.DocumentUploadSerializer}
    permission_classes = (ViewThenServiceDecides,)
    parser_classes = (MultiPartParser, FormParser)
    filterset_class = filters.DocumentVersionFilter
    search_fields = ("document__title", "original_name", "version_label")
    ordering_fields = ("uploaded_at", "number")
    ordering = ("document_id", "number")

    def get_queryset(self):
        return DocumentVersion.objects.visible_to(self.request.user).select_related("document__trial", "uploaded_by")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = services.document_add_version(
            trial=data["trial"],
            actor=request.user,
            kind=data["kind"],
            title=data["title"],
            uploaded_file=data["file"],
            version_label=data["version_label"],
            version_date=data["version_date"],
            note=data["note"],
        )
        return self.respond_with(version, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="documents_download",
        summary=gettext_lazy("Download the file of a document version"),
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            **_errors(401, 403, 404),
        },
        tags=["documents"],
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        version = self.get_object()
        try:
            handle = version.file.open("rb")
        except FileNotFoundError as exc:
            raise NotFound(
                _("The stored file of this version is missing. Please tell the system administrator.")
            ) from exc
        response = FileResponse(
            handle, as_attachment=True, filename=version.original_name, content_type=version.content_type
        )
        # Documents may hold personal data: never kept by shared caches.
        response["Cache-Control"] = "private, no-store"
        return response


class _DirectoryViewSet(viewsets.ReadOnlyModelViewSet):
    """The public directory, readable by every signed-in user whatever their role."""

    permission_classes = (IsAuthenticated,)


@extend_schema_view(
    list=extend_schema(operation_id="institutions_list", tags=["directory"]),
    retrieve=extend_schema(operation_id="institutions_retrieve", tags=["directory"]),
)
class InstitutionViewSet(_DirectoryViewSet):
    serializer_class = serializers.InstitutionSerializer
    filterset_class = filters.InstitutionFilter
    search_fields = ("name_zh", "name_en", "short_name")
    ordering_fields = ("name_zh", "region__code")
    ordering = ("region__code", "name_zh")

    def get_queryset(self):
        return Institution.objects.visible_to(self.request.user).select_related("region")


@extend_schema_view(
    list=extend_schema(operation_id="sponsors_list", tags=["directory"]),
    retrieve=extend_schema(operation_id="sponsors_retrieve", tags=["directory"]),
)
class SponsorViewSet(_DirectoryViewSet):
    serializer_class = serializers.SponsorSerializer
    filterset_class = filters.SponsorFilter
    search_fields = ("name_zh", "name_en")
    ordering_fields = ("name_zh",)
    ordering = ("name_zh",)

    def get_queryset(self):
        return Sponsor.objects.visible_to(self.request.user).select_related("region")


@extend_schema_view(
    list=extend_schema(operation_id="regions_list", tags=["directory"]),
    retrieve=extend_schema(operation_id="regions_retrieve", tags=["directory"]),
)
class RegionViewSet(_DirectoryViewSet):
    serializer_class = serializers.RegionSerializer
    search_fields = ("code", "name_zh", "name_en")
    ordering_fields = ("code",)
    ordering = ("code",)

    def get_queryset(self):
        return Region.objects.visible_to(self.request.user)


# --- enrolment ---------------------------------------------------------------------------------------------------


class ViewSiteEnrolment(RolePermission):
    """Enrolment counts are their own permission (regulators have it, without the ledger or subject codes)."""

    def get_required_permissions(self, method, model_cls):
        if method not in ("GET", "HEAD", "OPTIONS"):
            raise MethodNotAllowed(method)
        return ["trials.view_siteenrolment"]


_ENROLMENT_ERRORS = gettext_lazy(
    "Refused with detail, code and field when the site has no valid ethics approval for that day "
    "(no_ethics_approval, ethics_approval_expired), the trial was not enrolling (trial_not_enrolling), the counts "
    "would not add up (count_negative, count_inconsistent) or a subject code does not allow it (subject_state, "
    "subject_other_site)."
)


@extend_schema_view(
    list=extend_schema(
        operation_id="enrolment_entries_list",
        summary=gettext_lazy("List the enrolment ledger entries visible to you, newest first"),
        responses={200: serializers.EnrolmentEntrySerializer, **_errors(400, 401, 403)},
        tags=["enrolment"],
    ),
    retrieve=extend_schema(
        operation_id="enrolment_entries_retrieve",
        summary=gettext_lazy("Show one enrolment ledger entry"),
        responses={200: serializers.EnrolmentEntrySerializer, **_errors(401, 403, 404)},
        tags=["enrolment"],
    ),
    create=extend_schema(
        operation_id="enrolment_entries_create",
        summary=gettext_lazy("Report an enrolment event for a site"),
        description=_ENROLMENT_ERRORS,
        request=serializers.EnrolmentEntryCreateSerializer,
        responses={201: serializers.EnrolmentEntrySerializer, **_errors(400, 401, 403)},
        tags=["enrolment"],
    ),
)
class EnrolmentEntryViewSet(
    ViewerSerializerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The append-only enrolment ledger: entries are added (POST) and corrected by reversing them, never edited.
    Regulators do not read it (counts per site are at /site-enrolment/)."""

    serializer_class = serializers.EnrolmentEntrySerializer
    input_serializer_classes = {
        "create": serializers.EnrolmentEntryCreateSerializer,
        "reverse_entry": serializers.CorrectionReasonSerializer,
    }
    filterset_class = filters.EnrolmentEntryFilter
    search_fields = ("subject__code", "note", "reason", "trial__protocol_number")
    ordering_fields = ("occurred_on", "reported_at", "id")
    ordering = ("-reported_at", "-id")

    def get_queryset(self):
        return EnrolmentEntry.objects.visible_to(self.request.user).select_related(
            "trial", "site__institution", "subject", "reported_by", "reversed_by"
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry = enrolment.enrolment_report(actor=request.user, **serializer.validated_data)
        return self.respond_with(entry, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="enrolment_entries_reverse",
        summary=gettext_lazy("Reverse an entry with a correcting entry, giving the reason"),
        description=gettext_lazy(
            "Adds an entry that cancels this one and returns it. An entry is reversed at most once; a correction "
            "is not reversed (report the event again instead); a subject's enrolment is reversed only after their "
            "later withdrawal or completion is."
        ),
        request=serializers.CorrectionReasonSerializer,
        responses={201: serializers.EnrolmentEntrySerializer, **_errors(400, 401, 403, 404)},
        tags=["enrolment"],
    )
    @action(detail=True, methods=["post"], url_path="reverse")
    def reverse_entry(self, request, pk=None):
        entry = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        correction = enrolment.enrolment_reverse(
            entry=entry, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return self.respond_with(correction, status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        operation_id="site_enrolment_list",
        summary=gettext_lazy("Enrolment against target for each trial site visible to you"),
        responses={200: serializers.SiteEnrolmentSerializer, **_errors(400, 401, 403)},
        tags=["enrolment"],
    ),
    retrieve=extend_schema(
        operation_id="site_enrolment_retrieve",
        summary=gettext_lazy("Enrolment against target for one trial site (by site id)"),
        responses={200: serializers.SiteEnrolmentSerializer, **_errors(401, 403, 404)},
        tags=["enrolment"],
    ),
)
class SiteEnrolmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Targets against actuals per site, with the over-target and stalled flags. Every site is listed, also one
    that has not reported yet."""

    serializer_class = serializers.SiteEnrolmentSerializer
    permission_classes = (ViewSiteEnrolment,)
    filter_backends = (DjangoFilterBackend, OrderingFilter)
    filterset_class = filters.SiteEnrolmentFilter
    ordering_fields = ("trial", "institution", "site_target", "enrolment__enrolled", "enrolment__last_enrolled_on")
    ordering = ("trial_id", "role", "id")

    def get_queryset(self):
        return enrolment.with_progress(TrialSite.objects.visible_to(self.request.user))

    def list(self, request, *args, **kwargs):
        today = timezone.localdate()
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = [enrolment.site_progress(site, today) for site in page]
        return self.get_paginated_response(self.get_serializer(rows, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(enrolment.site_progress(self.get_object())).data)


@extend_schema_view(
    list=extend_schema(
        operation_id="trial_enrolment_list",
        summary=gettext_lazy("Enrolment against target per trial, summed over the sites visible to you"),
        responses={200: serializers.TrialEnrolmentSerializer, **_errors(400, 401, 403)},
        tags=["enrolment"],
    ),
)
class TrialEnrolmentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Per-trial totals; the filters narrow the sites that are summed."""

    serializer_class = serializers.TrialEnrolmentSerializer
    permission_classes = (ViewSiteEnrolment,)
    filter_backends = (DjangoFilterBackend,)
    filterset_class = filters.TrialEnrolmentFilter

    def get_queryset(self):
        return TrialSite.objects.visible_to(self.request.user)

    def list(self, request, *args, **kwargs):
        rows = enrolment.trial_progress(self.filter_queryset(self.get_queryset()), timezone.localdate())
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
