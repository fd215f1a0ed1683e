"""Issue 11, done-when: the Celery worker survives a Redis outage while it holds timer (ETA) tasks, and every
reminder and escalation happens exactly once within 60 s of Redis's return.

Everything is real: a redis-server this test owns (stopped for 60 s), a `celery worker` process consuming the
deadline queue as in production, the test database. Celery 5.7.0's worker died here ("Unrecoverable error:
AttributeError: 'NoneType' object has no attribute 'hostname'" while restoring unacknowledged messages)."""

import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection
from django.utils import timezone

from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics.models import RecognitionEffect, RecognitionRequest, Submission
from tests.cgtclinic.helpers import wait_until
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
]
OUTAGE_SECONDS = 60
REQUESTS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, port: int):
        self.port = port
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=10, what="redis-server to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server():
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker(redis_server, tmp_path):
    """`celery worker` on the deadline queue, against this test's database and the test-owned Redis."""
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "CGT_DATA_DIR": str(tmp_path / "var"),
    }
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115  (closed below, after the process)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "cgtclinic",
            "worker",
            "--queues",
            settings.DEADLINE_QUEUE,
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: "ready" in (tmp_path / "worker.log").read_text(), timeout=60, what="the worker to start")
    yield process, tmp_path / "worker.log"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def open_requests(remind_in: float, due_in: float) -> list[RecognitionRequest]:
    lead_hospital, member_hospital = InstitutionFactory(), InstitutionFactory()
    lead, member = (
        EthicsCommitteeFactory(institution=lead_hospital),
        EthicsCommitteeFactory(institution=member_hospital),
    )
    alliance = AllianceFactory(members=[lead, member])
    UserFactory(role=Role.ETHICS_OFFICE, institution=member_hospital)
    UserFactory(role=Role.RESEARCH_OFFICE, institution=member_hospital)
    now = timezone.now()
    requests = []
    for _ in range(REQUESTS):
        trial = TrialFactory(lead_institution=lead_hospital)
        requests.append(
            RecognitionRequest.objects.create(
                alliance=alliance,
                trial=trial,
                site=TrialSiteFactory(trial=trial, institution=member_hospital),
                committee=member,
                subject=Submission.Kind.INITIAL,
                received_at=now,
                remind_at=now + datetime.timedelta(seconds=remind_in),
                due_at=now + datetime.timedelta(seconds=due_in),
            )
        )
    return requests


def test_worker_survives_a_redis_outage_holding_timers_and_every_effect_lands_once(redis_server, worker):
    process, log = worker
    requests = open_requests(remind_in=20, due_in=35)
    producer = Celery(broker=f"redis://127.0.0.1:{redis_server.port}/0")
    for request in requests:
        for task, when in (("recognition_remind", request.remind_at), ("recognition_escalate", request.due_at)):
            producer.send_task(f"ethics.tasks.{task}", args=[request.pk], eta=when, queue=settings.DEADLINE_QUEUE)
    producer.close()
    wait_until(lambda: log.read_text().count("received") >= 2 * REQUESTS, timeout=30, what="the worker to hold them")

    redis_server.stop()  # the broker is gone, and with it every queued and unacknowledged message
    time.sleep(OUTAGE_SECONDS)
    assert process.poll() is None, f"the worker died during the outage:\n{log.read_text()[-3000:]}"
    assert not RecognitionEffect.objects.exists(), "nothing can happen while the broker is down"
    redis_server.start()
    back = timezone.now()

    wait_until(
        lambda: RecognitionEffect.objects.count() == 2 * REQUESTS,
        timeout=OUTAGE_SECONDS,
        what=f"every effect within {OUTAGE_SECONDS} s of Redis's return",
    )
    time.sleep(3)  # anything that would happen twice has had its chance
    assert process.poll() is None, log.read_text()[-3000:]
    for request in requests:
        for kind in RecognitionEffect.Kind.values:
            (effect,) = RecognitionEffect.objects.filter(request=request, kind=kind)
            assert (effect.happened_at - back).total_seconds() <= OUTAGE_SECONDS
    assert Notification.objects.filter(topic="recognition.reminder").count() == REQUESTS
    assert "Unrecoverable error" not in log.read_text()
