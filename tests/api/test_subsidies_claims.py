"""Subsidy claims through the API: the hospital opens, edits and submits; the regulator of the region reviews,
decides and records payment. Every step, every refusal, who sees what, filters, downloads and query counts."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from subsidies import rules, services
from subsidies.models import Claim, ClaimLine
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.subsidies import completed_gene_trial, insurance_program, shanghai_program
from tests.factories.trials import DocumentVersionFactory

C = Claim.Status
L = ClaimLine.Status
YEAR = 2025
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
pytestmark = pytest.mark.usefixtures("review_interval")


@pytest.fixture
def program(region):
    return shanghai_program(region)


@pytest.fixture
def rate(program, region) -> Decimal:
    return PolicyParameter.objects.get(code="subsidy_per_patient_rmb", region=region).value


@pytest.fixture
def trial(research_office):
    return completed_gene_trial(research_office.institution, enrolled=5, actor=research_office)


@pytest.fixture
def draft(research_office, program, trial):
    return services.claim_open(actor=research_office, program=program, year=YEAR)


@pytest.fixture
def submitted(draft, research_office):
    return services.claim_submit(claim=draft, actor=research_office)


@pytest.fixture
def under_review(submitted, regulator):
    return services.claim_start_review(claim=submitted, actor=regulator)


@pytest.fixture
def approved(under_review, regulator):
    return services.claim_decide(claim=under_review, actor=regulator, decision=services.APPROVE)


def fen(amount: Decimal) -> str:
    return str(rules.to_fen(amount))


def as_user(api_client, user):
    if user is not None:
        api_client.force_authenticate(user)
    return api_client


def post(api_client, user, path, data=None, **extra):
    return as_user(api_client, user).post(path, data or {}, format="json", **extra)


def url(claim, action="") -> str:
    return f"/api/v1/claims/{claim.pk}/" + (f"{action}/" if action else "")


def status_of(claim) -> str:
    return Claim.objects.get(pk=claim.pk).status


# Opening ----------------------------------------------------------------------------------------------------


def test_the_research_office_opens_a_claim_with_its_lines(api_client, research_office, program, trial, rate):
    response = post(
        api_client, research_office, "/api/v1/claims/", {"program": program.pk, "year": YEAR}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 201, response.data
    data = response.data
    assert (data["status"], data["year"], data["institution"]) == (C.DRAFT, YEAR, research_office.institution_id)
    assert data["amount_claimed"] == fen(rate * 5)
    assert data["reference"] == Claim.objects.get().reference
    assert data["snapshot"] is None
    (line,) = data["lines"]
    assert (line["trial"], line["protocol_number"], line["status"]) == (trial.pk, trial.protocol_number, L.ELIGIBLE)
    assert (line["enrolled_total"], line["patients_claimed"], line["amount_computed"]) == (5, 5, fen(rate * 5))
    assert line["explanation"] == f"5 patients × {rules.grouped(rate)} RMB = {rules.grouped(rate * 5)} RMB"
    assert line["explanation_steps"] == [
        {
            "code": "per_patient",
            "enrolled": 5,
            "previously_claimed": 0,
            "patients": 5,
            "rate": fen(rate),
            "amount": fen(rate * 5),
            "text": line["explanation"],
        }
    ]
    assert line["evidence"]["protocol_number"] == trial.protocol_number


@pytest.mark.parametrize("role", ["ethics_office", "pi", "regulator"])
def test_only_the_research_office_opens(role, request, api_client, program, trial):
    response = post(api_client, request.getfixturevalue(role), "/api/v1/claims/", {"program": program.pk, "year": YEAR})
    assert response.status_code == 403
    assert not Claim.objects.exists()


def test_anonymous_cannot_open(api_client, program):
    assert post(api_client, None, "/api/v1/claims/", {"program": program.pk, "year": YEAR}).status_code == 401


def test_an_office_cannot_open_for_another_hospital(api_client, research_office, program, region):
    other = InstitutionFactory(region=region)
    response = post(
        api_client, research_office, "/api/v1/claims/", {"program": program.pk, "year": YEAR, "institution": other.pk}
    )
    assert (response.status_code, response.data["code"]) == (403, "permission_denied")


def test_a_system_administrator_opens_for_a_named_hospital(api_client, system_admin, program, research_office, trial):
    body = {"program": program.pk, "year": YEAR, "institution": research_office.institution_id}
    response = post(api_client, system_admin, "/api/v1/claims/", body)
    assert response.status_code == 201, response.data
    assert response.data["institution"] == research_office.institution_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"year": YEAR}, "program"),
        ({"program": 999999, "year": YEAR}, "program"),
        ({"program": "PROGRAM"}, "year"),
        ({"program": "PROGRAM", "year": "last"}, "year"),
        ({"program": "PROGRAM", "year": YEAR, "institution": 999999}, "institution"),
    ],
)
def test_open_refuses_badly_shaped_input(body, field, api_client, research_office, program):
    body = {key: program.pk if value == "PROGRAM" else value for key, value in body.items()}
    response = post(api_client, research_office, "/api/v1/claims/", body)
    assert response.status_code == 400
    assert field in response.data


def test_open_refuses_what_the_service_refuses(api_client, research_office, program, trial):
    elsewhere = shanghai_program(RegionFactory(code="elsewhere"))
    client = as_user(api_client, research_office)
    response = client.post("/api/v1/claims/", {"program": elsewhere.pk, "year": YEAR}, format="json")
    assert (response.status_code, response.data["field"]) == (400, "program")
    future = timezone.localdate().year + 1
    response = client.post("/api/v1/claims/", {"program": program.pk, "year": future}, format="json")
    assert (response.status_code, response.data["field"]) == (400, "year")
    assert client.post("/api/v1/claims/", {"program": program.pk, "year": YEAR}, format="json").status_code == 201
    response = client.post("/api/v1/claims/", {"program": program.pk, "year": YEAR}, format="json")
    assert (response.status_code, response.data["code"]) == (409, "claim_open_exists")
    assert Claim.objects.count() == 1


# Seeing claims ----------------------------------------------------------------------------------------------


@pytest.fixture
def landscape(region, program, research_office, regulator, draft):
    """This hospital's draft; a neighbour's submitted claim; a claim in another region."""
    neighbour_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region))
    completed_gene_trial(neighbour_office.institution, enrolled=2, actor=neighbour_office)
    neighbours = services.claim_open(actor=neighbour_office, program=program, year=YEAR)
    services.claim_submit(claim=neighbours, actor=neighbour_office)
    elsewhere = RegionFactory(code="elsewhere")
    far_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=elsewhere))
    completed_gene_trial(far_office.institution, enrolled=1, actor=far_office)
    far = services.claim_open(actor=far_office, program=shanghai_program(elsewhere), year=YEAR)
    services.claim_submit(claim=far, actor=far_office)
    return {
        "own": draft,
        "neighbours": neighbours,
        "far": far,
        "far_regulator": UserFactory(role=Role.REGULATOR, region=elsewhere),
    }


def listed(api_client, user, query="") -> set[int]:
    response = as_user(api_client, user).get(f"/api/v1/claims/{query}")
    assert response.status_code == 200
    return {row["id"] for row in response.data["results"]}


def test_an_office_sees_its_hospitals_claims_including_drafts(api_client, research_office, landscape):
    assert listed(api_client, research_office) == {landscape["own"].pk}
    assert as_user(api_client, research_office).get(url(landscape["neighbours"])).status_code == 404


def test_a_regulator_sees_the_submitted_claims_of_its_region_never_a_draft(api_client, regulator, landscape):
    assert listed(api_client, regulator) == {landscape["neighbours"].pk}
    assert as_user(api_client, regulator).get(url(landscape["own"])).status_code == 404
    assert as_user(api_client, regulator).get(url(landscape["far"])).status_code == 404
    assert listed(api_client, landscape["far_regulator"]) == {landscape["far"].pk}


@pytest.mark.parametrize("role", ["ethics_office", "pi"])
def test_roles_without_claims_are_refused(role, request, api_client, landscape):
    assert as_user(api_client, request.getfixturevalue(role)).get("/api/v1/claims/").status_code == 403


def test_a_system_administrator_sees_every_claim(api_client, system_admin, landscape):
    assert listed(api_client, system_admin) == {landscape[k].pk for k in ("own", "neighbours", "far")}


def test_filters(api_client, system_admin, landscape, program):
    own, neighbours, far = landscape["own"], landscape["neighbours"], landscape["far"]
    assert listed(api_client, system_admin, "?status=submitted") == {neighbours.pk, far.pk}
    assert listed(api_client, system_admin, "?status=draft&status=submitted") == {own.pk, neighbours.pk, far.pk}
    assert listed(api_client, system_admin, f"?program={program.pk}") == {own.pk, neighbours.pk}
    assert listed(api_client, system_admin, f"?program_code={far.program.code}") == {far.pk}
    assert listed(api_client, system_admin, f"?institution={neighbours.institution_id}") == {neighbours.pk}
    assert listed(api_client, system_admin, "?region=elsewhere") == {far.pk}
    assert listed(api_client, system_admin, f"?year={YEAR}") == {own.pk, neighbours.pk, far.pk}
    assert listed(api_client, system_admin, f"?year={YEAR - 1}") == set()
    assert as_user(api_client, system_admin).get("/api/v1/claims/?status=paid-ish").status_code == 400


def test_the_detail_has_history_and_the_frozen_snapshot(api_client, regulator, under_review, trial, rate):
    DocumentVersionFactory(document__trial=trial)
    response = as_user(api_client, regulator).get(url(under_review), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    data = response.data
    assert [(c["from_status"], c["to_status"]) for c in data["status_changes"]] == [
        (C.DRAFT, C.SUBMITTED),
        (C.SUBMITTED, C.UNDER_REVIEW),
    ]
    assert data["status_changes"][1]["actor_name"] == regulator.full_name
    assert data["snapshot"]["amount_claimed"] == fen(rate * 5)
    assert data["snapshot"]["lines"][0]["protocol_number"] == trial.protocol_number
    assert data["submitted_by_name"] == under_review.submitted_by.full_name
    assert data["status_display"] == "Under regulator review"


def test_reasons_and_explanations_come_in_the_requests_language(api_client, research_office, program):
    completed_gene_trial(research_office.institution, enrolled=2, actor=research_office, therapy_category="stem_cell")
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    stored = claim.lines.get().ineligible_reasons[0]
    client = as_user(api_client, research_office)
    english = client.get(url(claim), HTTP_ACCEPT_LANGUAGE="en").data["lines"][0]["ineligible_reasons"]
    chinese = client.get(url(claim), HTTP_ACCEPT_LANGUAGE="zh-hans").data["lines"][0]["ineligible_reasons"]
    assert english == [{"rule": "therapy_category", "message": stored["en"]}]
    assert chinese == [{"rule": "therapy_category", "message": stored["zh-hans"]}]


# The hospital's steps ---------------------------------------------------------------------------------------


def test_recompute_reads_the_ledger_again(api_client, research_office, draft, trial, rate):
    from trials import enrolment

    enrolment.enrolment_report(
        site=trial.sites.get(), actor=research_office, kind="enrolled", occurred_on=datetime.date(2024, 6, 3), count=2
    )
    response = post(api_client, research_office, url(draft, "recompute"))
    assert response.status_code == 200, response.data
    assert response.data["amount_claimed"] == fen(rate * 7)


def test_recompute_of_a_submitted_claim_is_a_conflict(api_client, research_office, submitted):
    response = post(api_client, research_office, url(submitted, "recompute"))
    assert (response.status_code, response.data["code"]) == (409, "transition_not_allowed")


def test_a_regulator_cannot_recompute(api_client, regulator, submitted):
    assert post(api_client, regulator, url(submitted, "recompute")).status_code == 403


def test_exclude_and_include_a_line(api_client, research_office, draft, rate):
    line = draft.lines.get()
    response = post(api_client, research_office, url(draft, f"lines/{line.pk}/exclude"), {"reason": "Audit pending"})
    assert response.status_code == 200, response.data
    (row,) = response.data["lines"]
    assert (row["status"], row["excluded_reason"], response.data["amount_claimed"]) == (
        L.EXCLUDED,
        "Audit pending",
        "0.00",
    )
    response = post(api_client, research_office, url(draft, f"lines/{line.pk}/include"))
    assert response.status_code == 200, response.data
    assert (response.data["lines"][0]["status"], response.data["amount_claimed"]) == (L.ELIGIBLE, fen(rate * 5))


def test_exclude_refusals(api_client, research_office, draft, regulator, region):
    line = draft.lines.get()
    response = post(api_client, research_office, url(draft, f"lines/{line.pk}/exclude"), {"reason": " "})
    assert (response.status_code, response.data["field"]) == (400, "reason")
    assert post(api_client, research_office, url(draft, f"lines/{line.pk}/exclude"), {}).status_code == 400
    assert post(api_client, research_office, url(draft, "lines/999999/exclude"), {"reason": "x"}).status_code == 404
    # A line of another hospital's claim is not a line of this claim.
    other_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region))
    completed_gene_trial(other_office.institution, enrolled=1, actor=other_office)
    other_line = services.claim_open(actor=other_office, program=draft.program, year=YEAR).lines.get()
    assert (
        post(api_client, research_office, url(draft, f"lines/{other_line.pk}/exclude"), {"reason": "x"}).status_code
        == 404
    )
    assert post(api_client, other_office, url(draft, f"lines/{line.pk}/exclude"), {"reason": "x"}).status_code == 404
    assert ClaimLine.objects.get(pk=line.pk).status == L.ELIGIBLE


def test_include_refuses_a_line_that_is_not_excluded(api_client, research_office, draft):
    response = post(api_client, research_office, url(draft, f"lines/{draft.lines.get().pk}/include"))
    assert response.status_code == 400


def test_lines_are_frozen_after_submission(api_client, research_office, submitted, regulator):
    line = submitted.lines.get()
    response = post(api_client, research_office, url(submitted, f"lines/{line.pk}/exclude"), {"reason": "Late"})
    assert response.status_code == 409
    assert post(api_client, research_office, url(submitted, f"lines/{line.pk}/include")).status_code == 409
    assert post(api_client, regulator, url(submitted, f"lines/{line.pk}/exclude"), {"reason": "x"}).status_code == 403


def test_cost_items_for_an_insurance_claim(api_client, research_office, region, trial):
    program = insurance_program(region)
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    percent = PolicyParameter.objects.get(code="insurance_premium_subsidy_percent", region=region).value
    body = {"trial": trial.pk, "item_reference": "PICC-2025-001", "cost_rmb": "84000.00"}
    response = post(api_client, research_office, url(claim, "cost-items"), body)
    assert response.status_code == 200, response.data
    (line,) = response.data["lines"]
    assert (line["item_reference"], line["cost_rmb"]) == ("PICC-2025-001", "84000.00")
    assert line["amount_computed"] == fen(Decimal("84000.00") * percent / 100)
    response = post(api_client, research_office, url(claim, "cost-items"), body)
    assert (response.status_code, response.data["field"]) == (400, "item_reference")
    response = post(api_client, research_office, url(claim, "cost-items"), {**body, "cost_rmb": "lots"})
    assert (response.status_code, "cost_rmb" in response.data) == (400, True)
    invisible = completed_gene_trial(
        InstitutionFactory(region=RegionFactory(code="far")), enrolled=0, actor=research_office
    )
    response = post(api_client, research_office, url(claim, "cost-items"), {**body, "trial": invisible.pk})
    assert (response.status_code, "trial" in response.data) == (400, True)


def test_submit_freezes_the_claim(api_client, research_office, draft, rate):
    response = post(api_client, research_office, url(draft, "submit"))
    assert response.status_code == 200, response.data
    assert (response.data["status"], response.data["submitted_by_name"]) == (C.SUBMITTED, research_office.full_name)
    assert response.data["snapshot"]["amount_claimed"] == fen(rate * 5)
    assert post(api_client, research_office, url(draft, "submit")).status_code == 409


def test_an_empty_claim_is_not_submitted(api_client, research_office, draft):
    services.line_exclude(line=draft.lines.get(), actor=research_office, reason="Not this year")
    response = post(api_client, research_office, url(draft, "submit"))
    assert (response.status_code, response.data["code"]) == (400, "claim_empty")
    assert status_of(draft) == C.DRAFT


@pytest.mark.parametrize("role", ["ethics_office", "pi"])
def test_other_hospital_roles_cannot_submit(role, request, api_client, draft):
    assert post(api_client, request.getfixturevalue(role), url(draft, "submit")).status_code == 403
    assert status_of(draft) == C.DRAFT


def test_another_hospitals_office_does_not_find_the_claim(api_client, draft, region):
    other_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region))
    for action in ("recompute", "submit"):
        assert post(api_client, other_office, url(draft, action)).status_code == 404
    assert as_user(api_client, other_office).delete(url(draft)).status_code == 404


def test_discard_a_draft(api_client, research_office, draft):
    assert as_user(api_client, research_office).delete(url(draft)).status_code == 204
    assert not Claim.objects.exists()


def test_a_submitted_claim_is_not_discarded(api_client, research_office, submitted, regulator):
    assert as_user(api_client, research_office).delete(url(submitted)).status_code == 409
    assert as_user(api_client, regulator).delete(url(submitted)).status_code == 403
    assert Claim.objects.filter(pk=submitted.pk).exists()


# The regulator's steps --------------------------------------------------------------------------------------


def test_start_review(api_client, regulator, submitted):
    response = post(api_client, regulator, url(submitted, "start-review"))
    assert response.status_code == 200, response.data
    assert response.data["status"] == C.UNDER_REVIEW
    assert post(api_client, regulator, url(submitted, "start-review")).status_code == 409


def test_only_a_regulator_of_the_region_starts_a_review(api_client, research_office, submitted):
    assert post(api_client, research_office, url(submitted, "start-review")).status_code == 403
    outsider = UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere"))
    assert post(api_client, outsider, url(submitted, "start-review")).status_code == 404
    assert status_of(submitted) == C.SUBMITTED


def test_approve(api_client, regulator, under_review, rate):
    response = post(api_client, regulator, url(under_review, "decide"), {"decision": "approve", "note": "Complete"})
    assert response.status_code == 200, response.data
    data = response.data
    assert (data["status"], data["amount_approved"], data["decision_note"]) == (C.APPROVED, fen(rate * 5), "Complete")
    assert data["lines"][0]["approved_amount"] == fen(rate * 5)
    assert data["decided_by_name"] == regulator.full_name


def test_partially_approve_with_adjustments(api_client, regulator, under_review, rate):
    line = under_review.lines.get()
    body = {
        "decision": "partially_approve",
        "note": "Selected on merit",
        "adjustments": {str(line.pk): {"amount": fen(rate * 3), "reason": "Two patients not evaluable"}},
    }
    response = post(api_client, regulator, url(under_review, "decide"), body, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.data
    (row,) = response.data["lines"]
    assert (row["approved_amount"], row["regulator_note"]) == (fen(rate * 3), "Two patients not evaluable")
    assert row["explanation_steps"][-1]["code"] == "regulator_adjustment"
    assert row["explanation"].endswith(
        f"Adjusted by the regulator from {rules.grouped(rate * 5)} RMB to {rules.grouped(rate * 3)} RMB: "
        "Two patients not evaluable"
    )
    assert response.data["amount_approved"] == fen(rate * 3)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"decision": "partially_approve", "adjustments": {"LINE": {"amount": "RAISE", "reason": "More"}}}, "field"),
        ({"decision": "partially_approve", "adjustments": {"LINE": {"amount": "LOWER", "reason": ""}}}, "field"),
        ({"decision": "partially_approve", "adjustments": {"LINE": {"amount": "SAME", "reason": "Same"}}}, "field"),
        ({"decision": "partially_approve", "adjustments": {}}, "field"),
        ({"decision": "partially_approve", "adjustments": {"LINE": {"reason": "No amount"}}}, "adjustments"),
        ({"decision": "partially_approve", "adjustments": {"LINE": "LOWER"}}, "adjustments"),
        ({"decision": "approve", "adjustments": {"LINE": {"amount": "LOWER", "reason": "x"}}}, "field"),
        ({"decision": "reject", "note": ""}, "field"),
        ({"decision": "maybe"}, "decision"),
        ({}, "decision"),
    ],
)
def test_decide_refusals(body, where, api_client, regulator, under_review, rate):
    line = under_review.lines.get()
    amounts = {"RAISE": fen(rate * 6), "LOWER": fen(rate), "SAME": fen(rate * 5)}

    def fill(value):
        if isinstance(value, dict):
            return {(str(line.pk) if k == "LINE" else k): fill(v) for k, v in value.items()}
        return amounts.get(value, value) if isinstance(value, str) else value

    response = post(api_client, regulator, url(under_review, "decide"), fill(body))
    assert response.status_code == 400, response.data
    assert where in response.data
    assert status_of(under_review) == C.UNDER_REVIEW


def test_reject_with_a_note(api_client, regulator, under_review):
    body = {"decision": "reject", "note": "Research report not accepted"}
    response = post(api_client, regulator, url(under_review, "decide"), body)
    assert (response.status_code, response.data["status"], response.data["amount_approved"]) == (
        200,
        C.REJECTED,
        "0.00",
    )


def test_decide_before_the_review_is_a_conflict(api_client, regulator, submitted):
    response = post(api_client, regulator, url(submitted, "decide"), {"decision": "approve"})
    assert response.status_code == 409


def test_only_the_regulator_decides(api_client, research_office, under_review):
    assert post(api_client, research_office, url(under_review, "decide"), {"decision": "approve"}).status_code == 403
    outsider = UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere"))
    assert post(api_client, outsider, url(under_review, "decide"), {"decision": "approve"}).status_code == 404
    assert status_of(under_review) == C.UNDER_REVIEW


def test_pay(api_client, regulator, approved, rate):
    today = timezone.localdate().isoformat()
    body = {"amount": fen(rate * 5), "paid_on": today, "payment_reference": "TX-2026-0001"}
    response = post(api_client, regulator, url(approved, "pay"), body)
    assert response.status_code == 200, response.data
    data = response.data
    assert (data["status"], data["amount_paid"], data["paid_on"], data["payment_reference"]) == (
        C.PAID,
        fen(rate * 5),
        today,
        "TX-2026-0001",
    )
    assert post(api_client, regulator, url(approved, "pay"), body).status_code == 409


def test_pay_refusals(api_client, regulator, approved, rate, research_office):
    today = timezone.localdate()
    too_much = {"amount": fen(rate * 5 + 1), "paid_on": today.isoformat()}
    response = post(api_client, regulator, url(approved, "pay"), too_much)
    assert (response.status_code, response.data["field"]) == (400, "amount")
    future = {"amount": fen(rate), "paid_on": (today + datetime.timedelta(days=1)).isoformat()}
    assert post(api_client, regulator, url(approved, "pay"), future).data["field"] == "paid_on"
    assert "paid_on" in post(api_client, regulator, url(approved, "pay"), {"amount": "1.00"}).data
    assert (
        post(api_client, research_office, url(approved, "pay"), {**future, "paid_on": today.isoformat()}).status_code
        == 403
    )
    assert status_of(approved) == C.APPROVED


def test_pay_before_a_decision_or_after_a_rejection_is_a_conflict(api_client, regulator, under_review):
    body = {"amount": "1.00", "paid_on": timezone.localdate().isoformat()}
    assert post(api_client, regulator, url(under_review, "pay"), body).status_code == 409
    services.claim_decide(claim=under_review, actor=regulator, decision=services.REJECT, note="Out of scope")
    assert post(api_client, regulator, url(under_review, "pay"), body).status_code == 409


def test_the_whole_path_over_rest(api_client, research_office, regulator, program, trial, rate):
    """The office opens and submits; the regulator pulls the claim from its list, reviews, decides and pays."""
    office = as_user(api_client, research_office)
    claim_id = office.post("/api/v1/claims/", {"program": program.pk, "year": YEAR}, format="json").data["id"]
    assert office.post(f"/api/v1/claims/{claim_id}/submit/").status_code == 200
    regulator_client = as_user(api_client, regulator)
    (row,) = regulator_client.get("/api/v1/claims/?status=submitted").data["results"]
    assert row["id"] == claim_id
    assert regulator_client.post(f"/api/v1/claims/{claim_id}/start-review/").status_code == 200
    assert (
        regulator_client.post(f"/api/v1/claims/{claim_id}/decide/", {"decision": "approve"}, format="json").data[
            "status"
        ]
        == C.APPROVED
    )
    paid = regulator_client.post(
        f"/api/v1/claims/{claim_id}/pay/",
        {"amount": fen(rate * 5), "paid_on": timezone.localdate().isoformat()},
        format="json",
    )
    assert (paid.status_code, paid.data["status"]) == (200, C.PAID)


# Downloads --------------------------------------------------------------------------------------------------


def test_the_office_downloads_the_workbook_in_either_language(api_client, research_office, draft):
    client = as_user(api_client, research_office)
    response = client.get(url(draft, "workbook"))
    assert (response.status_code, response["Content-Type"]) == (200, XLSX)
    assert response["Content-Disposition"] == f'attachment; filename="claim-{draft.reference}.xlsx"'
    assert response["Cache-Control"] == "private, no-store"
    assert response.content[:2] == b"PK"
    english = client.get(url(draft, "workbook") + "?language=en")
    assert f"claim-{draft.reference}-en.xlsx" in english["Content-Disposition"]
    assert (
        client.get(url(draft, "workbook"), HTTP_ACCEPT_LANGUAGE="en")["Content-Disposition"]
        == english["Content-Disposition"]
    )
    assert client.get(url(draft, "workbook") + "?language=fr").status_code == 400
    # Issue 11: the API silently ignored ?lang=; now it says what the parameter is called.
    refused = client.get(url(draft, "workbook") + "?lang=en", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    assert "language" in refused.json()["detail"]


def test_the_regulator_downloads_the_cover_letter_of_a_submitted_claim(api_client, regulator, submitted):
    response = as_user(api_client, regulator).get(url(submitted, "cover-letter"))
    assert (response.status_code, response["Content-Type"]) == (200, "application/pdf")
    assert response.content.startswith(b"%PDF")
    assert f"claim-cover-letter-{submitted.reference}.pdf" in response["Content-Disposition"]


def test_downloads_are_scoped(api_client, regulator, draft, ethics_office):
    assert as_user(api_client, regulator).get(url(draft, "workbook")).status_code == 404
    assert as_user(api_client, ethics_office).get(url(draft, "cover-letter")).status_code == 403


# Query counts -------------------------------------------------------------------------------------------------


def _grow_to(size: int, region, program) -> None:
    """Submitted claims of hospitals in the region, each with two lines."""
    while Claim.objects.count() < size:
        office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region))
        completed_gene_trial(office.institution, enrolled=2, actor=office)
        completed_gene_trial(office.institution, enrolled=1, actor=office, therapy_category="stem_cell")
        services.claim_submit(claim=services.claim_open(actor=office, program=program, year=YEAR), actor=office)


@pytest.mark.parametrize("viewer", ["system_admin", "regulator"])
def test_list_queries_do_not_grow_with_claims(viewer, request, client, region, program, django_assert_max_num_queries):
    client.force_login(request.getfixturevalue(viewer))
    counts = []
    for size in (2, 8):
        _grow_to(size, region, program)
        with django_assert_max_num_queries(6), CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/claims/?page_size=100")
        assert response.status_code == 200
        assert len(response.data["results"]) == size
        assert all(len(row["lines"]) == 2 for row in response.data["results"])
        counts.append(len(queries))
    assert counts[0] == counts[1]
