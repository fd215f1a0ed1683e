"""Deployment checks: Django's --deploy checks, migrations in step with models, docker-compose.yml in step with
the settings, every environment variable documented (docs/configuration.md), and the README and docs/ whole."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
APP_SERVICES = ("web", "worker", "deadlines", "beat")
# Read by the compose file itself (interpolation), not by the settings.
COMPOSE_ONLY_NAMES = {"POSTGRES_PASSWORD"}


def run_manage(*args: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "CGT_DATA_DIR": str(tmp_path / "var"), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def names_read_by_settings(env: dict[str, str], tmp_path) -> set[str]:
    code = (
        "import json, django; django.setup(); from cgtclinic.env import READ_NAMES as n; print(json.dumps(sorted(n)))"
    )
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "cgtclinic.settings", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=clean, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text(encoding="utf-8"))


def production_env() -> dict[str, str]:
    return {
        "DJANGO_SECURE": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "cgt.example.org",
        "DATABASE_URL": "postgres://cgtclinic:secret@127.0.0.1:5432/cgtclinic",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = production_env()
    assert len(env["DJANGO_SECRET_KEY"]) == 64
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_flags_a_deployment_without_https(tmp_path):
    """The check above passes because of DJANGO_SECURE, not because the checks are off."""
    env = {**production_env(), "DJANGO_SECURE": "0"}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    for check_id in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check_id in result.stderr


def test_no_model_change_is_missing_a_migration(tmp_path):
    result = run_manage(
        "makemigrations",
        "--check",
        "--dry-run",
        env={"DJANGO_SETTINGS_MODULE": "cgtclinic.settings"},
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, "Models changed without a migration:\n" + result.stdout + result.stderr


def test_settings_read_the_same_variables_whatever_is_set(tmp_path):
    """Optional branches read their variables too, so one clean import lists them all."""
    bare = names_read_by_settings({"CGT_DATA_DIR": str(tmp_path / "a")}, tmp_path)
    configured = names_read_by_settings(
        {
            "CGT_DATA_DIR": str(tmp_path / "b"),
            "DATABASE_URL": "postgres://cgt:pw@db.internal:5432/cgtclinic",
            "REDIS_URL": "redis://cache.internal:6379/0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "DJANGO_EMAIL_HOST": "smtp.example.org",
            "DJANGO_SECURE": "1",
            "DJANGO_BEHIND_PROXY": "1",
        },
        tmp_path,
    )
    assert bare == configured


def test_compose_passes_exactly_the_variables_the_settings_read(compose, tmp_path):
    read = names_read_by_settings({"CGT_DATA_DIR": str(tmp_path / "var")}, tmp_path)
    for service in APP_SERVICES:
        passed = set(compose["services"][service]["environment"])
        assert passed == read, (
            f"{service}: passed but never read: {sorted(passed - read)}; read but not passed: {sorted(read - passed)}"
        )


def test_compose_services_use_the_compose_postgres_and_redis(compose):
    services = compose["services"]
    for service in APP_SERVICES:
        env = services[service]["environment"]
        assert re.fullmatch(r"postgres://[^@/]+@postgres:5432/\w+", env["DATABASE_URL"]), env["DATABASE_URL"]
        assert re.fullmatch(r"redis://redis:6379/\d+", env["REDIS_URL"]), env["REDIS_URL"]
        depends_on = services[service]["depends_on"]
        for backing in ("postgres", "redis"):
            assert depends_on[backing] == {"condition": "service_healthy"}, (service, backing)
    for backing in ("postgres", "redis", "web", "worker"):
        assert services[backing]["healthcheck"]["test"], backing
    for service in ("worker", "deadlines", "beat"):
        # Migrations run in web's command; the others wait for it.
        assert services[service]["depends_on"]["web"] == {"condition": "service_healthy"}
    assert "gunicorn" in services["web"]["command"]
    assert "migrate" in services["web"]["command"]
    assert "replicas" not in services["beat"].get("deploy", {}), "exactly one beat process may run"


def test_compose_needs_no_newer_keys_than_debian_docker_compose_reads(compose):
    """Debian's docker-compose (1.29) rejects the top-level `name:` and `include:` of newer Compose files."""
    allowed = {"services", "volumes", "networks", "configs", "secrets"}
    top_level = {key for key in compose if not key.startswith("x-")}
    assert top_level <= allowed, sorted(top_level - allowed)


def _documented_variables() -> set[str]:
    """The variables in the first column of the environment table in docs/configuration.md."""
    text = (BASE_DIR / "docs" / "configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_every_variable_is_documented_in_env_example_and_the_configuration_table(tmp_path):
    read = names_read_by_settings({"CGT_DATA_DIR": str(tmp_path / "var")}, tmp_path)
    example = (BASE_DIR / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert listed == read | COMPOSE_ONLY_NAMES, (sorted(listed - read), sorted(read - listed))
    documented = _documented_variables()
    assert documented == read | COMPOSE_ONLY_NAMES, (
        f"docs/configuration.md describes variables nobody reads: {sorted(documented - read - COMPOSE_ONLY_NAMES)}; "
        f"does not describe: {sorted(read | COMPOSE_ONLY_NAMES - documented)}"
    )


def test_the_configuration_table_says_where_demo_mail_goes():
    text = (BASE_DIR / "docs" / "configuration.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `DJANGO_EMAIL_HOST` |"))
    assert "$CGT_DATA_DIR/mail/" in row and "console" in row


def test_the_readme_is_short_and_names_the_two_commands_and_the_docs():
    readme = (BASE_DIR / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make run" in readme and "make test" in readme
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert linked == {f"docs/{path.name}" for path in (BASE_DIR / "docs").glob("*.md") if path.name != "README.md"}


@pytest.mark.parametrize("document", ["README.md", *sorted(f"docs/{p.name}" for p in (BASE_DIR / "docs").glob("*.md"))])
def test_relative_links_lead_to_files_and_headings_that_exist(document):
    path = BASE_DIR / document
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{document}: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}
            assert anchor in slugs, f"{document}: {target} (headings: {sorted(slugs)})"


def test_dockerfile_builds_a_non_root_gunicorn_image():
    dockerfile = (BASE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, flags=re.MULTILINE)
    assert "pip install --requirement requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["gunicorn", "cgtclinic\.wsgi"', dockerfile, flags=re.MULTILINE)


def test_deadline_effects_have_their_own_worker_everywhere(compose):
    """Issue 11: deadline effects run on their own queue, and make run, the Procfile and docker-compose start a
    worker for it; beat's and that worker's health come from the readiness endpoint."""
    from django.conf import settings

    queue = settings.DEADLINE_QUEUE
    services = compose["services"]
    assert f"--queues {queue}" in services["deadlines"]["command"]
    assert f"--queues {settings.CELERY_TASK_DEFAULT_QUEUE}" in services["worker"]["command"]
    for service in ("deadlines", "beat"):
        assert "/health/ready/" in " ".join(services[service]["healthcheck"]["test"]), service
    procfile = dict(line.split(":", 1) for line in (BASE_DIR / "Procfile").read_text().splitlines() if line.strip())
    assert f"--queues {queue}" in procfile["deadlines"]
    assert f"--queues {settings.CELERY_TASK_DEFAULT_QUEUE}" in procfile["worker"]
    assert "beat" in procfile["beat"]
