"""Where the time and memory of a report export go: each report as CSV and Excel, in this process, through the
project's URLs (the Django test client, the real middleware and report frame), on a benchmark data set.

    DATABASE_URL=postgres://…/cgt_nat_x DJANGO_SETTINGS_MODULE=bench.settings \
        .venv/bin/python bench/exports.py [--region shanghai] [--reports startup,subsidy-projects] [--repeat 3]

For the region's generated regulator and for a system administrator (all regions), per report and format: the
median of --repeat requests of the whole request, and of its steps: compute (the report's queries that build the
aggregate), page (reading the rows), present, typed (JSON types, before the exports did it per cell), render (turning
the rows into the file), and what is left (filters, scope, the log row); the process's peak resident memory (VmHWM,
reset before each request: the largest); with --heap one more request under tracemalloc (the Python heap's peak).
No load, one request at a time: the cost of one export; bench/run.py measures them under load through gunicorn.
"""

import argparse
import functools
import os
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STEPS = ("compute", "page", "present", "typed", "render")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", default="shanghai")
    parser.add_argument("--reports", default="", help="Comma-separated report names (default: all).")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--viewers", default="regulator,all", help="regulator, all (a system administrator) or both.")
    parser.add_argument("--heap", action="store_true", help="One more request under tracemalloc (slow).")
    return parser.parse_args()


class Clock:
    """Seconds spent in each wrapped step during one request."""

    def __init__(self):
        self.spent = defaultdict(float)

    def wrap(self, owner, attribute: str, step: str) -> None:
        original = owner.__dict__.get(attribute)
        if original is None:
            return
        is_static = isinstance(original, staticmethod)
        function = original.__func__ if is_static else original

        @functools.wraps(function)
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            finally:
                self.spent[step] += time.perf_counter() - began
            if step == "render" and hasattr(result, "__next__"):
                return self._timed_iterator(result, step)
            return result

        setattr(owner, attribute, staticmethod(timed) if is_static else timed)

    def _timed_iterator(self, iterator, step):
        while True:
            began = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.spent[step] += time.perf_counter() - began
                return
            self.spent[step] += time.perf_counter() - began
            yield item


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_vm_hwm() -> None:
    # Writing 5 to clear_refs resets the peak resident set size (Linux ≥ 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def main() -> int:
    args = parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.test import Client

    from cgtclinic.api.reports import ReportView, registered_reports, renderers
    from cgtclinic.api.reports import views as report_views
    from cgtclinic.models import User

    clock = Clock()
    reports = registered_reports()
    if args.reports:
        reports = [view for view in reports if view.name in args.reports.split(",")]
    for view in reports:
        clock.wrap(view, "compute", "compute")
        clock.wrap(view, "present", "present")
    clock.wrap(ReportView, "present", "present")
    clock.wrap(ReportView, "_page", "page")
    for renderer in vars(renderers).values():
        if isinstance(renderer, type) and "render" in renderer.__dict__:
            clock.wrap(renderer, "render", "render")
    if hasattr(report_views, "typed"):
        clock.wrap(report_views, "typed", "typed")  # module functions: __dict__ holds them too

    from bench.pages import system_administrator

    viewers = {
        "regulator": ("regulator", lambda: User.objects.get(username=f"scale-regulator-{args.region}")),
        "all": ("all regions", system_administrator),
    }
    viewers = [(viewers[key][0], viewers[key][1]()) for key in args.viewers.split(",")]
    print(
        f"{'viewer':<12} {'report':<24} {'fmt':<5} {'rows':>6} {'total':>7} "
        + " ".join(f"{s:>8}" for s in STEPS)
        + f" {'other':>7} {'bytes':>9} {'heap MB':>8} {'RSS MB':>7}"
    )
    for viewer_label, user in viewers:
        client = Client()
        client.force_login(user)
        for view in reports:
            for fmt in args.formats.split(","):
                path = f"/api/v1/reports/{view.name}/"
                totals, steps, size, rows = [], defaultdict(list), 0, None
                peak_rss = 0.0
                for _ in range(args.repeat):
                    clock.spent.clear()
                    reset_vm_hwm()
                    began = time.perf_counter()
                    response = client.get(path, {"format": fmt})
                    body = b"".join(response.streaming_content) if response.streaming else response.content
                    response.close()
                    totals.append(time.perf_counter() - began)
                    peak_rss = max(peak_rss, vm_hwm_mb())
                    if response.status_code != 200:
                        print(f"{viewer_label} {view.name} {fmt}: {response.status_code} {body[:300]!r}")
                        break
                    size = len(body)
                    for step in STEPS:
                        steps[step].append(clock.spent.get(step, 0.0))
                    from cgtclinic.models import ReportRequest

                    rows = ReportRequest.objects.filter(user=user).order_by("-pk").values_list("rows", flat=True)[0]
                if not steps:
                    continue
                heap, rss = float("nan"), peak_rss
                if args.heap:
                    tracemalloc.start()
                    response = client.get(path, {"format": fmt})
                    b"".join(response.streaming_content) if response.streaming else response.content
                    response.close()
                    heap = tracemalloc.get_traced_memory()[1] / 2**20
                    tracemalloc.stop()
                total = statistics.median(totals) * 1000
                medians = {step: statistics.median(values) * 1000 for step, values in steps.items()}
                other = total - sum(medians.values())
                print(
                    f"{viewer_label:<12} {view.name:<24} {fmt:<5} {rows if rows is not None else '-':>6} {total:>7.0f} "
                    + " ".join(f"{medians[s]:>8.0f}" for s in STEPS)
                    + f" {other:>7.0f} {size:>9} {heap:>8.1f} {rss:>7.0f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
