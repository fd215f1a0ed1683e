"""GET /api/v1/notifications/ and marking read: every role reads its own inbox, nobody another's."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from cgtclinic.models import Notification
from tests.api.helpers import ROLES

pytestmark = pytest.mark.django_db
PEOPLE = [role for role in ROLES if role != "anonymous"]


def note(recipient, key: str, *, read: bool = False, minutes_ago: int = 0) -> Notification:
    return Notification.objects.create(
        recipient=recipient,
        topic="recognition.escalation",
        event_key=key,
        subject=f"消息 {key}",
        body="正文",
        link="/admin/",
        created_at=timezone.now() - datetime.timedelta(minutes=minutes_ago),
        read_at=timezone.now() if read else None,
    )


@pytest.fixture
def inboxes(world):
    """Per role: an older read message and a newer unread one."""
    return {
        role: (note(user, f"{role}-old", read=True, minutes_ago=30), note(user, f"{role}-new", minutes_ago=5))
        for role, user in world.users.items()
    }


@pytest.mark.parametrize("role", PEOPLE)
def test_each_role_lists_its_own_notifications_newest_first(world, inboxes, role):
    body = world.client(role).get("/api/v1/notifications/").json()
    old, new = inboxes[role]
    assert [row["id"] for row in body["results"]] == [new.pk, old.pk]
    assert body["results"][0]["unread"] is True and body["results"][1]["unread"] is False
    assert body["count"] == 2  # paginated with the project's pagination class

    unread = world.client(role).get("/api/v1/notifications/", {"unread": "1"}).json()
    assert [row["id"] for row in unread["results"]] == [new.pk]


@pytest.mark.parametrize("role", PEOPLE)
@pytest.mark.parametrize("owner", PEOPLE)
def test_nobody_reads_or_marks_another_persons_notification(world, inboxes, role, owner):
    if role == owner:
        return
    theirs = inboxes[owner][1]
    client = world.client(role)
    listed = {row["id"] for row in client.get("/api/v1/notifications/").json()["results"]}
    assert theirs.pk not in listed
    assert client.post(f"/api/v1/notifications/{theirs.pk}/read/").status_code == 404
    client.post("/api/v1/notifications/read-all/")
    theirs.refresh_from_db()
    assert theirs.read_at is None


@pytest.mark.parametrize("role", PEOPLE)
def test_mark_one_and_all_read(world, inboxes, role):
    client = world.client(role)
    _old, new = inboxes[role]
    response = client.post(f"/api/v1/notifications/{new.pk}/read/")
    assert response.status_code == 200 and response.json()["unread"] is False
    new.refresh_from_db()
    first_read = new.read_at
    assert first_read is not None
    client.post(f"/api/v1/notifications/{new.pk}/read/")  # again: the first reading time is kept
    new.refresh_from_db()
    assert new.read_at == first_read

    note(world.users[role], "later")
    note(world.users[role], "later-still")
    assert client.post("/api/v1/notifications/read-all/").json() == {"marked": 2}
    assert client.get("/api/v1/notifications/", {"unread": "1"}).json()["results"] == []


def test_anonymous_is_refused(world):
    client = world.client("anonymous")
    assert client.get("/api/v1/notifications/").status_code in (401, 403)
    assert client.post("/api/v1/notifications/read-all/").status_code in (401, 403)


def test_missing_notification_is_a_404(world):
    assert world.client("pi").post("/api/v1/notifications/999999/read/").status_code == 404


def test_list_query_count_does_not_grow(world):
    user = world.users["ethics_office"]
    client = APIClient()
    client.force_authenticate(user)

    def measure():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/notifications/").status_code == 200
        return len(queries)

    for i in range(2):
        note(user, f"a{i}")
    small = measure()
    for i in range(60):
        note(user, f"b{i}")
    assert measure() == small <= 3
