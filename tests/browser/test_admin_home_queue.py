"""An ethics office signs into the admin and finds its overdue recognition request at the top of its work queue."""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from cgtclinic.models import Notification
from tests.cgtclinic.workqueue_world import hospital

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ethics_office_home_shows_queue_and_inbox(live_server, page, region):
    place = hospital(region)
    place.ethics_office.set_password("correct-horse-battery")
    place.ethics_office.save()
    overdue = place.rows["overdue_request"][0]
    message = Notification.objects.create(
        recipient=place.ethics_office,
        topic="recognition.reminder",
        event_key="1",
        subject="互认意见请于今日反馈",
        body="…",
        link=reverse("admin:ethics_recognitionrequest_change", args=[overdue.pk]),
    )

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", place.ethics_office.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#work-queue")
    first = page.locator("#work-queue tbody tr").first
    assert first.get_attribute("data-kind") == "recognition.answer" and "overdue" in first.get_attribute("class")
    assert page.locator(".cgt-unread").inner_text() == "1"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin_home_work_queue.png"), full_page=True)

    page.click(f"#inbox a:has-text('{message.subject}')")
    page.wait_for_url(f"**/admin/ethics/recognitionrequest/{overdue.pk}/change/")
    message.refresh_from_db()
    assert message.read_at is not None
    assert page.locator(".cgt-unread").count() == 0
