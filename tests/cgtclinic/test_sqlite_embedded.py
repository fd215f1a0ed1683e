"""Issue 11: on make run's SQLite, two reminders failed with "database is locked" while web, worker and beat wrote
at once. The embedded database runs in WAL mode with immediate write transactions and a busy timeout, so
concurrent read-then-write transactions queue instead of failing."""

import threading
import time

import pytest
from django.conf import settings
from django.db import connections, transaction

from tests.test_settings_env import run_python

WRITERS = 4
WRITES_EACH = 25


@pytest.fixture
def sqlite_alias(tmp_path, django_db_blocker):
    """A SQLite database configured exactly as make run's default, under an alias of its own."""
    aliases = [f"embedded_{n}" for n in range(WRITERS + 1)]
    database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "embedded.sqlite3"),
        "OPTIONS": dict(settings.SQLITE_OPTIONS),
    }
    configured = connections.configure_settings({"default": database})["default"]
    for alias in aliases:
        connections.settings[alias] = dict(configured)
    # Not the test database: a file of its own, which pytest-django's guard need not protect.
    with django_db_blocker.unblock():
        yield aliases
    for alias in aliases:
        if alias in connections:
            connections[alias].close()
        connections.settings.pop(alias, None)


def test_concurrent_read_then_write_transactions_all_succeed(sqlite_alias):
    setup, *writers = sqlite_alias
    with connections[setup].cursor() as cursor:
        cursor.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
        cursor.execute("INSERT INTO counter (id, value) VALUES (1, 0)")
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    errors = []

    def write(alias):
        try:
            for _ in range(WRITES_EACH):
                # Read, then write in the same transaction: with deferred transactions two of these deadlock on
                # the lock upgrade and one fails at once with "database is locked", whatever the busy timeout.
                with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                    cursor.execute("SELECT value FROM counter WHERE id = 1")
                    (value,) = cursor.fetchone()
                    time.sleep(0.002)  # another writer's transaction begins meanwhile, as under real load
                    cursor.execute("UPDATE counter SET value = %s WHERE id = 1", [value + 1])
        except Exception as exc:  # collected and asserted below, with the thread's own message
            errors.append(repr(exc))
        finally:
            connections[alias].close()

    threads = [threading.Thread(target=write, args=(alias,)) for alias in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with connections[setup].cursor() as cursor:
        cursor.execute("SELECT value FROM counter WHERE id = 1")
        assert cursor.fetchone()[0] == WRITERS * WRITES_EACH


def test_make_runs_default_database_uses_those_options(tmp_path):
    code = (
        "import json, django\nfrom django.conf import settings\ndjango.setup()\n"
        "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    )
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "cgtclinic.settings"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"transaction_mode": "IMMEDIATE"' in result.stdout
    assert "journal_mode=WAL" in result.stdout
