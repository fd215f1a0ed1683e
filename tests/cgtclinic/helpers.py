"""A real Celery worker on the test Redis database, and a local HTTP server standing in for chat robots."""

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import factory
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from cgtclinic.celery import app as celery_app
from cgtclinic.models import NotificationWebhook
from tests.factories.cgtclinic import InstitutionFactory

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="runs a Celery worker on Redis: set REDIS_URL")


def flush_broker() -> None:
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@contextmanager
def running_worker(*, keep_queued: bool = False):
    """A worker thread consuming this test's Redis database, emptied before (unless told) and after."""
    if not keep_queued:
        flush_broker()
    try:
        with start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            shutdown_timeout=30,
            loglevel="WARNING",
            # Both queues: the deadline effects have their own (settings.DEADLINE_QUEUE).
            queues=[settings.CELERY_TASK_DEFAULT_QUEUE, settings.DEADLINE_QUEUE],
        ):
            yield
    finally:
        flush_broker()


def wait_until(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RobotServer:
    """Answers POSTs on 127.0.0.1 like a WeCom/DingTalk robot and records them.

    ``answers[path]`` is a list of (status, JSON) consumed one per request; when empty, 200 {"errcode": 0}.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: dict[str, list[tuple[int, dict]]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                parts = urlsplit(self.path)
                with server._lock:
                    server.requests.append(
                        {
                            "path": parts.path,
                            "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                            "headers": dict(self.headers),
                            "raw": raw,
                            "json": json.loads(raw),
                        }
                    )
                    queued = server.answers.get(parts.path) or []
                    status, answer = queued.pop(0) if queued else (200, {"errcode": 0, "errmsg": "ok"})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def received(self, path: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


class NotificationWebhookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationWebhook

    institution = factory.SubFactory(InstitutionFactory)
    name = factory.Sequence(lambda n: f"科研处工作群{n}")
    kind = NotificationWebhook.Kind.WECOM
    url = factory.Sequence(lambda n: f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k{n}")
