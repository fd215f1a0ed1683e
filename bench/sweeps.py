"""The sweeps phase: every deadline sweep of the beat schedule, run in this process over the data set and rolled
back, so each run finds the same due rows and nothing is sent (notifications are enqueued on commit).

Each run calls the sweep twice in its transaction. The first call catches up: it makes every effect that came due
since the data set ended (a day's reminders and escalations when the data set was made this morning, more when it
is reused days later), as the first beat after an outage would. The second is the steady state, what a beat every
few minutes costs: it looks through every open row and finds the effects already made. The target is the steady
state's; the catch-up's time and effects are shown beside it.

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


def run_once(task) -> tuple[float, object, float, object]:
    """One run of a sweep inside a transaction that is then rolled back: the catch-up call's seconds and result,
    then the steady-state call's."""
    try:
        with transaction.atomic():
            began = time.perf_counter()
            caught_up = task()
            catch_up = time.perf_counter() - began
            began = time.perf_counter()
            outcome = task()
            elapsed = time.perf_counter() - began
            raise _RolledBack
    except _RolledBack:
        return catch_up, caught_up, elapsed, outcome


def run(*, runs: int = 5, only: list[str] | None = None, report=lambda r: None) -> list[dict]:
    """Each sweep ``runs`` times: the steady-state call's p50, p95, mean and slowest, in ms, and what it did; the
    catch-up call's mean and what it did; (a deadline sweep) the open rows they looked through."""
    results = []
    for name in beat_sweeps():
        if only and name.rsplit(".", 1)[-1] not in only and name not in only:
            continue
        module, attribute = name.rsplit(".", 1)
        task = getattr(importlib.import_module(module), attribute)
        timings, catch_ups = [], []
        outcome = caught_up = None
        try:
            for _run in range(runs):
                catch_up, caught_up, elapsed, outcome = run_once(task)
                catch_ups.append(catch_up * 1000)
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
                "did": _shown(outcome),
                "catch_up_mean": sum(catch_ups) / len(catch_ups),
                "caught_up": _shown(caught_up),
            }
            result["passed"] = result["max"] <= TARGET_SECONDS * 1000
        results.append(result)
        report(result)
    return results


def _shown(outcome):
    return outcome if isinstance(outcome, dict | int) else str(outcome)
