"""The claim's exports: the Excel workbook's cells are the claim's stored figures (the frozen snapshot once
submitted), and the PDF cover letter carries the same totals with the CJK font embedded."""

import datetime
import io
import subprocess
from decimal import Decimal

import openpyxl
import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from pypdf import PdfReader

from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from subsidies import exports, rules, services
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.subsidies import CLAIM_YEAR, insurance_program, policy_value
from tests.factories.trials import DocumentVersionFactory, TrialDocumentFactory
from trials import enrolment

pytestmark = pytest.mark.django_db
YEAR = CLAIM_YEAR
MONEY = "#,##0.00"


def workbook(data: bytes):
    return openpyxl.load_workbook(io.BytesIO(data))


def summary(book) -> dict:
    return {row[0].value: row[1] for row in book.worksheets[0].iter_rows(min_row=2) if row[0].value}


def line_rows(book) -> tuple[dict, dict]:
    """(rows by protocol number or policy number, each a {header: cell}; the totals row)."""
    sheet = book.worksheets[1]
    headers = [cell.value for cell in sheet[1]]
    rows, total = {}, None
    for row in sheet.iter_rows(min_row=2):
        cells = dict(zip(headers, row, strict=False))
        key = cells[headers[0]].value
        if row[0].value == gettext("Total (eligible lines)"):
            total = cells
        else:
            rows[cells.get("Insurance policy number").value if "Insurance policy number" in cells else key] = cells
    return rows, total


def money(cell) -> Decimal:
    assert cell.number_format == MONEY, cell.number_format
    return Decimal(str(cell.value)).quantize(rules.FEN)


def test_workbook_cells_are_the_claims_stored_figures(claim, region):
    with translation.override("en"):
        book = workbook(exports.claim_workbook(claim, "en"))
        rows, total = line_rows(book)
        head = summary(book)

        assert book.worksheets[1].freeze_panes == "A2"
        assert money(head["Amount claimed (RMB)"]) == claim.amount_claimed
        assert money(head["Amount per patient (RMB)"]) == policy_value("subsidy_per_patient_rmb", region)
        assert money(head["Cap per project (RMB)"]) == policy_value("subsidy_project_cap_rmb", region)
        year_cap = policy_value("subsidy_institution_year_cap_rmb", region)
        assert money(head["Cap per institution per year (RMB)"]) == year_cap
        assert money(head["Room left under the yearly cap (RMB)"]) == year_cap - claim.amount_claimed
        assert head["Source clause"].value == claim.program.source_clause
        assert head["Hospital"].value == claim.institution.name_en
        assert head["Reference date"].value.date() == claim.reference_date

        lines = list(claim.lines.select_related("trial"))
        assert len(rows) == len(lines) == 3
        for line in lines:
            row = rows[line.trial.protocol_number]
            assert row["Enrolled (ledger)"].value == line.enrolled_total
            assert row["Already claimed earlier"].value == line.previously_claimed
            assert row["Patients in this claim"].value == line.patients_claimed
            assert money(row["Amount computed (RMB)"]) == line.amount_computed
            assert row["Status"].value == line.get_status_display()
            assert row["Title"].value == line.trial.title_en
            explanation = "\n".join(rules.describe_step(step) for step in line.explanation)
            assert (row["How the amount was computed"].value or "") == explanation
            reasons = "\n".join(reason["en"] for reason in line.ineligible_reasons)
            assert (row["Why not eligible / reason for exclusion"].value or "") == reasons
        assert total["Patients in this claim"].value == sum(line.patients_claimed for line in lines)
        assert money(total["Amount computed (RMB)"]) == claim.amount_claimed
        # The draft has no documents yet: they are frozen on submission.
        assert book.worksheets[2].max_row == 2


def test_the_workbook_is_in_chinese_by_default(claim, trials):
    book = workbook(exports.claim_workbook(claim))
    sheet = book.worksheets[1]
    with translation.override("zh-hans"):
        assert sheet["A1"].value == gettext("Protocol number")
    titles = {row[1].value for row in sheet.iter_rows(min_row=2)}
    assert trials["small"].title_zh in titles


def test_submitted_workbook_keeps_the_snapshot_lists_documents_and_the_decision(
    claim, trials, research_office, regulator_user
):
    version = DocumentVersionFactory(document=TrialDocumentFactory(trial=trials["small"]))
    services.claim_submit(claim=claim, actor=research_office)
    small = claim.lines.get(trial=trials["small"])
    enrolment.enrolment_report(
        site=small.site, actor=research_office, kind="enrolled", occurred_on=datetime.date(2024, 6, 1), count=2
    )
    services.claim_start_review(claim=claim, actor=regulator_user)
    large = claim.lines.get(trial=trials["large"])
    lowered = large.amount_computed - policy_value("subsidy_per_patient_rmb", claim.program.region)
    services.claim_decide(
        claim=claim,
        actor=regulator_user,
        decision="partially_approve",
        note="部分核准",
        adjustments={large.pk: {"amount": str(lowered), "reason": "一例受试者知情同意书缺失"}},
    )
    claim.refresh_from_db()

    with translation.override("en"):
        book = workbook(exports.claim_workbook(claim, "en"))
        rows, total = line_rows(book)
        head = summary(book)
    snapshot = {line["protocol_number"]: line for line in claim.snapshot["lines"]}
    assert rows["GT-2024-01"]["Enrolled (ledger)"].value == snapshot["GT-2024-01"]["enrolled_total"] == 3
    for protocol, frozen in snapshot.items():
        assert money(rows[protocol]["Amount computed (RMB)"]) == Decimal(frozen["amount_computed"])
    assert money(rows["GT-2024-02"]["Amount approved (RMB)"]) == lowered
    assert rows["GT-2024-02"]["Regulator's reason"].value == "一例受试者知情同意书缺失"
    assert money(rows["GT-2024-01"]["Amount approved (RMB)"]) == small.amount_computed
    assert rows["CT-2024-03"]["Amount approved (RMB)"].value is None
    assert money(head["Amount approved (RMB)"]) == claim.amount_approved
    assert money(total["Amount approved (RMB)"]) == claim.amount_approved
    assert head["Regulator's note"].value == "部分核准"
    assert version.sha256 in rows["GT-2024-01"]["Documents (frozen on submission)"].value
    documents = [[cell.value for cell in row] for row in book.worksheets[2].iter_rows(min_row=2)]
    assert ["GT-2024-01", "Protocol", version.document.title, version.number, version.sha256] in documents


def test_workbook_of_a_percentage_program_lists_the_cost_items(research_office, region, trials):
    claim = services.claim_open(actor=research_office, program=insurance_program(region), year=YEAR)
    item_cap = policy_value("insurance_premium_subsidy_cap_rmb", region)
    premium = (item_cap * 100 / policy_value("insurance_premium_subsidy_percent", region) + 1000).quantize(rules.FEN)
    services.cost_item_add(
        claim=claim, actor=research_office, trial=trials["small"], item_reference="PICC-2024-88", cost_rmb=premium
    )
    with translation.override("en"):
        rows, total = line_rows(workbook(exports.claim_workbook(claim, "en")))
    assert money(rows["PICC-2024-88"]["Cost (RMB)"]) == premium
    assert money(rows["PICC-2024-88"]["Amount computed (RMB)"]) == item_cap
    assert money(total["Amount computed (RMB)"]) == item_cap


def test_only_chinese_and_english_exports(claim):
    with pytest.raises(DomainError):
        exports.claim_workbook(claim, "fr")
    with pytest.raises(DomainError):
        exports.claim_cover_letter_pdf(claim, "fr")


# --- the cover letter ----------------------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """pdftotext's reading of the letter with all whitespace removed (table cells wrap words)."""
    text = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()
    return "".join(text.split())


def embedded_fonts(data: bytes) -> list[tuple[str, bool]]:
    fonts = []
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for descendant in [font, *[d.get_object() for d in font.get("/DescendantFonts", [])]]:
                descriptor = descendant.get("/FontDescriptor")
                if descriptor is None:
                    continue
                descriptor = descriptor.get_object()
                embedded = any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
                fonts.append((str(descriptor["/FontName"]), embedded))
    return fonts


def test_chinese_cover_letter_has_the_totals_and_embeds_the_cjk_font(claim, trials, research_office):
    services.claim_submit(claim=claim, actor=research_office)
    claim.refresh_from_db()
    data = exports.claim_cover_letter_pdf(claim)
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    assert "关于申请" in text and claim.institution.name_zh in text
    assert exports.rmb(claim.amount_claimed) in text
    for line in claim.lines.filter(status="eligible"):
        assert exports.rmb(line.amount_computed) in text and line.trial.protocol_number in text
    assert trials["cart"].protocol_number not in text  # ineligible lines are only counted, in the letter
    assert f"符合条件的项目共{claim.lines.filter(status='eligible').count()}项" in text
    assert claim.reference in text
    fonts = embedded_fonts(data)
    assert fonts and all(embedded for _name, embedded in fonts)
    names = {name.split("+")[-1].replace("-", "") for name, _embedded in fonts}
    assert names & {"NotoSansCJKSC", "NotoSerifCJKSC"}, names


def test_english_cover_letter_of_a_draft_says_it_is_a_draft(claim):
    text = pdf_text(exports.claim_cover_letter_pdf(claim, "en"))
    assert "Applicationforthe" in text and "Draft" in text
    assert exports.rmb(claim.amount_claimed) in text


# --- downloads in the admin --------------------------------------------------------------------------------------


def test_admin_downloads_the_workbook_and_letter(client, research_office, claim):
    client.force_login(research_office)
    response = client.get(reverse("admin:subsidies_claim_workbook", args=[claim.pk]) + "?language=en")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert f"claim-{claim.reference}-en.xlsx" in response["Content-Disposition"]
    with translation.override("en"):
        assert money(summary(workbook(response.content))["Amount claimed (RMB)"]) == claim.amount_claimed

    response = client.get(reverse("admin:subsidies_claim_cover_letter", args=[claim.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert f"claim-cover-letter-{claim.reference}.pdf" in response["Content-Disposition"]
    assert response.content.startswith(b"%PDF")

    assert client.get(reverse("admin:subsidies_claim_workbook", args=[claim.pk]) + "?language=fr").status_code == 400
    # Issue 11: one spelling everywhere; the old admin spelling is refused with the right name, not ignored.
    refused = client.get(reverse("admin:subsidies_claim_workbook", args=[claim.pk]) + "?lang=en")
    assert refused.status_code == 400


def test_downloads_are_scoped(client, claim, ethics_office):
    stranger = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=claim.program.region))
    for user, status in ((stranger, 404), (ethics_office, 403)):
        client.force_login(user)
        for name in ("admin:subsidies_claim_workbook", "admin:subsidies_claim_cover_letter"):
            assert client.get(reverse(name, args=[claim.pk])).status_code == status, (user.role, name)


def test_a_trial_title_like_a_formula_stays_text_in_the_workbook(claim, trials, research_office):
    """Issue 11: a trial titled =HYPERLINK(...) was a live formula in cell B2 of the regulator's claim workbook."""
    formula = '=HYPERLINK("http://evil.example/x","点击")'
    trials["small"].title_zh = formula
    trials["small"].save(update_fields=["title_zh"])
    services.claim_recompute(claim=claim, actor=research_office)
    book = workbook(exports.claim_workbook(claim))
    cells = [cell for row in book.worksheets[1].iter_rows() for cell in row if cell.value == formula]
    assert cells, "the title is in the workbook"
    assert all(cell.data_type == "s" for cell in cells)
