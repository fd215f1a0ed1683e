"""Trial documents through the API: uploads checked by the service, versions kept, and files served only
through the scoped download."""

import pytest

from tests.api.helpers import pdf_upload, upload_payload
from tests.factories.trials import PDF_BYTES, DocumentVersionFactory, TrialFactory
from trials.models import DocumentVersion

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def client_for(api_client, user):
    api_client.force_authenticate(user)
    return api_client


@pytest.fixture
def trial(research_office, pi):
    return TrialFactory(lead_institution=research_office.institution, pi=pi)


@pytest.mark.django_db
def test_upload_stores_numbered_versions(api_client, research_office, trial):
    client = client_for(api_client, research_office)
    first = client.post("/api/v1/documents/", upload_payload(trial, version_label="V1.0"), format="multipart")
    assert first.status_code == 201, first.data
    second = client.post(
        "/api/v1/documents/", upload_payload(trial, version_label="V2.0", note="Dose cohort added"), format="multipart"
    )
    assert second.status_code == 201, second.data
    assert (first.data["number"], second.data["number"]) == (1, 2)
    assert first.data["document"] == second.data["document"]
    assert second.data["content_type"] == "application/pdf"
    assert second.data["size"] == len(PDF_BYTES)
    assert second.data["uploaded_by_name"] == research_office.full_name
    assert second.data["download_url"].endswith(f"/api/v1/documents/{second.data['id']}/download/")
    # The payload never points at the stored file itself.
    assert "file" not in second.data
    assert "/media/" not in str(second.data)
    version = DocumentVersion.objects.get(pk=second.data["id"])
    assert version.file.read() == PDF_BYTES


@pytest.mark.django_db
def test_the_trials_pi_may_upload(api_client, pi, trial):
    response = client_for(api_client, pi).post("/api/v1/documents/", upload_payload(trial), format="multipart")
    assert response.status_code == 201, response.data


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("upload", "code"),
    [
        (pdf_upload(name="setup.exe"), "file_type"),
        (pdf_upload(name="protocol"), "file_type"),
        (pdf_upload(content=PNG_BYTES), "file_content_mismatch"),
        (pdf_upload(name="scan.png", content=PDF_BYTES), "file_content_mismatch"),
        (pdf_upload(content=b"just some text, not a PDF"), "file_content_mismatch"),
    ],
    ids=["exe", "no-extension", "png-named-pdf", "pdf-named-png", "text-named-pdf"],
)
def test_bad_files_are_refused_and_nothing_is_stored(upload, code, api_client, research_office, trial):
    response = client_for(api_client, research_office).post(
        "/api/v1/documents/", upload_payload(trial, file=upload), format="multipart"
    )
    assert (response.status_code, response.data["code"], response.data["field"]) == (400, code, "file")
    assert not DocumentVersion.objects.exists()
    assert not trial.documents.exists()


@pytest.mark.django_db
def test_too_large_files_are_refused(settings, api_client, research_office, trial):
    settings.CGT_UPLOAD_MAX_BYTES = len(PDF_BYTES) - 1
    response = client_for(api_client, research_office).post(
        "/api/v1/documents/", upload_payload(trial), format="multipart"
    )
    assert (response.status_code, response.data["code"]) == (400, "file_too_large")
    assert not DocumentVersion.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"kind": "recipe"}, "kind"), ({"title": ""}, "title"), ({"file": ""}, "file"), ({"trial": 999999}, "trial")],
)
def test_badly_shaped_uploads_are_refused(overrides, field, api_client, research_office, trial):
    payload = {**upload_payload(trial), **overrides}
    response = client_for(api_client, research_office).post("/api/v1/documents/", payload, format="multipart")
    assert response.status_code == 400
    assert field in response.data
    assert not DocumentVersion.objects.exists()


@pytest.mark.django_db
def test_ethics_office_may_read_but_not_upload(api_client, ethics_office, trial):
    client = client_for(api_client, ethics_office)
    response = client.post("/api/v1/documents/", upload_payload(trial), format="multipart")
    assert (response.status_code, response.data["code"]) == (403, "permission_denied")
    assert client.get("/api/v1/documents/").status_code == 200


@pytest.mark.django_db
def test_download_serves_the_file_as_an_attachment(api_client, ethics_office, trial):
    version = DocumentVersionFactory(document__trial=trial, original_name="方案 V2.pdf")
    response = client_for(api_client, ethics_office).get(f"/api/v1/documents/{version.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF_BYTES
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_download_of_another_institutions_file_is_not_found(api_client, research_office):
    version = DocumentVersionFactory()
    response = client_for(api_client, research_office).get(f"/api/v1/documents/{version.pk}/download/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_download_of_a_missing_file_is_not_found(api_client, research_office, trial):
    version = DocumentVersionFactory(document__trial=trial)
    version.file.storage.delete(version.file.name)
    response = client_for(api_client, research_office).get(f"/api/v1/documents/{version.pk}/download/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_document_filters(api_client, research_office, trial):
    protocol = DocumentVersionFactory(document__trial=trial, document__kind="protocol")
    consent = DocumentVersionFactory(document__trial=trial, document__kind="icf")
    DocumentVersionFactory(document__trial=TrialFactory(lead_institution=research_office.institution))
    client = client_for(api_client, research_office)

    def found(query):
        return {row["id"] for row in client.get(f"/api/v1/documents/?{query}").data["results"]}

    assert found(f"trial={trial.pk}") == {protocol.pk, consent.pk}
    assert found(f"trial={trial.pk}&kind=icf") == {consent.pk}
    assert found(f"document={protocol.document_id}") == {protocol.pk}
