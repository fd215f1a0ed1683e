from rest_framework.routers import DefaultRouter

from ethics.api import views

router = DefaultRouter()
router.register("recognition-requests", views.RecognitionRequestViewSet, basename="recognition-requests")

urlpatterns = router.urls
