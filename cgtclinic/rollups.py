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
from django.db import transaction

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
