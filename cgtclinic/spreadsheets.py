"""Writing cells of the CSV files and Excel workbooks the project exports, in one place.

Names and titles are typed in by hospital staff, so any of them may start like a formula
(``=HYPERLINK(...)``); a spreadsheet must show such text as text, never run it. Every CSV and XLSX writer
goes through these helpers, or (the reports' XlsxWriter sheets, ``cgtclinic.api.reports.renderers``) writes text
with ``write_string`` and CSV cells with ``FORMULA_START``."""

import datetime

from django.utils import timezone

# What a spreadsheet program may take for the start of a formula (OWASP's list for CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MONEY_FORMAT = "#,##0.00"


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def csv_text(value) -> str:
    """A value as CSV text: times in Beijing time (ISO 8601), formula-like text behind an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return _local(value).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return f"'{value}"
    return str(value)


def xlsx_value(value):
    """A value openpyxl can store: aware times as Beijing wall-clock time (Excel has no time zones)."""
    if isinstance(value, datetime.datetime):
        return _local(value).replace(tzinfo=None)
    return value


def put_cell(sheet, row: int, column: int, value, number_format: str | None = None):
    """Write one cell of an ordinary worksheet: text stays text (never a formula), numbers get their format."""
    cell = sheet.cell(row=row, column=column, value=xlsx_value(value))
    if isinstance(value, str):
        cell.data_type = "s"
    if number_format and value is not None:
        cell.number_format = number_format
    return cell


def append_row(sheet, values) -> int:
    """Append a row of values to an ordinary worksheet through ``put_cell``; returns the row's number."""
    row = sheet.max_row + 1 if sheet.max_row > 1 or sheet.cell(1, 1).value is not None else 1
    for column, value in enumerate(values, start=1):
        put_cell(sheet, row, column, value)
    return row
