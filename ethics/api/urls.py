from rest_framework.routers import DefaultRouter

from ethics.api import safety, views

router = DefaultRouter()
router.register("recognition-requests", views.RecognitionRequestViewSet, basename="recognition-requests")
router.register("safety-events", safety.SafetyEventViewSet, basename="safety-events")

urlpatterns = router.urls
