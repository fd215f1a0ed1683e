"""The formats a report is given in: JSON, CSV (UTF-8 with a byte-order mark) and Excel."""

import csv
import datetime
import io
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone
from rest_framework.renderers import BaseRenderer, JSONRenderer

from cgtclinic.spreadsheets import MONEY_FORMAT, csv_text, write_only_cell

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("json", "csv", "xlsx")


CENT = Decimal("0.01")


def moneycsv_text(value) -> str | None:
    """An amount of RMB as the reports give it everywhere: a decimal string with two places, never a float."""
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP))


def typed(values: dict, columns) -> dict:
    """Values as their columns declare them: whole numbers as integers (a database SUM is a decimal), money as
    two-place strings."""
    for column in columns:
        value = values.get(column.name)
        if value is None or isinstance(value, bool):
            continue
        if column.kind == "integer":
            values[column.name] = int(value)
        elif column.kind == "money":
            values[column.name] = moneycsv_text(value)
    return values


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def _filename(data: dict, suffix: str) -> str:
    stamp = _local(data["computed_at"]).strftime("%Y%m%d-%H%M%S")
    region = data["filters"].get("region") or "all"
    return f"{data['report']}-{region}-{stamp}.{suffix}"


class ReportJSONRenderer(JSONRenderer):
    format = "json"


class ReportCSVRenderer(BaseRenderer):
    """The rows with a header of field names; every row states when it was computed (``computed_at``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        names = [column["name"] for column in data["columns"]]
        stamps = [csv_text(data["computed_at"]), csv_text(data["data_as_of"])]
        buffer = io.StringIO()
        # A byte-order mark, so that Excel reads the Chinese names as UTF-8.
        buffer.write("\ufeff")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([*names, "computed_at", "data_as_of"])
        for row in data["rows"]:
            writer.writerow([*(csv_text(row.get(name)) for name in names), *stamps])
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{_filename(data, "csv")}"'
        return buffer.getvalue().encode("utf-8")


class ReportXLSXRenderer(BaseRenderer):
    """An Excel workbook: the rows on the first sheet, the report's time, filters and summary on the second."""

    media_type = XLSX_MEDIA_TYPE
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        self._table(workbook.create_sheet(data["report"][:31]), data["columns"], data["rows"])
        # A list a report carries besides its rows (``ReportData.extra``) gets a sheet of its own.
        for key, value in data.items():
            if isinstance(value, dict) and {"columns", "rows"} <= value.keys():
                self._table(workbook.create_sheet(key[:31]), value["columns"], value["rows"])
        about = workbook.create_sheet("about")
        about.append(["report", write_only_cell(about, data["report"])])
        about.append(["title", write_only_cell(about, str(data["title"]))])
        about.append(["computed_at", csv_text(data["computed_at"])])
        about.append(["data_as_of", csv_text(data["data_as_of"])])
        for name, value in data["filters"].items():
            text = csv_text(value) if not isinstance(value, list) else ",".join(value)
            about.append([f"filter.{name}", write_only_cell(about, text)])
        view = (renderer_context or {}).get("view")
        summary_columns = {column.name: column for column in getattr(view, "summary_fields", ())}
        for name, value in data["summary"].items():
            column = summary_columns.get(name)
            kind = column.kind if column else None
            label = str(column.label) if column else name
            about.append([f"summary.{name}", self._value(about, value, kind), write_only_cell(about, label)])
        pagination = data["pagination"]
        about.append(["pagination.page", pagination["page"]])
        about.append(["pagination.count", pagination["count"]])
        buffer = io.BytesIO()
        workbook.save(buffer)
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{_filename(data, "xlsx")}"'
        return buffer.getvalue()

    @classmethod
    def _table(cls, sheet, columns: list[dict], rows: list[dict]) -> None:
        """A header of the columns' labels in the reader's language, then the rows, money as numbers in RMB."""
        sheet.append([write_only_cell(sheet, str(column["label"])) for column in columns])
        for row in rows:
            sheet.append([cls._value(sheet, row.get(column["name"]), column["type"]) for column in columns])

    @staticmethod
    def _value(sheet, value, kind):
        if kind == "money" and value is not None:
            return write_only_cell(sheet, Decimal(str(value)), MONEY_FORMAT)
        return write_only_cell(sheet, value)
