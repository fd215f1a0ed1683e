"""The suite runs against the real services production uses: PostgreSQL through psycopg 3, and Redis.

SQLite and the filesystem broker are only for `make run` on a bare machine; tests on them would hide the
locking, constraint and broker behaviour the product relies on.
"""

import psycopg
import redis
from django.conf import settings
from django.db import connection

HOW_TO_RUN = (
    "Run the suite with `make test`: it points DATABASE_URL and REDIS_URL at the local PostgreSQL and Redis "
    "(override with TEST_DATABASE_URL / TEST_REDIS_URL). Start them if they are down: "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` and "
    '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`.'
)


def test_database_is_postgresql_through_psycopg_3(db):
    assert connection.vendor == "postgresql", f"The suite is running on {connection.vendor}. {HOW_TO_RUN}"
    assert connection.Database is psycopg, f"The PostgreSQL driver is {connection.Database.__name__}. {HOW_TO_RUN}"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        (version,) = cursor.fetchone()
    assert int(version) >= 140000, "PostgreSQL 14 or newer is needed."


def test_redis_answers_at_redis_url():
    assert settings.REDIS_URL, f"REDIS_URL is not set. {HOW_TO_RUN}"
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3)
    try:
        assert client.ping()
    except redis.ConnectionError as exc:
        raise AssertionError(f"Redis does not answer at {settings.REDIS_URL}: {exc}. {HOW_TO_RUN}") from exc
    finally:
        client.close()


def test_celery_and_the_cache_use_that_redis():
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL, HOW_TO_RUN
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache", HOW_TO_RUN
