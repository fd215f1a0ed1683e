"""A claim's figures as everyone reads them, and its two exports: an Excel workbook and a PDF cover letter.

``claim_figures`` is the one place the admin page, the workbook and the letter take a claim's numbers from: the
stored line values while the claim is a draft, the frozen snapshot once it is submitted (with the regulator's
approved amounts and reasons, which come later, from the lines). So the exports reproduce the screen exactly.
"""

import datetime
import io
from dataclasses import dataclass, field
from decimal import Decimal

from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.pdf import render_pdf
from cgtclinic.spreadsheets import MONEY_FORMAT, append_row, put_cell
from subsidies import evidence as claim_evidence
from subsidies import rules, services
from subsidies.models import Claim, ClaimLine, ClaimPayment, SubsidyProgram
from trials.models import Trial, TrialDocument, TrialSite

L = ClaimLine.Status
LANGUAGES = ("zh-hans", "en")
DEFAULT_LANGUAGE = "zh-hans"
DATE_FORMAT = "yyyy-mm-dd"
# Lines that count first, then those the hospital left out, then those that do not qualify.
STATUS_ORDER = {L.ELIGIBLE: 0, L.EXCLUDED: 1, L.INELIGIBLE: 2}
RULE_FIELDS = ("rate", "percent", "item_cap", "project_cap", "institution_year_cap", "fixed_amount")


def rmb(value: Decimal | None) -> str:
    """Money as printed on the page and the letter: thousands grouped, two decimals (1,250,000.00)."""
    return "—" if value is None else f"{rules.to_fen(value):,.2f}"


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value or ""


def _date(value) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


def _decimal(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def reason_text(reason: dict) -> str:
    """An ineligibility reason in the active language (stored in both when the claim was computed)."""
    language = translation.get_language() or DEFAULT_LANGUAGE
    key = "en" if language.startswith("en") else "zh-hans"
    return reason.get(key) or reason.get("message") or reason.get("zh-hans") or reason.get("rule", "")


@dataclass
class LineFigures:
    line_id: int
    trial_id: int
    status: str
    protocol_number: str
    title: str
    kind: str
    therapy_category: str
    sponsor: str
    site_role: str
    site_role_code: str
    item_reference: str
    cost_rmb: Decimal | None
    completed_on: datetime.date | None
    ethics_approved_on: datetime.date | None
    startup_days: int | None
    nmpa_approval_number: str
    filing_number: str
    enrolled_total: int
    previously_claimed: int
    patients_claimed: int
    amount_computed: Decimal
    explanation: list[str]
    reasons: list[str]
    excluded_reason: str
    approved_amount: Decimal | None
    regulator_note: str
    documents: list[dict] = field(default_factory=list)
    # Evidence of the claimed patients (subsidies.evidence): the site's approval, the trial's registration, one entry
    # per patient with its consent, and {code: how many} of what is missing.
    ethics: dict | None = None
    registration: dict = field(default_factory=dict)
    patients: list[dict] = field(default_factory=list)
    missing: dict = field(default_factory=dict)

    @property
    def missing_labels(self) -> list[str]:
        """What evidence is missing, in the active language, with how many patients it concerns."""
        return [
            f"{claim_evidence.missing_label(code)} ({count})"
            if code in ("subject_code", "consent")
            else claim_evidence.missing_label(code)
            for code, count in self.missing.items()
        ]

    @property
    def registration_text(self) -> str:
        labels = registration_labels()
        return "; ".join(f"{labels[key]} {value}" for key, value in self.registration.items() if value)

    @property
    def ethics_text(self) -> str:
        if not self.ethics:
            return ""
        parts = [self.ethics.get("letter_number") or "—", self.ethics.get("decided_on") or ""]
        source = ethics_source_labels().get(self.ethics.get("source"), "")
        return " ".join(part for part in (*parts, f"({source})" if source else "") if part)

    @property
    def status_label(self) -> str:
        return _label(L, self.status)

    @property
    def explanation_text(self) -> str:
        return "\n".join(self.explanation)

    @property
    def reasons_text(self) -> str:
        if self.status == L.EXCLUDED:
            return "\n".join([self.excluded_reason, *self.reasons])
        return "\n".join(self.reasons)

    @property
    def documents_text(self) -> str:
        return "\n".join(
            f"{d['kind_label']} {d['title']} v{d['version']} SHA-256 {d['sha256']}" for d in self.documents
        )

    @property
    def rmb(self) -> dict[str, str]:
        return {
            "amount_computed": rmb(self.amount_computed),
            "approved_amount": rmb(self.approved_amount),
            "cost_rmb": rmb(self.cost_rmb),
        }


@dataclass
class ClaimFigures:
    claim: Claim
    frozen: bool
    frozen_at: datetime.datetime | None
    reference_date: datetime.date
    lines: list[LineFigures]
    rule: dict[str, Decimal | None]
    rule_error: str
    institution_year_already: Decimal
    amount_claimed: Decimal
    payments: list = field(default_factory=list)

    @property
    def program(self) -> SubsidyProgram:
        return self.claim.program

    @property
    def eligible(self) -> list[LineFigures]:
        return [line for line in self.lines if line.status == L.ELIGIBLE]

    @property
    def excluded(self) -> list[LineFigures]:
        return [line for line in self.lines if line.status == L.EXCLUDED]

    @property
    def ineligible(self) -> list[LineFigures]:
        return [line for line in self.lines if line.status == L.INELIGIBLE]

    @property
    def not_counted(self) -> int:
        return len(self.lines) - len(self.eligible)

    @property
    def patients_claimed(self) -> int:
        return sum(line.patients_claimed for line in self.eligible)

    @property
    def missing_evidence(self) -> list[str]:
        """Over the eligible lines: each kind of missing evidence with how many patients or lines it concerns."""
        totals: dict[str, int] = {}
        for line in self.eligible:
            for code, count in line.missing.items():
                totals[code] = totals.get(code, 0) + count
        return [f"{claim_evidence.missing_label(code)}: {count}" for code, count in totals.items()]

    @property
    def decided(self) -> bool:
        return self.claim.amount_approved is not None

    @property
    def balance(self) -> Decimal | None:
        return self.claim.balance

    @property
    def institution_year_cap(self) -> Decimal | None:
        return self.rule.get("institution_year_cap")

    @property
    def year_room_left(self) -> Decimal | None:
        """What the hospital's yearly cap leaves after its earlier claims of the year and this one."""
        cap = self.institution_year_cap
        if cap is None:
            return None
        this_claim = self.claim.amount_approved if self.decided else self.amount_claimed
        return max(rules.ZERO, rules.to_fen(cap) - self.institution_year_already - this_claim)

    @property
    def rule_rows(self) -> list[tuple[str, str]]:
        """The amount rule's numbers in force on the reference date, as (label, value) for display."""
        labels = rule_labels()
        rows = []
        for key in RULE_FIELDS:
            value = self.rule.get(key)
            if value is not None:
                rows.append((labels[key], f"{value.normalize():f}" if key == "percent" else rmb(value)))
                if key == "project_cap":
                    rows.append((_("The project cap counts"), self.project_cap_scope_label))
        return rows

    @property
    def project_cap_scope_label(self) -> str:
        """Which awards the cap per project counts, as frozen with the claim (or the program's, for a draft)."""
        frozen = (self.claim.snapshot or {}).get("rule", {}).get("project_cap_scope")
        return _label(SubsidyProgram.ProjectCapScope, frozen or self.program.project_cap_scope)

    @property
    def rmb(self) -> dict[str, str]:
        claim = self.claim
        return {
            "amount_claimed": rmb(self.amount_claimed),
            "amount_approved": rmb(claim.amount_approved),
            "amount_paid": rmb(claim.amount_paid),
            "balance": rmb(claim.balance),
            "institution_year_cap": rmb(self.institution_year_cap),
            "institution_year_already": rmb(self.institution_year_already),
            "year_room_left": rmb(self.year_room_left),
        }


def registration_labels() -> dict[str, str]:
    return {
        "chictr_id": _("ChiCTR"),
        "nct_id": _("NCT"),
        "filing_number": _("Filing number"),
        "nmpa_approval_number": _("NMPA approval"),
    }


def ethics_source_labels() -> dict[str, str]:
    return {
        "decision": _("the site's committee's approval"),
        "recognition": _("recognition of the lead site's approval"),
        "recorded": _("date recorded on the site"),
    }


def consent_text(consent: dict | None) -> str:
    """A patient's consent as printed: the ICF, its version, the date, and whether it was a re-consent."""
    if not consent:
        return ""
    version = consent.get("version_label") or f"v{consent.get('version')}"
    text = f"{consent.get('document', '')} {version}, {consent.get('consented_on', '')}"
    return text + (" " + _("(re-consent)") if consent.get("is_reconsent") else "")


def rule_labels() -> dict[str, str]:
    return {
        "rate": _("Amount per patient (RMB)"),
        "percent": _("Share of the cost (%)"),
        "item_cap": _("Cap per item (RMB)"),
        "project_cap": _("Cap per project (RMB)"),
        "institution_year_cap": _("Cap per institution per year (RMB)"),
        "fixed_amount": _("Fixed amount per project (RMB)"),
    }


def _line_figures(data: dict, line_id: int, status: str, approved, regulator_note: str) -> LineFigures:
    """One line from its stored values or its snapshot entry (the same keys)."""
    evidence = data.get("evidence") or {}
    language = translation.get_language() or DEFAULT_LANGUAGE
    title = evidence.get("title_en") if language.startswith("en") and evidence.get("title_en") else None
    documents = [
        {**doc, "kind_label": _label(TrialDocument.Kind, doc.get("kind", ""))} for doc in data.get("documents") or []
    ]
    return LineFigures(
        line_id=line_id,
        trial_id=data["trial_id"],
        status=status,
        protocol_number=evidence.get("protocol_number") or data.get("protocol_number", ""),
        title=title or evidence.get("title_zh", ""),
        kind=_label(Trial.Kind, evidence.get("kind", "")),
        therapy_category=_label(Trial.TherapyCategory, evidence.get("therapy_category", "")),
        sponsor=evidence.get("sponsor") or "",
        site_role=_label(TrialSite.SiteRole, evidence.get("site_role", "")),
        site_role_code=evidence.get("site_role", ""),
        item_reference=data.get("item_reference") or "",
        cost_rmb=_decimal(data.get("cost_rmb")),
        completed_on=_date(evidence.get("completed_on")),
        ethics_approved_on=_date(evidence.get("ethics_approved_on")),
        startup_days=evidence.get("startup_days"),
        nmpa_approval_number=evidence.get("nmpa_approval_number") or "",
        filing_number=evidence.get("filing_number") or "",
        enrolled_total=data.get("enrolled_total", 0),
        previously_claimed=data.get("previously_claimed", 0),
        patients_claimed=data.get("patients_claimed", 0),
        amount_computed=_decimal(data.get("amount_computed")) or rules.ZERO,
        explanation=[rules.describe_step(step) for step in data.get("explanation") or []],
        reasons=[reason_text(reason) for reason in data.get("ineligible_reasons") or []],
        excluded_reason=data.get("excluded_reason") or "",
        approved_amount=approved,
        regulator_note=regulator_note,
        documents=documents,
        ethics=evidence.get("ethics"),
        registration=evidence.get("registration") or {},
        patients=[
            {**patient, "consent_text": consent_text(patient.get("consent"))}
            for patient in evidence.get("patients") or []
        ],
        missing=evidence.get("missing") or {},
    )


def _sorted(lines: list[LineFigures]) -> list[LineFigures]:
    return sorted(lines, key=lambda line: (STATUS_ORDER.get(line.status, 9), line.protocol_number, line.item_reference))


def claim_figures(claim: Claim) -> ClaimFigures:
    """The claim's lines, totals and caps in the active language: the snapshot once submitted, else the lines."""
    claim = Claim.objects.select_related("program__region", "institution", "opened_by", "submitted_by").get(pk=claim.pk)
    stored = {line.pk: line for line in ClaimLine.objects.filter(claim=claim)}
    payments = list(ClaimPayment.objects.filter(claim=claim).select_related("recorded_by"))
    snapshot = claim.snapshot
    if snapshot:
        lines = [
            _line_figures(
                data,
                data["id"],
                data["status"],
                stored[data["id"]].approved_amount if data["id"] in stored else None,
                stored[data["id"]].regulator_note if data["id"] in stored else "",
            )
            for data in snapshot["lines"]
        ]
        rule = {key: _decimal(snapshot["rule"].get(key)) for key in RULE_FIELDS}
        return ClaimFigures(
            claim=claim,
            frozen=True,
            frozen_at=datetime.datetime.fromisoformat(snapshot["frozen_at"]),
            reference_date=datetime.date.fromisoformat(snapshot["reference_date"]),
            lines=_sorted(lines),
            rule=rule,
            rule_error="",
            institution_year_already=Decimal(snapshot["institution_year_already"]),
            amount_claimed=Decimal(snapshot["amount_claimed"]),
            payments=payments,
        )
    lines = []
    for line in stored.values():
        data = {
            "trial_id": line.trial_id,
            "item_reference": line.item_reference,
            "cost_rmb": line.cost_rmb,
            "enrolled_total": line.enrolled_total,
            "previously_claimed": line.previously_claimed,
            "patients_claimed": line.patients_claimed,
            "amount_computed": line.amount_computed,
            "explanation": line.explanation,
            "ineligible_reasons": line.ineligible_reasons,
            "excluded_reason": line.excluded_reason,
            "evidence": line.evidence,
        }
        lines.append(_line_figures(data, line.pk, line.status, line.approved_amount, line.regulator_note))
    rule, rule_error = dict.fromkeys(RULE_FIELDS), ""
    try:
        amount_rule = services.amount_rule(claim.program, claim.reference_date)
    except DomainError as exc:
        rule_error = str(exc.message)
    else:
        rule = {key: getattr(amount_rule, key) for key in RULE_FIELDS}
    return ClaimFigures(
        claim=claim,
        frozen=False,
        frozen_at=None,
        reference_date=claim.reference_date,
        lines=_sorted(lines),
        rule=rule,
        rule_error=rule_error,
        institution_year_already=services.institution_year_already(claim),
        amount_claimed=claim.amount_claimed,
        payments=payments,
    )


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise DomainError(_("Claims are exported in Chinese and English only."), field="language")


def export_filename(claim: Claim, kind: str, language: str) -> str:
    """Download name from the claim's reference (ASCII only: some browsers mangle other characters)."""
    suffix = "" if language == DEFAULT_LANGUAGE else f"-{language}"
    extension = {"workbook": "xlsx", "cover_letter": "pdf"}[kind]
    name = {"workbook": "claim", "cover_letter": "claim-cover-letter"}[kind]
    return f"{name}-{claim.reference}{suffix}.{extension}"


# --- the workbook -------------------------------------------------------------------------------------------------


def _summary_rows(figures: ClaimFigures) -> list[tuple[str, object, str | None]]:
    """(label, value, number format) for the Summary sheet."""
    claim, program = figures.claim, figures.program
    rows = [
        (_("Claim"), claim.reference, None),
        (_("Hospital"), claim.institution.name, None),
        (_("Program"), program.name, None),
        (_("Region"), program.region.name, None),
        (_("Source document"), program.source_document, None),
        (_("Source clause"), program.source_clause, None),
        (_("Amount rule"), program.get_amount_rule_display(), None),
        (_("Year"), claim.year, "0"),
        (_("Reference date"), figures.reference_date, DATE_FORMAT),
        (_("Status"), claim.get_status_display(), None),
        (_("Opened by"), str(claim.opened_by), None),
        (_("Opened at"), timezone.localtime(claim.opened_at).replace(tzinfo=None), "yyyy-mm-dd hh:mm"),
    ]
    if claim.submitted_at:
        rows += [
            (_("Submitted by"), str(claim.submitted_by), None),
            (_("Submitted at"), timezone.localtime(claim.submitted_at).replace(tzinfo=None), "yyyy-mm-dd hh:mm"),
        ]
    rows += [
        (_("Eligible trials"), len(figures.eligible), "0"),
        (_("Patients claimed"), figures.patients_claimed, "0"),
        (_("Amount claimed (RMB)"), figures.amount_claimed, MONEY_FORMAT),
        (_("Amount approved (RMB)"), claim.amount_approved, MONEY_FORMAT),
        (_("Amount paid (RMB)"), claim.amount_paid, MONEY_FORMAT),
        (_("Balance owed (RMB)"), claim.balance, MONEY_FORMAT),
        (_("Last paid on"), claim.paid_on, DATE_FORMAT),
        (_("Payment reference"), claim.payment_reference, None),
        (_("Regulator's note"), claim.decision_note, None),
    ]
    labels = rule_labels()
    for key in RULE_FIELDS:
        value = figures.rule.get(key)
        if value is not None:
            rows.append((labels[key], value, "0.##" if key == "percent" else MONEY_FORMAT))
            if key == "project_cap":
                rows.append((_("The project cap counts"), figures.project_cap_scope_label, None))
    if figures.institution_year_cap is not None:
        rows += [
            (_("Already taken by earlier claims of the year (RMB)"), figures.institution_year_already, MONEY_FORMAT),
            (_("Room left under the yearly cap (RMB)"), figures.year_room_left, MONEY_FORMAT),
        ]
    rows.append(
        (
            _("Missing evidence (does not block submission)"),
            "\n".join(figures.missing_evidence) or _("Nothing missing"),
            None,
        )
    )
    if figures.rule_error:
        rows.append((_("Policy values"), figures.rule_error, None))
    return rows


def _line_columns(figures: ClaimFigures) -> list[tuple[str, str, int, object, str | None]]:
    """(key, header, width, value of a line, number format) for the Lines sheet."""
    columns = [
        ("protocol_number", _("Protocol number"), 18, lambda line: line.protocol_number, None),
        ("title", _("Title"), 40, lambda line: line.title, None),
        ("kind", _("Kind"), 22, lambda line: line.kind, None),
        ("therapy_category", _("Therapy category"), 22, lambda line: line.therapy_category, None),
        ("sponsor", _("Sponsor"), 24, lambda line: line.sponsor, None),
        ("site_role", _("Site role"), 12, lambda line: line.site_role, None),
        ("status", _("Status"), 14, lambda line: line.status_label, None),
    ]
    if figures.program.amount_rule == SubsidyProgram.AmountRule.PERCENT_OF_COST:
        columns += [
            ("item_reference", _("Insurance policy number"), 20, lambda line: line.item_reference, None),
            ("cost_rmb", _("Cost (RMB)"), 16, lambda line: line.cost_rmb, MONEY_FORMAT),
        ]
    columns += [
        ("completed_on", _("Research completed on"), 14, lambda line: line.completed_on, DATE_FORMAT),
        ("ethics_approved_on", _("Ethics approved on"), 14, lambda line: line.ethics_approved_on, DATE_FORMAT),
        ("ethics_letter", _("Ethics approval (letter, date)"), 24, lambda line: line.ethics_text, None),
        ("registration", _("Registration / filing number"), 24, lambda line: line.registration_text, None),
        ("startup_days", _("Start-up (days)"), 10, lambda line: line.startup_days, "0"),
        ("enrolled_total", _("Enrolled (ledger)"), 10, lambda line: line.enrolled_total, "0"),
        ("previously_claimed", _("Already claimed earlier"), 10, lambda line: line.previously_claimed, "0"),
        ("patients_claimed", _("Patients in this claim"), 10, lambda line: line.patients_claimed, "0"),
        ("amount_computed", _("Amount computed (RMB)"), 16, lambda line: line.amount_computed, MONEY_FORMAT),
        ("explanation", _("How the amount was computed"), 60, lambda line: line.explanation_text, None),
        ("reasons", _("Why not eligible / reason for exclusion"), 45, lambda line: line.reasons_text, None),
        ("approved_amount", _("Amount approved (RMB)"), 16, lambda line: line.approved_amount, MONEY_FORMAT),
        ("regulator_note", _("Regulator's reason"), 30, lambda line: line.regulator_note, None),
        ("documents", _("Documents (frozen on submission)"), 60, lambda line: line.documents_text, None),
        ("missing", _("Missing evidence"), 40, lambda line: "\n".join(line.missing_labels), None),
    ]
    return columns


def _style_header(sheet, width_by_column: list[int]) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="F3F3F3")
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for index, width in enumerate(width_by_column, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"


def _put(sheet, row: int, column: int, value, number_format: str | None):
    from openpyxl.styles import Alignment

    cell = put_cell(sheet, row, column, value, number_format)
    if isinstance(value, str) and "\n" in value:
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    return cell


def claim_workbook(claim: Claim, language: str = DEFAULT_LANGUAGE) -> bytes:
    """The claim as an .xlsx workbook: a Summary sheet, one Lines row per trial (or cost item) with its evidence,
    the documents frozen with it, one Patients row per claimed patient with its evidence, and the Payments. Money
    cells hold the exact Decimal amounts, shown as RMB to the fen."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    _check_language(language)
    with translation.override(language):
        figures = claim_figures(claim)
        workbook = Workbook()
        workbook.properties.title = f"{figures.claim.reference} {figures.claim.institution.name}"
        workbook.properties.creator = "cgtclinic"

        summary = workbook.active
        summary.title = _("Summary")[:31]
        append_row(summary, [_("Item"), _("Value")])
        for row, (label, value, number_format) in enumerate(_summary_rows(figures), start=2):
            _put(summary, row, 1, label, None)
            _put(summary, row, 2, value, number_format)
        _style_header(summary, [44, 60])

        lines_sheet = workbook.create_sheet(_("Lines")[:31])
        columns = _line_columns(figures)
        append_row(lines_sheet, [header for _key, header, _width, _value, _format in columns])
        row = 1
        for row, line in enumerate(figures.lines, start=2):
            for column, (_key, _header, _width, value, number_format) in enumerate(columns, start=1):
                _put(lines_sheet, row, column, value(line), number_format)
        totals = {
            "patients_claimed": (figures.patients_claimed, "0"),
            "amount_computed": (figures.amount_claimed, MONEY_FORMAT),
            "approved_amount": (figures.claim.amount_approved, MONEY_FORMAT),
        }
        total_row = row + 1
        _put(lines_sheet, total_row, 1, _("Total (eligible lines)"), None).font = Font(bold=True)
        for column, (key, _header, _width, _value, _format) in enumerate(columns, start=1):
            if key in totals:
                value, number_format = totals[key]
                _put(lines_sheet, total_row, column, value, number_format).font = Font(bold=True)
        _style_header(lines_sheet, [width for _key, _header, width, _value, _format in columns])

        documents = workbook.create_sheet(_("Documents")[:31])
        append_row(documents, [_("Protocol number"), _("Document kind"), _("Title"), _("Version"), _("SHA-256")])
        if figures.frozen:
            for line in figures.eligible:
                for doc in line.documents:
                    append_row(
                        documents,
                        [
                            line.protocol_number,
                            doc["kind_label"],
                            doc.get("title", ""),
                            doc.get("version_label") or doc.get("version"),
                            doc.get("sha256", ""),
                        ],
                    )
        else:
            append_row(documents, [_("The documents are recorded when the claim is submitted.")])
        _style_header(documents, [18, 22, 40, 12, 70])
        _patients_sheet(workbook, figures)
        _payments_sheet(workbook, figures)

        out = io.BytesIO()
        workbook.save(out)
    return out.getvalue()


def _patients_sheet(workbook, figures: ClaimFigures) -> None:
    """One row per claimed patient: subject code, enrolment day, consent (ICF version and date), the site's ethics
    approval and the trial's registration, and what evidence is missing ("MISSING: …" in the last column)."""
    sheet = workbook.create_sheet(_("Patients")[:31])
    headers = [
        _("Protocol number"),
        _("Patient no. at the site"),
        _("Subject code"),
        _("Enrolled on"),
        _("Consent (ICF version, date)"),
        _("Ethics approval (letter, date)"),
        _("Registration / filing number"),
        _("Missing evidence"),
    ]
    append_row(sheet, headers)
    row = 1
    for line in figures.eligible:
        site_missing = [
            claim_evidence.missing_label(code)
            for code in ("ethics_approval", "ethics_letter", "registration")
            if code in line.missing
        ]
        for patient in line.patients:
            row += 1
            gaps = [claim_evidence.missing_label(code) for code in patient.get("missing", [])] + site_missing
            values = [
                (line.protocol_number, None),
                (patient.get("position"), "0"),
                (patient.get("subject") or "", None),
                (_date(patient.get("enrolled_on")), DATE_FORMAT),
                (patient.get("consent_text", ""), None),
                (line.ethics_text, None),
                (line.registration_text, None),
                ((_("MISSING: ") + "; ".join(gaps)) if gaps else "", None),
            ]
            for column, (value, number_format) in enumerate(values, start=1):
                _put(sheet, row, column, value, number_format)
    if row == 1:
        append_row(sheet, [_("No patient is claimed on an eligible line.")])
    _style_header(sheet, [18, 10, 16, 14, 40, 30, 30, 50])


def _payments_sheet(workbook, figures: ClaimFigures) -> None:
    """One row per payment: day, amount, reference, the balance after it, who recorded it and when."""
    sheet = workbook.create_sheet(_("Payments")[:31])
    append_row(
        sheet,
        [
            _("Paid on"),
            _("Amount paid (RMB)"),
            _("Payment reference"),
            _("Balance after (RMB)"),
            _("Recorded by"),
            _("Recorded at"),
        ],
    )
    for row, payment in enumerate(figures.payments, start=2):
        for column, (value, number_format) in enumerate(
            [
                (payment.paid_on, DATE_FORMAT),
                (payment.amount, MONEY_FORMAT),
                (payment.reference, None),
                (payment.balance_after, MONEY_FORMAT),
                (str(payment.recorded_by), None),
                (timezone.localtime(payment.recorded_at).replace(tzinfo=None), "yyyy-mm-dd hh:mm"),
            ],
            start=1,
        ):
            _put(sheet, row, column, value, number_format)
    if not figures.payments:
        append_row(sheet, [_("No payment recorded yet.")])
    _style_header(sheet, [14, 18, 24, 18, 20, 18])


# --- the cover letter ---------------------------------------------------------------------------------------------

LETTER_TEMPLATES = {
    "zh-hans": "subsidies/exports/cover_letter.zh-hans.html",
    "en": "subsidies/exports/cover_letter.en.html",
}


def _letter_context(figures: ClaimFigures) -> dict:
    claim = figures.claim
    program = figures.program
    signed = claim.submitted_at or timezone.now()
    return {
        "figures": figures,
        "claim": claim,
        "program": program,
        "region": program.region,
        "institution": claim.institution,
        "contact": claim.submitted_by or claim.opened_by,
        "letter_date": timezone.localtime(signed).date(),
        "draft": claim.status == Claim.Status.DRAFT,
        "per_patient": program.amount_rule == SubsidyProgram.AmountRule.PER_PATIENT,
        "percent_of_cost": program.amount_rule == SubsidyProgram.AmountRule.PERCENT_OF_COST,
    }


def claim_cover_letter_pdf(claim: Claim, language: str = DEFAULT_LANGUAGE) -> bytes:
    """The research office's cover letter for the claim as PDF (CJK font embedded): the eligible lines and totals,
    in Chinese (``zh-hans``) or English (``en``). Each language has its own template of formal wording."""
    _check_language(language)
    with translation.override(language):
        figures = claim_figures(claim)
        html = render_to_string(LETTER_TEMPLATES[language], _letter_context(figures))
    return render_pdf(html)
