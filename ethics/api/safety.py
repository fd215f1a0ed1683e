"""REST endpoints for safety reports (SAE, SUSAR) and their clocks.

Rows come from ``SafetyEvent.objects.visible_to(user)``; steps are POST actions that call one service of
ethics.safety each, which checks them against ``safety.ALLOWED`` (DomainError becomes 400/403/409).
"""

from django.utils import timezone
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ethics import safety
from ethics.api.views import ViewThenServiceDecides, _errors
from ethics.models import SafetyClock, SafetyEvent, SafetyEventStep
from trials.models import EnrolmentSubject, Trial, TrialSite


class SafetyClockSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    overdue = serializers.SerializerMethodField(help_text=gettext_lazy("Open and past its deadline."))
    seconds_left = serializers.SerializerMethodField(
        help_text=gettext_lazy("Seconds until the deadline (negative when overdue); null once met or stopped.")
    )

    class Meta:
        model = SafetyClock
        fields = (
            "kind",
            "kind_display",
            "started_at",
            "due_at",
            "remind_at",
            "period",
            "unit",
            "period_source",
            "met_at",
            "late",
            "elapsed_hours",
            "escalated_at",
            "cancelled",
            "overdue",
            "seconds_left",
        )

    def get_overdue(self, clock) -> bool:
        return clock.met_at is None and not clock.cancelled and clock.due_at <= timezone.now()

    def get_seconds_left(self, clock) -> int | None:
        if clock.met_at or clock.cancelled:
            return None
        return int(safety.time_left(clock).total_seconds())


class SafetyStepRowSerializer(serializers.ModelSerializer):
    actor_name = serializers.CharField(source="actor.full_name", read_only=True)

    class Meta:
        model = SafetyEventStep
        fields = ("step", "from_status", "to_status", "actor", "actor_name", "happened_at", "recorded_at", "note")


class SafetyEventSerializer(serializers.ModelSerializer):
    """A safety report as listed; no patient identity (at most the subject code)."""

    trial_protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)
    site_institution_name = serializers.CharField(source="site.institution.name_zh", read_only=True)
    subject_code = serializers.CharField(source="subject.code", read_only=True, default=None)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = SafetyEvent
        fields = (
            "id",
            "kind",
            "kind_display",
            "trial",
            "trial_protocol_number",
            "site",
            "site_institution_name",
            "subject_code",
            "follow_up_of",
            "sequence",
            "status",
            "status_display",
            "term",
            "criteria",
            "expectedness",
            "causality",
            "outcome",
            "onset_on",
            "aware_at",
            "sponsor_aware_on",
            "received_at",
            "sponsor_reference",
            "sponsor_notified_at",
            "pi_reviewed_at",
            "ec_reported_at",
            "ec_submission",
            "committee_reviewed_at",
            "created_at",
        )


class SafetyEventDetailSerializer(SafetyEventSerializer):
    clocks = SafetyClockSerializer(many=True, read_only=True)
    steps = SafetyStepRowSerializer(many=True, read_only=True)
    available_steps = serializers.SerializerMethodField(help_text=gettext_lazy("The steps you may take now."))

    class Meta(SafetyEventSerializer.Meta):
        fields = (*SafetyEventSerializer.Meta.fields, "description", "committee_opinion", "clocks", "steps",
                  "available_steps")  # fmt: skip

    def get_available_steps(self, event) -> list[str]:
        return safety.available_steps(event, self.context["request"].user)


class SafetyEventCreateSerializer(serializers.Serializer):
    site = serializers.PrimaryKeyRelatedField(queryset=TrialSite.objects.all())
    kind = serializers.ChoiceField(choices=SafetyEvent.Kind.choices)
    subject = serializers.PrimaryKeyRelatedField(
        queryset=EnrolmentSubject.objects.all(), required=False, allow_null=True
    )
    term = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10000)
    criteria = serializers.ListField(child=serializers.ChoiceField(choices=SafetyEvent.Criterion.choices), min_length=1)
    expectedness = serializers.ChoiceField(choices=SafetyEvent.Expectedness.choices)
    causality = serializers.ChoiceField(choices=SafetyEvent.Causality.choices)
    outcome = serializers.ChoiceField(choices=SafetyEvent.Outcome.choices, default=SafetyEvent.Outcome.ONGOING)
    onset_on = serializers.DateField(required=False, allow_null=True)
    aware_at = serializers.DateTimeField(required=False, allow_null=True, help_text=gettext_lazy("SAE."))
    sponsor_aware_on = serializers.DateField(required=False, allow_null=True, help_text=gettext_lazy("SUSAR: day 0."))
    received_at = serializers.DateTimeField(required=False, allow_null=True, help_text=gettext_lazy("SUSAR."))
    sponsor_reference = serializers.CharField(max_length=60, required=False, default="", allow_blank=True)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            if "site" in self.fields:
                self.fields["site"].queryset = TrialSite.objects.visible_to(user)
            self.fields["subject"].queryset = EnrolmentSubject.objects.visible_to(user)


class SafetyFollowUpSerializer(SafetyEventCreateSerializer):
    site = None
    kind = None


class SafetyStepSerializer(serializers.Serializer):
    at = serializers.DateTimeField(
        required=False, allow_null=True, help_text=gettext_lazy("When it happened; default now.")
    )
    note = serializers.CharField(required=False, default="", allow_blank=True, max_length=4000)


class SafetyReviewSerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, allow_null=True)
    opinion = serializers.CharField(max_length=4000)


class SafetyWithdrawSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=4000)


class SafetyEventFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=SafetyEvent.Kind.choices)
    status = filters.MultipleChoiceFilter(choices=SafetyEvent.Status.choices)
    trial = filters.ModelChoiceFilter(queryset=Trial.objects.all(), help_text=gettext_lazy("Trial id."))

    class Meta:
        model = SafetyEvent
        fields = ("kind", "status", "trial")


_STEP_ERRORS = _errors(400, 401, 403, 404, 409)


def _step_schema(operation: str, summary, request_serializer):
    return extend_schema(
        operation_id=f"safety_events_{operation}",
        summary=summary,
        request=request_serializer,
        responses={200: SafetyEventDetailSerializer, **_STEP_ERRORS},
        tags=["safety"],
    )


@extend_schema_view(
    list=extend_schema(
        operation_id="safety_events_list",
        summary=gettext_lazy("List the safety reports visible to you"),
        responses={200: SafetyEventSerializer, **_errors(400, 401, 403)},
        tags=["safety"],
    ),
    retrieve=extend_schema(
        operation_id="safety_events_retrieve",
        summary=gettext_lazy("Show one safety report with its clocks and timeline"),
        responses={200: SafetyEventDetailSerializer, **_errors(401, 403, 404)},
        tags=["safety"],
    ),
    create=extend_schema(
        operation_id="safety_events_create",
        summary=gettext_lazy("Report an SAE or record a SUSAR the site received"),
        request=SafetyEventCreateSerializer,
        responses={201: SafetyEventDetailSerializer, **_errors(400, 401, 403)},
        tags=["safety"],
    ),
)
class SafetyEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """SAE and SUSAR reports with their reporting clocks. Steps are POST actions, never a writable status."""

    queryset = SafetyEvent.objects.none()
    permission_classes = (ViewThenServiceDecides,)
    filterset_class = SafetyEventFilter
    search_fields = ("trial__protocol_number", "term")
    ordering_fields = ("created_at", "status")
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return SafetyEvent.objects.visible_to(self.request.user).select_related("trial", "site__institution", "subject")

    def get_serializer_class(self):
        return {
            "list": SafetyEventSerializer,
            "create": SafetyEventCreateSerializer,
            "follow_up": SafetyFollowUpSerializer,
            "committee_review": SafetyReviewSerializer,
            "withdraw": SafetyWithdrawSerializer,
            "retrieve": SafetyEventDetailSerializer,
        }.get(self.action, SafetyStepSerializer)

    def get_serializer(self, *args, **kwargs):
        if self.action in ("create", "follow_up"):
            kwargs["user"] = self.request.user
        return super().get_serializer(*args, **kwargs)

    def _detail(self, event, code=status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().prefetch_related("clocks", "steps__actor").get(pk=event.pk)
        return Response(SafetyEventDetailSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    def _input(self) -> dict:
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def create(self, request, *args, **kwargs):
        event = safety.safety_event_record(actor=request.user, **self._input())
        return self._detail(event, status.HTTP_201_CREATED)

    @_step_schema("follow_up", gettext_lazy("File a follow-up report of this first report"), SafetyFollowUpSerializer)
    @action(detail=True, methods=["post"], url_path="follow-up")
    def follow_up(self, request, pk=None):
        first = self.get_object()
        event = safety.safety_event_record(
            actor=request.user, site=first.site, kind=first.kind, follow_up_of=first, **self._input()
        )
        return self._detail(event, status.HTTP_201_CREATED)

    def _step(self, service):
        event = self.get_object()
        data = self._input()
        return self._detail(service(event=event, actor=self.request.user, **data))

    @_step_schema("send_to_sponsor", gettext_lazy("Record that the SAE was sent to the sponsor"), SafetyStepSerializer)
    @action(detail=True, methods=["post"], url_path="send-to-sponsor")
    def send_to_sponsor(self, request, pk=None):
        return self._step(safety.safety_send_to_sponsor)

    @_step_schema("pi_review", gettext_lazy("Record the site PI's review of a SUSAR"), SafetyStepSerializer)
    @action(detail=True, methods=["post"], url_path="pi-review")
    def pi_review(self, request, pk=None):
        return self._step(safety.safety_pi_review)

    @_step_schema(
        "report_to_ec",
        gettext_lazy("Report to the ethics committee (files an SAE submission when the committee is in the system)"),
        SafetyStepSerializer,
    )
    @action(detail=True, methods=["post"], url_path="report-to-ec")
    def report_to_ec(self, request, pk=None):
        return self._step(safety.safety_report_to_ec)

    @_step_schema(
        "committee_review", gettext_lazy("Record the committee's review (the ethics office)"), SafetyReviewSerializer
    )
    @action(detail=True, methods=["post"], url_path="committee-review")
    def committee_review(self, request, pk=None):
        return self._step(safety.safety_committee_review)

    @_step_schema("withdraw", gettext_lazy("Withdraw a report entered in error"), SafetyWithdrawSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        return self._step(safety.safety_withdraw)
