"""The caller's notifications: ``GET /api/v1/notifications/`` (``?unread=1``), mark one or all read."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from cgtclinic import inbox
from cgtclinic.models import Notification


class NotificationSerializer(serializers.ModelSerializer):
    unread = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "topic", "subject", "body", "link", "created_at", "read_at", "unread"]
        read_only_fields = fields

    def get_unread(self, obj) -> bool:
        return obj.read_at is None


UNREAD = OpenApiParameter("unread", OpenApiTypes.BOOL, description="1: only unread notifications.", required=False)


@extend_schema_view(
    list=extend_schema(
        summary="My notifications, newest first",
        parameters=[UNREAD],
        tags=["notifications"],
    ),
)
class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Only the caller's own notifications: another person's is a 404."""

    serializer_class = NotificationSerializer
    permission_classes = [IsAuthenticated]
    filter_backends = []
    queryset = Notification.objects.none()

    def get_queryset(self):
        unread = self.request.query_params.get("unread", "").lower() in ("1", "true", "yes")
        return inbox.notifications_of(self.request.user, unread=unread)

    @extend_schema(
        summary="Mark one of my notifications read",
        request=None,
        responses={200: NotificationSerializer},
        tags=["notifications"],
    )
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        notification = get_object_or_404(inbox.notifications_of(request.user), pk=pk)
        return Response(self.get_serializer(inbox.mark_read(notification=notification, actor=request.user)).data)

    @extend_schema(
        summary="Mark all my notifications read",
        request=None,
        responses={200: inline_serializer("NotificationsMarkedRead", {"marked": serializers.IntegerField()})},
        tags=["notifications"],
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        return Response({"marked": inbox.mark_all_read(actor=request.user)})
