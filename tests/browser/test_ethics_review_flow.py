"""Issue 3 end to end in a real browser: a PI submits an initial application through the portal, the ethics
office accepts and routes it, holds a quorate meeting that approves it, and the PI downloads the decision letter."""

import datetime
import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from cgtclinic.roles import Role
from ethics.models import Decision, Meeting, Submission
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import PDF_BYTES

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
REQUIRED_KINDS = ("protocol", "icf", "ib", "cv", "insurance")
PASSWORD = "correct-horse-battery"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"ethics_flow_{name}.png"), full_page=True)


def pi_submits_through_the_wizard(page, base_url, files):
    page.goto(f"{base_url}/pi/login/")
    page.fill("#id_username", "pi_li")
    page.fill("#id_password", PASSWORD)
    page.locator("main button.primary").click()
    page.wait_for_selector("#waiting-title")

    page.goto(f"{base_url}/pi/projects/new/")
    page.fill("#id_title_zh", "BCMA CAR-T 细胞治疗复发难治性多发性骨髓瘤")
    page.fill("#id_protocol_number", "CGT-E2E-01")
    page.select_option("#id_kind", "iit")
    page.select_option("#id_therapy_category", "immune_cell")
    page.select_option("#id_phase", "1")
    page.fill("#id_target_enrolment", "18")
    page.select_option("#id_hgr_status", "not_required")
    page.click("button[value=next]")
    page.wait_for_url("**/edit/2/")
    page.click("button[value=next]")
    page.wait_for_url("**/edit/3/")
    for kind in REQUIRED_KINDS:
        page.set_input_files(f"#id_{kind}-file", str(files[kind]))
    page.click("button[value=next]")
    page.wait_for_url("**/edit/4/")
    page.fill("#id_summary", "单臂、开放、剂量递增的I期研究。")
    for checkbox in page.locator("input[type=checkbox][name^=declare_]").all():
        checkbox.check()
    page.click("button[value=next]")
    page.wait_for_url("**/edit/5/")
    assert page.locator("ul.missing").count() == 0
    page.click("button[value=submit]")
    page.wait_for_url("**/pi/submissions/*/")


def office_step(page, step, fill=None):
    """Click one workflow button on the submission's admin page and confirm it on the step's form."""
    page.click(f".cgt-transitions a[href$='/step/{step}/']")
    page.wait_for_url(f"**/step/{step}/")
    if fill:
        fill(page)
    page.click("#content-main input[type=submit].default")
    page.wait_for_url("**/admin/ethics/submission/*/change/")
    assert page.locator("ul.messagelist li.success").count() == 1, page.locator("#content-main").inner_text()


def meeting_action(page, link_selector, url_glob, fill):
    """Follow a button on the meeting's admin page, fill its form, confirm, and come back to the meeting."""
    page.click(link_selector)
    page.wait_for_url(url_glob)
    fill(page)
    page.click("#content-main input[type=submit].default")
    page.wait_for_url("**/admin/ethics/meeting/*/change/")


def test_pi_submits_office_approves_at_a_quorate_meeting_pi_downloads_the_letter(live_server, new_page, tmp_path):
    pi = UserFactory(role=Role.PI, username="pi_li", full_name="李医生", password=PASSWORD)
    committee = EthicsCommitteeFactory(institution=pi.institution)
    members = balanced_committee(committee)
    UserFactory(role=Role.ETHICS_OFFICE, institution=pi.institution, username="lunliban", password=PASSWORD)
    files = {}
    for kind in REQUIRED_KINDS:
        files[kind] = tmp_path / f"{kind}.pdf"
        files[kind].write_bytes(PDF_BYTES)
    base = live_server.url

    # 1. The PI files the initial application.
    pi_page = new_page()
    pi_submits_through_the_wizard(pi_page, base, files)
    submission = Submission.objects.get(trial__protocol_number="CGT-E2E-01")
    assert submission.status == Submission.Status.SUBMITTED
    assert submission.committee == committee
    assert pi_page.locator(".page-head .status-submitted").count() == 1
    screenshot(pi_page, "01_pi_submitted")

    # 2. The ethics office, in its own session, accepts and routes it to the full board.
    office = new_page()
    office.goto(f"{base}/admin/")
    office.fill("#id_username", "lunliban")
    office.fill("#id_password", PASSWORD)
    office.click("input[type=submit]")
    office.wait_for_selector("#user-tools")
    office.goto(f"{base}/admin/ethics/submission/")
    office.click(f"#result_list a:text-is('{submission.reference}')")
    office.wait_for_url(f"**/admin/ethics/submission/{submission.pk}/change/")
    office_step(office, "accept")

    def route_to_full_board(page):
        page.select_option("#id_review_type", Submission.ReviewType.FULL_BOARD)
        page.fill("#id_reason", "首次申请的细胞治疗项目，风险较高，提交会议审查。")
        screenshot(page, "02_office_route")

    office_step(office, "route", route_to_full_board)
    submission.refresh_from_db()
    assert submission.status == Submission.Status.AWAITING_MEETING
    assert submission.review_type == Submission.ReviewType.FULL_BOARD

    # Schedule a meeting; the committee is an autocomplete field.
    office.goto(f"{base}/admin/ethics/meeting/add/")
    office.click("#id_committee + .select2 .select2-selection")
    office.click(f".select2-results__option:text-is('{committee}')")
    # The meeting has begun: no vote or decision is taken before the time a meeting is set for.
    started = timezone.localtime() - datetime.timedelta(minutes=30)
    office.fill("#id_scheduled_at_0", started.strftime("%Y-%m-%d"))
    office.fill("#id_scheduled_at_1", started.strftime("%H:%M:00"))
    office.fill("#id_location", "行政楼三楼会议室")
    office.click("input[name=_continue]")
    office.wait_for_url("**/admin/ethics/meeting/*/change/")
    meeting = Meeting.objects.get(committee=committee)
    change = f"/admin/ethics/meeting/{meeting.pk}"

    def pick_the_submission(page):
        page.select_option("#id_submission", str(submission.pk))

    meeting_action(office, f".cgt-transitions a[href$='{change}/agenda/add/']", "**/agenda/add/", pick_the_submission)
    assert office.locator("ul.messagelist li.success").count() == 1

    def everyone_present(page):
        boxes = page.locator("input[type=checkbox][name=members]")
        assert boxes.count() == len(members)
        for box in boxes.all():
            box.check()

    meeting_action(office, f".cgt-transitions a[href$='{change}/attendance/']", "**/attendance/", everyone_present)
    assert office.locator("ul.messagelist li.success").count() == 1  # a warning if there were no quorum
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.HELD
    assert meeting.quorum_met is True
    screenshot(office, "03_meeting_quorum")

    item = meeting.agenda.get()

    def everyone_approves(page):
        assert page.locator("p.cgt-quorum-met").count() == 1
        selects = page.locator("select[name^=member_]")
        assert selects.count() == len(members)
        for select in selects.all():
            select.select_option("approve")
        screenshot(page, "04_votes")

    meeting_action(office, f"a[href$='{change}/items/{item.pk}/votes/']", "**/votes/", everyone_approves)
    assert office.locator("ul.messagelist li.success").count() == 1

    def approve(page):
        page.select_option("#id_outcome", Decision.Outcome.APPROVE)

    meeting_action(office, f"a[href$='{change}/items/{item.pk}/decide/']", "**/decide/", approve)
    assert office.locator("ul.messagelist li.success").count() == 1
    decision = Decision.objects.get(submission=submission)
    assert decision.outcome == Decision.Outcome.APPROVE
    assert decision.meeting == meeting
    assert decision.votes_for == len(members)
    assert decision.letter_number in office.locator("ul.messagelist").inner_text()
    screenshot(office, "05_meeting_decided")
    # Attendance left the meeting in session; the office closes it explicitly.
    meeting_action(office, f".cgt-transitions a[href$='{change}/close/']", "**/close/", lambda page: None)
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CLOSED
    assert office.locator(f".cgt-transitions a[href$='{change}/agenda/add/']").count() == 0

    # 3. The PI sees the approval and downloads the letter.
    pi_page.goto(f"{base}/pi/")
    row = pi_page.locator("#submissions-title + table tbody tr", has_text=submission.reference)
    assert row.locator(".status-decided").count() == 1
    row.locator(f"a[href$='/pi/submissions/{submission.pk}/']").click()
    pi_page.wait_for_url(f"**/pi/submissions/{submission.pk}/")
    assert pi_page.locator(".page-head .status-decided").count() == 1
    card = pi_page.locator("section.decision.decision-approve")
    assert decision.letter_number in card.inner_text()
    screenshot(pi_page, "06_pi_approved")
    with pi_page.expect_download() as download_info:
        card.locator(f"a[href$='/pi/submissions/{submission.pk}/letter/']").click()
    letter = tmp_path / "letter.pdf"
    download_info.value.save_as(letter)
    content = letter.read_bytes()
    assert content.startswith(b"%PDF")
    decision.refresh_from_db()
    assert hashlib.sha256(content).hexdigest() == decision.letter_sha256
