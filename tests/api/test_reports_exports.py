"""The reports' CSV and Excel exports: the same file as before the per-column converters and XlsxWriter (cells, number
formats, the formula guard, Beijing time), refusals as JSON in every format, and queries that do not grow with rows."""

import csv
import datetime
import io
from decimal import Decimal

import openpyxl
import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate

from cgtclinic.api.reports import (
    Column,
    ReportCSVRenderer,
    ReportData,
    ReportView,
    ReportXLSXRenderer,
    registered_reports,
)
from cgtclinic.api.reports.renderers import typed
from cgtclinic.models import ReportRequest
from cgtclinic.spreadsheets import csv_text
from tests.reports.world import NOW, RegionWorld

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("review_interval", "fresh_throttle")]
REPORTS = [view.name for view in registered_reports()]
UTC = datetime.UTC

COLUMNS = (
    Column("site_id", "integer", "site id"),
    Column("institution_name", "string", "=institution"),
    Column("received_on", "date", "received"),
    Column("received_at", "datetime", "received at"),
    Column("share", "number", "share"),
    Column("claimed", "money", "claimed"),
    Column("within_target", "boolean", "within target"),
)
# Every kind of value a report's rows hold, the awkward ones included: a database SUM (a Decimal) in an integer
# column, text that looks like a formula, a negative or three-place amount, an aware time, a row missing a column.
ROWS = [
    {
        "site_id": 1,
        "institution_name": '=HYPERLINK("http://example.org","点我")',
        "received_on": datetime.date(2026, 3, 1),
        "received_at": datetime.datetime(2026, 3, 1, 17, 30, tzinfo=UTC),
        "share": 0.25,
        "claimed": Decimal("1234.565"),
        "within_target": True,
    },
    {
        "site_id": Decimal("2"),
        "institution_name": "瑞康医院",
        "received_on": None,
        "received_at": None,
        "share": Decimal("0.5"),
        "claimed": Decimal("-12.5"),
        "within_target": False,
    },
    {"site_id": 3, "institution_name": "-1+1", "share": None, "claimed": 0, "within_target": None},
    {"site_id": 4, "institution_name": "@sum", "received_on": datetime.date(2026, 1, 1), "claimed": None},
]


def export_data(rows) -> dict:
    return {
        "report": "startup",
        "title": "Site start-up time",
        "computed_at": NOW,
        "data_as_of": NOW,
        "filters": {"region": "test-region", "kind": ["iit", "registration"], "note": "=1+1"},
        "columns": [{"name": c.name, "label": c.label, "type": c.kind} for c in COLUMNS],
        "rows": rows,
        "summary": typed({"sites": Decimal("4"), "claimed": Decimal("1222.06")}, SUMMARY),
        "pagination": {"page": 1, "page_size": 20000, "count": len(rows)},
    }


SUMMARY = (Column("sites", "integer", "sites"), Column("claimed", "money", "claimed in all"))


class SummaryView:
    summary_fields = SUMMARY


def former_csv(data: dict) -> bytes:
    """The CSV as the reports wrote it before the per-column converters: ``typed`` on every row, then ``csv_text`` on
    every cell."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    names = [column["name"] for column in data["columns"]]
    money = {column["name"] for column in data["columns"] if column["type"] == "money"}
    writer.writerow([*names, "computed_at", "data_as_of"])
    for row in data["rows"]:
        row = typed(dict(row), COLUMNS)
        # Money is a canonical decimal, written as it is (a negative amount keeps its sign, no apostrophe).
        cells = [row.get(name) or "" if name in money else csv_text(row.get(name)) for name in names]
        writer.writerow([*cells, csv_text(NOW), csv_text(NOW)])
    return buffer.getvalue().encode("utf-8")


def test_csv_is_what_it_was_with_negative_amounts_as_numbers():
    rendered = ReportCSVRenderer().render(export_data([dict(row) for row in ROWS]))
    assert rendered == former_csv(export_data(ROWS))
    header, *rows = csv.reader(io.StringIO(rendered.decode("utf-8-sig")))
    assert header == [column.name for column in COLUMNS] + ["computed_at", "data_as_of"]
    # Formula-like text behind an apostrophe; a negative amount is a number, not text, and keeps its sign.
    assert rows[0][:7] == [
        "1",
        '\'=HYPERLINK("http://example.org","点我")',
        "2026-03-01",
        "2026-03-02T01:30:00+08:00",
        "0.25",
        "1234.57",
        "true",
    ]
    assert rows[1][:7] == ["2", "瑞康医院", "", "", "0.5", "-12.50", "false"]
    assert rows[2][:7] == ["3", "'-1+1", "", "", "", "0.00", ""]
    assert rows[3][:7] == ["4", "'@sum", "2026-01-01", "", "", "", ""]
    assert {row[7] for row in rows} == {row[8] for row in rows} == {NOW.isoformat()}


def test_excel_has_the_same_cells_and_number_formats():
    book = openpyxl.load_workbook(
        io.BytesIO(ReportXLSXRenderer().render(export_data(ROWS), renderer_context={"view": SummaryView()}))
    )
    assert book.sheetnames == ["startup", "about"]
    sheet = book["startup"]
    cells = [[(cell.value, cell.data_type, cell.number_format) for cell in row] for row in sheet.iter_rows()]
    general = "General"
    assert cells[0] == [(column.label, "s", general) for column in COLUMNS]
    assert cells[1] == [
        (1, "n", general),
        ('=HYPERLINK("http://example.org","点我")', "s", general),
        (datetime.datetime(2026, 3, 1), "d", "yyyy-mm-dd"),
        # Beijing wall-clock time.
        (datetime.datetime(2026, 3, 2, 1, 30), "d", "yyyy-mm-dd h:mm:ss"),
        (0.25, "n", general),
        (1234.57, "n", "#,##0.00"),
        (True, "b", general),
    ]
    assert [cell[0] for cell in cells[2]] == [2, "瑞康医院", None, None, 0.5, -12.5, False]
    assert cells[2][5][2] == "#,##0.00"
    assert [cell[0] for cell in cells[3]] == [3, "-1+1", None, None, None, 0, None]
    assert [cell[0] for cell in cells[4]] == [4, "@sum", datetime.datetime(2026, 1, 1), None, None, None, None]
    about = {row[0].value: row[1:] for row in book["about"].iter_rows()}
    assert about["report"][0].value == "startup"
    assert about["computed_at"][0].value == about["data_as_of"][0].value == NOW.isoformat()
    assert about["filter.kind"][0].value == "iit,registration"
    assert (about["filter.note"][0].value, about["filter.note"][0].data_type) == ("'=1+1", "s")
    assert (about["summary.sites"][0].value, about["summary.sites"][1].value) == (4, "sites")
    assert (about["summary.claimed"][0].value, about["summary.claimed"][0].number_format) == (1222.06, "#,##0.00")
    assert (about["pagination.page"][0].value, about["pagination.count"][0].value) == (1, 4)


@pytest.fixture
def region_world(region):
    with time_machine.travel(NOW, tick=False):
        built = RegionWorld(region)
        built.grow(2)
    return built


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_exports_its_json_rows(name, region_world, regulator):
    client = client_for(regulator)
    with time_machine.travel(NOW, tick=False):
        data = client.get(f"/api/v1/reports/{name}/", {"page_size": 1000}).json()
        as_csv = client.get(f"/api/v1/reports/{name}/", {"format": "csv"})
        as_xlsx = client.get(f"/api/v1/reports/{name}/", {"format": "xlsx"})
    assert as_xlsx["Content-Disposition"].startswith(f'attachment; filename="{name}-{region_world.region.code}-')
    columns = data["columns"]
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).worksheets[0]
    cells = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(cells) == len(data["rows"])
    for row, values, json_row in zip(rows, cells, data["rows"], strict=True):
        for column, value in zip(columns, values, strict=True):
            expected = json_row[column["name"]]
            if column["type"] in ("integer", "money") and expected is not None and not isinstance(expected, bool):
                assert row[column["name"]] == csv_text(expected), (name, column["name"])
                assert Decimal(str(value)) == Decimal(str(expected)), (name, column["name"])
            elif column["type"] == "string":
                assert row[column["name"]] == csv_text(expected), (name, column["name"])
                assert value == expected, (name, column["name"])


@pytest.mark.parametrize("export", ["csv", "xlsx"])
def test_a_bad_parameter_is_a_json_400_in_every_format_and_logged(export, region_world, regulator):
    client = client_for(regulator)
    response = client.get("/api/v1/reports/startup/", {"format": export, "submitted_from": "nonsense"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "submitted_from" in response.json()
    assert not response.has_header("Content-Disposition")
    log = ReportRequest.objects.get()
    assert (log.format, log.status_code, log.rows) == (export, 400, None)


def test_an_export_is_logged_with_its_rows(region_world, regulator):
    client = client_for(regulator)
    with time_machine.travel(NOW, tick=False):
        count = client.get("/api/v1/reports/startup/").json()["pagination"]["count"]
        client.get("/api/v1/reports/startup/", {"format": "xlsx"})
    log = ReportRequest.objects.order_by("pk").last()
    assert (log.format, log.status_code, log.rows) == ("xlsx", 200, count)
    assert log.duration_ms >= 0


def test_exports_read_as_many_queries_whatever_their_rows(region, regulator, django_assert_max_num_queries):
    client = client_for(regulator)
    counts = {}
    with time_machine.travel(NOW, tick=False):
        world = RegionWorld(region)
        for size in (1, 3):
            world.grow(size)
            for name in REPORTS:
                for export in ("csv", "xlsx"):
                    # The report's own queries, the data's age and the log row: never one per row.
                    with django_assert_max_num_queries(7), CaptureQueriesContext(connection) as queries:
                        response = client.get(f"/api/v1/reports/{name}/", {"format": export})
                    assert response.status_code == 200, response.content
                    counts.setdefault((name, export), []).append(len(queries))
            cache.clear()  # the throttle
    assert {case: used for case, used in counts.items() if used[0] != used[1]} == {}


class UnrenderableReport(ReportView):
    """A report whose integer column holds text: its export fails while the file is written."""

    name = "unrenderable"
    title = "unrenderable"
    columns = (Column("sites", "integer", "sites"),)
    summary_fields = ()
    bench_sql = "SELECT %(region_id)s"

    def compute(self, scope, filters):
        return ReportData(rows=[{"sites": 1}, {"sites": "n/a"}], summary={})


@pytest.mark.parametrize("export", ["csv", "xlsx"])
def test_an_export_that_fails_while_written_is_an_error_never_a_short_file(export, regulator):
    request = APIRequestFactory().get("/api/v1/reports/unrenderable/", {"format": export})
    force_authenticate(request, regulator)
    # Raised to the handler, which answers 500 and logs the traceback; no byte of the file was sent.
    with pytest.raises(ValueError, match="n/a"):
        UnrenderableReport.as_view()(request)
    log = ReportRequest.objects.get()
    assert (log.report, log.format, log.status_code, log.rows) == ("unrenderable", export, 500, 2)
