"""Settings come from the environment through typed readers that refuse bad values.

Whole-settings checks run in a subprocess with a clean environment, since settings are read once per process.
"""

import json
import os
import subprocess
import sys
from datetime import datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from io import StringIO

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, get_connection

from cgtclinic.env import READ_NAMES, env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = settings.BASE_DIR


def run_python(code: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Run code with the project's interpreter and nothing from this process's environment but PATH."""
    clean = {"PATH": os.environ["PATH"], "CGT_DATA_DIR": str(tmp_path / "var"), **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=clean, capture_output=True, text=True, check=False, timeout=60
    )


SHOW_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "broker": settings.CELERY_BROKER_URL,
    "transport_options": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "cache": settings.CACHES["default"]["BACKEND"],
    "debug": settings.DEBUG,
    "secure": settings.SECURE_SSL_REDIRECT,
    "email": settings.EMAIL_BACKEND,
    "email_file_path": str(getattr(settings, "EMAIL_FILE_PATH", "")),
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""


@pytest.fixture(autouse=True)
def _keep_read_names():
    """The readers below record made-up names; the project's own set is left as it was."""
    before = set(READ_NAMES)
    yield
    READ_NAMES.intersection_update(before)


@pytest.mark.parametrize("raw", ["1", "true", "YES", " on "])
def test_env_bool_true(monkeypatch, raw):
    monkeypatch.setenv("CGT_TEST_FLAG", raw)
    assert env_bool("CGT_TEST_FLAG", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_env_bool_false(monkeypatch, raw):
    monkeypatch.setenv("CGT_TEST_FLAG", raw)
    assert env_bool("CGT_TEST_FLAG", True) is False


@pytest.mark.parametrize("raw", ["2", "enabled", "y"])
def test_env_bool_refuses_other_values(monkeypatch, raw):
    monkeypatch.setenv("CGT_TEST_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="CGT_TEST_FLAG must be a boolean"):
        env_bool("CGT_TEST_FLAG", False)


@pytest.mark.parametrize("raw", ["ten", "1.5", "5MB"])
def test_env_int_refuses_non_integers(monkeypatch, raw):
    monkeypatch.setenv("CGT_TEST_NUMBER", raw)
    with pytest.raises(ImproperlyConfigured, match="CGT_TEST_NUMBER must be an integer"):
        env_int("CGT_TEST_NUMBER", 3)


def test_env_int_reads_integers(monkeypatch):
    monkeypatch.setenv("CGT_TEST_NUMBER", " 42 ")
    assert env_int("CGT_TEST_NUMBER", 3) == 42


def test_env_choice_refuses_values_outside_the_choices(monkeypatch):
    monkeypatch.setenv("CGT_TEST_CHOICE", "xml")
    with pytest.raises(ImproperlyConfigured, match="CGT_TEST_CHOICE must be one of text, json, got 'xml'"):
        env_choice("CGT_TEST_CHOICE", "text", ("text", "json"))


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("CGT_TEST_LIST", " a.example.org, ,b.example.org ,")
    assert env_list("CGT_TEST_LIST", ["default"]) == ["a.example.org", "b.example.org"]


@pytest.mark.parametrize("blank", ["", "   "])
def test_unset_or_blank_means_the_default(monkeypatch, blank):
    """docker-compose passes `${NAME:-}` through, so a blank value must behave like an unset one."""
    for name in ("CGT_TEST_STR", "CGT_TEST_FLAG", "CGT_TEST_NUMBER", "CGT_TEST_LIST", "CGT_TEST_CHOICE"):
        monkeypatch.setenv(name, blank)
    assert env_str("CGT_TEST_STR", "fallback") == "fallback"
    assert env_bool("CGT_TEST_FLAG", True) is True
    assert env_int("CGT_TEST_NUMBER", 7) == 7
    assert env_list("CGT_TEST_LIST", ["x"]) == ["x"]
    assert env_choice("CGT_TEST_CHOICE", "text", ("text", "json")) == "text"
    monkeypatch.delenv("CGT_TEST_STR")
    assert env_str("CGT_TEST_STR", "fallback") == "fallback"


def test_readers_record_the_names_they_read(monkeypatch):
    monkeypatch.delenv("CGT_TEST_RECORDED", raising=False)
    env_str("CGT_TEST_RECORDED")
    assert "CGT_TEST_RECORDED" in READ_NAMES


def test_without_database_and_redis_urls_settings_use_sqlite_and_the_filesystem_broker(tmp_path):
    result = run_python(SHOW_SETTINGS, {"DJANGO_SETTINGS_MODULE": "cgtclinic.settings"}, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["name"] == str(tmp_path / "var" / "db.sqlite3")
    assert shown["broker"].startswith("filesystem://")
    assert shown["transport_options"]["data_folder_in"] == str(tmp_path / "var" / "celery" / "queue")
    assert shown["transport_options"]["control_folder"] == str(tmp_path / "var" / "celery" / "control")
    assert (tmp_path / "var" / "celery" / "queue").is_dir()
    assert shown["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert shown["debug"] is False, "DEBUG must be off unless DJANGO_DEBUG asks for it"
    assert shown["secure"] is False
    # Without a mail server, mail goes to the console and, one .eml file a message, to the data directory.
    assert shown["email"] == "cgtclinic.mail.ConsoleAndFileEmailBackend"
    assert shown["email_file_path"] == str(tmp_path / "var" / "mail")
    assert shown["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    # The generated key is kept in the data directory, readable by its owner only.
    key_file = tmp_path / "var" / "secret_key"
    assert len(key_file.read_text().strip()) >= 50
    assert key_file.stat().st_mode & 0o077 == 0


def test_database_and_redis_urls_switch_to_postgresql_and_redis(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "cgtclinic.settings",
        "DATABASE_URL": "postgres://cgt:pw@db.internal:5432/cgtclinic",
        "REDIS_URL": "redis://cache.internal:6379/2",
        "CELERY_VISIBILITY_TIMEOUT": "7200",
        "DJANGO_EMAIL_HOST": "smtp.example.org",
    }
    result = run_python(SHOW_SETTINGS, env, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["name"] == "cgtclinic"
    assert shown["broker"] == "redis://cache.internal:6379/2"
    assert shown["transport_options"] == {"visibility_timeout": 7200}
    assert shown["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert shown["email"] == "django.core.mail.backends.smtp.EmailBackend"


SHOW_REPLICA_WORK_MEM = """
import django
from django.db import connections
django.setup()
with connections["replica"].cursor() as cursor:
    cursor.execute("SHOW work_mem")
    print(cursor.fetchone()[0])
"""


def test_server_settings_in_the_replica_url_reach_the_reports_connection(tmp_path):
    """docs/configuration.md: a deployment gives the reports' connection more sort memory in the URL
    (``?options=-c work_mem=…``), so percentile sorts over a whole region do not spill to disk."""
    server = settings.DATABASES["default"]
    # The server's maintenance database: SHOW reads nothing of the project's.
    url = f"postgres://{server['USER']}@{server['HOST']}:{server['PORT']}/postgres"
    env = {
        "DJANGO_SETTINGS_MODULE": "cgtclinic.settings",
        "DATABASE_URL": url,
        "DATABASE_REPLICA_URL": f"{url}?options=-c%20work_mem%3D64MB",
    }
    result = run_python(SHOW_REPLICA_WORK_MEM, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "64MB"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be a boolean"),
        ("DJANGO_SECURE", "2", "DJANGO_SECURE must be a boolean"),
        ("CGT_UPLOAD_MAX_MB", "fifty", "CGT_UPLOAD_MAX_MB must be an integer"),
        ("DJANGO_LOG_FORMAT", "xml", "DJANGO_LOG_FORMAT must be one of text, json"),
        ("DJANGO_LOG_LEVEL", "LOUD", "DJANGO_LOG_LEVEL must be one of DEBUG, INFO"),
    ],
)
def test_a_bad_value_stops_start_up_with_its_name(tmp_path, name, value, message):
    env = {"DJANGO_SETTINGS_MODULE": "cgtclinic.settings", name: value}
    result = run_python("import django; django.setup()", env, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_json_log_lines_carry_time_level_logger_and_message(tmp_path):
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('cgtclinic.audit').warning('Trial %s closed', 'CGT-1', extra={'trial': 'CGT-1'})"
    )
    env = {"DJANGO_SETTINGS_MODULE": "cgtclinic.settings", "DJANGO_LOG_FORMAT": "json"}
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert record["level"] == "WARNING"
    assert record["logger"] == "cgtclinic.audit"
    assert record["message"] == "Trial CGT-1 closed"
    assert record["trial"] == "CGT-1"
    assert datetime.fromisoformat(record["time"]).tzinfo is not None


def test_text_log_is_the_default(tmp_path):
    code = "import django, logging; django.setup(); logging.getLogger('cgtclinic.audit').info('started')"
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "cgtclinic.settings"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith("INFO cgtclinic.audit started")


def test_the_demo_mail_backend_prints_each_message_and_keeps_it_as_a_file(tmp_path):
    """`make run` has no mail server: each notification's e-mail copy is readable in the console and in
    $CGT_DATA_DIR/mail/, one standard .eml file per message."""
    console = StringIO()
    connection = get_connection(
        "cgtclinic.mail.ConsoleAndFileEmailBackend", file_path=tmp_path / "mail", stream=console
    )
    sent = connection.send_messages(
        [
            EmailMessage("伦理审查结果互认请求", "请在截止时间前答复。", to=["nanyue_eo@demo.cgtclinic.example"]),
            EmailMessage("Recognition answered", "Recognised.", to=["zhujiang_pi_huang@demo.cgtclinic.example"]),
        ]
    )

    assert sent == 2
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    by_recipient = {message_from_bytes(path.read_bytes())["To"]: path for path in files}
    assert set(by_recipient) == {"nanyue_eo@demo.cgtclinic.example", "zhujiang_pi_huang@demo.cgtclinic.example"}
    assert all(path.name.endswith(f"-{to}.eml") for to, path in by_recipient.items())
    chinese = message_from_bytes(by_recipient["nanyue_eo@demo.cgtclinic.example"].read_bytes())
    assert str(make_header(decode_header(chinese["Subject"]))) == "伦理审查结果互认请求"
    assert chinese.get_payload(decode=True).decode(chinese.get_content_charset()) == "请在截止时间前答复。"
    # The console still shows them.
    assert "nanyue_eo@demo.cgtclinic.example" in console.getvalue()
    assert "zhujiang_pi_huang@demo.cgtclinic.example" in console.getvalue()


def test_every_migration_applies_on_make_runs_sqlite_with_no_warning(tmp_path):
    """``make run`` on a bare machine migrates an empty SQLite database: every migration must apply there (a
    PostgreSQL-only step is skipped, not an error), and the system checks must stay quiet."""
    code = "import django, sys; from django.core.management import call_command; django.setup(); "
    code += "call_command('migrate', verbosity=0); call_command('check', fail_level='WARNING')"
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "cgtclinic.settings"}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "W040" not in result.stderr + result.stdout
