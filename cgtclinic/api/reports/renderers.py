"""The formats a report is given in: JSON, CSV (UTF-8 with a byte-order mark) and Excel.

An export holds up to ``EXPORT_PAGE_SIZE`` rows, so both export renderers convert a value by its column, with a
converter chosen once per column, and the commonest Python types first (a report's cells are mostly text,
integers, dates and None): the per-cell cost is what an export costs at national scale (docs/reports.md)."""

import csv
import datetime
import io
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter

from django.utils import timezone
from rest_framework.renderers import BaseRenderer, JSONRenderer

from cgtclinic.spreadsheets import FORMULA_START, MONEY_FORMAT, csv_text, xlsx_value

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("json", "csv", "xlsx")
# How Excel shows the dates and times of an export (openpyxl's defaults, which the exports used before).
XLSX_DATE_FORMAT = "yyyy-mm-dd"
XLSX_DATETIME_FORMAT = "yyyy-mm-dd h:mm:ss"


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


def _row_values(names: list[str]):
    """A function giving a row's values in the columns' order (a row may leave out a column: None)."""
    if not names:
        return lambda row: ()
    every = itemgetter(*names)
    single = len(names) == 1

    def values(row: dict) -> tuple:
        try:
            found = every(row)
        except KeyError:
            return tuple(row.get(name) for name in names)
        return (found,) if single else found

    return values


# --- CSV --------------------------------------------------------------------------------------------------------
# Each converter gives what ``csv_text`` gives for the value ``typed`` makes of it, or a value csv.writer writes as
# that same text (None as "", an int or float as str(), a date as its ISO form).


def _csv_any(value):
    cls = value.__class__
    if cls is str:
        return "'" + value if value.startswith(FORMULA_START) else value
    if value is None or cls is int or cls is float or cls is datetime.date:
        return value
    return csv_text(value)


def _csv_integer(value):
    if value is None or value.__class__ is int:
        return value
    if value.__class__ is bool:
        return csv_text(value)
    return str(int(value))


def _csv_money(value):
    if value is None or value.__class__ is bool:
        return csv_text(value)
    # A canonical decimal ("-12.50" for a refund or a reversal) is a number to a spreadsheet, never a formula: it
    # keeps its sign instead of the apostrophe that guards typed-in text.
    return moneycsv_text(value)


CSV_CONVERTERS = {"integer": _csv_integer, "money": _csv_money}
CSV_BUFFER_BYTES = 1 << 20


class ReportJSONRenderer(JSONRenderer):
    format = "json"


class ReportCSVRenderer(BaseRenderer):
    """The rows with a header of field names; every row states when it was computed (``computed_at``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        names = [column["name"] for column in data["columns"]]
        converters = [CSV_CONVERTERS.get(column["type"], _csv_any) for column in data["columns"]]
        values = _row_values(names)
        stamps = (csv_text(data["computed_at"]), csv_text(data["data_as_of"]))
        # Encoded as it is written: one copy of the file, in bytes (a str of Chinese text takes 2-4 bytes a character),
        # through a large buffer, so that a row is not a write of its own.
        buffer = io.BytesIO()
        text = io.TextIOWrapper(io.BufferedWriter(buffer, CSV_BUFFER_BYTES), encoding="utf-8", newline="")
        # A byte-order mark, so that Excel reads the Chinese names as UTF-8.
        text.write("\ufeff")
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([*names, "computed_at", "data_as_of"])
        writer.writerows(
            [*[convert(value) for convert, value in zip(converters, values(row), strict=True)], *stamps]
            for row in data["rows"]
        )
        text.flush()
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{_filename(data, "csv")}"'
        return buffer.getvalue()


# --- Excel ------------------------------------------------------------------------------------------------------


class _Sheet:
    """One worksheet of an XlsxWriter workbook in constant-memory mode, written row after row.

    Text is always written as text (``write_string``): a name typed in as ``=HYPERLINK(...)`` stays a string,
    never a formula. Times are Beijing wall-clock time (Excel has no time zones); money is a number shown with two
    places."""

    def __init__(self, book: "_Workbook", title: str):
        self.sheet = book.workbook.add_worksheet(title)
        self.formats = book.formats
        self.row = 0

    def append(self, values, kinds=None) -> None:
        write = self.write
        for column, (value, kind) in enumerate(zip(values, kinds or (None,) * len(values), strict=True)):
            if value is not None:
                write(column, value, kind)
        self.row += 1

    def write(self, column: int, value, kind=None) -> None:
        sheet, row, cls = self.sheet, self.row, value.__class__
        if kind == "money" and cls is not bool:
            sheet.write_number(
                row, column, Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP), self.formats["money"]
            )
        elif kind == "integer" and cls is not bool and cls is not int:
            sheet.write_number(row, column, int(value))
        elif cls is str:
            sheet.write_string(row, column, value)
        elif cls is bool:
            sheet.write_boolean(row, column, value)
        elif cls is int or cls is float or cls is Decimal:
            sheet.write_number(row, column, value)
        elif isinstance(value, datetime.datetime):
            sheet.write_datetime(row, column, xlsx_value(value), self.formats["datetime"])
        elif isinstance(value, datetime.date):
            sheet.write_datetime(row, column, value, self.formats["date"])
        elif isinstance(value, int | float | Decimal):
            sheet.write_number(row, column, value)
        else:
            sheet.write_string(row, column, str(value))


class _Workbook:
    def __init__(self, output):
        import xlsxwriter

        # constant_memory: each row goes to a temporary file as soon as the next one starts, so a sheet of 20,000
        # rows never sits in memory; NaN and infinities become Excel's error values rather than a failed export.
        self.workbook = xlsxwriter.Workbook(output, {"constant_memory": True, "nan_inf_to_errors": True})
        self.formats = {
            "money": self.workbook.add_format({"num_format": MONEY_FORMAT}),
            "date": self.workbook.add_format({"num_format": XLSX_DATE_FORMAT}),
            "datetime": self.workbook.add_format({"num_format": XLSX_DATETIME_FORMAT}),
        }

    def sheet(self, title: str) -> _Sheet:
        return _Sheet(self, title)


class ReportXLSXRenderer(BaseRenderer):
    """An Excel workbook: the rows on the first sheet, the report's time, filters and summary on the second."""

    media_type = XLSX_MEDIA_TYPE
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        buffer = io.BytesIO()
        book = _Workbook(buffer)
        self._table(book.sheet(data["report"][:31]), data["columns"], data["rows"])
        # A list a report carries besides its rows (``ReportData.extra``) gets a sheet of its own.
        for key, value in data.items():
            if isinstance(value, dict) and {"columns", "rows"} <= value.keys():
                self._table(book.sheet(key[:31]), value["columns"], value["rows"])
        about = book.sheet("about")
        about.append(["report", data["report"]])
        about.append(["title", str(data["title"])])
        about.append(["computed_at", csv_text(data["computed_at"])])
        about.append(["data_as_of", csv_text(data["data_as_of"])])
        for name, value in data["filters"].items():
            text = csv_text(value) if not isinstance(value, list) else ",".join(value)
            about.append([f"filter.{name}", text])
        view = (renderer_context or {}).get("view")
        summary_columns = {column.name: column for column in getattr(view, "summary_fields", ())}
        for name, value in data["summary"].items():
            column = summary_columns.get(name)
            kind = column.kind if column else None
            label = str(column.label) if column else name
            about.append([f"summary.{name}", value, label], (None, kind, None))
        pagination = data["pagination"]
        about.append(["pagination.page", pagination["page"]])
        about.append(["pagination.count", pagination["count"]])
        book.workbook.close()
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{_filename(data, "xlsx")}"'
        return buffer.getvalue()

    @staticmethod
    def _table(sheet: _Sheet, columns: list[dict], rows) -> None:
        """A header of the columns' labels in the reader's language, then the rows, money as numbers in RMB."""
        sheet.append([str(column["label"]) for column in columns])
        kinds = [column["type"] for column in columns]
        values = _row_values([column["name"] for column in columns])
        for row in rows:
            sheet.append(values(row), kinds)
