"""``GET /api/v1/work-queue/``: what waits on the caller (cgtclinic.workqueue), for every role."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from cgtclinic import workqueue


class WorkItemSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="What kind of work, e.g. recognition.answer or claim.review.")
    title = serializers.CharField()
    due_at = serializers.DateTimeField(allow_null=True, help_text="When it is due (Beijing time); null if no deadline.")
    all_day = serializers.BooleanField(help_text="The deadline is a whole day (due_at is its first moment).")
    overdue = serializers.BooleanField()
    provisional = serializers.BooleanField(
        help_text="The deadline reaches a year whose holiday schedule is not yet published."
    )
    detail = serializers.CharField(allow_blank=True)
    url = serializers.CharField(help_text="Where the caller acts on it.")


class WorkCountSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField(help_text=f"Capped at {workqueue.COUNT_CAP}.")
    capped = serializers.BooleanField(help_text="There are more than count.")


class WorkQueueSerializer(serializers.Serializer):
    items = WorkItemSerializer(many=True, help_text="Overdue first, then by due moment.")
    counts = WorkCountSerializer(many=True, source="sections")
    overdue = serializers.IntegerField(help_text="Overdue items among those listed.")


class WorkQueueView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="work_queue",
        summary="What waits on me",
        description=(
            "The caller's work queue: items (kind, title, due_at, overdue, url), overdue first, then by due "
            f"moment, at most {workqueue.QUEUE_LIMIT}; and per kind a count capped at {workqueue.COUNT_CAP}."
        ),
        responses=WorkQueueSerializer,
        tags=["work queue"],
    )
    def get(self, request):
        return Response(WorkQueueSerializer(workqueue.work_queue(request.user)).data)
