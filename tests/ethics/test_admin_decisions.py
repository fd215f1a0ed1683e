"""Decisions are read-only in the admin; the stored Chinese letter and an English rendering are downloadable."""

import hashlib

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from ethics import services
from ethics.models import Decision, SubmissionEvent
from tests.factories.cgtclinic import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decision(routed, office, committee):
    submission = routed("expedited")
    assignment = services.reviewer_assign(
        submission=submission, actor=office, member=committee.members.order_by("id").first()
    )
    services.opinion_record(assignment=assignment, actor=office, opinion="approve")
    return services.decision_record(submission=submission, actor=office, outcome="approve")


def letter_url(decision):
    return reverse("admin:ethics_decision_letter", args=[decision.pk])


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_decision_page_is_read_only_with_letter_links(client, office, decision):
    client.force_login(office)
    page = client.get(reverse("admin:ethics_decision_change", args=[decision.pk]))
    content = page.content.decode()
    assert page.status_code == 200 and 'name="_save"' not in content
    assert letter_url(decision) in content and f"{letter_url(decision)}?language=en" in content
    assert decision.letter_sha256 in content
    listing = client.get(reverse("admin:ethics_decision_changelist"), {"q": decision.letter_sha256})
    assert decision.letter_number in listing.content.decode()


def test_chinese_download_is_the_stored_letter(client, office, decision):
    client.force_login(office)
    response = client.get(letter_url(decision))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    data = body(response)
    assert hashlib.sha256(data).hexdigest() == decision.letter_sha256


def test_english_rendering_is_made_on_demand_and_not_stored(client, research_office, decision):
    client.force_login(research_office)
    response = client.get(letter_url(decision), {"language": "en"})
    assert response.status_code == 200
    data = body(response)
    assert data.startswith(b"%PDF") and hashlib.sha256(data).hexdigest() != decision.letter_sha256
    assert "-en.pdf" in response["Content-Disposition"]
    decision.refresh_from_db()
    assert hashlib.sha256(decision.letter_file.read()).hexdigest() == decision.letter_sha256
    assert SubmissionEvent.objects.filter(kind=SubmissionEvent.Kind.LETTER_ISSUED).count() == 1
    assert client.get(letter_url(decision), {"language": "fr"}).status_code == 400
    assert client.get(letter_url(decision), {"lang": "en"}).status_code == 400  # one spelling: language


def test_another_institution_cannot_download_the_letter(client, decision):
    for role in (Role.ETHICS_OFFICE, Role.RESEARCH_OFFICE):
        client.force_login(UserFactory(role=role))
        assert client.get(letter_url(decision)).status_code == 404
        assert client.get(reverse("admin:ethics_decision_change", args=[decision.pk])).status_code in (302, 404)


def test_pi_is_sent_to_the_login_page(client, decision):
    client.force_login(decision.submission.trial.pi)
    response = client.get(letter_url(decision))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_nobody_adds_or_edits_decisions_in_the_admin(client, office, decision):
    client.force_login(office)
    assert client.get(reverse("admin:ethics_decision_add")).status_code == 403
    response = client.post(reverse("admin:ethics_decision_change", args=[decision.pk]), {"outcome": "disapprove"})
    assert response.status_code == 403
    assert Decision.objects.get().outcome == "approve"
