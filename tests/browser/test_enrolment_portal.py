"""A PI reports enrolment from a phone: trial page → site's enrolment → report → reverse a mistake."""

from pathlib import Path

import pytest
from django.conf import settings

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import active_site, days_ago
from trials.models import EnrolmentEntry, SiteEnrolment

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def assert_fits_a_phone(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{page.url} scrolls sideways at 375px ({width}px wide)"


def test_pi_reports_and_corrects_enrolment_on_a_phone(live_server, page):
    pi = UserFactory(role=Role.PI, username="pi_li", full_name="李医生", password="correct-horse-battery")
    site = active_site(lead_institution=pi.institution, pi=pi)

    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/pi/login/")
    page.fill("#id_username", "pi_li")
    page.fill("#id_password", "correct-horse-battery")
    page.locator("main button.primary").click()
    page.wait_for_selector("#waiting-title")

    page.goto(f"{live_server.url}/pi/trials/{site.trial_id}/")
    assert_fits_a_phone(page)
    page.locator("#enrolment a.button").first.click()
    page.wait_for_url(f"**/pi/sites/{site.pk}/enrolment/")
    assert_fits_a_phone(page)

    # A report the service refuses (a date in the future) keeps the page and writes nothing.
    page.select_option("#id_kind", "enrolled")
    page.fill("#id_occurred_on", days_ago(-1).isoformat())
    page.click("main form button.primary")
    page.wait_for_selector(".error-summary")
    assert not EnrolmentEntry.objects.exists()

    page.fill("#id_occurred_on", days_ago(2).isoformat())
    page.fill("#id_subject_code", "RK-001")
    page.click("main form button.primary")
    page.wait_for_selector(".message.success")
    assert SiteEnrolment.objects.get(site=site).enrolled == 1
    assert "RK-001" in page.locator("#subjects-title + p + table").inner_text()
    assert_fits_a_phone(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "pi_enrolment_mobile.png"), full_page=True)

    entry = EnrolmentEntry.objects.get()
    page.locator(f"#entry-{entry.pk} a.button").click()
    page.wait_for_url(f"**/pi/enrolment/{entry.pk}/reverse/")
    assert_fits_a_phone(page)
    page.fill("#id_reason", "受试者编码录错")
    page.click("main form button.primary")
    page.wait_for_url(f"**/pi/sites/{site.pk}/enrolment/")
    assert SiteEnrolment.objects.get(site=site).enrolled == 0
    assert f"#{entry.pk}" in page.locator("#ledger-title ~ table").inner_text()
