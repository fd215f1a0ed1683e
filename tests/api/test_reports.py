"""The regulator reports' frame over HTTP: who may read what, formats, filters, throttling, the request log, the
OpenAPI schema, and a number of queries per report that does not grow with the data."""

import csv
import datetime
import io

import openpyxl
import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cgtclinic.api.reports import registered_reports
from cgtclinic.models import ReportRequest
from cgtclinic.roles import Role
from tests.factories.cgtclinic import (
    InstitutionFactory,
    RegionFactory,
    UserFactory,
    issue_token,
)
from tests.factories.trials import TrialFactory
from tests.reports.world import NOW, RegionWorld
from trials.models import TrialSite

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("review_interval", "fresh_throttle")]
REPORTS = [view.name for view in registered_reports()]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def region_world(region):
    with time_machine.travel(NOW, tick=False):
        built = RegionWorld(region)
        built.grow(2)
    return built


@pytest.fixture
def other_region(db):
    return RegionFactory(code="other-region")


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_every_report_is_registered_with_its_contract():
    assert REPORTS == [
        "pipeline",
        "startup",
        "enrolment",
        "policy-targets",
        "research-filings",
        "recognition-timeliness",
        "ethics-turnaround",
        "safety-timeliness",
        "subsidies",
        "subsidy-projects",
    ]
    for view in registered_reports():
        assert "%(region_id)s" in view.bench_sql
        assert view.columns and view.summary_fields and view.title
        assert len({column.name for column in view.columns}) == len(view.columns)


@pytest.mark.parametrize("name", REPORTS)
@pytest.mark.parametrize("role", ["research_office", "ethics_office", "pi"])
def test_hospital_roles_are_refused(name, role, request):
    response = client_for(request.getfixturevalue(role)).get(f"/api/v1/reports/{name}/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("name", REPORTS)
def test_anonymous_requests_must_sign_in(name, api_client):
    response = api_client.get(f"/api/v1/reports/{name}/", {"format": "csv"})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert ReportRequest.objects.count() == 0


@pytest.mark.parametrize("name", REPORTS)
def test_regulators_and_system_administrators_read_every_report(name, regulator, system_admin):
    for user in (regulator, system_admin):
        response = client_for(user).get(f"/api/v1/reports/{name}/")
        assert response.status_code == 200, response.content
        data = response.json()
        # The timeliness report also lists the overdue requests.
        assert ("overdue_requests" in data) == (name == "recognition-timeliness")
        assert set(data) - {"overdue_requests"} == {
            "report",
            "title",
            "computed_at",
            "data_as_of",
            "filters",
            "columns",
            "rows",
            "summary",
            "pagination",
        }
        assert data["report"] == name


def test_an_inactive_regulator_is_refused(regulator):
    regulator.is_active = False
    regulator.save(update_fields=["is_active"])
    token = issue_token(regulator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/reports/pipeline/").status_code == 401


def test_a_regulator_reads_with_a_token_and_only_their_region(region_world, regulator, other_region):
    token = issue_token(regulator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/reports/pipeline/", {"region": region_world.region.code}).status_code == 200
    refused = client.get("/api/v1/reports/pipeline/", {"region": other_region.code}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 403
    assert "region" in refused.json()["detail"]


def test_another_regions_regulator_sees_none_of_this_regions_data(region_world, other_region):
    stranger = UserFactory(role=Role.REGULATOR, region=other_region)
    for name in REPORTS:
        data = client_for(stranger).get(f"/api/v1/reports/{name}/").json()
        assert data["rows"] == [], name
        assert data["filters"]["region"] == other_region.code


def test_system_administrator_chooses_a_region(region_world, system_admin, region):
    client = client_for(system_admin)
    assert client.get("/api/v1/reports/pipeline/", {"region": region.code}).json()["filters"]["region"] == region.code
    unknown = client.get("/api/v1/reports/pipeline/", {"region": "atlantis"})
    assert unknown.status_code == 400
    assert "region" in unknown.json()


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("pipeline", {"format": "pdf"}, "format"),
        ("pipeline", {"status": "dreaming"}, "status"),
        ("pipeline", {"group_by": "sponsor"}, "group_by"),
        ("pipeline", {"registered_from": "2025-13-01"}, "registered_from"),
        ("startup", {"submitted_from": "2025-06-01", "submitted_to": "2025-01-01"}, "submitted_to"),
        ("startup", {"target_weeks": "0"}, "target_weeks"),
        ("enrolment", {"group_by": "sponsor"}, "group_by"),
        ("enrolment", {"page": "0"}, "page"),
        ("enrolment", {"page_size": "20001"}, "page_size"),
        ("recognition-timeliness", {"group_by": "month"}, "group_by"),
        ("ethics-turnaround", {"kind": "letter"}, "kind"),
        ("subsidies", {"status": "draft"}, "status"),
        ("subsidies", {"year": "1999"}, "year"),
    ],
)
def test_bad_filters_are_refused_with_the_parameter_named(name, params, field, regulator):
    response = client_for(regulator).get(f"/api/v1/reports/{name}/", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in response.json()
    log = ReportRequest.objects.get()
    assert (log.status_code, log.rows) == (400, None)


def test_json_states_when_it_was_computed(region_world, regulator):
    with time_machine.travel(NOW, tick=False):
        data = client_for(regulator).get("/api/v1/reports/enrolment/").json()
    assert data["computed_at"] == data["data_as_of"] == NOW.isoformat()
    assert [column["name"] for column in data["columns"]][:3] == ["trial_id", "protocol_number", "site_id"]
    assert {column["type"] for column in data["columns"]} <= {"string", "integer", "number", "date", "boolean"}


@pytest.mark.parametrize("name", REPORTS)
def test_csv_has_the_json_rows_and_states_when_it_was_computed(name, region_world, regulator):
    client = client_for(regulator)
    with time_machine.travel(NOW, tick=False):
        data = client.get(f"/api/v1/reports/{name}/", {"page_size": 1000}).json()
        response = client.get(f"/api/v1/reports/{name}/", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{name}-{region_world.region.code}-')
    text = response.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) if rows else True
    header = next(csv.reader(io.StringIO(text)))
    assert header == [column["name"] for column in data["columns"]] + ["computed_at", "data_as_of"]
    assert len(rows) == len(data["rows"])
    for row, json_row in zip(rows, data["rows"], strict=True):
        assert row["computed_at"] == row["data_as_of"] == NOW.isoformat()
        first = data["columns"][0]["name"]
        assert row[first] == ("" if json_row[first] is None else str(json_row[first]))


@pytest.mark.parametrize("name", ["pipeline", "startup", "recognition-timeliness", "subsidies"])
def test_excel_has_the_rows_and_a_sheet_stating_when_it_was_computed(name, region_world, regulator):
    client = client_for(regulator)
    with time_machine.travel(NOW, tick=False):
        data = client.get(f"/api/v1/reports/{name}/").json()
        response = client.get(f"/api/v1/reports/{name}/", {"format": "xlsx"})
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    rows_sheet, *extra, about = workbook.worksheets
    assert [sheet.title for sheet in extra] == [key for key in data if key == "overdue_requests"]
    values = list(rows_sheet.values)
    # Headers people read, in the caller's language; the stable names are the JSON's and the CSV's.
    assert list(values[0]) == [column["label"] for column in data["columns"]]
    assert len(values) - 1 == len(data["rows"])
    facts = {row[0]: row[1] for row in about.values}
    assert facts["report"] == name
    assert facts["computed_at"] == facts["data_as_of"] == NOW.isoformat()
    for key, value in data["summary"].items():
        assert f"summary.{key}" in facts
        if isinstance(value, int) and not isinstance(value, bool):
            assert facts[f"summary.{key}"] == value


def test_timeliness_exports_the_overdue_requests(region_world, regulator):
    client = client_for(regulator)
    with time_machine.travel(NOW, tick=False):
        data = client.get("/api/v1/reports/recognition-timeliness/").json()
        workbook = client.get("/api/v1/reports/recognition-timeliness/", {"format": "xlsx"})
        text = client.get("/api/v1/reports/recognition-timeliness/", {"format": "csv", "rows": "overdue"})
        groups_csv = client.get("/api/v1/reports/recognition-timeliness/", {"format": "csv"})
    overdue = data["overdue_requests"]
    assert overdue["rows"], "the world has overdue requests"
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content))["overdue_requests"]
    values = list(sheet.values)
    assert list(values[0]) == [column["label"] for column in overdue["columns"]]
    assert [row[0] for row in values[1:]] == [row["request_id"] for row in overdue["rows"]]
    rows = list(csv.DictReader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert [int(row["request_id"]) for row in rows] == [row["request_id"] for row in overdue["rows"]]
    assert [float(row["overdue_days"]) for row in rows] == [row["overdue_days"] for row in overdue["rows"]]
    header = next(csv.reader(io.StringIO(groups_csv.content.decode("utf-8-sig"))))
    assert header[:3] == ["group", "group_id", "group_name"]


def test_refusals_are_json_whatever_the_format(regulator, other_region):
    response = client_for(regulator).get("/api/v1/reports/pipeline/", {"format": "xlsx", "region": other_region.code})
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


def test_requests_are_logged(region_world, regulator):
    client = client_for(regulator)
    client.get("/api/v1/reports/enrolment/", {"group_by": "site", "format": "csv"})
    client.get("/api/v1/reports/startup/", {"submitted_from": "nonsense"})
    ok, bad = ReportRequest.objects.order_by("pk")
    assert (ok.user, ok.report, ok.format, ok.status_code) == (regulator, "enrolment", "csv", 200)
    assert ok.filters == {"group_by": "site", "format": "csv"}
    assert ok.rows == TrialSite.objects.filter(institution__region=region_world.region).count()
    assert ok.duration_ms >= 0
    assert (bad.report, bad.status_code, bad.format) == ("startup", 400, "json")


def test_requests_are_throttled_per_user(regulator, system_admin, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"reports": "3/minute"}}
    client = client_for(regulator)
    # The budget is counted per minute: the clock stands at 10 s into one.
    with time_machine.travel(datetime.datetime(2026, 11, 23, 10, 0, 10, tzinfo=datetime.UTC), tick=False) as clock:
        statuses = [client.get("/api/v1/reports/policy-targets/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/api/v1/reports/pipeline/")
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) == 50
        assert ReportRequest.objects.filter(status_code=429).count() == 2
        # Another user has a budget of their own.
        assert client_for(system_admin).get("/api/v1/reports/pipeline/").status_code == 200
        # The next minute brings a new budget.
        clock.shift(datetime.timedelta(seconds=50))
        assert client.get("/api/v1/reports/pipeline/").status_code == 200


def test_the_default_rate_is_in_the_settings(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["reports"] == "60/minute"


def test_pages(region_world, regulator):
    client = client_for(regulator)
    whole = client.get("/api/v1/reports/enrolment/", {"group_by": "site"}).json()
    pages, page = [], 1
    while True:
        data = client.get("/api/v1/reports/enrolment/", {"group_by": "site", "page_size": 2, "page": page}).json()
        assert data["pagination"] == {"page": page, "page_size": 2, "count": len(whole["rows"])}
        if not data["rows"]:
            break
        pages.append(data["rows"])
        page += 1
    assert [row for rows in pages for row in rows] == whole["rows"]
    assert len(pages) == (len(whole["rows"]) + 1) // 2
    groups = client.get("/api/v1/reports/pipeline/").json()
    beyond = client.get("/api/v1/reports/pipeline/", {"page": 50}).json()
    assert beyond["rows"] == [] and beyond["pagination"]["count"] == len(groups["rows"])


def test_schema_documents_every_report(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for name in REPORTS:
        assert f"/api/v1/reports/{name}/:" in schema
        assert f"operationId: reports_{name.replace('-', '_')}" in schema
    for field in ("computed_at", "data_as_of", "median_working_hours", "room_under_institution_year_cap"):
        assert f"{field}:" in schema


# Per case: the queries of one request. One for the token, its user and the user's region, the report's own
# statements, and one for the log row. Subsidies and subsidy projects: the cap policy values and one statement for
# the page, its count and the summary; ethics-turnaround: the groups and their total (GROUPING SETS);
# recognition-timeliness: the groups and their total (GROUPING SETS), then the overdue requests with their count;
# with ?rows=overdue, the summary and the page of overdue requests with their count.
QUERY_COUNT_CASES = [
    ("pipeline", {}, 4),
    ("pipeline", {"group_by": "institution,status"}, 4),
    ("startup", {}, 5),
    ("enrolment", {}, 4),
    ("enrolment", {"group_by": "site", "occurred_from": "2024-01-01"}, 6),
    ("enrolment", {"group_by": "institution", "occurred_from": "2024-01-01"}, 5),
    ("enrolment", {"group_by": "month"}, 4),
    ("policy-targets", {}, 4),
    ("research-filings", {}, 4),
    ("research-filings", {"format": "xlsx", "kind": "annual,new_technology"}, 4),
    ("recognition-timeliness", {}, 4),
    ("recognition-timeliness", {"group_by": "institution", "format": "xlsx"}, 4),
    ("recognition-timeliness", {"rows": "overdue"}, 4),
    ("recognition-timeliness", {"format": "csv"}, 3),
    ("ethics-turnaround", {"group_by": "kind,institution"}, 3),
    ("subsidies", {}, 4),
    ("subsidy-projects", {}, 4),
    ("startup", {"format": "csv"}, 5),
    ("subsidies", {"format": "xlsx"}, 4),
]


def test_queries_per_report_do_not_grow_with_the_data(region, django_assert_max_num_queries):
    regulator = UserFactory(role=Role.REGULATOR, region=region)
    token = issue_token(regulator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    counts = {}
    with time_machine.travel(NOW, tick=False):
        world = RegionWorld(region)
        # The token's first use records it (an UPDATE at most once a minute); what is counted is the steady state.
        assert client.get("/api/v1/reports/").status_code == 200
        for size in (2, 6):
            world.grow(size)
            for name, params, most in QUERY_COUNT_CASES:
                with django_assert_max_num_queries(most), CaptureQueriesContext(connection) as queries:
                    response = client.get(f"/api/v1/reports/{name}/", params)
                assert response.status_code == 200, response.content
                rows = response.json()["rows"] if params.get("format") is None else response.content
                assert rows, f"{name}: nothing to count at size {size}"
                counts.setdefault((name, str(params)), []).append(len(queries))
            cache.clear()  # the throttle
    assert {case: used for case, used in counts.items() if used[0] != used[1]} == {}


def test_other_regions_do_not_change_the_region_figures(region_world, regulator):
    before = {name: client_for(regulator).get(f"/api/v1/reports/{name}/").json() for name in REPORTS}
    with time_machine.travel(NOW, tick=False):
        RegionWorld(RegionFactory(code="elsewhere")).grow(2)
    cache.clear()
    for name in REPORTS:
        after = client_for(regulator).get(f"/api/v1/reports/{name}/").json()
        assert (after["rows"], after["summary"]) == (before[name]["rows"], before[name]["summary"]), name


def test_exports_never_turn_text_into_a_formula(region, regulator):
    hospital = InstitutionFactory(region=region, name_zh='=HYPERLINK("http://example.org","点我")')
    TrialFactory(lead_institution=hospital)
    client = client_for(regulator)
    text = client.get("/api/v1/reports/pipeline/", {"group_by": "institution", "format": "csv"}).content
    (row,) = list(csv.DictReader(io.StringIO(text.decode("utf-8-sig"))))
    assert row["institution_name"] == f"'{hospital.name_zh}"
    workbook = openpyxl.load_workbook(
        io.BytesIO(client.get("/api/v1/reports/pipeline/", {"group_by": "institution", "format": "xlsx"}).content)
    )
    names = [cell for cell in next(workbook.worksheets[0].iter_rows(min_row=2)) if cell.value == hospital.name_zh]
    assert names and names[0].data_type == "s"
