"""The participating ethics office opens what it judges (lead decision, letter, covered documents, contact) on the
request's admin page; nobody else does. Who is told when a request opens, is answered or is superseded; the one
transitions table."""

import hashlib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import Notification
from ethics import recognition
from ethics.models import RecognitionRequest, Submission
from tests.ethics.recognition_world import approve, build_world
from tests.factories.trials import PDF_BYTES
from trials.models import TrialDocument

R = RecognitionRequest.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def world(region):
    return build_world(region)


def page_of(client, user, request):
    client.force_login(user)
    return client.get(reverse("admin:ethics_recognitionrequest_change", args=[request.pk]))


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_lead_decision_number_on_the_request_page_opens_the_lead_letter(client, world):
    """The defect: the number linked to the decisions list, scoped to one's own committee ("审查决定 不存在")."""
    page = page_of(client, world.people["office_a"], world.request_a)
    assert page.status_code == 200
    html = page.content.decode()
    number = world.decision.letter_number
    links = re.findall(r'<a href="([^"]+)"[^>]*>' + re.escape(number) + "</a>", html)
    assert links, "the lead decision number is a link"
    for href in links:
        assert "/ethics/decision/" not in href
        followed = client.get(href)
        assert followed.status_code == 200, href
        assert followed["Content-Type"] == "application/pdf"
        assert hashlib.sha256(body(followed)).hexdigest() == world.decision.letter_sha256


def test_the_request_page_shows_the_lead_decision_documents_and_contact(client, world):
    html = page_of(client, world.people["office_a"], world.request_a).content.decode()
    decided = timezone.localtime(world.decision.decided_at).strftime("%Y-%m-%d %H:%M")
    assert decided in html  # Beijing time
    assert world.decision.get_outcome_display() in html
    assert world.decision.valid_until.strftime("%Y-%m-%d") in html
    assert world.decision.letter_sha256 in html
    for contact in ("罗敏", "020-5550-0707", "ethics@lead.example.cn", "广州市越秀区示例路707号"):
        assert contact in html
    covered = recognition.covered_versions(world.request_a)
    assert {v.document.kind for v in covered} >= {TrialDocument.Kind.PROTOCOL, TrialDocument.Kind.ICF}
    for version in covered:
        assert version.sha256 in html
        url = reverse("admin:ethics_recognition_document", args=[world.request_a.pk, version.pk])
        assert url in html
        response = client.get(url)
        assert response.status_code == 200
        assert hashlib.sha256(body(response)).hexdigest() == version.sha256


def test_the_participating_office_keeps_access_after_answering(client, world):
    recognition.recognition_respond(request=world.request_a, actor=world.people["office_a"], outcome=R.RECOGNISED)
    client.force_login(world.people["office_a"])
    assert client.get(reverse("admin:ethics_recognition_lead_letter", args=[world.request_a.pk])).status_code == 200


@pytest.mark.parametrize("who", ["office_b", "outsider_office", "research_office_a"])
def test_others_cannot_open_the_lead_letter_or_documents_of_a_request(client, world, who):
    client.force_login(world.people[who])
    version = recognition.covered_versions(world.request_a)[0]
    letter = client.get(reverse("admin:ethics_recognition_lead_letter", args=[world.request_a.pk]))
    document = client.get(reverse("admin:ethics_recognition_document", args=[world.request_a.pk, version.pk]))
    assert (letter.status_code, document.status_code) == (404, 404)


def test_the_participating_research_office_sees_the_request_but_not_the_lead_result(client, world):
    page = page_of(client, world.people["research_office_a"], world.request_a)
    assert page.status_code == 200
    assert world.decision.letter_sha256 not in page.content.decode()
    assert "lead_result" not in page.context


def test_the_lead_office_opens_its_own_letter_from_the_request(client, world):
    client.force_login(world.people["lead_office"])
    assert client.get(reverse("admin:ethics_recognition_lead_letter", args=[world.request_b.pk])).status_code == 200


def test_a_covered_version_of_another_request_is_not_served_through_this_one(client, world):
    other = approve(world.trial, world.people["lead_office"], world.lead_committee, Submission.Kind.AMENDMENT)
    newer = RecognitionRequest.objects.get(lead_decision=other, committee=world.request_a.committee)
    own = {v.pk for v in recognition.covered_versions(world.request_a)}
    foreign = next(v for v in recognition.covered_versions(newer) if v.pk not in own)
    client.force_login(world.people["office_a"])
    url = reverse("admin:ethics_recognition_document", args=[world.request_a.pk, foreign.pk])
    assert client.get(url).status_code == 404


def test_buttons_follow_the_transitions_table(client, world):
    html = page_of(client, world.people["office_a"], world.request_a).content.decode()
    assert reverse("admin:ethics_recognition_respond", args=[world.request_a.pk]) in html
    assert reverse("admin:ethics_recognition_withdraw", args=[world.request_a.pk]) not in html
    html = page_of(client, world.people["lead_office"], world.request_a).content.decode()
    assert reverse("admin:ethics_recognition_respond", args=[world.request_a.pk]) not in html
    assert reverse("admin:ethics_recognition_withdraw", args=[world.request_a.pk]) in html
    recognition.recognition_respond(request=world.request_a, actor=world.people["office_a"], outcome=R.RECOGNISED)
    html = page_of(client, world.people["office_a"], world.request_a).content.decode()
    assert reverse("admin:ethics_recognition_respond", args=[world.request_a.pk]) not in html


def test_available_steps(world):
    a, people = world.request_a, world.people
    assert recognition.available_steps(a, people["office_a"]) == ["recognise", "recognise_with_conditions", "decline"]
    assert recognition.available_steps(a, people["lead_office"]) == ["withdraw"]
    assert recognition.available_steps(a, people["office_b"]) == []
    assert recognition.available_steps(a, people["lead_pi"]) == []
    assert "supersede" not in recognition.available_steps(a, people["superuser"])
    recognition.recognition_respond(request=a, actor=people["office_a"], outcome=R.RECOGNISED)
    a.refresh_from_db()
    assert recognition.available_steps(a, people["office_a"]) == []
    assert recognition.available_steps(a, people["lead_office"]) == []


def test_refused_transitions(world):
    people = world.people
    recognition.recognition_respond(request=world.request_a, actor=people["office_a"], outcome=R.RECOGNISED)
    with pytest.raises(TransitionNotAllowed):
        recognition.recognition_withdraw(request=world.request_a, actor=people["lead_office"], reason="误发")
    with pytest.raises(TransitionNotAllowed):
        recognition.recognition_respond(request=world.request_a, actor=people["office_a"], outcome=R.DECLINED, note="x")
    recognition.recognition_withdraw(request=world.request_b, actor=people["lead_office"], reason="误发")
    with pytest.raises(TransitionNotAllowed):
        recognition.recognition_respond(request=world.request_b, actor=people["office_b"], outcome=R.RECOGNISED)
    with pytest.raises(DomainError):
        recognition.recognition_withdraw(request=world.request_a, actor=people["office_a"], reason="x")


# --- local consent form -----------------------------------------------------------------------------------------


def test_recognising_with_conditions_keeps_an_uploaded_local_consent_form(client, world):
    client.force_login(world.people["office_a"])
    url = reverse("admin:ethics_recognition_respond", args=[world.request_a.pk])
    form = {"outcome": R.RECOGNISED_WITH_CONDITIONS, "note": "使用本中心知情同意书", "local_icf_label": "V1.0-本中心"}
    refused = client.post(url, {**form, "local_icf_file": SimpleUploadedFile("icf.pdf", b"not a pdf")})
    assert refused.status_code == 200 and refused.context["form"].errors
    world.request_a.refresh_from_db()
    assert world.request_a.status == R.OPEN and world.request_a.local_icf is None
    done = client.post(url, {**form, "local_icf_file": SimpleUploadedFile("本中心知情同意书.pdf", PDF_BYTES)})
    assert done.status_code == 302
    world.request_a.refresh_from_db()
    icf = world.request_a.local_icf
    assert world.request_a.status == R.RECOGNISED_WITH_CONDITIONS
    assert icf.document.kind == TrialDocument.Kind.ICF and icf.document.trial == world.trial
    assert icf.version_label == "V1.0-本中心" and icf.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert world.hospital_a.name_zh in icf.document.title
    response = client.get(reverse("admin:ethics_recognition_document", args=[world.request_a.pk, icf.pk]))
    assert response.status_code == 200 and hashlib.sha256(body(response)).hexdigest() == icf.sha256


def test_an_existing_consent_form_version_may_be_chosen(world):
    icf = next(v for v in recognition.covered_versions(world.request_a) if v.document.kind == TrialDocument.Kind.ICF)
    answered = recognition.recognition_respond(
        request=world.request_a,
        actor=world.people["office_a"],
        outcome=R.RECOGNISED_WITH_CONDITIONS,
        note="沿用牵头单位知情同意书",
        local_icf_version=icf,
    )
    assert answered.local_icf == icf


def test_a_local_consent_form_only_with_conditions_and_only_of_this_trial(world):
    office = world.people["office_a"]
    with pytest.raises(DomainError) as plain:
        recognition.recognition_respond(
            request=world.request_a,
            actor=office,
            outcome=R.RECOGNISED,
            local_icf_file=SimpleUploadedFile("icf.pdf", PDF_BYTES),
        )
    assert plain.value.field == "local_icf"
    protocol = next(
        v for v in recognition.covered_versions(world.request_a) if v.document.kind == TrialDocument.Kind.PROTOCOL
    )
    with pytest.raises(DomainError):
        recognition.recognition_respond(
            request=world.request_a,
            actor=office,
            outcome=R.RECOGNISED_WITH_CONDITIONS,
            note="x",
            local_icf_version=protocol,
        )
    world.request_a.refresh_from_db()
    assert world.request_a.status == R.OPEN


# --- who is told --------------------------------------------------------------------------------------------------


def recipients(topic: str, request: RecognitionRequest) -> set:
    return set(
        Notification.objects.filter(topic=topic, event_key=f"request:{request.pk}").values_list("recipient", flat=True)
    )


def test_an_opened_request_tells_the_participating_ethics_office(world):
    people = world.people
    assert recipients("recognition.opened", world.request_a) == {people["office_a"].pk}
    assert recipients("recognition.opened", world.request_b) == {people["office_b"].pk}
    note = Notification.objects.get(topic="recognition.opened", recipient=people["office_a"])
    assert note.link == reverse("admin:ethics_recognitionrequest_change", args=[world.request_a.pk])
    assert world.trial.protocol_number in note.subject


def test_an_answer_tells_the_lead_office_and_the_lead_pi_once(world):
    people = world.people
    recognition.recognition_respond(
        request=world.request_a, actor=people["office_a"], outcome=R.RECOGNISED_WITH_CONDITIONS, note="补充联系人"
    )
    assert recipients("recognition.answered", world.request_a) == {people["lead_office"].pk, people["lead_pi"].pk}
    to_pi = Notification.objects.get(topic="recognition.answered", recipient=people["lead_pi"])
    assert to_pi.link == reverse("ethics_portal:trial_detail", args=[world.trial.pk])
    to_office = Notification.objects.get(topic="recognition.answered", recipient=people["lead_office"])
    assert to_office.link.startswith("/admin/")
    assert Notification.objects.filter(topic="recognition.answered").count() == 2


def test_a_decline_tells_the_lead_office_and_the_lead_pi(world):
    people = world.people
    recognition.recognition_respond(
        request=world.request_b, actor=people["office_b"], outcome=R.DECLINED, note="需独立评估"
    )
    assert recipients("recognition.declined", world.request_b) == {people["lead_office"].pk, people["lead_pi"].pk}
    assert not Notification.objects.filter(topic="recognition.answered").exists()


def test_a_superseded_request_tells_its_participating_office(world):
    people = world.people
    approve(world.trial, people["lead_office"], world.lead_committee, Submission.Kind.AMENDMENT)
    for request, office in ((world.request_a, "office_a"), (world.request_b, "office_b")):
        request.refresh_from_db()
        assert request.status == R.SUPERSEDED
        assert recipients("recognition.superseded", request) == {people[office].pk}
        note = Notification.objects.get(topic="recognition.superseded", event_key=f"request:{request.pk}")
        assert note.link == reverse("admin:ethics_recognitionrequest_change", args=[request.superseded_by_id])


def test_a_withdrawal_tells_the_participating_office(world):
    recognition.recognition_withdraw(request=world.request_a, actor=world.people["lead_office"], reason="误发")
    assert recipients("recognition.withdrawn", world.request_a) == {world.people["office_a"].pk}


def test_each_recipient_reads_the_answer_in_their_language(world):
    people = world.people
    people["lead_office"].language = "en"
    people["lead_office"].save(update_fields=["language"])
    people["lead_pi"].language = "zh-hans"
    people["lead_pi"].save(update_fields=["language"])
    recognition.recognition_respond(
        request=world.request_a, actor=people["office_a"], outcome=R.RECOGNISED_WITH_CONDITIONS, note="补充联系人"
    )
    english = Notification.objects.get(topic="recognition.answered", recipient=people["lead_office"])
    chinese = Notification.objects.get(topic="recognition.answered", recipient=people["lead_pi"])
    assert "answered: Recognised with conditions" in english.subject
    assert "已答复" in chinese.subject and "Recognised" not in chinese.subject


def test_the_answer_and_withdraw_forms_open(client, world):
    client.force_login(world.people["office_a"])
    respond = client.get(reverse("admin:ethics_recognition_respond", args=[world.request_a.pk]))
    assert respond.status_code == 200 and 'enctype="multipart/form-data"' in respond.content.decode()
    icf_versions = respond.context["form"].fields["local_icf_version"].queryset
    assert {v.document.kind for v in icf_versions} == {TrialDocument.Kind.ICF}
    client.force_login(world.people["lead_office"])
    assert client.get(reverse("admin:ethics_recognition_withdraw", args=[world.request_a.pk])).status_code == 200
