"""URLs of the benchmark's web server: the project's, and a floor for an authenticated report request."""

from django.db import connection
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from cgtclinic.api.reports import ReportView
from cgtclinic.urls import urlpatterns as project_urlpatterns


class AuthenticatedFloor(APIView):
    """What any report request pays besides its own statements and its log row: gunicorn, Django's middleware,
    DRF's dispatch, the reports' token authentication (one query), permission and throttle (Redis), one trivial
    query and a small JSON response. Served by the benchmark's settings only."""

    authentication_classes = ReportView.authentication_classes
    permission_classes = ReportView.permission_classes
    throttle_classes = ReportView.throttle_classes
    throttle_scope = ReportView.throttle_scope

    def get(self, request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            (value,) = cursor.fetchone()
        return Response({"user": request.user.username, "region": request.user.region.code, "value": value})


urlpatterns = [path("bench/floor/", AuthenticatedFloor.as_view()), *project_urlpatterns]
