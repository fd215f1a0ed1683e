"""The recognition-request API: the participating ethics office reads the lead's result and answers; the scoping
matrix, refused transitions (409), permission denials (403) and constant query counts."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from cgtclinic.models import Notification
from ethics import recognition
from ethics.models import RecognitionRequest
from tests.ethics.recognition_world import build_world
from tests.factories.trials import PDF_BYTES
from trials.models import TrialDocument

R = RecognitionRequest.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def world(region):
    return build_world(region)


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def url(request, tail="") -> str:
    return f"/api/v1/recognition-requests/{request.pk}/{tail}"


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_participating_office_reads_the_lead_result(world):
    client = as_user(world.people["office_a"])
    response = client.get(url(world.request_a))
    assert response.status_code == 200
    data = response.data
    decision = world.decision
    assert data["lead_decision"]["letter_number"] == decision.letter_number
    assert data["lead_decision"]["outcome"] == "approve"
    assert data["lead_decision"]["valid_until"] == decision.valid_until.isoformat()
    assert data["lead_decision"]["decided_at"].endswith("+08:00")
    assert data["lead_letter_sha256"] == decision.letter_sha256
    assert data["lead_committee"]["contact_email"] == "ethics@lead.example.cn"
    assert data["lead_committee"]["contact_phone"] == "020-5550-0707"
    assert data["available_steps"] == ["recognise", "recognise_with_conditions", "decline"]
    assert data["overdue"] is False and float(data["working_hours_left"]) > 0
    assert data["due_at"]
    letter = client.get(data["lead_letter_url"])
    assert letter.status_code == 200 and letter["Content-Type"] == "application/pdf"
    assert hashlib.sha256(body(letter)).hexdigest() == decision.letter_sha256
    kinds = {d["kind"] for d in data["documents"]}
    assert {TrialDocument.Kind.PROTOCOL, TrialDocument.Kind.ICF} <= kinds
    for document in data["documents"]:
        downloaded = client.get(document["download_url"])
        assert downloaded.status_code == 200
        assert hashlib.sha256(body(downloaded)).hexdigest() == document["sha256"]


def test_list_is_scoped_and_filtered(world):
    rows = as_user(world.people["office_a"]).get("/api/v1/recognition-requests/").data["results"]
    assert [row["id"] for row in rows] == [world.request_a.pk]
    lead = as_user(world.people["lead_office"])
    assert {row["id"] for row in lead.get("/api/v1/recognition-requests/").data["results"]} == {
        world.request_a.pk,
        world.request_b.pk,
    }
    recognition.recognition_respond(request=world.request_b, actor=world.people["office_b"], outcome=R.RECOGNISED)
    opened = lead.get("/api/v1/recognition-requests/", {"status": "open", "trial": world.trial.pk}).data["results"]
    assert [row["id"] for row in opened] == [world.request_a.pk]
    assert as_user(world.people["outsider_office"]).get("/api/v1/recognition-requests/").data["results"] == []


@pytest.mark.parametrize("who", ["office_b", "outsider_office"])
def test_other_hospitals_get_404(world, who):
    client = as_user(world.people[who])
    version = recognition.covered_versions(world.request_a)[0]
    for tail in ("", "lead-letter/", f"documents/{version.pk}/"):
        assert client.get(url(world.request_a, tail)).status_code == 404, tail
    assert client.post(url(world.request_a, "respond/"), {"outcome": "recognised"}).status_code == 404


@pytest.mark.parametrize("who", ["regulator", "other_pi", "lead_pi"])
def test_regulators_and_pis_get_403(world, who):
    client = as_user(world.people[who])
    version = recognition.covered_versions(world.request_a)[0]
    for tail in ("", "lead-letter/", f"documents/{version.pk}/"):
        assert client.get(url(world.request_a, tail)).status_code == 403, tail
    assert client.get("/api/v1/recognition-requests/").status_code == 403


def test_the_participating_research_office_sees_the_request_without_the_lead_result(world):
    client = as_user(world.people["research_office_a"])
    data = client.get(url(world.request_a)).data
    assert data["lead_decision"] is None and data["lead_letter_url"] is None and data["documents"] == []
    assert data["lead_committee"] is None and data["available_steps"] == []
    assert client.get(url(world.request_a, "lead-letter/")).status_code == 404


def test_a_version_the_decision_does_not_cover_is_404(world):
    from trials import services as trial_services

    later = trial_services.document_add_version(
        trial=world.trial,
        actor=world.trial.pi,
        kind=TrialDocument.Kind.PROTOCOL,
        title=str(TrialDocument.Kind.PROTOCOL),
        version_label="V1.1",
        uploaded_file=SimpleUploadedFile("protocol.pdf", PDF_BYTES),
    )
    client = as_user(world.people["office_a"])
    assert later.pk not in {d["id"] for d in client.get(url(world.request_a)).data["documents"]}
    assert client.get(url(world.request_a, f"documents/{later.pk}/")).status_code == 404
    assert client.get(url(world.request_a, "documents/999999/")).status_code == 404


def test_respond_with_a_local_consent_form_upload(world):
    client = as_user(world.people["office_a"])
    response = client.post(
        url(world.request_a, "respond/"),
        {
            "outcome": R.RECOGNISED_WITH_CONDITIONS,
            "note": "使用本中心知情同意书",
            "local_icf_label": "V1.0-A",
            "local_icf_file": SimpleUploadedFile("icf.pdf", PDF_BYTES, content_type="application/pdf"),
        },
        format="multipart",
    )
    assert response.status_code == 200, response.data
    assert response.data["status"] == R.RECOGNISED_WITH_CONDITIONS
    icf = response.data["local_icf"]
    assert icf["kind"] == "icf" and icf["version_label"] == "V1.0-A"
    assert icf["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    assert client.get(icf["download_url"]).status_code == 200
    assert response.data["available_steps"] == []
    told = set(Notification.objects.filter(topic="recognition.answered").values_list("recipient", flat=True))
    assert told == {world.people["lead_office"].pk, world.people["lead_pi"].pk}


def test_respond_refusals(world):
    office = as_user(world.people["office_a"])
    bad_file = office.post(
        url(world.request_a, "respond/"),
        {
            "outcome": R.RECOGNISED_WITH_CONDITIONS,
            "note": "x",
            "local_icf_file": SimpleUploadedFile("icf.pdf", b"not a pdf"),
        },
        format="multipart",
    )
    assert bad_file.status_code == 400 and bad_file.data["field"] == "file"
    no_note = office.post(url(world.request_a, "respond/"), {"outcome": R.DECLINED}, format="json")
    assert no_note.status_code == 400 and no_note.data["field"] == "note"
    lead = as_user(world.people["lead_office"])
    denied = lead.post(url(world.request_a, "respond/"), {"outcome": R.RECOGNISED}, format="json")
    assert denied.status_code == 403 and denied.data["code"] == "permission_denied"
    assert office.post(url(world.request_a, "respond/"), {"outcome": R.RECOGNISED}, format="json").status_code == 200
    again = office.post(url(world.request_a, "respond/"), {"outcome": R.DECLINED, "note": "x"}, format="json")
    assert again.status_code == 409 and again.data["code"] == "transition_not_allowed"
    world.request_a.refresh_from_db()
    assert world.request_a.status == R.RECOGNISED


def test_withdraw(world):
    office_b = as_user(world.people["office_b"])
    denied = office_b.post(url(world.request_b, "withdraw/"), {"reason": "x"}, format="json")
    assert denied.status_code == 403
    lead = as_user(world.people["lead_office"])
    assert lead.post(url(world.request_b, "withdraw/"), {}, format="json").status_code == 400
    done = lead.post(url(world.request_b, "withdraw/"), {"reason": "批件误发"}, format="json")
    assert done.status_code == 200 and done.data["status"] == R.WITHDRAWN
    assert lead.post(url(world.request_b, "withdraw/"), {"reason": "again"}, format="json").status_code == 409
    # Any status: the participating office still opens what it was asked to judge.
    assert office_b.get(url(world.request_b, "lead-letter/")).status_code == 200


def test_list_query_count_does_not_grow(world, django_assert_max_num_queries):
    from ethics.models import Submission
    from tests.ethics.recognition_world import approve

    client = as_user(world.people["lead_office"])
    with django_assert_max_num_queries(8) as small:
        assert len(client.get("/api/v1/recognition-requests/").data["results"]) == 2
    approve(world.trial, world.people["lead_office"], world.lead_committee, Submission.Kind.AMENDMENT)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(client.get("/api/v1/recognition-requests/").data["results"]) == 4


def test_an_external_lead_approval_shows_its_recorded_letter(region):
    from cgtclinic import workdays
    from cgtclinic.roles import Role
    from tests.factories.cgtclinic import InstitutionFactory, UserFactory
    from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
    from tests.factories.trials import TrialSiteFactory

    workdays.sync_from_package(years=[2026])
    hospital = InstitutionFactory(region=region)
    alliance = AllianceFactory(members=[EthicsCommitteeFactory(institution=hospital)])
    site = TrialSiteFactory(institution=hospital)  # its lead is not in the system's alliance
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=hospital)
    request = recognition.request_record_external(
        actor=office,
        site=site,
        alliance=alliance,
        letter_number="外院伦审〔2026〕088号",
        letter_file=SimpleUploadedFile("批件.pdf", PDF_BYTES),
    )
    client = as_user(office)
    data = client.get(url(request)).data
    assert data["lead_decision"]["letter_number"] == "外院伦审〔2026〕088号"
    assert data["lead_decision"]["decided_at"] is None and data["documents"] == []
    assert data["lead_letter_sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    letter = client.get(data["lead_letter_url"])
    assert letter.status_code == 200 and hashlib.sha256(body(letter)).hexdigest() == data["lead_letter_sha256"]
    told = Notification.objects.filter(topic="recognition.opened", event_key=f"request:{request.pk}")
    assert [n.recipient for n in told] == [office]
