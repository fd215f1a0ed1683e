"""A claim is paid in one or more payments: less than the balance leaves it partly paid with the rest owed; the
balance closes it; more than the balance is refused. Each payment is a row (who, when, amount, reference), shown in
the admin, the API, the workbook and the regulator's report, and told to the hospital's office."""

import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from cgtclinic.errors import DomainError
from cgtclinic.models import Notification
from subsidies import exports, services
from subsidies.models import Claim, ClaimPayment, ClaimStatusChange
from tests.factories.subsidies import CLAIM_YEAR
from tests.reports.helpers import report

C = Claim.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def approved(claim, research_office, regulator_user):
    services.claim_submit(claim=claim, actor=research_office)
    services.claim_start_review(claim=claim, actor=regulator_user)
    return services.claim_decide(claim=claim, actor=regulator_user, decision=services.APPROVE)


def pay(claim, actor, amount, reference=""):
    return services.claim_pay(
        claim=claim, actor=actor, amount=str(amount), paid_on=timezone.localdate(), payment_reference=reference
    )


def test_a_payment_below_the_approved_amount_leaves_the_claim_partly_paid(approved, regulator_user):
    approved_amount = approved.amount_approved
    first = (approved_amount / 4).quantize(Decimal("0.01"))

    claim = pay(approved, regulator_user, first, "BANK-1")

    assert (claim.status, claim.amount_paid, claim.balance) == (C.PARTIALLY_PAID, first, approved_amount - first)
    (payment,) = ClaimPayment.objects.filter(claim=claim)
    assert (payment.amount, payment.reference, payment.recorded_by, payment.balance_after) == (
        first,
        "BANK-1",
        regulator_user,
        approved_amount - first,
    )
    change = ClaimStatusChange.objects.filter(claim=claim).last()
    assert (change.from_status, change.to_status) == (C.APPROVED, C.PARTIALLY_PAID)
    assert services.available_steps(claim, regulator_user) == ["pay", "pay_part"]


def test_a_later_payment_of_the_balance_closes_it(approved, regulator_user):
    first = (approved.amount_approved / 4).quantize(Decimal("0.01"))
    claim = pay(approved, regulator_user, first, "BANK-1")
    claim = pay(claim, regulator_user, claim.balance, "BANK-2")

    assert (claim.status, claim.amount_paid, claim.balance) == (C.PAID, approved.amount_approved, 0)
    assert [p.reference for p in ClaimPayment.objects.filter(claim=claim)] == ["BANK-1", "BANK-2"]
    assert services.available_steps(claim, regulator_user) == []
    with pytest.raises(DomainError) as refused:
        pay(claim, regulator_user, "1.00")
    assert refused.value.code == "transition_not_allowed"


def test_an_overpayment_is_refused_with_the_balance(approved, regulator_user):
    first = (approved.amount_approved / 2).quantize(Decimal("0.01"))
    claim = pay(approved, regulator_user, first)
    with translation.override("en"), pytest.raises(DomainError) as refused:
        pay(claim, regulator_user, claim.balance + Decimal("0.01"))
    assert (refused.value.code, refused.value.field) == ("overpayment", "amount")
    assert f"{claim.balance:,.2f} RMB still owed" in str(refused.value.message)
    claim.refresh_from_db()
    assert (claim.status, ClaimPayment.objects.filter(claim=claim).count()) == (C.PARTIALLY_PAID, 1)


def test_a_partly_paid_claim_still_counts_its_patients_and_amount(approved, regulator_user, research_office, program):
    claim = pay(approved, regulator_user, "1.00")
    assert claim.status in Claim.COUNTING_STATUSES
    # A partly paid claim is not open: the hospital may open its next claim, which takes none of these patients.
    nxt = services.claim_open(actor=research_office, program=program, year=claim.year + 1)
    assert all(line.patients_claimed == 0 for line in nxt.lines.all())


def test_each_payment_is_told_to_the_office_once(approved, regulator_user, research_office):
    first = (approved.amount_approved / 2).quantize(Decimal("0.01"))
    claim = pay(approved, regulator_user, first)
    pay(claim, regulator_user, claim.balance)
    notes = Notification.objects.filter(topic="claim.paid", recipient=research_office).order_by("pk")
    assert notes.count() == 2
    assert "部分拨付" in notes[0].subject and claim.reference in notes[0].subject
    assert "部分拨付" not in notes[1].subject


def test_the_api_shows_the_balance_and_the_payments(approved, regulator_user, research_office):
    first = (approved.amount_approved / 4).quantize(Decimal("0.01"))
    client = APIClient()
    client.force_authenticate(regulator_user)
    url = reverse("claims-pay", args=[approved.pk])
    response = client.post(url, {"amount": str(first), "paid_on": timezone.localdate().isoformat()}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], Decimal(data["balance"])) == (C.PARTIALLY_PAID, approved.amount_approved - first)
    assert [Decimal(p["amount"]) for p in data["payments"]] == [first]
    assert data["payments"][0]["recorded_by_name"] == regulator_user.full_name
    too_much = str(approved.amount_approved)
    response = client.post(url, {"amount": too_much, "paid_on": timezone.localdate().isoformat()}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "overpayment")
    office = APIClient()
    office.force_authenticate(research_office)
    assert Decimal(office.get(reverse("claims-detail", args=[approved.pk])).json()["balance"]) == (
        approved.amount_approved - first
    )


def test_the_admin_and_the_workbook_show_the_balance_and_each_payment(
    approved, regulator_user, research_office, client
):
    from openpyxl import load_workbook

    first = (approved.amount_approved / 4).quantize(Decimal("0.01"))
    pay(approved, regulator_user, first, "BANK-1")
    client.force_login(research_office)
    page = client.get(reverse("admin:subsidies_claim_change", args=[approved.pk]), HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert "Balance owed (RMB)" in text and exports.rmb(approved.amount_approved - first) in text
    assert "BANK-1" in text

    book = load_workbook(io.BytesIO(exports.claim_workbook(approved, "en")))
    rows = list(book["Payments"].iter_rows(values_only=True))
    assert rows[1][1:4] == (first, "BANK-1", approved.amount_approved - first)
    summary = dict(row[:2] for row in book["Summary"].iter_rows(values_only=True))
    assert summary["Balance owed (RMB)"] == approved.amount_approved - first


def test_the_regulators_report_shows_what_is_owed(approved, regulator_user):
    first = (approved.amount_approved / 4).quantize(Decimal("0.01"))
    pay(approved, regulator_user, first)
    data = report(regulator_user, "subsidies")
    (row,) = data["rows"]
    assert (row["claims_partially_paid"], Decimal(str(row["amount_owed"]))) == (1, approved.amount_approved - first)
    assert Decimal(str(data["summary"]["amount_owed"])) == approved.amount_approved - first


@pytest.mark.parametrize("size", [1, 2])
def test_the_claims_list_reads_payments_without_a_query_per_claim(
    size, research_office, regulator_user, program, django_assert_max_num_queries
):
    import datetime

    from tests.factories.subsidies import completed_gene_trial

    for year in range(CLAIM_YEAR, CLAIM_YEAR + size):
        completed_gene_trial(research_office.institution, enrolled=1, actor=research_office)
        claim = services.claim_open(actor=research_office, program=program, year=year)
        services.claim_submit(claim=claim, actor=research_office)
        services.claim_start_review(claim=claim, actor=regulator_user)
        claim = services.claim_decide(claim=claim, actor=regulator_user, decision=services.APPROVE)
        pay(claim, regulator_user, "1.00", f"BANK-{year}")
    client = APIClient()
    client.force_authenticate(regulator_user)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("claims-list"))
    rows = response.json()["results"]
    assert len(rows) == size
    assert all(len(row["payments"]) == 1 and row["status"] == C.PARTIALLY_PAID for row in rows)
    assert datetime.date.fromisoformat(rows[0]["payments"][0]["paid_on"]) == timezone.localdate()


def test_the_cover_letter_lists_each_payment_and_the_balance(approved, regulator_user):
    from tests.subsidies.test_exports_claims import pdf_text

    first = (approved.amount_approved / 4).quantize(Decimal("0.01"))
    pay(approved, regulator_user, first, "BANK-1")
    text = pdf_text(exports.claim_cover_letter_pdf(approved, "en"))
    assert "Partlypaid" in text
    assert "Payment1(RMB)" in text and "BANK-1" in text
    assert f"Balanceowed(RMB){exports.rmb(approved.amount_approved - first)}" in text
    assert "待拨付余额" in pdf_text(exports.claim_cover_letter_pdf(approved, "zh-hans"))


def test_a_partly_paid_claim_stays_in_the_regulators_queue_with_its_balance(approved, regulator_user):
    from subsidies import selectors

    first = (approved.amount_approved / 4).quantize(Decimal("0.01"))
    pay(approved, regulator_user, first)
    with translation.override("en"):
        (to_pay,) = [s for s in selectors.regulator_work(regulator_user) if s.kind == "claim.pay"]
    (item,) = to_pay.items
    assert approved.reference in item.title
    assert item.detail == f"Partly paid, {approved.amount_approved - first:,.2f} RMB owed"
    pay(Claim.objects.get(pk=approved.pk), regulator_user, approved.amount_approved - first)
    (to_pay,) = [s for s in selectors.regulator_work(regulator_user) if s.kind == "claim.pay"]
    assert to_pay.count == 0
