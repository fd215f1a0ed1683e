"""Issue 10's loop in a real browser, with four people each in their own session: the lead ethics office approves a
multi-centre trial; a participating ethics office finds the recognition request at the top of its work queue, judges
the lead letter and a covered document (hashes checked) and recognises with its own consent form; the lead office
and the lead PI read the answer in their inboxes; another hospital's request passes its deadline and its research
office finds the escalation in its queue and inbox."""

import datetime
import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics import recognition
from ethics.models import Decision, RecognitionRequest, Submission
from tests.ethics.recognition_world import build_setting, ready_for_decision
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import PDF_BYTES

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "correct-horse-battery"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def screenshot(page, step):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"loop_{step}.png"), full_page=True)


def admin_sign_in(page, base, user):
    """The admin's own login form; the admin home (work queue and inbox) follows."""
    page.goto(f"{base}/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#work-queue")


def beijing(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def unread(user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def test_the_recognition_loop_with_four_people(live_server, new_page, region, tmp_path):
    setting = build_setting(region)
    people = setting.people
    lead_office, office_a, lead_pi = people["lead_office"], people["office_a"], people["lead_pi"]
    research_office_b = UserFactory(role=Role.RESEARCH_OFFICE, institution=setting.hospital_b)
    submission = ready_for_decision(setting.trial, lead_office, setting.lead_committee)
    base = live_server.url

    # 1. The lead ethics office records the approval on the submission's page.
    lead = new_page()
    admin_sign_in(lead, base, lead_office)
    lead.goto(f"{base}/admin/ethics/submission/{submission.pk}/change/")
    lead.click(f".cgt-transitions a[href$='/{submission.pk}/step/decide/']")
    lead.wait_for_url("**/step/decide/")
    lead.select_option("#id_outcome", Decision.Outcome.APPROVE)
    lead.click("#content-main input[type=submit].default")
    lead.wait_for_url(f"**/admin/ethics/submission/{submission.pk}/change/")
    assert lead.locator("ul.messagelist li.success").count() == 1, lead.locator("#content-main").inner_text()
    decision = Decision.objects.get(submission=submission)
    assert decision.outcome == Decision.Outcome.APPROVE and decision.letter_sha256
    assert Submission.objects.get(pk=submission.pk).status == Submission.Status.DECIDED
    screenshot(lead, "1_lead_office_decided")
    requests = {
        r.committee.institution_id: r
        for r in RecognitionRequest.objects.filter(trial=setting.trial).select_related("committee")
    }
    request_a, request_b = requests[setting.hospital_a.pk], requests[setting.hospital_b.pk]
    assert request_a.lead_decision == decision and request_a.status == RecognitionRequest.Status.OPEN

    # 2. The participating office's home: the request heads "Waiting on me", due in Beijing time.
    office = new_page()
    admin_sign_in(office, base, office_a)
    top = office.locator("#work-queue tbody tr[data-kind]").first
    assert top.get_attribute("data-kind") == "recognition.answer"
    assert "overdue" not in (top.get_attribute("class") or "")
    assert setting.trial.protocol_number in top.inner_text()
    assert top.locator("time").inner_text() == beijing(request_a.due_at)
    assert top.locator("time").get_attribute("datetime").endswith("+08:00")
    screenshot(office, "2_participating_office_queue")

    # It opens the request from its queue, and judges the lead letter and a covered document.
    top.locator("a").first.click()
    office.wait_for_url(f"**/admin/ethics/recognitionrequest/{request_a.pk}/change/")
    section = office.locator("#lead-result")
    assert decision.letter_number in section.inner_text() and "罗敏" in section.inner_text()
    shown_letter_sha = section.locator("dd code").first.inner_text().strip()
    assert shown_letter_sha == decision.letter_sha256
    with office.expect_download() as letter_download:
        office.click("#lead-letter-link")
    letter = tmp_path / "lead_letter.pdf"
    letter_download.value.save_as(letter)
    assert letter.read_bytes().startswith(b"%PDF")
    assert hashlib.sha256(letter.read_bytes()).hexdigest() == shown_letter_sha
    covered = section.locator("tbody tr").first
    covered_sha = covered.locator("code").inner_text().strip()
    assert covered_sha in {version.sha256 for version in submission.documents.all()}
    with office.expect_download() as document_download:
        covered.locator("a").click()
    document = tmp_path / "covered.pdf"
    document_download.value.save_as(document)
    assert hashlib.sha256(document.read_bytes()).hexdigest() == covered_sha
    screenshot(office, "3_participating_office_lead_result")

    # It recognises with conditions: its own consent form.
    office.click(f".cgt-transitions a[href$='/{request_a.pk}/respond/']")
    office.select_option("#id_outcome", RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS)
    office.fill("#id_note", "本中心使用本院版知情同意书 V1.0-GZ")
    office.fill("#id_local_icf_label", "V1.0-GZ")
    icf = tmp_path / "本中心知情同意书.pdf"
    icf.write_bytes(PDF_BYTES)
    office.set_input_files("#id_local_icf_file", str(icf))
    office.locator("form [type=submit]").last.click()
    office.wait_for_url(f"**/recognitionrequest/{request_a.pk}/change/")
    request_a.refresh_from_db()
    assert request_a.status == RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS
    assert request_a.local_icf.version_label == "V1.0-GZ"
    assert request_a.local_icf.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    screenshot(office, "4_participating_office_recognised")

    # 3. The lead office finds the answer in its inbox, with the unread count in the header.
    answer = Notification.objects.get(recipient=lead_office, topic="recognition.answered")
    lead.goto(f"{base}/admin/")
    assert lead.locator("#user-tools .cgt-unread").inner_text() == str(unread(lead_office))
    assert answer.subject in lead.locator("#inbox").inner_text()
    screenshot(lead, "5_lead_office_inbox")
    lead.click(f"#inbox a:has-text('{answer.subject}')")
    lead.wait_for_url(f"**/admin/ethics/recognitionrequest/{request_a.pk}/change/")
    answer.refresh_from_db()
    assert answer.read_at is not None

    # The lead PI reads it in the portal's inbox.
    pi_answer = Notification.objects.get(recipient=lead_pi, topic="recognition.answered")
    pi = new_page()
    pi.goto(f"{base}/pi/login/")
    pi.fill("#id_username", lead_pi.username)
    pi.fill("#id_password", PASSWORD)
    pi.locator("main button.primary").click()
    pi.wait_for_selector("#waiting-title")
    pi.goto(f"{base}/pi/inbox/")
    card = pi.locator("li.notification.unread", has_text=pi_answer.subject)
    assert card.count() == 1
    assert "V1.0-GZ" in card.inner_text()
    assert card.locator("a.button").get_attribute("href").startswith("/pi/")
    screenshot(pi, "6_lead_pi_inbox")

    # 4. Hospital B's request passes its deadline; the sweep escalates it once.
    past = timezone.now() - datetime.timedelta(hours=2)
    RecognitionRequest.objects.filter(pk=request_b.pk).update(due_at=past, remind_at=past - datetime.timedelta(hours=8))
    assert recognition.sweep(now=timezone.now())["escalations"] == 1
    assert recognition.sweep(now=timezone.now())["escalations"] == 0
    escalation = Notification.objects.get(recipient=research_office_b, topic="recognition.escalation")

    research = new_page()
    admin_sign_in(research, base, research_office_b)
    row = research.locator("#work-queue tbody tr[data-kind='recognition.escalated']")
    assert row.count() == 1
    assert "overdue" in row.get_attribute("class")
    assert row.locator("time").inner_text() == beijing(past)
    assert setting.trial.protocol_number in row.inner_text()
    assert escalation.subject in research.locator("#inbox").inner_text()
    assert research.locator("#user-tools .cgt-unread").inner_text() == str(unread(research_office_b))
    screenshot(research, "7_research_office_escalation")
    row.locator("a").first.click()
    research.wait_for_url(f"**/admin/ethics/recognitionrequest/{request_b.pk}/change/")
