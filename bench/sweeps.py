"""The sweeps phase: every deadline sweep of the beat schedule, run in this process over the data set and rolled
back, so each run finds the same due rows and nothing is sent (notifications are enqueued on commit).

The sweeps are read from ``settings.CELERY_BEAT_SCHEDULE`` (every task named ``*.sweep_*``), so a new one is
measured without touching the benchmark; each is called as the worker calls it (the task's body, no broker). For the
deadline sweeps the result says how many open rows the sweep looks through and how many of them had their reminder
or deadline come (the effects it checks for, and makes when missing).
"""

import importlib
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bench.stats import percentile

TARGET_SECONDS = 1.0


class _RolledBack(Exception):
    """Raised inside a run's transaction to roll it back."""


def beat_sweeps() -> list[str]:
    """The task names of the beat schedule's sweeps, in schedule order."""
    tasks = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    return [name for name in tasks if name.rsplit(".", 1)[-1].startswith("sweep_")]


def _swept() -> dict[str, tuple[str, object]]:
    """The open rows each deadline sweep looks through: {task's name: (what they are, queryset)}."""
    from ethics.models import RecognitionRequest, SafetyClock
    from trials.models import FilingObligation

    return {
        "sweep_recognition_deadlines": ("recognition requests", RecognitionRequest.objects.open()),
        "sweep_safety_clocks": ("safety clocks", SafetyClock.objects.open()),
        "sweep_filing_deadlines": ("filing obligations", FilingObligation.objects.open()),
    }


def open_rows() -> dict[str, int]:
    """How many deadlines are open (what the sweeps look through), per kind."""
    return {what: rows.count() for what, rows in _swept().values()}


def scanned(name: str) -> dict:
    """For a deadline sweep: its open rows and those whose reminder or deadline has come by now; {} for another."""
    swept = _swept().get(name.rsplit(".", 1)[-1])
    if swept is None:
        return {}
    what, rows = swept
    now = timezone.now()
    return {
        "scanned": what,
        "open": rows.count(),
        "due": rows.filter(Q(remind_at__lte=now) | Q(due_at__lte=now)).count(),
    }


def run_once(task) -> tuple[float, object]:
    """One run of a sweep inside a transaction that is then rolled back: seconds, and what the sweep returned."""
    try:
        with transaction.atomic():
            began = time.perf_counter()
            outcome = task()
            elapsed = time.perf_counter() - began
            raise _RolledBack
    except _RolledBack:
        return elapsed, outcome


def run(*, runs: int = 5, only: list[str] | None = None, report=lambda r: None) -> list[dict]:
    """Each sweep ``runs`` times: p50, p95, the mean and the slowest run, in ms, what one run did and (a deadline
    sweep) the open rows it looked through."""
    results = []
    for name in beat_sweeps():
        if only and name.rsplit(".", 1)[-1] not in only and name not in only:
            continue
        module, attribute = name.rsplit(".", 1)
        task = getattr(importlib.import_module(module), attribute)
        timings = []
        outcome = None
        try:
            for _run in range(runs):
                elapsed, outcome = run_once(task)
                timings.append(elapsed * 1000)
        except Exception as exc:  # a sweep that fails is a result to show, not the end of the benchmark
            result = {"sweep": name, "error": f"{type(exc).__name__}: {exc}"[:200], "passed": False}
        else:
            result = {
                "sweep": name,
                "runs": len(timings),
                "p50": percentile(timings, 50),
                "p95": percentile(timings, 95),
                "max": max(timings),
                "mean": sum(timings) / len(timings),
                **scanned(name),
                "did": outcome if isinstance(outcome, dict | int) else str(outcome),
            }
            result["passed"] = result["max"] <= TARGET_SECONDS * 1000
        results.append(result)
        report(result)
    return results
