"""Maintained rollups: aggregate tables the regulator reports read instead of the raw history.

A report that aggregates the whole ledger on every request grows slower with every entry; a rollup keeps the
aggregate (per site and month, per trial, per committee…) as rows that change when the raw data changes, so a
report reads a number of rows that follows the region, not the history.

Each app that keeps rollups declares them in ``<app>/rollups.py`` with ``register(Rollup(...))``:

- ``rebuild()`` recomputes the whole rollup from raw data in one transaction (``manage.py rebuild_rollups``; the
  scale generator and the upgrade migrations call it) and returns the number of rows written;
- ``differences()`` compares the rollup with a recomputation from raw data and describes every row that differs
  (at most ``limit``), empty when they agree (``manage.py rebuild_rollups --check``, the consistency tests).

Rollups are kept current by the services that write the raw data, in the same transaction (so a report never
sees a ledger entry without its count, and ``data_as_of`` is the time the report read the database).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from django.apps import apps
from django.db import connection, transaction

logger = logging.getLogger(__name__)

ROLLUPS_MODULE = "rollups"


@dataclass(frozen=True)
class Rollup:
    name: str
    description: str
    rebuild: Callable[[], int]
    differences: Callable[[int], list[str]]


_REGISTRY: dict[str, Rollup] = {}
_DISCOVERED = False


def register(rollup: Rollup) -> Rollup:
    if rollup.name in _REGISTRY and _REGISTRY[rollup.name] is not rollup:
        raise ValueError(f"A rollup named {rollup.name!r} is already registered.")
    _REGISTRY[rollup.name] = rollup
    return rollup


def registered() -> list[Rollup]:
    """Every rollup, in registration order (each installed app's ``rollups`` module is imported once)."""
    global _DISCOVERED
    if not _DISCOVERED:
        for config in apps.get_app_configs():
            try:
                import_module(f"{config.name}.{ROLLUPS_MODULE}")
            except ModuleNotFoundError as error:
                if error.name != f"{config.name}.{ROLLUPS_MODULE}":
                    raise
        _DISCOVERED = True
    return list(_REGISTRY.values())


def selected(names=None) -> list[Rollup]:
    rollups = registered()
    if not names:
        return rollups
    known = {rollup.name: rollup for rollup in rollups}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise KeyError(", ".join(unknown))
    return [known[name] for name in names]


def rebuild(names=None) -> dict[str, int]:
    """Rebuild rollups from raw data, each in its own transaction; the rows written per rollup."""
    written = {}
    for rollup in selected(names):
        with transaction.atomic():
            written[rollup.name] = rollup.rebuild()
        logger.info("Rebuilt rollup %s: %s rows", rollup.name, written[rollup.name])
    return written


def differences(names=None, *, limit: int = 20) -> dict[str, list[str]]:
    """Where each rollup differs from a recomputation from raw data (only rollups that differ)."""
    found = {}
    for rollup in selected(names):
        rows = rollup.differences(limit)
        if rows:
            found[rollup.name] = rows
    return found


# --- rollup tables filled from a SELECT over the raw data ---------------------------------------------------------


def replace_rows(table: str, columns, source: str, *, key: str = "", params=()) -> int:
    """Replace a rollup table's rows (those matching ``key``, a condition on the table with ``params``, or all) by
    what ``source`` (a SELECT of ``columns``, restricted with the same ``params`` when ``key`` is given) computes from
    the raw data; the rows written. Recomputing from the source is idempotent: running it twice changes nothing."""
    names = ", ".join(columns)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}" + (f" WHERE {key}" if key else ""), params)
        cursor.execute(f"INSERT INTO {table} ({names}) {source}", params)
        return cursor.rowcount


def differences_from_source(table: str, columns, source: str, limit: int) -> list[str]:
    """Rows ``source`` computes that the rollup table lacks or holds otherwise, then rows it holds that ``source``
    does not compute (at most ``limit`` in all)."""
    names = ", ".join(columns)
    computed, kept = f"SELECT {names} FROM ({source}) s", f"SELECT {names} FROM {table}"
    found = []
    with connection.cursor() as cursor:
        for label, left, right in (("missing or different", computed, kept), ("stale", kept, computed)):
            if len(found) >= limit:
                break
            cursor.execute(f"SELECT * FROM ({left} EXCEPT {right}) d LIMIT %s", [limit - len(found)])
            found += [f"{label}: {dict(zip(columns, row, strict=True))}" for row in cursor.fetchall()]
    return found


def lock_key(name: str) -> None:
    """Serialise writers of one rollup key until the transaction ends (a PostgreSQL advisory lock; SQLite writes
    one transaction at a time anyway). Take it after the writer's own row locks, so lock order stays fixed."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])
