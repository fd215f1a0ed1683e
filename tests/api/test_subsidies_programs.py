"""Subsidy programs through the API: who sees which, the policy values and rules they carry, filters, the
regulator setting a fixed amount, and query counts."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from subsidies.models import EligibilityRule, SubsidyProgram
from tests.factories.cgtclinic import RegionFactory, UserFactory
from tests.factories.subsidies import (
    EligibilityRuleFactory,
    SubsidyProgramFactory,
    fixed_program,
    insurance_program,
    shanghai_program,
)

FIXED_AMOUNT = Decimal("200000.00")  # what a regulator might set; Beijing's text names no amount


@pytest.fixture
def programs(region):
    elsewhere = RegionFactory(code="elsewhere")
    return {
        "per_patient": shanghai_program(region),
        "insurance": insurance_program(region),
        "fixed": fixed_program(region),
        "elsewhere": fixed_program(elsewhere),
    }


def client_for(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def ids(response) -> set[int]:
    return {row["id"] for row in response.data["results"]}


def test_hospital_staff_see_every_program_a_regulator_only_its_regions(
    api_client, programs, research_office, regulator
):
    response = client_for(api_client, research_office).get("/api/v1/subsidy-programs/")
    assert response.status_code == 200
    assert ids(response) == {p.pk for p in programs.values()}
    response = client_for(api_client, regulator).get("/api/v1/subsidy-programs/")
    assert ids(response) == {programs[k].pk for k in ("per_patient", "insurance", "fixed")}
    assert (
        client_for(api_client, regulator).get(f"/api/v1/subsidy-programs/{programs['elsewhere'].pk}/").status_code
        == 404
    )


@pytest.mark.parametrize("role", ["ethics_office", "pi"])
def test_roles_without_subsidy_work_are_refused(role, request, api_client, programs):
    response = client_for(api_client, request.getfixturevalue(role)).get("/api/v1/subsidy-programs/")
    assert response.status_code == 403


def test_anonymous_is_asked_to_sign_in(api_client, programs):
    assert api_client.get("/api/v1/subsidy-programs/").status_code == 401


def test_a_program_carries_its_rules_and_the_policy_values_in_force(api_client, programs, research_office, region):
    program = programs["per_patient"]
    response = client_for(api_client, research_office).get(
        f"/api/v1/subsidy-programs/{program.pk}/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    data = response.data
    assert (data["code"], data["region_code"], data["amount_rule"]) == (program.code, region.code, "per_patient")
    assert data["name"] == program.name_en
    assert [rule["kind"] for rule in data["eligibility_rules"]] == list(
        program.eligibility_rules.values_list("kind", flat=True)
    )
    values = {row["role"]: row for row in data["policy_values"]}
    assert set(values) == {"rate", "project_cap", "institution_year_cap"}
    rate = PolicyParameter.objects.get(code="subsidy_per_patient_rmb", region=region)
    assert values["rate"] == {
        "role": "rate",
        "code": "subsidy_per_patient_rmb",
        "value": str(rate.value),
        "unit": rate.unit,
        "effective_from": rate.effective_from.isoformat(),
        "source_document": rate.source_document,
        "source_clause": rate.source_clause,
    }
    assert data["fixed_amount_rmb"] is None


def test_a_policy_value_not_in_force_reads_as_null(api_client, programs, research_office, region):
    PolicyParameter.objects.filter(code="insurance_premium_subsidy_cap_rmb", region=region).update(
        effective_to=datetime.date(2024, 1, 1)
    )
    response = client_for(api_client, research_office).get(f"/api/v1/subsidy-programs/{programs['insurance'].pk}/")
    values = {row["role"]: row["value"] for row in response.data["policy_values"]}
    assert values["item_cap"] is None
    assert values["percent"] == str(PolicyParameter.objects.get(code="insurance_premium_subsidy_percent").value)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("region=elsewhere", {"elsewhere"}),
        ("amount_rule=percent_of_cost", {"insurance"}),
        ("amount_rule=fixed_amount&region=test-region", {"fixed"}),
    ],
)
def test_filters(query, expected, api_client, programs, research_office):
    response = client_for(api_client, research_office).get(f"/api/v1/subsidy-programs/?{query}")
    assert ids(response) == {programs[key].pk for key in expected}


def test_filter_by_a_year_the_program_covers(api_client, region, research_office):
    old = shanghai_program(region, year_from=2020, year_to=2022)
    current = insurance_program(region, year_from=2023)
    client = client_for(api_client, research_office)
    assert ids(client.get("/api/v1/subsidy-programs/?year=2021")) == {old.pk}
    assert ids(client.get("/api/v1/subsidy-programs/?year=2025")) == {current.pk}


# Setting a fixed amount ---------------------------------------------------------------------------------------


def test_the_regulator_of_the_region_sets_the_fixed_amount(api_client, programs, regulator):
    program = programs["fixed"]
    response = client_for(api_client, regulator).post(
        f"/api/v1/subsidy-programs/{program.pk}/set-fixed-amount/", {"amount": str(FIXED_AMOUNT)}, format="json"
    )
    assert response.status_code == 200, response.data
    assert response.data["fixed_amount_rmb"] == str(FIXED_AMOUNT)
    assert response.data["fixed_amount_set_by_name"] == regulator.full_name
    program.refresh_from_db()
    assert (program.fixed_amount_rmb, program.fixed_amount_set_by) == (FIXED_AMOUNT, regulator)


def test_a_regulator_of_another_region_does_not_find_the_program(api_client, programs):
    outsider = UserFactory(role=Role.REGULATOR, region=programs["elsewhere"].region)
    response = client_for(api_client, outsider).post(
        f"/api/v1/subsidy-programs/{programs['fixed'].pk}/set-fixed-amount/", {"amount": "1.00"}, format="json"
    )
    assert response.status_code == 404


def test_a_research_office_may_not_set_the_amount(api_client, programs, research_office):
    response = client_for(api_client, research_office).post(
        f"/api/v1/subsidy-programs/{programs['fixed'].pk}/set-fixed-amount/", {"amount": "1.00"}, format="json"
    )
    assert (response.status_code, response.data["code"]) == (403, "permission_denied")
    assert SubsidyProgram.objects.get(pk=programs["fixed"].pk).fixed_amount_rmb is None


@pytest.mark.parametrize("role", ["ethics_office", "pi", "anonymous"])
def test_other_roles_may_not_set_the_amount(role, request, api_client, programs):
    if role != "anonymous":
        client_for(api_client, request.getfixturevalue(role))
    response = api_client.post(
        f"/api/v1/subsidy-programs/{programs['fixed'].pk}/set-fixed-amount/", {"amount": "1.00"}, format="json"
    )
    assert response.status_code == (401 if role == "anonymous" else 403)


@pytest.mark.parametrize(
    ("key", "amount", "field"),
    [("fixed", "0", "amount"), ("fixed", "ten", "amount"), ("fixed", "1.001", "amount"), ("per_patient", "1.00", None)],
)
def test_set_fixed_amount_refusals(key, amount, field, api_client, programs, regulator):
    response = client_for(api_client, regulator).post(
        f"/api/v1/subsidy-programs/{programs[key].pk}/set-fixed-amount/", {"amount": amount}, format="json"
    )
    assert response.status_code == 400
    assert field is None or field in response.data or response.data.get("field") == field
    assert SubsidyProgram.objects.get(pk=programs[key].pk).fixed_amount_rmb is None


# Query counts -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", ["research_office", "regulator"])
def test_list_queries_do_not_grow_with_programs(viewer, request, client, region, django_assert_max_num_queries):
    client.force_login(request.getfixturevalue(viewer))
    shanghai_program(region)  # the policy values and rules every further program shares
    insurance_program(region)
    counts = []
    for size in (3, 12):
        while SubsidyProgram.objects.count() < size:
            extra = SubsidyProgramFactory(region=region)
            EligibilityRuleFactory(program=extra, kind=EligibilityRule.Kind.ETHICS_APPROVAL)
        with django_assert_max_num_queries(6), CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/subsidy-programs/?page_size=100")
        assert response.status_code == 200
        assert len(response.data["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
