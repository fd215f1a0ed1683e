from django.db import connection
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.i18n import set_language as django_set_language

from cgtclinic import health as health_checks
from cgtclinic.services import person_set_language


@never_cache
def health(request):
    """Liveness and database reachability, for load balancers and docker-compose health checks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request):
    """Readiness for orchestration and operators: database, broker, deadline worker and beat heartbeats with their
    ages; 503 when any of them is down or stale, so a stopped worker never hides behind a healthy web server."""
    report = health_checks.readiness()
    return JsonResponse(report, status=200 if report["ready"] else 503)


def set_language(request):
    """Django's language switch (session cookie, redirect back), which also remembers the choice on the signed-in
    person, so the messages sent to them follow the language they use on screen."""
    response = django_set_language(request)
    if request.method == "POST" and request.user.is_authenticated:
        person_set_language(person=request.user, language=request.POST.get("language", ""))
    return response


def not_found(request, exception=None):
    """404 for a URL no route matches: JSON under /api/ (an API client never gets an HTML page), else Django's."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": _("Not found."), "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
