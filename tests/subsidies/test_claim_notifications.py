"""Who is told about a claim: its submission the regulators of the program's region (API link), its decision and
payment the claiming hospital's research office (admin link); once each, in each person's language."""

import pytest
from django.urls import reverse
from django.utils import timezone

from cgtclinic.models import Notification
from cgtclinic.roles import Role
from subsidies import services
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(institution, research_office, regulator, regulator_user):
    """Who should and should not hear of the hospital's claim."""
    return {
        "offices": {research_office, UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, language="en")},
        "regulators": {regulator, regulator_user},
        "bystanders": {
            UserFactory(role=Role.ETHICS_OFFICE, institution=institution),
            UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=institution.region)),
            UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere")),
            UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, is_active=False),
        },
    }


def told(topic: str) -> dict:
    return {n.recipient: n for n in Notification.objects.filter(topic=topic).select_related("recipient")}


def test_a_submitted_claim_is_told_to_the_regions_regulators_with_the_api_link(claim, research_office, audience):
    services.claim_submit(claim=claim, actor=research_office)
    notes = told("claim.submitted")
    assert set(notes) == audience["regulators"]
    for note in notes.values():
        assert note.link == reverse("claims-detail", args=[claim.pk])
        assert claim.reference in note.subject
        assert note.event_key == f"claim:{claim.pk}"


def decided(claim, research_office, regulator_user, decision, **kwargs):
    services.claim_submit(claim=claim, actor=research_office)
    services.claim_start_review(claim=claim, actor=regulator_user)
    return services.claim_decide(claim=claim, actor=regulator_user, decision=decision, **kwargs)


def test_an_approval_is_told_to_the_hospitals_research_office(claim, research_office, regulator_user, audience):
    decided(claim, research_office, regulator_user, services.APPROVE)
    notes = told("claim.decided")
    assert set(notes) == audience["offices"]
    for note in notes.values():
        assert note.link == reverse("admin:subsidies_claim_change", args=[claim.pk])
    (english,) = [n for person, n in notes.items() if person.language == "en"]
    assert english.subject.startswith(f"Subsidy claim {claim.reference} approved")


def test_a_partial_approval_names_the_lowered_lines_and_their_reasons(claim, research_office, regulator_user, audience):
    services.claim_submit(claim=claim, actor=research_office)
    lines = list(claim.lines.filter(status="eligible").select_related("trial").order_by("pk"))
    lowered, kept = lines[0], lines[1]
    decided_claim = services.claim_decide(
        claim=services.claim_start_review(claim=claim, actor=regulator_user),
        actor=regulator_user,
        decision=services.PARTIAL,
        adjustments={lowered.pk: {"amount": "1000.00", "reason": "two invoices are missing"}},
    )
    notes = told("claim.decided")
    assert set(notes) == audience["offices"]
    (english,) = [n for person, n in notes.items() if person.language == "en"]
    (chinese,) = [n for person, n in notes.items() if person.language != "en"]
    assert "partially approved" in english.subject
    assert lowered.trial.protocol_number in english.body
    assert "two invoices are missing" in english.body and "1,000.00" in english.body
    assert kept.trial.protocol_number not in english.body  # only the lines approved at less
    assert f"{decided_claim.amount_approved:,.2f}" in english.subject
    assert "部分" in chinese.subject and "partially approved" not in chinese.subject
    assert "two invoices are missing" in chinese.body  # the regulator's own words, in both


def test_a_rejection_gives_the_reason(claim, research_office, regulator_user, audience):
    decided(claim, research_office, regulator_user, services.REJECT, note="The trials started before the program.")
    notes = told("claim.decided")
    assert set(notes) == audience["offices"]
    assert all("The trials started before the program." in n.body for n in notes.values())


def test_a_payment_is_told_to_the_research_office_once(claim, research_office, regulator_user, audience):
    approved = decided(claim, research_office, regulator_user, services.APPROVE)
    services.claim_pay(
        claim=approved,
        actor=regulator_user,
        amount=approved.amount_approved,
        paid_on=timezone.localdate(),
        payment_reference="TRX-0042",
    )
    notes = told("claim.paid")
    assert set(notes) == audience["offices"]
    assert all("TRX-0042" in n.body for n in notes.values())
    # Each person heard of each event once, and nobody else heard anything.
    everyone = Notification.objects.filter(topic__startswith="claim.")
    assert everyone.count() == len(audience["regulators"]) + 2 * len(audience["offices"])
    assert not everyone.filter(recipient__in=audience["bystanders"]).exists()


def test_a_refused_step_tells_no_one(claim, regulator_user, audience):
    with pytest.raises(services.DomainError):
        services.claim_submit(claim=claim, actor=regulator_user)
    assert not Notification.objects.exists()
