"""A research-office user signs into the admin in a real browser and sees the trial list in Chinese."""

from pathlib import Path

import pytest
from django.conf import settings

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import TrialFactory

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_research_office_logs_in_and_sees_trials_in_chinese(live_server, page):
    office = UserFactory(role=Role.RESEARCH_OFFICE, username="keyanchu", password="correct-horse-battery")
    own = TrialFactory(lead_institution=office.institution, title_zh="CD19 CAR-T 治疗复发难治淋巴瘤")
    other = TrialFactory(title_zh="别家医院的试验")

    page.goto(f"{live_server.url}/admin/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    page.fill("#id_username", "keyanchu")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(f"{live_server.url}/admin/trials/trial/")
    heading = page.locator("#content h1").inner_text()
    assert "临床试验" in heading
    table = page.locator("#result_list").inner_text()
    assert own.title_zh in table
    assert other.title_zh not in table
    assert "草稿" in table  # the Draft status, translated

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin_trial_list_zh.png"), full_page=True)


def test_language_switch_to_english(live_server, page):
    UserFactory(role=Role.RESEARCH_OFFICE, username="office_en", password="correct-horse-battery")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "office_en")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    with page.expect_navigation():
        page.select_option("#cgt-language-select", "en")
    page.goto(f"{live_server.url}/admin/trials/trial/")
    assert "trial" in page.locator("#content h1").inner_text().lower()
    assert page.locator("html").get_attribute("lang") == "en"
