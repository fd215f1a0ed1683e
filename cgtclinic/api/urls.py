from django.urls import path
from rest_framework.routers import SimpleRouter

from cgtclinic.api.notifications import NotificationViewSet
from cgtclinic.api.workqueue import WorkQueueView

router = SimpleRouter()
router.register("notifications", NotificationViewSet, basename="notifications")

urlpatterns = [path("work-queue/", WorkQueueView.as_view(), name="work-queue"), *router.urls]
