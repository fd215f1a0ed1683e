"""A PI drafts a multi-centre project through the portal's wizard in a real browser (sites with their targets and
site PIs), submits it and sees it on the dashboard."""

from pathlib import Path

import pytest
from django.conf import settings

from cgtclinic.roles import Role
from ethics.models import Submission
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import EthicsCommitteeFactory
from tests.factories.trials import PDF_BYTES
from trials.models import TrialSite

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
REQUIRED_KINDS = ("protocol", "icf", "ib", "cv", "insurance")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def assert_fits_a_phone(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{page.url} scrolls sideways at 375px ({width}px wide)"


def test_pi_creates_and_submits_a_project_through_the_wizard(live_server, page, tmp_path):
    pi = UserFactory(role=Role.PI, username="pi_wang", full_name="王医生", password="correct-horse-battery")
    committee = EthicsCommitteeFactory(institution=pi.institution)
    partner = InstitutionFactory(region=pi.institution.region, name_zh="协作医院")
    files = {}
    for kind in REQUIRED_KINDS:
        files[kind] = tmp_path / f"{kind}.pdf"
        files[kind].write_bytes(PDF_BYTES)

    # Anonymous: the portal sends the visitor to its own login page, in Chinese.
    page.goto(f"{live_server.url}/pi/")
    assert "/pi/login/" in page.url
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    page.fill("#id_username", "pi_wang")
    page.fill("#id_password", "correct-horse-battery")
    page.locator("main button.primary").click()
    page.wait_for_selector("#waiting-title")

    # The wizard on a phone. Step 1: trial details.
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/pi/projects/new/")
    assert_fits_a_phone(page)
    page.fill("#id_title_zh", "CD19 CAR-T 细胞治疗复发难治性B细胞淋巴瘤")
    page.fill("#id_protocol_number", "CGT-BROWSER-01")
    page.select_option("#id_kind", "iit")
    page.select_option("#id_therapy_category", "immune_cell")
    page.select_option("#id_phase", "1")
    page.fill("#id_target_enrolment", "24")
    page.select_option("#id_hgr_status", "not_required")
    page.click("button[value=next]")
    page.wait_for_url("**/edit/2/")

    # Step 2: the lead site is there already, with the whole target. Add a participating site with its own target:
    # the sum (24 + 8) is flagged against the trial's 24.
    assert pi.institution.name_zh in page.locator("main").inner_text()
    # The hospital is chosen by typing: part of its name brings it into the box's suggestions.
    page.fill("#id_institution", partner.name_zh[-4:])
    suggestion = page.locator("#id_institution_suggestions option")
    suggestion.first.wait_for(state="attached")
    assert partner.name_zh in suggestion.first.get_attribute("value")
    page.fill("#id_institution", suggestion.first.get_attribute("value"))
    page.fill("#id_site_target", "8")
    page.click("button[value=add]")
    page.wait_for_selector("#targets-warning")
    site = TrialSite.objects.get(institution=partner)
    lead = TrialSite.objects.get(trial=site.trial, role=TrialSite.SiteRole.LEAD)
    assert "32" in page.locator("#targets-warning").inner_text()
    assert_fits_a_phone(page)
    page.screenshot(path=str(SCREENSHOTS / "pi_wizard_sites_mobile.png"), full_page=True)
    # Its site PI has no account: put on record by name; then divide the target.
    page.fill(f"#id_pi{site.pk}-full_name", "李主任")
    page.fill(f"#id_pi{site.pk}-professional_title", "主任医师")
    page.click(f"#site-pi-{site.pk} button[value=site_pi]")
    page.wait_for_selector(f"#site-pi-{site.pk} >> text=李主任")
    page.fill(f"#id_target_{lead.pk}", "16")
    page.click("button[value=next]")
    page.wait_for_url("**/edit/3/")
    site.refresh_from_db()
    assert (site.site_pi.full_name, site.site_target) == ("李主任", 8)

    # Step 3: upload every required document.
    assert_fits_a_phone(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "pi_wizard_documents_mobile.png"), full_page=True)
    # One of them is a renamed text file: it is refused by name, the other four are kept.
    renamed = tmp_path / "renamed" / "protocol.pdf"
    renamed.parent.mkdir()
    renamed.write_bytes(b"a Word document renamed to .pdf")
    for kind in REQUIRED_KINDS:
        page.set_input_files(f"#id_{kind}-file", str(renamed if kind == "protocol" else files[kind]))
    page.click("button[value=next]")
    page.wait_for_selector("#kept")
    assert "protocol.pdf" in page.locator(".error-summary").inner_text()
    assert page.locator("#kept li").count() == len(REQUIRED_KINDS) - 1
    assert_fits_a_phone(page)
    page.screenshot(path=str(SCREENSHOTS / "pi_wizard_documents_refused_mobile.png"), full_page=True)
    page.set_input_files("#id_protocol-file", str(files["protocol"]))
    page.click("button[value=next]")
    page.wait_for_url("**/edit/4/")

    # Step 4: summary and declarations.
    page.fill("#id_summary", "单臂、开放、剂量递增的I期研究。")
    for checkbox in page.locator("input[type=checkbox][name^=declare_]").all():
        checkbox.check()
    page.click("button[value=next]")
    page.wait_for_url("**/edit/5/")

    # Step 5: nothing missing; submit.
    assert_fits_a_phone(page)
    page.screenshot(path=str(SCREENSHOTS / "pi_wizard_submit_mobile.png"), full_page=True)
    assert page.locator("ul.missing").count() == 0
    assert page.locator("#targets-warning").count() == 0
    assert "李主任" in page.locator("#review-sites").inner_text()
    page.click("button[value=submit]")
    page.wait_for_url("**/pi/submissions/*/")
    submission = Submission.objects.get(trial__protocol_number="CGT-BROWSER-01")
    assert submission.status == Submission.Status.SUBMITTED
    assert submission.committee == committee

    page.goto(f"{live_server.url}/pi/")
    row = page.locator("#submissions-title + table tbody tr").first
    assert submission.reference in row.inner_text()
    assert row.locator(".status-submitted").count() == 1
    assert_fits_a_phone(page)
    page.screenshot(path=str(SCREENSHOTS / "pi_dashboard_mobile.png"), full_page=True)
