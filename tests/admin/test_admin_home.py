"""The admin home: what waits on me (overdue first) and my inbox; the unread count in the header; the inbox page."""

import datetime
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cgtclinic import inbox
from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics import recognition
from tests.cgtclinic.workqueue_world import hospital, open_request
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import EthicsCommitteeFactory

pytestmark = pytest.mark.django_db
HOME = reverse("admin:index")
INBOX = reverse("admin:cgtclinic_notification_changelist")


def section(page: str, element_id: str) -> str:
    match = re.search(rf'<div class="cgt-home module" id="{element_id}">(.*?)</div>', page, re.S)
    assert match, f"no {element_id} on the page"
    return match.group(1)


def note(recipient, key: str, **kwargs) -> Notification:
    defaults = {"topic": "t", "subject": f"消息{key}", "body": "正文", "link": "/admin/ethics/"}
    return Notification.objects.create(recipient=recipient, event_key=key, **{**defaults, **kwargs})


def test_ethics_office_home_shows_its_overdue_recognition_request_first(client, region):
    place = hospital(region)
    overdue = place.rows["overdue_request"][0]
    client.force_login(place.ethics_office)
    page = client.get(HOME).content.decode()
    queue = section(page, "work-queue")
    rows = re.findall(r"<tr class=\"([^\"]*)\" data-kind=\"([^\"]+)\">\s*<td><a href=\"([^\"]+)\"", queue)
    assert rows[0] == (
        "overdue",
        "recognition.answer",
        reverse("admin:ethics_recognitionrequest_change", args=[overdue.pk]),
    )
    due = timezone.localtime(overdue.due_at).strftime("%Y-%m-%d %H:%M")  # Beijing time
    assert due in queue
    assert "app-ethics" in page  # the app list stays below


def test_escalation_reaches_the_research_office_queue_inbox_and_header(client, region):
    member = EthicsCommitteeFactory(institution=InstitutionFactory(region=region))
    lead = EthicsCommitteeFactory(institution=InstitutionFactory(region=region))
    research_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=member.institution)
    UserFactory(role=Role.ETHICS_OFFICE, institution=member.institution)
    request = open_request(committee=member, lead_committee=lead, due_in=datetime.timedelta(hours=1))
    client.force_login(research_office)
    assert "recognition.escalated" not in client.get(HOME).content.decode()

    past_due = request.due_at + datetime.timedelta(minutes=5)
    with time_machine.travel(past_due, tick=False):
        assert recognition.sweep()["escalations"] == 1
        assert recognition.sweep()["escalations"] == 0
        assert recognition.recognition_escalate(request.pk) is False
        page = client.get(HOME).content.decode()

    link = reverse("admin:ethics_recognitionrequest_change", args=[request.pk])
    queue = section(page, "work-queue")
    assert 'data-kind="recognition.escalated"' in queue and link in queue
    told = Notification.objects.get(recipient=research_office, topic="recognition.escalation")
    messages = section(page, "inbox")
    assert told.subject in messages and reverse("admin:cgtclinic_notification_open", args=[told.pk]) in messages
    assert re.search(r'class="cgt-unread"[^>]*>1<', page)  # the header count


def test_header_count_is_one_query_and_shows_on_every_admin_page(client, ethics_office):
    for i in range(3):
        note(ethics_office, str(i))
    note(ethics_office, "read", read_at=timezone.now())
    client.force_login(ethics_office)
    page = client.get(reverse("admin:ethics_submission_changelist")).content.decode()
    assert re.search(r'class="cgt-unread"[^>]*>3<', page)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("admin:ethics_submission_changelist"))
    counted = [q["sql"] for q in queries if "cgtclinic_notification" in q["sql"]]
    assert len(counted) == 1 and "read_at" in counted[0] and "LIMIT" in counted[0]


def test_header_count_is_capped(ethics_office):
    for i in range(inbox.UNREAD_CAP + 5):
        note(ethics_office, str(i))
    assert inbox.unread_count(ethics_office) == inbox.UNREAD_CAP + 1


def test_home_marks_one_and_all_read(client, ethics_office):
    first, second = note(ethics_office, "1"), note(ethics_office, "2")
    client.force_login(ethics_office)
    response = client.post(reverse("admin:cgtclinic_notification_read", args=[first.pk]), {"next": HOME})
    assert response.status_code == 302 and response["Location"] == HOME
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None and second.read_at is None
    client.post(reverse("admin:cgtclinic_notification_read_all"), {"next": "https://evil.example/"})
    second.refresh_from_db()
    assert second.read_at is not None


def test_opening_a_notification_marks_it_read_and_follows_its_link(client, research_office):
    message = note(research_office, "1", link="/admin/trials/trial/")
    client.force_login(research_office)
    response = client.get(reverse("admin:cgtclinic_notification_open", args=[message.pk]))
    assert response.status_code == 302 and response["Location"] == "/admin/trials/trial/"
    message.refresh_from_db()
    assert message.read_at is not None
    outside = note(research_office, "2", link="https://evil.example/")
    response = client.get(reverse("admin:cgtclinic_notification_open", args=[outside.pk]))
    assert response["Location"] == reverse("admin:cgtclinic_notification_change", args=[outside.pk])


def test_inbox_page_lists_only_mine_with_an_unread_filter_and_a_mark_read_action(
    client, ethics_office, research_office
):
    unread, read = note(ethics_office, "1"), note(ethics_office, "2", read_at=timezone.now())
    theirs = note(research_office, "3", subject="别人的消息")
    client.force_login(ethics_office)
    page = client.get(INBOX).content.decode()
    assert unread.subject in page and read.subject in page and "别人的消息" not in page
    filtered = client.get(INBOX, {"unread": "1"}).content.decode()
    assert unread.subject in filtered and read.subject not in filtered
    # Another person's message: not found, not opened, not marked.
    assert client.get(reverse("admin:cgtclinic_notification_open", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("admin:cgtclinic_notification_read", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:cgtclinic_notification_change", args=[theirs.pk])).status_code == 302
    response = client.post(
        INBOX, {"action": "mark_read", "_selected_action": [unread.pk, theirs.pk], "index": 0}, follow=True
    )
    assert response.status_code == 200
    unread.refresh_from_db()
    theirs.refresh_from_db()
    assert unread.read_at is not None and theirs.read_at is None
    # Read-only: no add, edit or delete.
    assert client.get(reverse("admin:cgtclinic_notification_add")).status_code == 403
    assert client.post(reverse("admin:cgtclinic_notification_delete", args=[read.pk])).status_code == 403


def test_office_staff_are_sent_from_the_pi_inbox_to_theirs(client, ethics_office, research_office, system_admin):
    for user in (ethics_office, research_office, system_admin):
        client.force_login(user)
        response = client.get(reverse("ethics_portal:inbox"))
        assert response.status_code == 302 and response["Location"] == INBOX
        assert client.get(INBOX).status_code == 200


def test_people_outside_the_admin_cannot_open_the_admin_inbox(client, pi, regulator):
    for user in (pi, regulator):
        client.force_login(user)
        assert client.get(INBOX).status_code == 302  # to the admin login
    client.force_login(pi)
    assert client.get(reverse("ethics_portal:inbox")).status_code == 200


def test_home_query_count_does_not_grow(client, region):
    place = hospital(region)
    client.force_login(place.ethics_office)
    for i in range(3):
        note(place.ethics_office, f"a{i}")

    def measure():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(HOME).status_code == 200
        return len(queries)

    small = measure()
    hospital_rows = place.rows
    for i in range(30):
        note(place.ethics_office, f"b{i}")
        open_request(
            committee=hospital_rows["overdue_request"][0].committee,
            lead_committee=EthicsCommitteeFactory(institution=InstitutionFactory(region=region)),
            due_in=-datetime.timedelta(hours=i + 1),
        )
    assert measure() <= small + 1  # the recognition section fills its page and reads its capped count
