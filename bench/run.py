"""Benchmark what issue 13 measures, through the real stack, on a provincial or national data set.

    .venv/bin/python bench/run.py [--scale provincial|national] [--phases reports,pages,writes,sweeps] [--duration 10]

1. The data set: a PostgreSQL database of its own, cgt_scale (provincial) or cgt_scale_national (national). If it
   does not exist it is created, migrated and filled with ``manage.py generate_scale_data`` at that scale (or the
   sizes given), once; later runs reuse it.
2. The web server (reports and pages): gunicorn on 127.0.0.1 with the project's WSGI application, 2 sync workers,
   DEBUG off (bench.settings: the project's settings with the report throttle's rate raised).
3. reports: each report of ``cgtclinic.api.reports.registered_reports()`` in each format (JSON, CSV, Excel), for the
   region's regulator and for a system administrator across all regions: warm-up requests (which must answer 200),
   then wrk for --duration seconds with --connections connections: p50/p95 and requests per second. Then the
   report's ``bench_sql`` through psycopg, as many times as the API answered, from as many connections (for the
   system administrator, ``bench_sql_all_regions`` when a report defines it): the SQL floor and the API/SQL ratio.
   Before the reports, two floors: ``GET /health/`` and ``GET /bench/floor/`` (bench/urls.py).
4. pages (bench/pages.py): admin changelists (from the admin registry), with a search and a filter and a change page
   for the heaviest models, for the system administrator and the offices of the busiest hospital; the PI portal for
   the PI with the most sites; logged-in sessions, wrk for --page-duration seconds per page.
5. writes (bench/writes.py): ``enrolment_report`` from --writers concurrent writers, each call rolled back.
6. sweeps (bench/sweeps.py): each deadline sweep of the beat schedule, --sweep-runs times, each run rolled back.
7. The peak memory of each web worker (VmHWM in /proc/<pid>/status) after each report.

Results are printed and written to bench/results/latest-<scale>.md (and .json). Targets: reports p95 ≤ 150 ms and
API/SQL p50 ratio ≤ 3; pages p95 ≤ 300 ms; enrolment p95 ≤ 50 ms under 8 writers; a sweep run ≤ 1 s; a worker's
peak memory ≤ 300 MB. Run it on a quiet machine: the figures are only as good as the idle CPU they get.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
# The web server's output, read when a report answers 500 (outside the work tree: it is not a result).
SERVER_LOG = Path(tempfile.gettempdir()) / "cgtclinic-bench-gunicorn.log"
TARGET_P95_MS = 150
TARGET_RATIO = 3
TARGET_WORKER_MB = 300
SIZES = (
    "institutions",
    "trials",
    "sites",
    "enrolment_events",
    "recognition_requests",
    "claims",
    "research_filings",
    "safety_events",
    "seed",
)
# Each scale's database, and the generator's sizes for it (provincial: the generator's defaults).
SCALES = {
    "provincial": ("cgt_scale", {}),
    "national": (
        "cgt_scale_national",
        {
            "institutions": 2000,
            "trials": 50000,
            "sites": 150000,
            "enrolment_events": 5000000,
            "recognition_requests": 200000,
            "claims": 20000,
            "research_filings": 80000,
            "safety_events": 300000,
        },
    ),
}
PHASES = ("reports", "pages", "writes", "sweeps")
FORMATS = ("json", "csv", "xlsx")
# bench/ is a package of the project: its phases import as bench.<module> when this file runs as a script.
sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402


def main() -> int:
    args = parse_args()
    env = server_env(args)
    if not ensure_data(args, env):
        return 1
    setup_django(env)
    phases = args.phases
    wrk = shutil.which("wrk")
    if wrk is None and {"reports", "pages"} & set(phases):
        print("wrk is not installed: apt-get install wrk (make bench installs it when run as root).", file=sys.stderr)
        return 1
    reports = report_classes(args.reports) if "reports" in phases else []
    if "reports" in phases and not reports:
        print("No report is registered (cgtclinic.api.reports.registered_reports() is empty).", file=sys.stderr)
        return 1
    region_id, dataset = read_dataset(args)
    machine = machine_info(args, wrk)
    print_header(args, machine, dataset)
    outcome = {"scale": args.scale, "phases": phases}
    server = Server(args, env)
    # The results file is rewritten after each phase, so a long national run leaves what it measured so far.
    try:
        if "pages" in phases:
            ensure_static(env)
        if "reports" in phases or "pages" in phases:
            server.start()
        if "reports" in phases:
            outcome.update(bench_reports(args, reports, server, region_id, wrk))
            write_results(args, machine, dataset, outcome)
        if "pages" in phases:
            outcome["pages"] = bench_pages(args, server, wrk)
            write_results(args, machine, dataset, outcome)
    finally:
        server.stop()
    if "writes" in phases:
        outcome["writes"] = bench_writes(args)
        write_results(args, machine, dataset, outcome)
    if "sweeps" in phases:
        outcome["sweeps"] = bench_sweeps(args)
    summary = write_results(args, machine, dataset, outcome)
    print()
    print(summary)
    return 0 if all_passed(outcome) else 2


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="provincial", help="Data set (default provincial).")
    parser.add_argument("--database-url", help="Default: postgres://postgres@127.0.0.1:5432/<the scale's database>.")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="Redis for the cache and throttle.")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"Comma-separated, of {', '.join(PHASES)}.")
    parser.add_argument("--region", default="shanghai", help="Region whose regulator calls the reports.")
    parser.add_argument("--duration", type=int, default=10, help="Seconds of load per report and for the writes.")
    parser.add_argument("--connections", type=int, default=2, help="Concurrent connections (default 2).")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
    parser.add_argument("--warmup", type=int, default=5, help="Requests before measuring each report (default 5).")
    parser.add_argument("--reports", default="", help="Comma-separated report names (default: all).")
    parser.add_argument("--formats", default=",".join(FORMATS), help="Report formats (default json,csv,xlsx).")
    parser.add_argument(
        "--pages", default="", help="Comma-separated texts: only pages whose label holds one (default: all pages)."
    )
    parser.add_argument("--page-duration", type=int, default=3, help="Seconds of load per page (default 3).")
    parser.add_argument(
        "--slow-page", type=float, default=3.0, help="A page slower than this (s) is timed once, not loaded."
    )
    parser.add_argument("--writers", type=int, default=8, help="Concurrent enrolment writers (default 8).")
    parser.add_argument("--sweep-runs", type=int, default=5, help="Runs of each sweep (default 5).")
    parser.add_argument("--regenerate", action="store_true", help="Drop the database and generate the data set again.")
    parser.add_argument("--output", type=Path, help="Default: bench/results/latest-<scale>.md (and .json).")
    sizes = parser.add_argument_group("data set sizes, when it is generated (default: the scale's)")
    for name in SIZES:
        sizes.add_argument(f"--{name.replace('_', '-')}", type=int)
    args = parser.parse_args(argv)
    database, _sizes = SCALES[args.scale]
    args.database_url = args.database_url or f"postgres://postgres@127.0.0.1:5432/{database}"
    args.output = args.output or RESULTS / f"latest-{args.scale}.md"
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    args.formats = [fmt.strip() for fmt in args.formats.split(",") if fmt.strip()]
    for value, known, what in ((args.phases, PHASES, "phase"), (args.formats, FORMATS, "format")):
        unknown = set(value) - set(known)
        if unknown or not value:
            parser.error(f"Unknown {what}(s) {', '.join(sorted(unknown))}; choose among {', '.join(known)}.")
    return args


def generator_sizes(args) -> list[str]:
    """The generator's size options: those given, else the scale's."""
    defaults = SCALES[args.scale][1]
    sizes = {n: getattr(args, n) if getattr(args, n) is not None else defaults.get(n) for n in SIZES}
    return [f"--{n.replace('_', '-')}={v}" for n, v in sizes.items() if v is not None]


def server_env(args) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    return env


# --- the data set ---------------------------------------------------------------------------------------------------


def maintenance_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def ensure_data(args, env) -> bool:
    """Create, migrate and fill the benchmark database unless it already holds a data set."""
    admin_url, name = maintenance_url(args.database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and args.regenerate:
            print(f"Dropping database {name}…")
            conn.execute(f'DROP DATABASE "{name}"')
            exists = None
        if not exists:
            print(f"Creating database {name}…")
            conn.execute(f'CREATE DATABASE "{name}"')
    manage = [str(BIN / "python"), str(ROOT / "manage.py")]
    # Also on an existing data set: the code measured may have added tables (new columns stay empty).
    print("Migrating…")
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
    if not exists or not has_data(args.database_url):
        sizes = generator_sizes(args)
        print("Generating the data set (a few minutes at provincial scale, about 20 at national)…")
        generated = subprocess.run([*manage, "generate_scale_data", *sizes], env=env, cwd=ROOT)
        if generated.returncode:
            return False
    elif any(getattr(args, n) is not None for n in SIZES):
        print("The database already holds a data set; sizes are ignored (use --regenerate to rebuild it).")
    return True


def ensure_static(env) -> None:
    """Pages need the collected static files (DEBUG off serves them from the manifest), as a deployment has them."""
    from django.conf import settings

    if not (Path(settings.STATIC_ROOT) / "staticfiles.json").exists():
        print("Collecting static files…")
        command = [str(BIN / "python"), str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"]
        subprocess.run(command, env=env, cwd=ROOT, check=True)


def has_data(url: str) -> bool:
    with psycopg.connect(url) as conn:
        try:
            return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM trials_trial)").fetchone()[0])
        except psycopg.errors.UndefinedTable:
            return False


def issue_bench_token(conn, user_id: int) -> str:
    """A fresh API token for the benchmark's regulator, stored as the product stores one (knox's SHA-512 digest and
    the key's first 15 characters, an hour's validity): keys are never kept in plaintext, so none can be read back."""
    key = "cgt_" + secrets.token_hex(32)
    conn.execute(
        "INSERT INTO cgtclinic_apitoken (digest, token_key, user_id, created, expiry, label) "
        "VALUES (%s, %s, %s, now(), now() + interval '1 hour', 'make bench')",
        [hashlib.sha512(key.encode()).hexdigest(), key[:15], user_id],
    )
    return key


def read_dataset(args) -> tuple[int, dict]:
    with psycopg.connect(args.database_url) as conn:
        row = conn.execute(
            "SELECT r.id FROM cgtclinic_region r JOIN cgtclinic_user u ON u.region_id = r.id "
            "WHERE r.code = %s AND u.username = %s AND u.is_active",
            [args.region, f"scale-regulator-{args.region}"],
        ).fetchone()
        if row is None:
            sys.exit(f"No generated regulator for region {args.region!r} (scale-regulator-{args.region}).")
        region_id = row[0]
        counts = {}
        for label, table in (
            ("institutions", "cgtclinic_institution"),
            ("trials", "trials_trial"),
            ("sites", "trials_trialsite"),
            ("enrolment events", "trials_enrolmententry"),
            ("recognition requests", "ethics_recognitionrequest"),
            ("claims", "subsidies_claim"),
            ("ethics submissions", "ethics_submission"),
            ("research filings", "trials_filingobligation"),
            ("safety reports", "ethics_safetyevent"),
        ):
            counts[label] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        in_region = conn.execute(
            "SELECT count(*) FROM trials_trial t WHERE EXISTS (SELECT 1 FROM trials_trialsite s JOIN "
            "cgtclinic_institution i ON i.id = s.institution_id WHERE s.trial_id = t.id AND i.region_id = %s)",
            [region_id],
        ).fetchone()[0]
    return region_id, {"counts": counts, "region": args.region, "region_trials": in_region}


def setup_django(env) -> None:
    """Django in this process, on the benchmark's database: the phases read the registries and call services."""
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG")})
    import django

    django.setup()


def report_classes(only: str) -> list:
    from cgtclinic.api.reports import registered_reports

    views = registered_reports()
    if only:
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        unknown = set(wanted) - {v.name for v in views}
        if unknown:
            sys.exit(f"Unknown report(s): {', '.join(sorted(unknown))}. Known: {', '.join(v.name for v in views)}")
        views = [v for v in views if v.name in wanted]
    return views


# --- the web server -------------------------------------------------------------------------------------------------


class Server:
    """gunicorn as the Procfile runs it (sync workers), on loopback, started and stopped by us."""

    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.port = args.port or free_port()
        self.process = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            str(BIN / "gunicorn"),
            "cgtclinic.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.args.workers),
            "--no-control-socket",
            "--timeout",
            "120",
        ]
        self.log = open(SERVER_LOG, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn stopped at start; see {SERVER_LOG}")
            try:
                with urllib.request.urlopen(f"{self.base}/health/", timeout=5) as response:
                    if response.status == 200 and len(self.workers()) == self.args.workers:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise SystemExit("gunicorn did not answer /health/ within 60 s")

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def worker_peak_mb(self) -> float:
        """The largest VmHWM (peak resident set) of the workers, in MB."""
        peak = 0
        for pid in self.workers():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                continue
        return peak / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- reports --------------------------------------------------------------------------------------------------------


def report_viewers(args, region_id: int) -> list[dict]:
    """Who calls the reports: the region's generated regulator, and a system administrator across all regions."""
    from bench.pages import system_administrator
    from cgtclinic.models import User

    regulator = User.objects.get(username=f"scale-regulator-{args.region}")
    admin = system_administrator()
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        return [
            {"label": f"regulator of {args.region}", "token": issue_bench_token(conn, regulator.pk),
             "region_id": region_id, "sql_attribute": "bench_sql"},
            {"label": "system administrator (all regions)", "token": issue_bench_token(conn, admin.pk),
             "region_id": None, "sql_attribute": "bench_sql_all_regions"},
        ]  # fmt: skip


def bench_reports(args, reports: list, server: "Server", region_id: int, wrk: str) -> dict:
    viewers = report_viewers(args, region_id)
    floor = run_wrk(args, wrk, f"{server.base}/health/", "", min(args.duration, 5))
    print(f"{'(floor: GET /health/)':<44}{floor['api_p50']:>9.1f}{floor['api_p95']:>9.1f}{floor['rps']:>8.1f}")
    # What a report request costs before its own SQL and log row (bench/urls.py): the irreducible part.
    floor["authenticated"] = api = run_wrk(
        args, wrk, f"{server.base}/bench/floor/", f"Token {viewers[0]['token']}", min(args.duration, 5)
    )
    print(f"{'(floor: token + 1 query)':<44}{api['api_p50']:>9.1f}{api['api_p95']:>9.1f}{api['rps']:>8.1f}")
    results = []
    for viewer in viewers:
        print(f"-- {viewer['label']}")
        for view in reports:
            for fmt in args.formats:
                results.append(bench_report(args, view, server, viewer, fmt, wrk))
                print_report_row(results[-1])
    return {"floor": floor, "reports": results, "peak_mb": max((r["worker_peak_mb"] for r in results), default=0)}


def bench_report(args, view, server: "Server", viewer: dict, fmt: str, wrk: str) -> dict:
    url = f"{server.base}/api/v1/reports/{view.name}/?format={fmt}"
    authorization = f"Token {viewer['token']}"
    result = {"report": view.name, "format": fmt, "viewer": viewer["label"], "url": url.removeprefix(server.base)}
    # Warm-up: fills the workers' caches (imports, connections, plans) and checks the report answers at all.
    warmup_ms = []
    for _k in range(max(1, args.warmup)):
        request = urllib.request.Request(url, headers={"Authorization": authorization})
        try:
            began = time.perf_counter()
            with urllib.request.urlopen(request, timeout=300) as response:
                body = response.read()
            warmup_ms.append((time.perf_counter() - began) * 1000)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("detail", "")
            except ValueError:
                detail = f"see {SERVER_LOG}"
            result.update(error=f"HTTP {exc.code} {detail}"[:200], passed=False)
            result["worker_peak_mb"] = server.worker_peak_mb()
            return result
    result["bytes"] = len(body)
    if fmt == "json":
        payload = json.loads(body)
        result["rows"] = payload.get("count", len(payload.get("rows", [])))
    loaded = run_wrk(args, wrk, url, authorization, args.duration)
    if not loaded["requests"]:
        # No request finished within --duration: the warm-up's timings (the last ones, warm) are the figures.
        warm = warmup_ms[1:] or warmup_ms
        loaded.update(requests=len(warm), api_p50=percentile(warm, 50), api_p95=percentile(warm, 95), single=True)
        loaded["rps"] = 1000 / loaded["api_p50"]
    result.update(loaded)
    result["worker_peak_mb"] = server.worker_peak_mb()
    sql = getattr(view, viewer["sql_attribute"], "")
    if sql:
        timings = run_sql(args, sql, viewer["region_id"], runs=max(result["requests"], 20))
        result.update(sql_runs=len(timings), sql_p50=percentile(timings, 50), sql_p95=percentile(timings, 95))
        result["ratio_p50"] = result["api_p50"] / result["sql_p50"] if result["sql_p50"] else None
        result["ratio_p95"] = result["api_p95"] / result["sql_p95"] if result["sql_p95"] else None
    # A report without a yardstick for the regulator fails (its ratio cannot be checked); across all regions the
    # yardstick is optional (bench_sql_all_regions), and without one only the latency target applies.
    ratio_ok = (
        result.get("ratio_p50") is not None and result["ratio_p50"] <= TARGET_RATIO
        if sql or viewer["region_id"] is not None
        else True
    )
    result["passed"] = result["errors"] == 0 and result["api_p95"] <= TARGET_P95_MS and ratio_ok
    return result


def run_wrk(args, wrk: str, url: str, authorization: str, duration: int, cookie: str = "") -> dict:
    """wrk against one URL: requests, errors (non-2xx and socket errors), req/s and latency percentiles in ms."""
    completed = subprocess.run(
        [wrk, "-t1", f"-c{args.connections}", f"-d{duration}s", "--timeout", "60s", "-s",
         str(ROOT / "bench" / "report.lua"), url],
        env={**os.environ, "BENCH_AUTHORIZATION": authorization, "BENCH_COOKIE": cookie},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("BENCH_JSON "))
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "requests": figures["requests"],
        "errors": sum(v for k, v in figures.items() if k.startswith("errors_")),
        "rps": figures["requests"] / (figures["duration_us"] / 1e6),
        "api_p50": figures["p50_us"] / 1000,
        "api_p95": figures["p95_us"] / 1000,
        "api_p99": figures["p99_us"] / 1000,
    }


def run_sql(args, sql: str, region_id: int | None, runs: int) -> list[float]:
    """The report's bare SQL from as many connections as wrk used, ``runs`` times in all (at most --duration s)."""
    # A report computing its rows and its summary in two statements has them separated by ";\n": each runs in
    # turn and a run's time is the sum (psycopg sends one statement with parameters per execute).
    statements = [part for part in sql.split(";\n") if part.strip()]
    timings: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.duration
    remaining = [runs]
    failure = []

    def worker():
        try:
            with psycopg.connect(args.database_url, autocommit=True) as conn, conn.cursor() as cursor:
                for statement in statements:  # warm: plan and cache, like the API's warm-up
                    cursor.execute(statement, {"region_id": region_id})
                    cursor.fetchall()
                while time.monotonic() < deadline:
                    with lock:
                        if remaining[0] <= 0:
                            return
                        remaining[0] -= 1
                    began = time.perf_counter()
                    for statement in statements:
                        cursor.execute(statement, {"region_id": region_id})
                        cursor.fetchall()
                    elapsed = (time.perf_counter() - began) * 1000
                    with lock:
                        timings.append(elapsed)
        except psycopg.Error as exc:
            failure.append(exc)

    threads = [threading.Thread(target=worker) for _k in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        raise SystemExit(f"bench_sql failed: {failure[0]}")
    return timings


# --- pages, writes, sweeps ------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A page answering a redirect (to the login page, say) is a failure to show, not a page to follow."""

    def redirect_request(self, *args, **kwargs):
        return None


def bench_pages(args, server: "Server", wrk: str) -> list[dict]:
    from bench import pages

    opener = urllib.request.build_opener(_NoRedirect)

    def get(path: str, cookie: str) -> tuple[int, str, float]:
        request = urllib.request.Request(f"{server.base}{path}", headers={"Cookie": cookie, "Accept": "text/html"})
        began = time.perf_counter()
        try:
            with opener.open(request, timeout=300) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        return status, body.decode(errors="replace"), time.perf_counter() - began

    def load(path: str, cookie: str) -> dict:
        return run_wrk(args, wrk, f"{server.base}{path}", "", args.page_duration, cookie=cookie)

    print()
    print(f"{'viewer':<34}{'page':<40}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}  result")
    only = tuple(text.strip() for text in args.pages.split(",") if text.strip())
    return pages.run(get, load, slow_seconds=args.slow_page, report=print_page_row, only=only)


def bench_writes(args) -> dict:
    from bench import writes

    print()
    print(f"Enrolment write path: {args.writers} writers for {args.duration} s…")
    result = writes.run(writers=args.writers, seconds=args.duration)
    if result.get("error") and not result.get("calls"):
        print(f"  FAIL: {result['error']}")
    else:
        print(
            f"  {result['calls']} calls, p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms, max "
            f"{result['max']:.1f} ms, {result['per_second']:.1f} calls/s: {_verdict(result)}"
        )
    return result


def bench_sweeps(args) -> dict:
    from bench import sweeps

    print()
    opened = sweeps.open_rows()
    print("Open deadlines: " + ", ".join(f"{v:,} {k}" for k, v in opened.items()))
    print("Each run: a catch-up call (what came due since the data set ended), then the steady-state call measured.")
    print(f"{'sweep':<44}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'mean ms':>9}  result")
    return {"open": opened, "runs": sweeps.run(runs=args.sweep_runs, report=print_sweep_row)}


def all_passed(outcome: dict) -> bool:
    checks = [r["passed"] for r in outcome.get("reports", [])]
    checks += [r["passed"] for r in outcome.get("pages", [])]
    checks += [r["passed"] for r in outcome.get("sweeps", {}).get("runs", [])]
    if "writes" in outcome:
        checks.append(outcome["writes"]["passed"])
    if "reports" in outcome:
        checks.append(outcome["peak_mb"] <= TARGET_WORKER_MB)
    return all(checks)


# --- output ---------------------------------------------------------------------------------------------------------


def machine_info(args, wrk: str | None) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), platform.processor())
    memory = next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    with psycopg.connect(args.database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0] if wrk else ""
    import django
    import gunicorn

    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory_gb": round(int(memory) / 1024 / 1024, 1),
        "load_1min": round(os.getloadavg()[0], 2),
        "postgres": postgres,
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn.__version__,
        "wrk": wrk_version.strip().split(" [")[0] or "—",
    }


def print_header(args, machine: dict, dataset: dict) -> None:
    print(f"Machine: {machine['cpu']}, {machine['memory_gb']} GB; load average {machine['load_1min']}")
    if machine["load_1min"] > (os.cpu_count() or 1) * 0.5:
        print("  The machine is busy: the figures will be slower than on a quiet machine.")
    counts = ", ".join(f"{v:,} {k}" for k, v in dataset["counts"].items())
    print(f"Data set ({args.scale}): {counts}")
    print(f"Regulator of {dataset['region']} ({dataset['region_trials']:,} trials in the region)")
    print(f"Phases: {', '.join(args.phases)}; gunicorn {args.workers} workers; wrk {args.duration} s × "
          f"{args.connections} connections per report, {args.page_duration} s per page")  # fmt: skip
    print()
    if "reports" in args.phases:
        print(f"{'report':<36}{'format':<8}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}{'SQL p50':>9}{'SQL p95':>9}"
              f"{'ratio':>7}{'ratio95':>8}{'rows':>7}{'MB':>6}  result")  # fmt: skip


def _verdict(r: dict) -> str:
    verdict = "pass" if r["passed"] else "FAIL"
    if r.get("errors"):
        verdict += f" ({r['errors']} errors)"
    return verdict


def print_report_row(r: dict) -> None:
    if r.get("error"):
        print(f"{r['report']:<36}{r['format']:<8}  {r['error']}")
        return
    print(
        f"{r['report']:<36}{r['format']:<8}{r['api_p50']:>9.1f}{r['api_p95']:>9.1f}{r['rps']:>8.1f}"
        f"{_num(r.get('sql_p50')):>9}{_num(r.get('sql_p95')):>9}{_num(r.get('ratio_p50'), 2):>7}"
        f"{_num(r.get('ratio_p95'), 2):>8}{r.get('rows', ''):>7}{r['worker_peak_mb']:>6.0f}  {_verdict(r)}"
    )


def print_page_row(r: dict) -> None:
    if r.get("error"):
        print(f"{r['viewer'][:33]:<34}{r['page'][:39]:<40}  {r['error']}  {r['url']}")
        return
    once = " (timed once)" if r.get("single") else ""
    print(f"{r['viewer'][:33]:<34}{r['page'][:39]:<40}{r['api_p50']:>9.1f}{r['api_p95']:>9.1f}{r['rps']:>8.1f}"
          f"  {_verdict(r)}{once}")  # fmt: skip


def print_sweep_row(r: dict) -> None:
    if r.get("error"):
        print(f"{r['sweep']:<44}  FAIL: {r['error']}")
        return
    print(
        f"{r['sweep']:<44}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['max']:>9.1f}{r['mean']:>9.1f}  {_verdict(r)}  "
        f"did {r['did']}{_scanned(r)}; catch-up {r['catch_up_mean']:.1f} ms did {r['caught_up']}"
    )


def _scanned(r: dict) -> str:
    """What a deadline sweep looked through: its open rows, and those whose reminder or deadline has come."""
    if "open" not in r:
        return ""
    return f"; scanned {r['open']:,} open {r['scanned']} ({r['due']:,} with a reminder or deadline come)"


def _num(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def write_results(args, machine: dict, dataset: dict, outcome: dict) -> str:
    now = datetime.datetime.now().astimezone()
    counts = ", ".join(f"{v:,} {k}" for k, v in dataset["counts"].items())
    lines = [
        f"Benchmark of {now:%Y-%m-%d %H:%M %Z} (`make bench`, `--scale {args.scale}`, phases "
        f"{', '.join(args.phases)}).",
        "",
        f"Data set: {counts}; the regulator's region ({dataset['region']}) holds {dataset['region_trials']:,} trials.",
        f"Machine: {machine['cpu']}, {machine['memory_gb']} GB RAM, load average {machine['load_1min']} at the "
        f"start; PostgreSQL {machine['postgres']}, Python {machine['python']}, Django {machine['django']}, "
        f"gunicorn {machine['gunicorn']}, {machine['wrk']}.",
    ]
    if "reports" in outcome:
        lines += report_lines(args, outcome)
    if "pages" in outcome:
        lines += page_lines(args, outcome["pages"])
    if "writes" in outcome:
        lines += write_lines(args, outcome["writes"])
    if "sweeps" in outcome:
        lines += sweep_lines(args, outcome["sweeps"])
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    document = {"at": now.isoformat(), "machine": machine, "dataset": dataset, **outcome}
    args.output.with_suffix(".json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return text


def report_lines(args, outcome: dict) -> list[str]:
    floor = outcome["floor"]
    lines = [
        "",
        f"## Reports (target p95 ≤ {TARGET_P95_MS} ms, API/SQL p50 ≤ {TARGET_RATIO})",
        "",
        f"Each report in each format through gunicorn ({args.workers} sync workers, DEBUG off) on loopback, wrk "
        f"{args.duration} s with {args.connections} connections; SQL = the report's `bench_sql` (all regions: "
        f"`bench_sql_all_regions`, — where a report has none) through psycopg, as many runs from as many connections. "
        f"¹ no request finished within {args.duration} s under load: the warm-up requests' timings.",
        "",
        "| viewer | report | format | p50 ms | p95 ms | req/s | SQL p50 ms | SQL p95 ms | API/SQL p50 | API/SQL p95 "
        "| rows | result |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in outcome["reports"]:
        head = f"| {r['viewer']} | `{r['report']}` | {r['format']} |"
        if r.get("error"):
            lines.append(f"{head} | | | | | | | | FAIL: {r['error'][:80]} |")
            continue
        lines.append(
            f"{head} {_latency_cells(r)} | {_num(r.get('sql_p50'))} | {_num(r.get('sql_p95'))} | "
            f"{_num(r.get('ratio_p50'), 2)} | {_num(r.get('ratio_p95'), 2)} | {r.get('rows', '')} | {_result_cell(r)} |"
        )
    peak = outcome["peak_mb"]
    lines += [
        "",
        f"Peak memory of a web worker (VmHWM): **{peak:.0f} MB** (target ≤ {TARGET_WORKER_MB} MB: "
        f"{'pass' if peak <= TARGET_WORKER_MB else '**fail**'}). The floor, `GET /health/`: p50 {floor['api_p50']:.1f} "
        f"ms, p95 {floor['api_p95']:.1f} ms, {floor['rps']:.0f} req/s. The authenticated floor, `GET /bench/floor/` "
        f"(the reports' token authentication, permission and throttle, one `SELECT 1`): p50 "
        f"{floor['authenticated']['api_p50']:.1f} ms, p95 {floor['authenticated']['api_p95']:.1f} ms, "
        f"{floor['authenticated']['rps']:.0f} req/s.",
    ]
    return lines


def page_lines(args, results: list[dict]) -> list[str]:
    from bench.pages import TARGET_P95_MS as PAGE_TARGET_MS

    lines = [
        "",
        f"## Admin and PI pages (target p95 ≤ {PAGE_TARGET_MS} ms)",
        "",
        f"Logged-in sessions through gunicorn, wrk {args.page_duration} s with {args.connections} connections per "
        f"page; a page slower than {args.slow_page:g} s on its first request is timed once (marked ¹).",
        "",
        "| viewer | page | URL | p50 ms | p95 ms | req/s | result |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        head = f"| {r['viewer']} | {r['page']} | `{r['url']}` |"
        if r.get("error"):
            lines.append(f"{head} | | | FAIL: {r['error']} |")
            continue
        lines.append(f"{head} {_latency_cells(r)} | {_result_cell(r)} |")
    return lines


def _latency_cells(r: dict) -> str:
    """p50, p95 and req/s as table cells; ¹ marks figures from single timed requests rather than a load run."""
    once = "¹" if r.get("single") else ""
    return f"{r['api_p50']:.1f}{once} | {r['api_p95']:.1f}{once} | {r['rps']:.1f}"


def _result_cell(r: dict) -> str:
    return "pass" if r["passed"] else "**fail**"


def write_lines(args, r: dict) -> list[str]:
    from bench.writes import TARGET_P95_MS as WRITE_TARGET_MS

    lines = ["", f"## Enrolment write path (target p95 ≤ {WRITE_TARGET_MS} ms under {args.writers} writers)", ""]
    if not r.get("calls"):
        return [*lines, f"FAIL: {r.get('error', 'no call')}"]
    return [
        *lines,
        f"`trials.enrolment.enrolment_report` from {r['writers']} processes (one site each, the busiest that accept a "
        f"report today), {args.duration} s, each call rolled back: {r['calls']} calls, p50 **{r['p50']:.1f} ms**, p95 "
        f"**{r['p95']:.1f} ms**, max {r['max']:.1f} ms, {r['per_second']:.1f} calls/s "
        f"({'pass' if r['passed'] else '**fail**'}{', errors: ' + r['error'] if r.get('error') else ''}).",
    ]


def sweep_lines(args, outcome: dict) -> list[str]:
    from bench.sweeps import TARGET_SECONDS

    opened = ", ".join(f"{v:,} {k}" for k, v in outcome["open"].items())
    lines = [
        "",
        f"## Deadline sweeps (target ≤ {TARGET_SECONDS * 1000:.0f} ms per run)",
        "",
        f"Each beat sweep called in-process {args.sweep_runs} times, each run rolled back. Open: {opened}. A run "
        "calls the sweep twice: the catch-up call makes what came due since the data set ended (as the first beat "
        "after an outage would), then the steady-state call, which a beat every few minutes costs, is measured: it "
        "looks through every open row and finds their effects made.",
        "",
        "| sweep | open rows scanned | reminder or deadline come | p50 ms | p95 ms | max ms | mean ms | one run did "
        "| catch-up mean ms | catch-up did | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in outcome["runs"]:
        if r.get("error"):
            lines.append(f"| `{r['sweep']}` | | | | | | | | | | FAIL: {r['error'][:80]} |")
            continue
        opened = f"{r['open']:,} {r['scanned']}" if "open" in r else ""
        due = f"{r['due']:,}" if "due" in r else ""
        lines.append(
            f"| `{r['sweep']}` | {opened} | {due} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | "
            f"{r['mean']:.1f} | {r['did']} | {r['catch_up_mean']:.1f} | {r['caught_up']} | {_result_cell(r)} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
