"""Benchmark every regulator report through the real stack, against the same aggregate as bare SQL.

    .venv/bin/python bench/run.py [--duration 10] [--connections 2] [--region shanghai] [--reports pipeline,...]

1. The data set: a PostgreSQL database of its own (default cgt_scale). If it does not exist it is created, migrated
   and filled with ``manage.py generate_scale_data`` at provincial scale (``--scale national``, or the sizes given).
2. The web server: gunicorn on 127.0.0.1 with the project's WSGI application, 2 sync workers, DEBUG off
   (bench.settings: the project's settings with the report throttle's rate raised, so it runs but never refuses).
3. For each report of ``cgtclinic.api.reports.registered_reports()``: a few warm-up requests (which must answer
   200), then wrk for --duration seconds with --connections connections using the region's regulator token:
   p50/p95 latency and requests per second. Then the report's ``bench_sql`` through psycopg, as many times as
   the API answered (at most --duration seconds), from as many connections: p50/p95 (a bench_sql of two
   statements separated by ";\n" runs both each time, and a run's time is their sum). The ratio API/SQL shows
   what the framework adds to the query. Before the reports, two floors: ``GET /health/`` and ``GET
   /bench/floor/`` (bench/urls.py: the reports' authentication, permission and throttle and one trivial query).
4. The peak memory of each web worker (VmHWM in /proc/<pid>/status) after each report.

Results are printed and written to bench/results/latest.md (and .json). Targets: every JSON report p95 ≤ 300 ms,
API/SQL p50 ratio ≤ 3, a worker's peak memory ≤ 300 MB. Run it on a quiet machine: the figures are only as good
as the idle CPU they get.
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
import statistics
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
TARGET_P95_MS = 300
TARGET_RATIO = 3
TARGET_WORKER_MB = 300
SIZES = ("institutions", "trials", "sites", "enrolment_events", "recognition_requests", "claims", "seed")


def main() -> int:
    args = parse_args()
    env = server_env(args)
    if not ensure_data(args, env):
        return 1
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed: apt-get install wrk (make bench installs it when run as root).", file=sys.stderr)
        return 1
    reports = report_classes(env, args.reports)
    if not reports:
        print("No report is registered (cgtclinic.api.reports.registered_reports() is empty).", file=sys.stderr)
        return 1
    region_id, token, dataset = read_dataset(args)
    machine = machine_info(args, wrk)
    print_header(args, machine, dataset)
    server = Server(args, env)
    results = []
    try:
        server.start()
        floor = run_wrk(args, wrk, f"{server.base}/health/", "", min(args.duration, 5))
        print(f"{'(floor: GET /health/)':<26}{floor['api_p50']:>9.1f}{floor['api_p95']:>9.1f}{floor['rps']:>8.1f}")
        # What a report request costs before its own SQL and log row (bench/urls.py): the irreducible part.
        floor["authenticated"] = run_wrk(
            args, wrk, f"{server.base}/bench/floor/", f"Token {token}", min(args.duration, 5)
        )
        api = floor["authenticated"]
        print(f"{'(floor: token + 1 query)':<26}{api['api_p50']:>9.1f}{api['api_p95']:>9.1f}{api['rps']:>8.1f}")
        for view in reports:
            results.append(bench_report(args, view, server, region_id, token, wrk))
            print_row(results[-1])
    finally:
        server.stop()
    peak = max((r["worker_peak_mb"] for r in results), default=0)
    summary = write_results(args, machine, dataset, results, peak, floor)
    print()
    print(summary)
    return 0 if all(r["passed"] for r in results) and peak <= TARGET_WORKER_MB else 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cgt_scale")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="Redis for the cache and throttle.")
    parser.add_argument("--region", default="shanghai", help="Region whose regulator calls the reports.")
    parser.add_argument("--duration", type=int, default=10, help="Seconds of load per report (default 10).")
    parser.add_argument("--connections", type=int, default=2, help="Concurrent connections (default 2).")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
    parser.add_argument("--warmup", type=int, default=5, help="Requests before measuring each report (default 5).")
    parser.add_argument("--reports", default="", help="Comma-separated report names (default: all).")
    parser.add_argument("--format", default="json", choices=("json", "csv", "xlsx"), help="Report format.")
    parser.add_argument("--regenerate", action="store_true", help="Drop the database and generate the data set again.")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    sizes = parser.add_argument_group("data set sizes, when it is generated (default: provincial scale)")
    sizes.add_argument(
        "--scale", choices=("provincial", "national"), default="provincial", help="generate_scale_data's named sizes."
    )
    for name in SIZES:
        sizes.add_argument(f"--{name.replace('_', '-')}", type=int)
    return parser.parse_args()


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
        sizes = [f"--{n.replace('_', '-')}={getattr(args, n)}" for n in SIZES if getattr(args, n) is not None]
        print(f"Generating the data set at {args.scale} scale (about 1 min provincial, 10 min national)…")
        generated = subprocess.run([*manage, "generate_scale_data", f"--scale={args.scale}", *sizes], env=env, cwd=ROOT)
        if generated.returncode:
            return False
    elif any(getattr(args, n) is not None for n in SIZES):
        print("The database already holds a data set; sizes are ignored (use --regenerate to rebuild it).")
    return True


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


def read_dataset(args) -> tuple[int, str, dict]:
    with psycopg.connect(args.database_url) as conn:
        row = conn.execute(
            "SELECT r.id, u.id FROM cgtclinic_region r JOIN cgtclinic_user u ON u.region_id = r.id "
            "WHERE r.code = %s AND u.username = %s AND u.is_active",
            [args.region, f"scale-regulator-{args.region}"],
        ).fetchone()
        if row is None:
            sys.exit(f"No generated regulator for region {args.region!r} (scale-regulator-{args.region}).")
        region_id, user_id = row
        token = issue_bench_token(conn, user_id)
        counts = {}
        for label, table in (
            ("institutions", "cgtclinic_institution"),
            ("trials", "trials_trial"),
            ("sites", "trials_trialsite"),
            ("enrolment events", "trials_enrolmententry"),
            ("recognition requests", "ethics_recognitionrequest"),
            ("claims", "subsidies_claim"),
            ("ethics submissions", "ethics_submission"),
        ):
            counts[label] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        in_region = conn.execute(
            "SELECT count(*) FROM trials_trial t WHERE EXISTS (SELECT 1 FROM trials_trialsite s JOIN "
            "cgtclinic_institution i ON i.id = s.institution_id WHERE s.trial_id = t.id AND i.region_id = %s)",
            [region_id],
        ).fetchone()[0]
    return region_id, token, {"counts": counts, "region": args.region, "region_trials": in_region}


def report_classes(env, only: str) -> list:
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG")})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
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


# --- one report -----------------------------------------------------------------------------------------------------


def bench_report(args, view, server: Server, region_id: int, token: str, wrk: str) -> dict:
    url = f"{server.base}/api/v1/reports/{view.name}/?format={args.format}"
    authorization = f"Token {token}"
    result = {"report": view.name, "url": url.removeprefix(server.base)}
    # Warm-up: fills the workers' caches (imports, connections, plans) and checks the report answers at all.
    for _k in range(max(1, args.warmup)):
        request = urllib.request.Request(url, headers={"Authorization": authorization})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                body = response.read()
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
    if args.format == "json":
        payload = json.loads(body)
        result["rows"] = payload.get("count", len(payload.get("rows", [])))
    result.update(run_wrk(args, wrk, url, authorization, args.duration))
    errors = result["errors"]
    result["worker_peak_mb"] = server.worker_peak_mb()
    if view.bench_sql:
        timings = run_sql(args, view.bench_sql, region_id, runs=max(result["requests"], 20))
        result.update(
            sql_runs=len(timings),
            sql_p50=percentile(timings, 50),
            sql_p95=percentile(timings, 95),
        )
        result["ratio_p50"] = result["api_p50"] / result["sql_p50"] if result["sql_p50"] else None
        result["ratio_p95"] = result["api_p95"] / result["sql_p95"] if result["sql_p95"] else None
    result["passed"] = (
        errors == 0
        and result["api_p95"] <= TARGET_P95_MS
        and result.get("ratio_p50") is not None
        and result["ratio_p50"] <= TARGET_RATIO
    )
    return result


def run_wrk(args, wrk: str, url: str, authorization: str, duration: int) -> dict:
    """wrk against one URL: requests, errors (non-2xx and socket errors), req/s and latency percentiles in ms."""
    completed = subprocess.run(
        [wrk, "-t1", f"-c{args.connections}", f"-d{duration}s", "--timeout", "60s", "-s",
         str(ROOT / "bench" / "report.lua"), url],
        env={**os.environ, "BENCH_AUTHORIZATION": authorization},
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


def run_sql(args, sql: str, region_id: int, runs: int) -> list[float]:
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


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# --- output ---------------------------------------------------------------------------------------------------------


def machine_info(args, wrk: str) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), platform.processor())
    memory = next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    with psycopg.connect(args.database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
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
        "wrk": wrk_version.split(" [")[0],
    }


def print_header(args, machine: dict, dataset: dict) -> None:
    print(f"Machine: {machine['cpu']}, {machine['memory_gb']} GB; load average {machine['load_1min']}")
    if machine["load_1min"] > (os.cpu_count() or 1) * 0.5:
        print("  The machine is busy: the figures will be slower than on a quiet machine.")
    counts = ", ".join(f"{v:,} {k}" for k, v in dataset["counts"].items())
    print(f"Data set: {counts}")
    print(f"Regulator of {dataset['region']} ({dataset['region_trials']:,} trials in the region)")
    print(
        f"gunicorn {args.workers} workers; wrk {args.duration} s × {args.connections} connections per report; "
        f"format={args.format}"
    )
    print()
    print(f"{'report':<26}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}{'SQL p50':>9}{'SQL p95':>9}{'ratio':>7}"
          f"{'ratio95':>8}{'rows':>7}{'MB':>6}  result")  # fmt: skip


def print_row(r: dict) -> None:
    if r.get("error"):
        print(f"{r['report']:<26}  {r['error']}")
        return
    verdict = "pass" if r["passed"] else "FAIL"
    if r.get("errors"):
        verdict += f" ({r['errors']} errors)"
    print(
        f"{r['report']:<26}{r['api_p50']:>9.1f}{r['api_p95']:>9.1f}{r['rps']:>8.1f}"
        f"{_num(r.get('sql_p50')):>9}{_num(r.get('sql_p95')):>9}{_num(r.get('ratio_p50'), 2):>7}"
        f"{_num(r.get('ratio_p95'), 2):>8}{r.get('rows', ''):>7}{r['worker_peak_mb']:>6.0f}  {verdict}"
    )


def _num(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def write_results(args, machine: dict, dataset: dict, results: list[dict], peak: float, floor: dict) -> str:
    now = datetime.datetime.now().astimezone()
    lines = [
        f"Benchmark of {now:%Y-%m-%d %H:%M %Z} (`make bench`): each report as JSON through gunicorn "
        f"({args.workers} sync workers, DEBUG off) on loopback, wrk {args.duration} s with {args.connections} "
        f"connections, a regulator of {dataset['region']}; SQL = the report's `bench_sql` through psycopg, as many "
        f"runs from as many connections.",
        "",
        "| report | p50 ms | p95 ms | req/s | SQL p50 ms | SQL p95 ms | API/SQL p50 | API/SQL p95 | rows | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.get("error"):
            lines.append(f"| `{r['report']}` | | | | | | | | | FAIL: {r['error'][:80]} |")
            continue
        verdict = "pass" if r["passed"] else "**fail**"
        lines.append(
            f"| `{r['report']}` | {r['api_p50']:.1f} | {r['api_p95']:.1f} | {r['rps']:.1f} | "
            f"{_num(r.get('sql_p50'))} | {_num(r.get('sql_p95'))} | {_num(r.get('ratio_p50'), 2)} | "
            f"{_num(r.get('ratio_p95'), 2)} | {r.get('rows', '')} | {verdict} |"
        )
    counts = ", ".join(f"{v:,} {k}" for k, v in dataset["counts"].items())
    memory_verdict = "pass" if peak <= TARGET_WORKER_MB else "**fail**"
    lines += [
        "",
        f"Peak memory of a web worker (VmHWM): **{peak:.0f} MB** (target ≤ {TARGET_WORKER_MB} MB: {memory_verdict}).",
        f"Targets: p95 ≤ {TARGET_P95_MS} ms and API/SQL p50 ratio ≤ {TARGET_RATIO} per report. The floor, "
        f"`GET /health/` (no authentication, one trivial query): p50 {floor['api_p50']:.1f} ms, p95 "
        f"{floor['api_p95']:.1f} ms, {floor['rps']:.0f} req/s. The authenticated floor, `GET /bench/floor/` (the "
        f"reports' token authentication, permission and throttle, one `SELECT 1`, a small JSON body; no log row): "
        f"p50 {floor['authenticated']['api_p50']:.1f} ms, p95 {floor['authenticated']['api_p95']:.1f} ms, "
        f"{floor['authenticated']['rps']:.0f} req/s.",
        "",
        f"Data set: {counts}; the regulator's region holds {dataset['region_trials']:,} trials.",
        f"Machine: {machine['cpu']}, {machine['memory_gb']} GB RAM, load average {machine['load_1min']} at the "
        f"start; PostgreSQL {machine['postgres']}, Python {machine['python']}, Django {machine['django']}, "
        f"gunicorn {machine['gunicorn']}, {machine['wrk']}.",
    ]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(
        json.dumps(
            {
                "at": now.isoformat(),
                "machine": machine,
                "dataset": dataset,
                "floor": floor,
                "results": results,
                "peak_mb": peak,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    return text


if __name__ == "__main__":
    sys.exit(main())
