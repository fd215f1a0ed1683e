"""SQL for the regulator reports, below the API layer: aggregates and percentiles that run where the rows are (on
PostgreSQL and on SQLite, make run's default), date bounds an index can use, one-statement pages with their totals,
and compiled statements reused per worker. Domain selectors (``<app>/reports.py``) build on these; nothing here
knows about HTTP or DRF.

Raw SQL runs on ``reporting_connection()``: the replica while a report is computed (``reading_reports()``) when one
is configured, else the primary; selectors use these helpers rather than ``django.db.connection``."""

import datetime
import threading
from collections import OrderedDict
from collections.abc import Callable

from django.db import connections
from django.db.models import Aggregate, DateField, FloatField, Func, Q, QuerySet
from django.utils import timezone

from cgtclinic.models import User
from cgtclinic.reporting.database import reporting_alias


def reporting_connection():
    """The connection the reports read here and now (see ``cgtclinic.reporting.database``)."""
    return connections[reporting_alias()]


def vendor() -> str:
    """The vendor of the reports' database ("postgresql", "sqlite"), for SQL that differs between them."""
    return reporting_connection().vendor


class _SQLitePercentile:
    """PERCENTILE_CONT for SQLite (make run's default database), registered on the connection when first used."""

    def __init__(self):
        self.values = []
        self.fraction = None

    def step(self, value, fraction):
        self.fraction = fraction
        if value is not None:
            self.values.append(float(value))

    def finalize(self):
        return percentile(self.values, self.fraction)


def percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's PERCENTILE_CONT (linear interpolation between the closest ranks), in Python."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


class PercentileCont(Aggregate):
    """The continuous percentile of an expression, computed where the rows are (median: 0.5, p90: 0.9)."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, percentile: float, **extra):
        super().__init__(expression, percentile=float(percentile), **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        connection.ensure_connection()
        connection.connection.create_aggregate("percentile_cont", 2, _SQLitePercentile)
        clone = self.copy()
        clone.function = "percentile_cont"
        clone.template = "%(function)s(%(expressions)s, %(percentile)s)"
        return clone.as_sql(compiler, connection, **extra_context)


class DaysBetweenTimes(Func):
    """Fractional days from one timestamp column to another."""

    output_field = FloatField()
    template = "(EXTRACT(EPOCH FROM (%(expressions)s)) / 86400.0)"
    arg_joiner = " - "

    def __init__(self, end, start, **extra):
        super().__init__(end, start, **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="(julianday(%(expressions)s))", arg_joiner=") - julianday(")


def sql_days(end: str, start: str) -> str:
    """SQL for the whole days from one date expression to another, on PostgreSQL and on SQLite."""
    if vendor() == "sqlite":
        return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"
    return f"({end} - {start})"


def sql_percentile(expression: str, fraction: float, condition: str = "") -> str:
    """SQL for PERCENTILE_CONT of an expression (optionally FILTERed), on PostgreSQL and on SQLite."""
    where = f" FILTER (WHERE {condition})" if condition else ""
    connection = reporting_connection()
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.connection.create_aggregate("percentile_cont", 2, _SQLitePercentile)
        return f"percentile_cont({expression}, {float(fraction)}){where}"
    return f"PERCENTILE_CONT({float(fraction)}) WITHIN GROUP (ORDER BY {expression}){where}"


def sql_greatest(*expressions: str) -> str:
    function = "MAX" if vendor() == "sqlite" else "GREATEST"
    return f"{function}({', '.join(expressions)})"


def fetch_dicts(sql: str, params) -> list[dict]:
    with reporting_connection().cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def groups_and_total(rows: QuerySet) -> tuple[list[dict], dict] | None:
    """The groups of a grouped QuerySet of dicts and their grand total over the same rows, in one statement
    (``GROUP BY GROUPING SETS ((keys), ())``), with the values converted as the QuerySet would. The total is the
    row whose plain-column keys are all null, so at least one of them must be non-null in every group. None on a
    database without grouping sets (SQLite) or without such keys: the caller then aggregates the total apart."""
    # The keys must be plain columns (values("review_type")), which tell the total row apart.
    connection = connections[rows.db]
    if connection.vendor != "postgresql" or not rows.query.values_select:
        return None
    compiler = rows.query.get_compiler(using=rows.db)
    sql, params = compiler.as_sql()
    head, grouped, tail = sql.rpartition(" GROUP BY ")
    if not grouped:
        return None
    ends = [tail.find(word) for word in (" HAVING ", " ORDER BY ") if tail.find(word) >= 0]
    keys, rest = (tail[: min(ends)], tail[min(ends) :]) if ends else (tail, "")
    with connection.cursor() as cursor:
        cursor.execute(f"{head} GROUP BY GROUPING SETS (({keys}), ()){rest}", params)
        found = cursor.fetchall()
    fields = [column for column, _sql, _alias in compiler.select[: compiler.col_count]]
    converters = compiler.get_converters(fields)
    if converters:
        found = compiler.apply_converters(found, converters)
    names = [*rows.query.extra_select, *rows.query.values_select, *rows.query.annotation_select]
    groups, total = [], None
    for values in found:
        row = dict(zip(names, values, strict=True))
        if all(row[name] is None for name in rows.query.values_select):
            total = row
        else:
            groups.append(row)
    return groups, total


# Compiled SQL of report statements, per worker process: building and compiling a grouped QuerySet costs about as
# much as running it on a small region. Only SQL text and parameters are kept, never results.
_COMPILED: OrderedDict[tuple, tuple[str, tuple]] = OrderedDict()
_COMPILED_MAX = 512
_COMPILED_LOCK = threading.Lock()


def compiled_sql(key: tuple, build: Callable[[], tuple[str, tuple]]) -> tuple[str, tuple]:
    """The SQL and parameters ``build()`` returns, compiled once per worker for the same ``key``.

    The key must hold everything the SQL depends on: the viewer (``viewer_key``), the filters, and any value read
    from the database that the SQL embeds as a literal."""
    key = (vendor(), *key)
    with _COMPILED_LOCK:
        found = _COMPILED.get(key)
        if found is not None:
            _COMPILED.move_to_end(key)
            return found
    found = build()
    with _COMPILED_LOCK:
        _COMPILED[key] = found
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    return found


def viewer_key(user: User) -> tuple:
    """What the models' ``visible_to(user)`` reads of a user (a stand-in regulator has no primary key)."""
    return (user.pk, user.is_superuser, user.is_active, user.role, user.region_id, user.institution_id)


def page_with_totals(
    data,
    rows: Callable[[], QuerySet],
    totals: dict[str, str],
    *,
    empty: dict,
    key: tuple | None = None,
) -> Callable:
    """The page function of a grouped report whose summary is computed over its rows in the same statement.

    ``rows()`` returns an ordered QuerySet of dicts, named ``q`` in the statement; ``totals`` maps each summary
    field to an expression over all its rows, evaluated before the page is cut: a window aggregate (``SUM(amount)
    OVER ()``) or a scalar subquery over ``q`` (for what a window cannot do, such as a distinct count). The function
    returns the page and fills in ``data.count`` and ``data.summary`` (``empty`` when there are no rows), so the
    grouping runs once. With a ``key`` (see ``compiled_sql``), the statement is compiled once per worker for the
    same inputs."""

    def build() -> tuple[str, tuple]:
        queryset = rows()
        ordering = []
        for name in queryset.query.order_by:
            descending = name.startswith("-")
            ordering.append(f'q."{name.lstrip("-")}"' + (" DESC" if descending else ""))
        sql, params = queryset.order_by().query.sql_with_params()
        windows = ", ".join(f'{expression} AS "_total_{name}"' for name, expression in totals.items())
        statement = (
            f'WITH q AS ({sql}) SELECT q.*, COUNT(*) OVER () AS "_rows_in_all", {windows} FROM q '
            f"ORDER BY {', '.join(ordering)} LIMIT %s OFFSET %s"
        )
        return statement, tuple(params)

    statement, params = compiled_sql(("page_with_totals", *key), build) if key is not None else build()

    def page(offset: int, limit: int) -> list[dict]:
        found = fetch_dicts(statement, (*params, limit, offset))
        # A page past the end carries no totals: read them from the first row (a second statement only then).
        first = found or (fetch_dicts(statement, (*params, 1, 0)) if offset else [])
        if first:
            data.count = first[0]["_rows_in_all"]
            data.summary = {name: first[0][f"_total_{name}"] for name in totals}
        else:
            data.count, data.summary = 0, dict(empty)
        for row in found:
            del row["_rows_in_all"]
            for name in totals:
                del row[f"_total_{name}"]
        return found

    return page


class MonthStart(Func):
    """The first day of a date's month, as a date (no time zone arithmetic on the way)."""

    output_field = DateField()
    template = "CAST(DATE_TRUNC('month', CAST(%(expressions)s AS timestamp)) AS date)"

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="date(%(expressions)s, 'start of month')")


def day_range(field_name: str, date_from: datetime.date | None, date_to: datetime.date | None) -> Q:
    """A timestamp column between two local dates, both included, as bounds an index can use."""
    condition = Q()
    if date_from:
        condition &= Q(**{f"{field_name}__gte": start_of_day(date_from)})
    if date_to:
        condition &= Q(**{f"{field_name}__lt": start_of_day(date_to + datetime.timedelta(days=1))})
    return condition


def start_of_day(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))


def date_range(field_name: str, date_from: datetime.date | None, date_to: datetime.date | None) -> Q:
    condition = Q()
    if date_from:
        condition &= Q(**{f"{field_name}__gte": date_from})
    if date_to:
        condition &= Q(**{f"{field_name}__lte": date_to})
    return condition


def rounded(value, places: int = 1):
    return None if value is None else round(float(value), places)


def share(part, whole, places: int = 4):
    """part / whole as a fraction (0.8125), or None when there is nothing to divide by."""
    return round(part / whole, places) if whole else None
