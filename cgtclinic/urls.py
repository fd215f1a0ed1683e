from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from cgtclinic import views
from cgtclinic.api.reports import ReportIndexView

admin.site.site_header = admin.site.site_title = "cgtclinic"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("health/", views.health, name="health"),
    path("health/ready/", views.ready, name="health-ready"),
    path("pi/", include("ethics.portal.urls")),
    path("api/v1/", include("trials.api.urls")),
    path("api/v1/", include("subsidies.api.urls")),
    path("api/v1/", include("ethics.api.urls")),
    path("api/v1/", include("cgtclinic.api.urls")),
    # Regulator reports: each app serves the reports over its own tables (cgtclinic.api.reports is the frame).
    path("api/v1/reports/", ReportIndexView.as_view(), name="reports-index"),
    path("api/v1/reports/", include("trials.api.report_urls")),
    path("api/v1/reports/", include("ethics.api.report_urls")),
    path("api/v1/reports/", include("subsidies.api.report_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

handler404 = "cgtclinic.views.not_found"
