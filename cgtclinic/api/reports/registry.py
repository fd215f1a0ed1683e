"""The reports the URL configuration serves, their index (GET /api/v1/reports/) and the URL pattern of one."""

from collections.abc import Callable

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from cgtclinic.api.reports.access import ReportPermission
from cgtclinic.api.reports.renderers import FORMATS
from cgtclinic.api.reports.schema import error_responses
from cgtclinic.api.reports.views import ReportView
from cgtclinic.auth import ApiTokenAuthentication


def registered_reports() -> list[type[ReportView]]:
    """Every report the URL configuration serves, in URL order (the apps plug theirs in under /api/v1/reports/)."""
    found: list[type[ReportView]] = []

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                view_class = getattr(pattern.callback, "view_class", None)
                if isinstance(view_class, type) and issubclass(view_class, ReportView) and view_class not in found:
                    found.append(view_class)

    walk(get_resolver(getattr(settings, "ROOT_URLCONF", None)).url_patterns)
    return found


class ReportIndexEntrySerializer(serializers.Serializer):
    name = serializers.CharField(help_text=gettext_lazy("The report's name: its URL is /api/v1/reports/<name>/."))
    title = serializers.CharField(help_text=gettext_lazy("The report's title in the caller's language."))
    description = serializers.CharField()
    url = serializers.CharField(help_text=gettext_lazy("The report's address (JSON; ?format=csv or xlsx to export)."))
    formats = serializers.ListField(child=serializers.CharField())


class ReportIndexView(APIView):
    """GET /api/v1/reports/: the reports the caller may read, with their titles and addresses."""

    http_method_names = ["get", "head", "options"]
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [ReportPermission]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="reports_index",
        summary=gettext_lazy("List the regulator reports"),
        responses={200: ReportIndexEntrySerializer(many=True), **error_responses(401, 403)},
        tags=["reports"],
    )
    def get(self, request):
        return Response(
            [
                {
                    "name": view.name,
                    "title": str(view.title),
                    "description": str(view.description),
                    "url": request.build_absolute_uri(f"{view.name}/"),
                    "formats": list(FORMATS),
                }
                for view in registered_reports()
            ]
        )


def report_path(view: type[ReportView]) -> Callable:
    """The URL pattern of a report: /api/v1/reports/<name>/ (to put in an app's report_urls.py)."""
    from django.urls import path

    return path(f"{view.name}/", view.as_view(), name=f"report-{view.name}")
