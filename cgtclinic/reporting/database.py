"""Which database the regulator reports read: the replica (``DATABASE_REPLICA_URL``) when one is configured, and
only while a report is being computed (``reading_reports()``); everything else reads and writes the primary.

The context is a context variable, so it follows the request through the code that computes the report (the
selectors, the SQL helpers, the ORM through ``cgtclinic.db_router``) and never leaks into another request or into
the request log written after it."""

import contextlib
import datetime
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

_reading_reports: ContextVar[bool] = ContextVar("reading_reports", default=False)


def reports_database() -> str:
    """The alias the reports read from when they are computed: the replica when configured, else the primary."""
    return getattr(settings, "REPORTS_DATABASE", DEFAULT_DB_ALIAS)


def reporting_alias() -> str:
    """The alias for reads here and now: the reports' database inside ``reading_reports()``, else the primary."""
    return reports_database() if _reading_reports.get() else DEFAULT_DB_ALIAS


@contextlib.contextmanager
def reading_reports():
    """Route the reads inside (ORM and the SQL helpers) to the reports' database."""
    token = _reading_reports.set(True)
    try:
        yield
    finally:
        _reading_reports.reset(token)


def data_as_of(now: datetime.datetime) -> datetime.datetime:
    """The moment the figures read from the reports' database reflect, read before the figures themselves.

    On the primary the data is current: ``now``, the moment the report started (no query). On a PostgreSQL replica
    it is the commit time of the last transaction the replica replayed (one query), so a lagging replica says how
    far behind it is; a server that is not replaying (a primary configured as the replica) gives null, and then
    the data is as current as on the primary."""
    alias = reporting_alias()
    if alias == DEFAULT_DB_ALIAS or connections[alias].vendor != "postgresql":
        return now
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_last_xact_replay_timestamp()")
        (replayed,) = cursor.fetchone()
    return timezone.localtime(replayed) if replayed else now
