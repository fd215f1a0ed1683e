from rest_framework.routers import DefaultRouter

from subsidies.api import views

router = DefaultRouter()
router.register("subsidy-programs", views.SubsidyProgramViewSet, basename="subsidy-programs")
router.register("claims", views.ClaimViewSet, basename="claims")

urlpatterns = router.urls
