"""Issue 10, item 1 in a real browser: a participating ethics office opens the lead decision from its recognition
request (letter and a covered document, hashes checked) and recognises it with its own consent form."""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings

from ethics.models import RecognitionRequest
from tests.ethics.recognition_world import build_world
from tests.factories.trials import PDF_BYTES

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "correct-horse-battery"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_participating_office_judges_the_lead_result_and_recognises_with_its_consent_form(
    live_server, page, region, tmp_path
):
    world = build_world(region)
    office = world.people["office_a"]
    request = world.request_a

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", office.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    page.goto(f"{live_server.url}/admin/ethics/recognitionrequest/{request.pk}/change/")
    section = page.locator("#lead-result")
    text = section.inner_text()
    assert world.decision.letter_number in text and "罗敏" in text and "020-5550-0707" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "recognition_lead_result.png"), full_page=True)

    with page.expect_download() as letter_download:
        page.click("#lead-letter-link")
    letter = tmp_path / "letter.pdf"
    letter_download.value.save_as(letter)
    assert letter.read_bytes().startswith(b"%PDF")
    assert hashlib.sha256(letter.read_bytes()).hexdigest() == world.decision.letter_sha256

    first_row = section.locator("tbody tr").first
    expected_sha = first_row.locator("code").inner_text().strip()
    with page.expect_download() as document_download:
        first_row.locator("a").click()
    document = tmp_path / "document.pdf"
    document_download.value.save_as(document)
    assert hashlib.sha256(document.read_bytes()).hexdigest() == expected_sha

    page.click(f".cgt-transitions a[href$='/{request.pk}/respond/']")
    page.select_option("#id_outcome", RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS)
    page.fill("#id_note", "使用本中心知情同意书 V1.0-A")
    page.fill("#id_local_icf_label", "V1.0-A")
    icf = tmp_path / "本中心知情同意书.pdf"
    icf.write_bytes(PDF_BYTES)
    page.set_input_files("#id_local_icf_file", str(icf))
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(f"**/recognitionrequest/{request.pk}/change/")
    request.refresh_from_db()
    assert request.status == RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS
    assert request.local_icf.version_label == "V1.0-A"
    assert page.locator(f".cgt-transitions a[href$='/{request.pk}/respond/']").count() == 0
