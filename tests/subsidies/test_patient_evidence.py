"""Evidence for each claimed patient: the consent the subject signed (ICF version, on or before the reference date),
the site's ethics approval (letter number and date) and the trial's registration or filing number, with a marker for
what is missing; in the claim (admin, API), frozen on submission, and in the workbook's Patients sheet."""

import datetime
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from subsidies import exports, services
from subsidies.models import ClaimLine
from tests.factories.ethics import DecisionFactory, SubmissionFactory
from tests.factories.subsidies import CLAIM_YEAR, completed_gene_trial
from tests.factories.trials import DocumentVersionFactory, TrialDocumentFactory
from trials import enrolment
from trials.models import SubjectConsent, TrialDocument

pytestmark = pytest.mark.django_db
ENROLLED_ON = datetime.date(2024, 3, 11)


@pytest.fixture
def trial(research_office, institution):
    """A completed gene-therapy IIT with three coded subjects and two patients reported without codes."""
    trial = completed_gene_trial(institution, enrolled=2, actor=research_office, chictr_id="ChiCTR2400000001")
    site = trial.sites.get()
    for code in ("RK-001", "RK-002", "RK-003"):
        enrolment.enrolment_report(
            site=site, actor=research_office, kind="enrolled", occurred_on=ENROLLED_ON, subject_code=code
        )
    return trial


@pytest.fixture
def icf(trial, research_office):
    document = TrialDocumentFactory(trial=trial, kind=TrialDocument.Kind.ICF, title="知情同意书")
    return [
        DocumentVersionFactory(document=document, number=n, version_label=f"V{n}.0", uploaded_by=research_office)
        for n in (1, 2)
    ]


def consent(trial, code, version, day, actor, reconsent=False):
    return SubjectConsent.objects.create(
        subject=trial.subjects.get(code=code),
        icf_version=version,
        consented_on=day,
        is_reconsent=reconsent,
        recorded_by=actor,
        recorded_at=timezone.now(),
    )


@pytest.fixture
def approval(trial, institution):
    submission = SubmissionFactory(trial=trial)
    return DecisionFactory(
        submission=submission,
        letter_number="伦审2024-017",
        decided_at=datetime.datetime(2024, 2, 10, 10, tzinfo=datetime.UTC),
    )


def line_of(claim, trial) -> ClaimLine:
    return ClaimLine.objects.get(claim=claim, trial=trial)


def test_each_claimed_patient_has_its_consent_and_the_sites_approval(trial, icf, approval, research_office, program):
    consent(trial, "RK-001", icf[0], datetime.date(2024, 3, 10), research_office)
    consent(trial, "RK-001", icf[1], datetime.date(2024, 9, 1), research_office, reconsent=True)
    consent(trial, "RK-002", icf[0], datetime.date(2024, 3, 10), research_office)
    # Signed after the claim's reference date: not evidence for this claim.
    consent(trial, "RK-003", icf[1], datetime.date(CLAIM_YEAR + 1, 1, 5), research_office)

    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    line = line_of(claim, trial)
    evidence = line.evidence
    assert line.patients_claimed == 5
    assert evidence["ethics"] == {
        "source": "decision",
        "committee": approval.committee.name_zh,
        "letter_number": "伦审2024-017",
        "decided_on": "2024-02-10",
    }
    assert evidence["registration"]["chictr_id"] == "ChiCTR2400000001"
    by_code = {p["subject"]: p for p in evidence["patients"]}
    # The latest consent on or before the reference date: RK-001's re-consent on version 2.
    assert by_code["RK-001"]["consent"]["version_label"] == "V2.0"
    assert by_code["RK-001"]["consent"]["is_reconsent"] is True
    assert by_code["RK-002"]["consent"]["consented_on"] == "2024-03-10"
    assert by_code["RK-003"]["missing"] == ["consent"]
    assert by_code[None]["missing"] == ["subject_code"]
    assert evidence["missing"] == {"subject_code": 2, "consent": 1}
    assert [p["position"] for p in evidence["patients"]] == [1, 2, 3, 4, 5]


def test_missing_evidence_is_marked_but_does_not_block_submission(trial, research_office, program):
    trial.chictr_id = ""
    trial.save(update_fields=["chictr_id"])
    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    missing = line_of(claim, trial).evidence["missing"]
    # The site's approval is recorded by date only (no decision letter), and the trial has no registration number.
    assert missing == {"ethics_letter": 1, "registration": 1, "subject_code": 2, "consent": 3}

    submitted = services.claim_submit(claim=claim, actor=research_office)
    frozen = submitted.snapshot["lines"][0]["evidence"]
    assert frozen["missing"] == missing
    assert len(frozen["patients"]) == 5


def test_a_later_claim_lists_only_the_patients_it_claims(trial, research_office, regulator_user, program):
    first = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    services.line_exclude(line=line_of(first, trial), actor=research_office, reason="Split")
    services.line_include(line=line_of(first, trial), actor=research_office)
    services.claim_submit(claim=first, actor=research_office)
    enrolment.enrolment_report(
        site=trial.sites.get(),
        actor=research_office,
        kind="enrolled",
        occurred_on=datetime.date(2024, 6, 1),
        subject_code="RK-004",
    )
    services.claim_start_review(claim=first, actor=regulator_user)
    services.claim_decide(claim=first, actor=regulator_user, decision=services.REJECT, note="Resubmit")
    # The rejection released all; a claim for next year takes all six, the newest last.
    later = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR + 1)
    patients = line_of(later, trial).evidence["patients"]
    assert [p["subject"] for p in patients][-1] == "RK-004"


def test_the_api_and_the_admin_show_the_evidence_and_what_is_missing(
    trial, icf, approval, research_office, program, client
):
    consent(trial, "RK-001", icf[0], datetime.date(2024, 3, 10), research_office)
    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    api = APIClient()
    api.force_authenticate(research_office)
    data = api.get(reverse("claims-detail", args=[claim.pk]), HTTP_ACCEPT_LANGUAGE="en").json()
    (line,) = [item for item in data["lines"] if item["trial"] == trial.pk]
    assert {m["code"]: m["count"] for m in line["evidence_missing"]} == {"subject_code": 2, "consent": 2}
    assert line["evidence"]["ethics"]["letter_number"] == "伦审2024-017"
    messages = {m["code"]: m["message"] for m in line["evidence_missing"]}
    assert "without a subject code" in messages["subject_code"]

    client.force_login(research_office)
    page = client.get(reverse("admin:subsidies_claim_change", args=[claim.pk]), HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert "伦审2024-017" in text and "ChiCTR2400000001" in text
    assert "RK-001" in text and "V1.0" in text
    assert "No consent recorded on or before the reference date" in text


def test_the_workbook_has_a_row_per_claimed_patient_with_markers(trial, icf, approval, research_office, program):
    from openpyxl import load_workbook

    consent(trial, "RK-002", icf[0], datetime.date(2024, 3, 10), research_office)
    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    book = load_workbook(io.BytesIO(exports.claim_workbook(claim, "en")))
    rows = list(book["Patients"].iter_rows(values_only=True))
    assert rows[0][2] == "Subject code"
    body = [row for row in rows[1:] if row[0] == trial.protocol_number]
    assert len(body) == 5
    by_code = {row[2]: row for row in body}
    assert "V1.0" in by_code["RK-002"][4] and not by_code["RK-002"][7]
    assert by_code["RK-001"][7].startswith("MISSING: ")
    assert all("伦审2024-017" in row[5] for row in body)
    summary = dict(row[:2] for row in book["Summary"].iter_rows(values_only=True))
    assert "No consent recorded" in summary["Missing evidence (does not block submission)"]
