"""Issue 11: no report parameter can make a 500, the request log takes any input, and a Redis outage degrades the
throttle instead of failing the report. Each case here answered 500 before."""

import csv
import io
import re

import openpyxl
import pytest
import time_machine
from django.test import override_settings
from rest_framework.test import APIClient

from cgtclinic.api.reports import registered_reports
from cgtclinic.models import ReportRequest
from tests.reports.world import NOW, RegionWorld

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("review_interval", "fresh_throttle")]
REPORTS = [view.name for view in registered_reports()]


@pytest.fixture
def client(regulator):
    client = APIClient()
    client.force_authenticate(regulator)
    return client


@pytest.fixture
def region_world(region):
    with time_machine.travel(NOW, tick=False):
        built = RegionWorld(region)
        built.grow(1)
    return built


@pytest.mark.parametrize("group_by", ["institution", "month", "trial", "site"])
def test_enrolment_over_a_period_without_events(client, region_world, group_by):
    response = client.get(
        "/api/v1/reports/enrolment/",
        {"group_by": group_by, "occurred_from": "2001-01-01", "occurred_to": "2001-01-02"},
    )
    assert response.status_code == 200, response.content
    summary = response.json()["summary"]
    assert summary["enrolled"] == 0
    assert summary["on_study"] == 0


@pytest.mark.parametrize("name", REPORTS)
def test_a_nul_byte_in_the_query_is_refused_and_logged(client, name):
    response = client.get(f"/api/v1/reports/{name}/", {"region": "a\x00b", "x\x00": "\x00"})
    assert response.status_code in (400, 403), response.content
    logged = ReportRequest.objects.get(report=name)
    assert "\x00" not in str(logged.filters)


@pytest.mark.parametrize("name", REPORTS)
def test_a_long_format_is_refused_and_logged(client, name):
    response = client.get(f"/api/v1/reports/{name}/", {"format": "x" * 200})
    assert response.status_code in (400, 404), response.content
    assert response["Content-Type"] == "application/json"
    assert ReportRequest.objects.filter(report=name).count() == 1


@pytest.mark.parametrize("value", ["99999999999999999999999", "9223372036854775808", "-1", "0", "1e3", "x"])
def test_page_out_of_range_is_a_400(client, value):
    response = client.get("/api/v1/reports/pipeline/", {"page": value})
    assert response.status_code == 400, response.content
    assert "page" in response.json()


@pytest.mark.parametrize("value", ["99999999999999999999999", "2147483648"])
def test_ids_out_of_range_are_a_400(client, value):
    for name, parameter in (("enrolment", "institution"), ("enrolment", "trial")):
        response = client.get(f"/api/v1/reports/{name}/", {parameter: value})
        assert response.status_code == 400, response.content


def test_a_very_long_parameter_is_logged_cut(client):
    response = client.get("/api/v1/reports/pipeline/", {"status": "a" * 100_000})
    assert response.status_code == 400
    logged = ReportRequest.objects.get(report="pipeline")
    assert len(str(logged.filters)) < 5_000


def test_a_redis_outage_degrades_the_throttle_not_the_report(client, region_world, caplog):
    down = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # Nothing listens on port 1: every cache call fails, as when Redis is down.
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=down):
        response = client.get("/api/v1/reports/pipeline/")
    assert response.status_code == 200, response.content
    assert any("throttle" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("name", REPORTS)
def test_integer_summary_fields_are_integers(client, region_world, name):
    view = next(v for v in registered_reports() if v.name == name)
    data = client.get(f"/api/v1/reports/{name}/").json()
    for column in view.summary_fields:
        value = data["summary"].get(column.name)
        if column.kind == "integer" and value is not None:
            assert isinstance(value, int), (name, column.name, value)
    for row in data["rows"]:
        for column in view.columns:
            value = row.get(column.name)
            if column.kind == "integer" and value is not None:
                assert isinstance(value, int), (name, column.name, value)


MONEY_PATTERN = re.compile(r"^-?\d+\.\d{2}$")


@pytest.mark.parametrize("name", ["subsidies", "subsidy-projects"])
def test_money_is_a_two_place_decimal_string_in_json_csv_and_a_money_cell_in_excel(client, region_world, name):
    """Issue 11: the subsidy reports sent RMB as JSON floats (450000.0) and mixed 500000.0000 with 450000 in CSV."""
    view = next(v for v in registered_reports() if v.name == name)
    money = [c.name for c in view.columns if c.kind == "money"]
    assert money
    with time_machine.travel(NOW, tick=False):
        data = client.get(f"/api/v1/reports/{name}/").json()
        text = client.get(f"/api/v1/reports/{name}/", {"format": "csv"}).content.decode("utf-8-sig")
        book = openpyxl.load_workbook(io.BytesIO(client.get(f"/api/v1/reports/{name}/", {"format": "xlsx"}).content))
    assert data["rows"], "the world has claims"
    for row in data["rows"]:
        for column in money:
            assert row[column] is None or MONEY_PATTERN.match(row[column]), (column, row[column])
    for field in (c.name for c in view.summary_fields if c.kind == "money"):
        assert MONEY_PATTERN.match(data["summary"][field]), (field, data["summary"][field])
    for row in csv.DictReader(io.StringIO(text)):
        for column in money:
            assert row[column] == "" or MONEY_PATTERN.match(row[column]), (column, row[column])
    sheet = book.worksheets[0]
    labels = [cell.value for cell in sheet[1]]
    for column in money:
        label = next(c["label"] for c in data["columns"] if c["name"] == column)
        cells = [row[labels.index(label)] for row in sheet.iter_rows(min_row=2)]
        assert all(cell.value is None or cell.number_format == "#,##0.00" for cell in cells)


def test_the_reports_index_lists_every_report(client):
    """Issue 11: GET /api/v1/reports/ answered 404 instead of listing the reports."""
    response = client.get("/api/v1/reports/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    listed = response.json()
    assert [entry["name"] for entry in listed] == REPORTS
    assert all(entry["url"].endswith(f"/api/v1/reports/{entry['name']}/") for entry in listed)
    assert all(entry["formats"] == ["json", "csv", "xlsx"] for entry in listed)


def test_the_reports_index_is_for_report_readers_only(research_office):
    other = APIClient()
    other.force_authenticate(research_office)
    assert other.get("/api/v1/reports/").status_code == 403
    assert APIClient().get("/api/v1/reports/").status_code == 401


def test_a_refused_filter_answers_an_object_never_a_list(research_office):
    """Issue 11: a 400 body was a JSON list (django-filter's bare ValidationError), not the documented object."""
    client = APIClient()
    client.force_authenticate(research_office)
    response = client.get("/api/v1/documents/", {"search": "a\x00b"})
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body, dict) and body["detail"]


def test_an_api_url_no_route_matches_answers_json(research_office):
    """Found by the schema run: a nested id that is not a number fell through to Django's HTML 404 page."""
    client = APIClient()
    client.force_authenticate(research_office)
    response = client.get("/api/v1/claims/1/lines/x/exclude/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "text/html" in client.get("/no-such-page/")["Content-Type"]
