from rest_framework.routers import DefaultRouter

from trials.api import filings as filings_views
from trials.api import gate_views, views

router = DefaultRouter()
router.register("trials", views.TrialViewSet, basename="trials")
router.register("sites", views.TrialSiteViewSet, basename="sites")
router.register("filings", filings_views.FilingViewSet, basename="filings")
router.register("documents", views.DocumentVersionViewSet, basename="documents")
router.register("enrolment-entries", views.EnrolmentEntryViewSet, basename="enrolment-entries")
router.register("site-enrolment", views.SiteEnrolmentViewSet, basename="site-enrolment")
router.register("trial-enrolment", views.TrialEnrolmentViewSet, basename="trial-enrolment")
router.register("gate-answers", gate_views.GateAnswerViewSet, basename="gate-answers")
router.register("gcp-certificates", gate_views.GcpCertificateViewSet, basename="gcp-certificates")
router.register("delegations", gate_views.DelegationViewSet, basename="delegations")
router.register("subject-consents", gate_views.SubjectConsentViewSet, basename="subject-consents")
router.register("institutions", views.InstitutionViewSet, basename="institutions")
router.register("sponsors", views.SponsorViewSet, basename="sponsors")
router.register("regions", views.RegionViewSet, basename="regions")

urlpatterns = router.urls
