"""The research office's claims in the admin: opening a claim, the proposed lines with their reasons and capped
amounts, the draft's steps (each through its service), submission freezing the figures, and who may do what."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from cgtclinic.roles import Role
from subsidies import exports, rules, services
from subsidies.models import Claim, ClaimLine
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.subsidies import CLAIM_YEAR, completed_gene_trial, fixed_program, insurance_program, policy_value
from trials import enrolment
from trials.models import Trial

pytestmark = pytest.mark.django_db
YEAR = CLAIM_YEAR


@pytest.fixture(autouse=True)
def english(client):
    """Refusals are asserted by their English text; the Chinese page is asked for explicitly where it matters."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def change_url(claim):
    return reverse("admin:subsidies_claim_change", args=[claim.pk])


def step_url(claim, step):
    return reverse("admin:subsidies_claim_step", args=[claim.pk, step])


def line_of(claim, trial) -> ClaimLine:
    return claim.lines.get(trial=trial)


def test_research_office_opens_a_claim_and_sees_eligible_and_ineligible_lines(
    client, research_office, trials, program, region
):
    client.force_login(research_office)
    form_page = client.get(reverse("admin:subsidies_claim_add"))
    assert form_page.status_code == 200
    assert list(form_page.context["form"].fields["program"].queryset) == [program]
    assert YEAR in [year for year, _label in form_page.context["form"].fields["year"].choices]

    response = client.post(reverse("admin:subsidies_claim_add"), {"program": program.pk, "year": YEAR})
    assert response.status_code == 302
    claim = Claim.objects.get()
    assert response["Location"] == change_url(claim)
    assert (claim.institution, claim.status, claim.opened_by) == (research_office.institution, "draft", research_office)

    page = client.get(change_url(claim), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    rate, cap = policy_value("subsidy_per_patient_rmb", region), policy_value("subsidy_project_cap_rmb", region)
    small, large, cart = (line_of(claim, trials[key]) for key in ("small", "large", "cart"))
    assert (small.status, large.status, cart.status) == ("eligible", "eligible", "ineligible")
    assert small.amount_computed == rate * 3 and large.amount_computed == cap
    for line in (small, large, cart):
        assert line.trial.protocol_number in page
    # The capped amount with how it was reached, the ineligible line with its reason, and the totals.
    assert exports.rmb(cap) in page
    for step in large.explanation:
        assert escape(rules.describe_step(step)) in page
    assert any(step["code"] == "project_cap" for step in large.explanation)
    assert escape(cart.ineligible_reasons[0]["zh-hans"]) in page
    assert exports.rmb(claim.amount_claimed) in page and claim.amount_claimed == rate * 3 + cap
    year_cap = policy_value("subsidy_institution_year_cap_rmb", region)
    assert exports.rmb(year_cap - claim.amount_claimed) in page
    # Counts are shown, never offered as inputs.
    assert 'name="enrolled_total"' not in page and 'name="_save"' not in page


def test_the_page_shows_the_reasons_in_the_interface_language(client, research_office, claim, trials):
    client.force_login(research_office)
    page = client.get(change_url(claim)).content.decode()
    cart = line_of(claim, trials["cart"])
    assert escape(cart.ineligible_reasons[0]["en"]) in page


def test_a_system_administrator_opens_a_claim_for_a_hospital(client, system_admin, institution, trials, program):
    client.force_login(system_admin)
    response = client.post(
        reverse("admin:subsidies_claim_add"), {"institution": institution.pk, "program": program.pk, "year": YEAR}
    )
    assert response.status_code == 302
    claim = Claim.objects.get()
    assert (claim.institution, claim.opened_by) == (institution, system_admin)
    # A hospital outside the program's region is refused by the service.
    elsewhere = InstitutionFactory()
    response = client.post(
        reverse("admin:subsidies_claim_add"), {"institution": elsewhere.pk, "program": program.pk, "year": YEAR}
    )
    assert response.status_code == 200 and response.context["form"].errors["program"]


def test_open_claim_form_offers_only_programs_of_the_hospitals_region(client, research_office, program):
    elsewhere = insurance_program(InstitutionFactory().region)
    client.force_login(research_office)
    response = client.post(reverse("admin:subsidies_claim_add"), {"program": elsewhere.pk, "year": YEAR})
    assert response.status_code == 200
    assert response.context["form"].errors["program"]
    assert not Claim.objects.exists()


def test_a_second_open_claim_is_refused_with_the_services_message(client, research_office, claim, program):
    client.force_login(research_office)
    response = client.post(reverse("admin:subsidies_claim_add"), {"program": program.pk, "year": YEAR - 1})
    assert response.status_code == 200
    assert "already has an open claim" in str(response.context["form"].non_field_errors())
    assert Claim.objects.count() == 1


def test_exclude_and_include_a_line_go_through_the_services(client, research_office, claim, trials, region):
    small = line_of(claim, trials["small"])
    client.force_login(research_office)
    page = client.get(change_url(claim)).content.decode()
    exclude = reverse("admin:subsidies_claim_line_exclude", args=[claim.pk, small.pk])
    assert exclude in page

    assert client.get(exclude).status_code == 200
    response = client.post(exclude, {"reason": "该项目已获其他财政资助"})
    assert response.status_code == 302
    small.refresh_from_db()
    claim.refresh_from_db()
    assert (small.status, small.excluded_reason, small.excluded_by) == (
        "excluded",
        "该项目已获其他财政资助",
        research_office,
    )
    assert claim.amount_claimed == policy_value("subsidy_project_cap_rmb", region)
    page = client.get(change_url(claim)).content.decode()
    assert "该项目已获其他财政资助" in page

    # Excluding it twice is refused by the service, and the refusal is shown.
    response = client.post(exclude, {"reason": "again"})
    assert response.status_code == 200
    assert "already excluded" in str(response.context["form"].non_field_errors())

    include = reverse("admin:subsidies_claim_line_include", args=[claim.pk, small.pk])
    assert include in page
    assert client.post(include).status_code == 302
    small.refresh_from_db()
    assert small.status == "eligible" and small.excluded_reason == ""


def test_exclusion_needs_a_reason(client, research_office, claim, trials):
    small = line_of(claim, trials["small"])
    client.force_login(research_office)
    response = client.post(reverse("admin:subsidies_claim_line_exclude", args=[claim.pk, small.pk]), {"reason": " "})
    assert response.status_code == 200
    assert response.context["form"].errors
    small.refresh_from_db()
    assert small.status == "eligible"


def test_including_a_line_that_is_not_excluded_is_refused(client, research_office, claim, trials):
    small = line_of(claim, trials["small"])
    client.force_login(research_office)
    response = client.post(reverse("admin:subsidies_claim_line_include", args=[claim.pk, small.pk]))
    assert response.status_code == 200
    assert "not excluded" in str(response.context["form"].non_field_errors())


def test_a_line_of_another_claim_is_not_found(client, research_office, claim, program, region):
    other = services.claim_open(actor=research_office, program=insurance_program(region), year=YEAR)
    line = claim.lines.first()
    client.force_login(research_office)
    url = reverse("admin:subsidies_claim_line_exclude", args=[other.pk, line.pk])
    assert client.post(url, {"reason": "x"}).status_code == 404


def test_recompute_reads_new_enrolment(client, research_office, claim, trials, region):
    small = line_of(claim, trials["small"])
    enrolment.enrolment_report(
        site=small.site, actor=research_office, kind="enrolled", occurred_on=datetime.date(2024, 6, 1), count=2
    )
    client.force_login(research_office)
    assert client.get(step_url(claim, "recompute")).status_code == 200
    assert client.post(step_url(claim, "recompute")).status_code == 302
    small.refresh_from_db()
    assert (small.enrolled_total, small.patients_claimed) == (5, 5)
    assert small.amount_computed == policy_value("subsidy_per_patient_rmb", region) * 5


def test_submit_freezes_the_claim_against_later_ledger_changes(client, research_office, claim, trials):
    client.force_login(research_office)
    confirm = client.get(step_url(claim, "submit")).content.decode()
    assert "freezes" in confirm and exports.rmb(claim.amount_claimed) in confirm

    assert client.post(step_url(claim, "submit")).status_code == 302
    claim.refresh_from_db()
    assert claim.status == "submitted" and claim.snapshot and claim.submitted_by == research_office
    before = client.get(change_url(claim)).content.decode()
    small = line_of(claim, trials["small"])
    amount = claim.amount_claimed

    enrolment.enrolment_report(
        site=small.site, actor=research_office, kind="enrolled", occurred_on=datetime.date(2024, 6, 1), count=2
    )
    # The draft's steps are gone, and a recompute posted anyway is refused by the service.
    page = client.get(change_url(claim)).content.decode()
    assert step_url(claim, "recompute") not in page
    assert reverse("admin:subsidies_claim_line_exclude", args=[claim.pk, small.pk]) not in page
    response = client.post(step_url(claim, "recompute"))
    assert response.status_code == 200
    assert "frozen" in str(response.context["form"].non_field_errors())

    claim.refresh_from_db()
    small.refresh_from_db()
    assert claim.amount_claimed == amount and small.enrolled_total == 3
    figures = exports.claim_figures(claim)
    assert figures.frozen and figures.amount_claimed == amount
    assert next(line for line in figures.lines if line.line_id == small.pk).enrolled_total == 3
    assert page.count(exports.rmb(amount)) == before.count(exports.rmb(amount))


def test_submission_without_an_eligible_line_is_refused_with_the_message(client, research_office, institution, program):
    completed_gene_trial(
        institution,
        enrolled=2,
        actor=research_office,
        therapy_category=Trial.TherapyCategory.STEM_CELL,
    )
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    client.force_login(research_office)
    response = client.post(step_url(claim, "submit"))
    assert response.status_code == 200
    assert "no eligible line" in str(response.context["form"].non_field_errors())
    claim.refresh_from_db()
    assert claim.status == "draft" and claim.snapshot is None


def test_submission_of_a_fixed_program_without_its_amount_is_refused(client, research_office, institution, region):
    completed_gene_trial(institution, enrolled=2, actor=research_office)
    claim = services.claim_open(actor=research_office, program=fixed_program(region), year=YEAR)
    client.force_login(research_office)
    response = client.post(step_url(claim, "submit"))
    assert "not yet set the amount" in str(response.context["form"].non_field_errors())
    assert Claim.objects.get(pk=claim.pk).status == "draft"


def test_discard_deletes_the_draft_only(client, research_office, claim):
    client.force_login(research_office)
    response = client.post(step_url(claim, "discard"))
    assert response.status_code == 302 and response["Location"] == reverse("admin:subsidies_claim_changelist")
    assert not Claim.objects.filter(pk=claim.pk).exists()


def test_a_submitted_claim_cannot_be_discarded(client, research_office, claim):
    services.claim_submit(claim=claim, actor=research_office)
    client.force_login(research_office)
    response = client.post(step_url(claim, "discard"))
    assert response.status_code == 200
    assert "Only a draft" in str(response.context["form"].non_field_errors())
    assert Claim.objects.filter(pk=claim.pk).exists()


def test_an_unknown_step_is_not_found(client, research_office, claim):
    client.force_login(research_office)
    assert client.post(step_url(claim, "approve")).status_code == 404


def test_decided_claim_shows_approved_amounts_reasons_history_and_payment(
    client, research_office, claim, trials, regulator_user
):
    services.claim_submit(claim=claim, actor=research_office)
    services.claim_start_review(claim=claim, actor=regulator_user)
    large = line_of(claim, trials["large"])
    lowered = large.amount_computed - policy_value("subsidy_per_patient_rmb", claim.program.region)
    services.claim_decide(
        claim=claim,
        actor=regulator_user,
        decision="partially_approve",
        note="部分核准",
        adjustments={large.pk: {"amount": str(lowered), "reason": "一例受试者知情同意书缺失"}},
    )
    claim.refresh_from_db()
    services.claim_pay(
        claim=claim,
        actor=regulator_user,
        amount=claim.amount_approved,
        paid_on=timezone.localdate(),
        payment_reference="SH-2026-0001",
    )
    client.force_login(research_office)
    page = client.get(change_url(claim)).content.decode()
    claim.refresh_from_db()
    assert exports.rmb(lowered) in page and "一例受试者知情同意书缺失" in page
    assert exports.rmb(claim.amount_approved) in page and "SH-2026-0001" in page
    assert "部分核准" in page
    # The status history: draft → submitted → under review → partially approved → paid.
    assert claim.status_changes.count() == 4
    assert page.count(str(Claim.Status.UNDER_REVIEW.label)) >= 1


def test_cost_items_for_a_percentage_program(client, research_office, institution, region, trials):
    program = insurance_program(region)
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    client.force_login(research_office)
    page = client.get(change_url(claim)).content.decode()
    add = reverse("admin:subsidies_claim_cost_item_add", args=[claim.pk])
    assert add in page

    item_cap = policy_value("insurance_premium_subsidy_cap_rmb", region)
    percent = policy_value("insurance_premium_subsidy_percent", region)
    premium = (item_cap * 100 / percent + 1000).quantize(rules.FEN)
    response = client.post(
        add, {"trial": trials["small"].pk, "item_reference": "PICC-2024-88", "cost_rmb": str(premium)}
    )
    assert response.status_code == 302
    line = claim.lines.get(item_reference="PICC-2024-88")
    assert line.cost_rmb == premium and line.amount_computed == item_cap

    # The same policy number again is refused by the service, shown on the field.
    response = client.post(
        add, {"trial": trials["small"].pk, "item_reference": "PICC-2024-88", "cost_rmb": str(premium)}
    )
    assert response.status_code == 200 and response.context["form"].errors["item_reference"]
    # A trial the hospital is no site of is not offered.
    foreign = completed_gene_trial(InstitutionFactory(region=region), enrolled=0, actor=None)
    response = client.post(add, {"trial": foreign.pk, "item_reference": "PICC-2024-89", "cost_rmb": "100.00"})
    assert response.status_code == 200 and response.context["form"].errors["trial"]


def test_cost_item_on_a_per_patient_program_is_refused(client, research_office, claim, trials):
    client.force_login(research_office)
    response = client.post(
        reverse("admin:subsidies_claim_cost_item_add", args=[claim.pk]),
        {"trial": trials["small"].pk, "item_reference": "PICC-1", "cost_rmb": "100.00"},
    )
    assert response.status_code == 200
    assert "pays by enrolment" in str(response.context["form"].non_field_errors())


# --- who may do what -------------------------------------------------------------------------------------------------


def test_another_hospitals_research_office_does_not_find_the_claim(client, claim, trials):
    stranger = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=claim.program.region))
    client.force_login(stranger)
    small = line_of(claim, trials["small"])
    for url in (
        change_url(claim),
        step_url(claim, "submit"),
        reverse("admin:subsidies_claim_line_exclude", args=[claim.pk, small.pk]),
        reverse("admin:subsidies_claim_workbook", args=[claim.pk]),
        reverse("admin:subsidies_claim_cover_letter", args=[claim.pk]),
        reverse("admin:subsidies_claim_history", args=[claim.pk]),
    ):
        assert client.get(url).status_code in (302, 404), url
        if url != change_url(claim):
            assert client.post(url, {"reason": "x"}).status_code == 404, url
    assert claim.reference not in client.get(reverse("admin:subsidies_claim_changelist")).content.decode()
    assert Claim.objects.get(pk=claim.pk).status == "draft"


def test_ethics_office_cannot_see_or_change_claims(client, ethics_office, claim, trials):
    client.force_login(ethics_office)
    small = line_of(claim, trials["small"])
    assert client.get(reverse("admin:subsidies_claim_changelist")).status_code == 403
    assert client.get(reverse("admin:subsidies_claim_add")).status_code == 403
    assert client.get(change_url(claim)).status_code == 403
    for url in (
        step_url(claim, "submit"),
        step_url(claim, "discard"),
        reverse("admin:subsidies_claim_line_exclude", args=[claim.pk, small.pk]),
        reverse("admin:subsidies_claim_workbook", args=[claim.pk]),
    ):
        assert client.post(url, {"reason": "x"}).status_code == 403, url
    assert Claim.objects.get(pk=claim.pk).status == "draft"
    assert line_of(claim, trials["small"]).status == "eligible"


@pytest.mark.parametrize("role", [Role.PI, Role.REGULATOR])
def test_pis_and_regulators_have_no_claims_admin(client, role, claim, pi, regulator_user):
    client.force_login(pi if role == Role.PI else regulator_user)
    for url in (reverse("admin:subsidies_claim_changelist"), change_url(claim), step_url(claim, "submit")):
        response = client.post(url) if "step" in url else client.get(url)
        assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    assert Claim.objects.get(pk=claim.pk).status == "draft"


def test_the_model_form_save_and_delete_are_not_offered(client, research_office, claim):
    client.force_login(research_office)
    response = client.post(change_url(claim), {"year": YEAR - 1})
    assert response.status_code == 403
    assert client.post(reverse("admin:subsidies_claim_delete", args=[claim.pk]), {"post": "yes"}).status_code == 403
    claim.refresh_from_db()
    assert claim.year == YEAR


def test_programs_are_read_only_with_their_values_and_sources(client, research_office, program, region):
    client.force_login(research_office)
    page = client.get(reverse("admin:subsidies_subsidyprogram_change", args=[program.pk])).content.decode()
    assert program.source_clause in page
    assert exports.rmb(policy_value("subsidy_per_patient_rmb", region)) in page
    assert "subsidy_institution_year_cap_rmb" in page
    assert 'name="_save"' not in page
    response = client.post(reverse("admin:subsidies_subsidyprogram_change", args=[program.pk]), {"code": "x"})
    assert response.status_code == 403
    assert client.get(reverse("admin:subsidies_subsidyprogram_add")).status_code == 403


@pytest.mark.parametrize("size", [2, 12])
def test_claim_list_queries_do_not_grow_with_rows(
    client, research_office, program, size, django_assert_max_num_queries
):
    now = timezone.now()
    for year in range(2023, 2023 + size):
        # Decided claims of past years (only one claim per hospital and program may be open).
        Claim.objects.create(
            institution=research_office.institution,
            program=program,
            year=year,
            status=Claim.Status.PAID,
            reference_date=datetime.date(year, 12, 31),
            opened_by=research_office,
            opened_at=now,
        )
    client.force_login(research_office)
    # 8 for the list, 1 for the unread count in the header (cgtclinic.context_processors).
    with django_assert_max_num_queries(9):
        response = client.get(reverse("admin:subsidies_claim_changelist"))
    assert len(response.context["cl"].result_list) == size


def test_claim_list_is_searchable_by_protocol_number(client, research_office, claim, trials):
    client.force_login(research_office)
    response = client.get(reverse("admin:subsidies_claim_changelist"), {"q": trials["cart"].protocol_number})
    assert [found.pk for found in response.context["cl"].result_list] == [claim.pk]
    assert reverse("admin:subsidies_claim_add") in response.content.decode()


def test_claim_search_finds_by_reference_hospital_program_and_each_trial_once(
    client, research_office, system_admin, claim, trials, program, django_assert_max_num_queries
):
    """Search looks the term up in the hospitals, programs and trials first and filters the claims by their keys: a
    claim with several matching lines is listed once, and its reference as the list shows it finds it."""
    url = reverse("admin:subsidies_claim_changelist")

    def found(term):
        return [row.pk for row in client.get(url, {"q": term}).context["cl"].result_list]

    for viewer in (research_office, system_admin):
        client.force_login(viewer)
        assert found(claim.reference) == [claim.pk]
        assert found(f"{claim.year + 1}-{claim.pk:05d}") == []
        assert found(claim.institution.name_zh) == [claim.pk]
        assert found(program.code) == [claim.pk]
        # Every line's trial matches "-2024-": the claim still shows once.
        assert found("-2024-") == [claim.pk]
        assert found("no such thing") == []
        with django_assert_max_num_queries(14):
            client.get(url, {"q": trials["small"].protocol_number})


def test_claim_search_takes_any_term_without_an_error(client, research_office, claim):
    client.force_login(research_office)
    url = reverse("admin:subsidies_claim_changelist")
    for term in ("a\x00b", "%", "_", "2025-" + "9" * 40, "x" * 5000):
        response = client.get(url, {"q": term})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) in ([], [claim])
    assert list(client.get(url, {"q": "%"}).context["cl"].result_list) == []
