"""The request log: one ``cgtclinic.ReportRequest`` row per report request of a signed-in user, on the primary."""

import json

from django.db import DEFAULT_DB_ALIAS, connections

from cgtclinic.models import ReportRequest

# What the request log keeps of a query: enough to see what was asked, never unbounded.
LOG_MAX_PARAMETERS = 30
LOG_MAX_VALUE = 200


def log_request(
    request, response, *, report: str, rows: int | None, duration_ms: int, status_code: int | None = None
) -> None:
    """One ReportRequest row per request of a signed-in user (anonymous requests are refused before any work).
    ``status_code``: what the client is answered when it is not the response's (an export that failed to render)."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return
    renderer = getattr(request, "accepted_renderer", None)
    asked_format = _printable(request.GET.get("format") or getattr(renderer, "format", None) or "json")
    row = ReportRequest(
        user=user,
        report=report,
        format=asked_format[: ReportRequest._meta.get_field("format").max_length],
        filters=_logged_query(request.GET),
        status_code=status_code or response.status_code,
        duration_ms=duration_ms,
        rows=rows,
    )
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        row.save(using=DEFAULT_DB_ALIAS)
        return
    # One statement in autocommit: a log row need not wait for the disk (set_config(..., true) lasts for this
    # statement's own transaction only), so a crash may lose the last few log rows, never other data.
    with connection.cursor() as cursor:
        cursor.execute(LOG_INSERT, {**vars(row), "filters": json.dumps(row.filters)})


def _printable(text: str, limit: int = LOG_MAX_VALUE) -> str:
    """Text as the log can store it: no NUL (PostgreSQL text refuses it), cut to a length."""
    text = str(text).replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _logged_query(query) -> dict:
    """The request's query parameters as the log keeps them: any input, bounded in size."""
    logged = {}
    for key in list(query)[:LOG_MAX_PARAMETERS]:
        values = [_printable(value) for value in query.getlist(key)[:LOG_MAX_PARAMETERS]]
        logged[_printable(key, 60)] = values[0] if len(values) == 1 else values
    return logged


LOG_INSERT = f"""
    WITH durability AS (SELECT set_config('synchronous_commit', 'off', true))
    INSERT INTO {ReportRequest._meta.db_table}
        ("user_id", "report", "format", "filters", "status_code", "duration_ms", "rows", "requested_at")
    SELECT %(user_id)s, %(report)s, %(format)s, %(filters)s::jsonb, %(status_code)s, %(duration_ms)s, %(rows)s,
           %(requested_at)s
    FROM durability
"""
