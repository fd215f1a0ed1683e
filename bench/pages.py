"""The pages phase: admin changelists and change pages, and the PI portal, as logged-in people see them.

Who: the system administrator (``bench-admin``, a superuser made the way ``manage.py createsuperuser`` makes one,
with no password), and the research office and ethics office of the busiest hospital (the institution with the
most ledger entries), for the admin; the PI with the most sites for ``/pi/``. Each gets a Django session written
through the session store, as a login would leave it: no password is tried, so the login lockout (django-axes)
never counts a failure.

What: every registered ModelAdmin's changelist the viewer may see (from the admin registry, so a new admin is
measured without touching the benchmark); for the heaviest models (largest tables), the changelist with a search
(a word of its first row) and with the first filter its sidebar offers, and the change page of the visible object
with the most rows under it. For the PI, every page of the portal that a GET shows, on the PI's busiest trial and
site. The measuring (HTTP through gunicorn and wrk in ``make bench``, the test client in tests) is passed in.
"""

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db import connection
from django.db.models import Count, ManyToOneRel
from django.test import RequestFactory
from django.urls import reverse
from django.utils.http import urlencode

TARGET_P95_MS = 300
# How many of the registered models, largest table first, also get a search, a filter and a change page.
HEAVY_MODELS = 6
ADMIN_USERNAME = "bench-admin"


@dataclass
class Viewer:
    label: str
    user: object
    cookie: str = ""


@dataclass
class Page:
    viewer: str
    label: str
    url: str
    # For a changelist: whether to derive a search and a filter variant from its first answer.
    variants: bool = False
    extra: dict = field(default_factory=dict)


# --- who ------------------------------------------------------------------------------------------------------------


def system_administrator():
    """The benchmark's superuser: found, or created without a usable password (it only ever gets sessions)."""
    from cgtclinic.models import User

    user = User.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(ADMIN_USERNAME, password=None, full_name="make bench")
    return user


def busiest_institution_id() -> int | None:
    """The institution whose sites hold the most ledger entries."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.institution_id FROM trials_enrolmententry e JOIN trials_trialsite s ON s.id = e.site_id "
            "GROUP BY s.institution_id ORDER BY count(*) DESC, s.institution_id LIMIT 1"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def office_viewers() -> list[Viewer]:
    """The research office and ethics office of the busiest hospital (the first active account of each role)."""
    from cgtclinic.models import User
    from cgtclinic.roles import Role

    institution_id = busiest_institution_id()
    viewers = []
    for role, label in ((Role.RESEARCH_OFFICE, "research office"), (Role.ETHICS_OFFICE, "ethics office")):
        user = (
            User.objects.filter(institution_id=institution_id, role=role, is_active=True).order_by("pk").first()
            if institution_id
            else None
        )
        if user is not None:
            viewers.append(Viewer(f"{label} ({user.username})", user))
    return viewers


def busiest_pi():
    """The PI who leads the most sites."""
    from cgtclinic.models import User
    from cgtclinic.roles import Role

    return (
        User.objects.filter(role=Role.PI, is_active=True)
        .annotate(sites=Count("sites_as_pi"))
        .order_by("-sites", "pk")
        .first()
    )


def session_cookie(user) -> str:
    """A session for ``user`` written through the configured session store, as ``django.contrib.auth.login``
    leaves it; returns the Cookie header that carries it."""
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = "cgtclinic.auth.RoleBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


# --- what -----------------------------------------------------------------------------------------------------------


def table_rows(model) -> int:
    """The planner's row estimate of a model's table (a capped count when the table was never analysed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        estimate = cursor.fetchone()[0]
        if estimate >= 0:
            return estimate
        cursor.execute(f'SELECT count(*) FROM (SELECT 1 FROM "{model._meta.db_table}" LIMIT 100000) AS capped')
        return cursor.fetchone()[0]


def heavy_models(n: int = HEAVY_MODELS) -> list:
    sizes = {model: table_rows(model) for model in admin.site._registry}
    return sorted(sizes, key=lambda m: (-sizes[m], m._meta.label))[:n]


def _admin_request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def biggest_object_pk(model_admin, request):
    """The object the viewer may see with the most rows under it (through its largest one-to-many relation);
    the newest one when nothing hangs under the model."""
    queryset = model_admin.get_queryset(request)
    relations = [r for r in model_admin.model._meta.related_objects if type(r) is ManyToOneRel]
    if relations:
        largest = max(relations, key=lambda r: (table_rows(r.related_model), r.get_accessor_name()))
        queryset = queryset.annotate(bench_children=Count(largest.name)).order_by("-bench_children", "-pk")
    else:
        queryset = queryset.order_by("-pk")
    return queryset.values_list("pk", flat=True).first()


def admin_pages(viewer: Viewer, heavy: list) -> list[Page]:
    request = _admin_request(viewer.user)
    pages = []
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_view_or_change_permission(request):
            continue
        opts = model._meta
        is_heavy = model in heavy
        pages.append(
            Page(
                viewer.label,
                f"{opts.app_label}.{opts.model_name} list",
                reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                variants=is_heavy,
            )
        )
        if is_heavy:
            pk = biggest_object_pk(model_admin, request)
            if pk is not None:
                pages.append(
                    Page(
                        viewer.label,
                        f"{opts.app_label}.{opts.model_name} change",
                        reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]),
                    )
                )
    return pages


SEARCH_BAR = re.compile(r'<input[^>]*name="q"')
FIRST_ROW_LINK = re.compile(r'id="result_list".*?<tbody>.*?<a href="[^"]*/change/[^"]*"[^>]*>([^<]+)</a>', re.S)
FILTER_NAV = re.compile(r'<nav id="changelist-filter".*?</nav>', re.S)
FILTER_LINK = re.compile(r'<a href="(\?[^"]*=[^"]*)"')


def changelist_variants(page: Page, body: str) -> list[Page]:
    """A search for the first word of the first row (whole: some fields match only a whole value, such as a
    decision's letter number) and the first filter choice, when the changelist offers them."""
    variants = []
    if SEARCH_BAR.search(body):
        row = FIRST_ROW_LINK.search(body)
        words = html.unescape(row.group(1)).split() if row else []
        term = words[0] if words else "1"
        variants.append(Page(page.viewer, f"{page.label} search", f"{page.url}?{urlencode({'q': term})}"))
    nav = FILTER_NAV.search(body)
    if nav:
        # The first choice of the first filter: not the facet counts' toggle, not a search.
        links = (html.unescape(href) for href in FILTER_LINK.findall(nav.group(0)))
        link = next((href for href in links if "q=" not in href and "_facets" not in href), None)
        if link:
            variants.append(Page(page.viewer, f"{page.label} filter", f"{page.url}{link}"))
    return variants


def pi_pages(viewer: Viewer) -> list[Page]:
    """Every portal page a GET shows, on the PI's trial with the most sites and the PI's busiest site."""
    from ethics.models import SafetyEvent, Submission
    from trials.models import TrialSite

    own_sites = TrialSite.objects.filter(site_pi=viewer.user)
    site = own_sites.annotate(entries=Count("enrolment_entries")).order_by("-entries", "pk").first()
    trial = (
        own_sites.values_list("trial_id", flat=True)
        .annotate(sites=Count("trial__sites"))
        .order_by("-sites", "trial_id")
        .first()
    )
    names = ["dashboard", "inbox", "qualifications", "safety_list", "project_new"]
    pages = [Page(viewer.label, f"pi {name}", reverse(f"ethics_portal:{name}")) for name in names]
    if trial is not None:
        pages.append(Page(viewer.label, "pi trial", reverse("ethics_portal:trial_detail", args=[trial])))
        submissions = Submission.objects.visible_to(viewer.user).filter(trial_id=trial)
        submission = submissions.order_by("-pk").values_list("pk", flat=True).first()
        if submission is not None:
            pages.append(
                Page(viewer.label, "pi submission", reverse("ethics_portal:submission_detail", args=[submission]))
            )
    if site is not None:
        pages.append(Page(viewer.label, "pi site enrolment", reverse("ethics_portal:site_enrolment", args=[site.pk])))
        pages.append(Page(viewer.label, "pi site start-up", reverse("ethics_portal:site_startup", args=[site.pk])))
    event = SafetyEvent.objects.filter(site__in=own_sites).order_by("-pk").values_list("pk", flat=True).first()
    if event is not None:
        pages.append(Page(viewer.label, "pi safety event", reverse("ethics_portal:safety_detail", args=[event])))
    return pages


# --- measuring --------------------------------------------------------------------------------------------------------

# get(url, cookie) -> (status, body text, seconds); load(url, cookie) -> dict with api_p50, api_p95, requests, errors.
Get = Callable[[str, str], tuple[int, str, float]]
Load = Callable[[str, str], dict]


def viewers() -> list[Viewer]:
    """The admin's viewers, then the PI, each with a fresh session."""
    found = [Viewer("system administrator", system_administrator()), *office_viewers()]
    pi = busiest_pi()
    if pi is not None:
        found.append(Viewer(f"PI ({pi.username})", pi))
    for viewer in found:
        viewer.cookie = session_cookie(viewer.user)
    return found


def run(
    get: Get,
    load: Load,
    *,
    slow_seconds: float = 3.0,
    report: Callable[[dict], None] = lambda r: None,
    only: tuple[str, ...] = (),
) -> list:
    """Every page for every viewer: one warm-up GET (it must answer 200), then ``load``; a page slower than
    ``slow_seconds`` on its warm-up is not loaded further (its one timing is its figure), so a page taking tens of
    seconds costs one request, not a load run. With ``only``, just the pages whose label contains one of those
    texts (``safetyevent``, ``pi safety``), with their search and filter variants."""
    from cgtclinic.roles import Role

    def wanted(page: Page) -> bool:
        return not only or any(text in page.label for text in only)

    results = []
    heavy = heavy_models()
    for viewer in viewers():
        pages = pi_pages(viewer) if viewer.user.role == Role.PI else admin_pages(viewer, heavy)
        queue = [page for page in pages if wanted(page)]
        while queue:
            page = queue.pop(0)
            result, body = measure(page, viewer, get, load, slow_seconds)
            results.append(result)
            report(result)
            if page.variants and body is not None:
                queue[0:0] = changelist_variants(page, body)
    return results


def measure(page: Page, viewer: Viewer, get: Get, load: Load, slow_seconds: float) -> tuple[dict, str | None]:
    """The page's figures, and its HTML (None when it did not answer 200)."""
    result = {"viewer": page.viewer, "page": page.label, "url": page.url}
    status, body, seconds = get(page.url, viewer.cookie)
    if status != 200:
        result.update(error=f"HTTP {status}", passed=False)
        return result, None
    result["bytes"] = len(body.encode())
    loaded = load(page.url, viewer.cookie) if seconds <= slow_seconds else {}
    if not loaded.get("requests"):
        # Too slow to load (or no request finished within the load's time): its first answer is its figure.
        ms = seconds * 1000
        loaded = {"requests": 1, "errors": 0, "api_p50": ms, "api_p95": ms, "rps": 1 / seconds, "single": True}
    result.update(loaded)
    result["passed"] = result["errors"] == 0 and result["api_p95"] <= TARGET_P95_MS
    return result, body
