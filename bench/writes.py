"""The writes phase: reporting enrolment (``trials.enrolment.enrolment_report``, what the PI form and the API call)
from concurrent writers over the data set, each call rolled back so the data set is the same for the next run.

Each writer is a process with its own database connection and its own site, chosen among the sites with the most
ledger entries (the service reads the site's whole ledger under its lock, so these are the dearest) where the
service accepts a report today, by the research office of the site's hospital (the ledger's registrar) or else the
site PI: screening one subject when the site may screen today, else a withdrawal (allowed after enrolment closed;
it takes the same site lock, ledger read and count update). A call is timed from the service's first statement to
its return, inside a transaction the writer then rolls back: the figure leaves out the commit's WAL flush (about a
millisecond on a local disk) and nothing is ever kept.
"""

import multiprocessing
import time

from django.db import connection, connections, transaction
from django.utils import timezone

from bench.stats import percentile

TARGET_P95_MS = 50
# Screening first, as a PI reports most; where no busy site may screen today (the generated trials' gates are
# unanswered, or their enrolment closed), a subject's withdrawal: the same lock, ledger read and count update.
KINDS = ("screened", "enrolled", "withdrawn", "completed")
# How many of the busiest sites are tried, in turn, to find one per writer that accepts a report today.
CANDIDATE_SITES = 400


class _RolledBack(Exception):
    """Raised inside a writer's transaction to roll it back after a timed call."""


def _attempt(site, actor, kind, on) -> float:
    """One rolled-back call of the service, in seconds; raises the service's DomainError when it refuses."""
    from trials.enrolment import enrolment_report

    began = time.perf_counter()
    try:
        with transaction.atomic():
            began = time.perf_counter()
            enrolment_report(site=site, actor=actor, kind=kind, occurred_on=on, count=1, note="make bench")
            elapsed = time.perf_counter() - began
            raise _RolledBack
    except _RolledBack:
        return elapsed


def writable_sites(n: int) -> list[tuple]:
    """Up to ``n`` (site, actor, kind) the service accepts today, busiest sites first."""
    from cgtclinic.errors import DomainError
    from cgtclinic.models import User
    from cgtclinic.roles import Role
    from trials.models import TrialSite

    today = timezone.localdate()
    # The ledger's own aggregate: the sites whose reports read the most rows under their lock.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT site_id FROM trials_enrolmententry GROUP BY site_id ORDER BY count(*) DESC, site_id LIMIT %s",
            [CANDIDATE_SITES],
        )
        candidates = [row[0] for row in cursor.fetchall()]
    chosen = []
    sites = TrialSite.objects.select_related("trial", "institution", "site_pi").in_bulk(candidates)
    for pk in candidates:
        site = sites.get(pk)
        if site is None:
            continue
        offices = User.objects.filter(institution_id=site.institution_id, role=Role.RESEARCH_OFFICE, is_active=True)
        actors = [*offices.order_by("pk")[:1], *([site.site_pi] if site.site_pi_id else [])]
        accepted = None
        for actor in actors:
            for kind in KINDS:
                try:
                    _attempt(site, actor, kind, today)
                except DomainError:
                    continue
                accepted = (site, actor, kind)
                break
            if accepted:
                break
        if accepted:
            chosen.append(accepted)
            if len(chosen) == n:
                break
    return chosen


def _writer(site_pk: int, actor_pk: int, kind: str, seconds: float, start, results) -> None:
    """One writer process: report on its site until ``seconds`` after every writer is ready; send the timings."""
    from cgtclinic.models import User
    from trials.models import TrialSite

    timings, failure = [], ""
    try:
        site = TrialSite.objects.select_related("trial", "institution").get(pk=site_pk)
        actor = User.objects.get(pk=actor_pk)
        today = timezone.localdate()
        start.wait(timeout=120)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            timings.append(_attempt(site, actor, kind, today) * 1000)
    except Exception as exc:  # reported by the parent: a refused or failed write fails the phase
        failure = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        connections.close_all()
        results.put((timings, failure))


def run(*, writers: int = 8, seconds: float = 10.0) -> dict:
    """``writers`` processes (as many as web workers would be, each with its own connection and no shared
    interpreter lock) calling the service for ``seconds``: p50/p95 per call and calls per second in all."""
    targets = writable_sites(writers)
    if len(targets) < writers:
        return {"writers": writers, "error": f"only {len(targets)} sites accept a report today", "passed": False}
    # Forked writers must not share the parent's database connection.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start = context.Barrier(writers)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(site.pk, actor.pk, kind, seconds, start, results))
        for site, actor, kind in targets
    ]
    for process in processes:
        process.start()
    collected = [results.get(timeout=seconds + 300) for _process in processes]
    for process in processes:
        process.join()
    timings = [ms for done, _failure in collected for ms in done]
    failures = [failure for _done, failure in collected if failure]
    result = {
        "writers": writers,
        "sites": [site.pk for site, _actor, _kind in targets],
        "kinds": sorted({kind for _site, _actor, kind in targets}),
        "calls": len(timings),
        "errors": len(failures),
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "max": max(timings, default=0.0),
        "per_second": len(timings) / seconds,
    }
    if failures:
        result["error"] = failures[0]
    result["passed"] = not failures and bool(timings) and result["p95"] <= TARGET_P95_MS
    return result
