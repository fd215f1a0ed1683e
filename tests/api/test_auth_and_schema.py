"""Token and session authentication, and the OpenAPI schema and its browsable docs."""

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from rest_framework.test import APIClient

from tests.factories.cgtclinic import issue_token
from tests.factories.trials import TrialFactory

PASSWORD = "correct-horse-battery"  # what UserFactory sets


@pytest.mark.django_db
def test_token_authentication(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    token = issue_token(research_office)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = api_client.get("/api/v1/trials/")
    assert response.status_code == 200
    assert [row["id"] for row in response.data["results"]] == [trial.pk]


@pytest.mark.django_db
def test_a_wrong_token_is_refused(api_client, research_office):
    issue_token(research_office)
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = api_client.get("/api/v1/trials/")
    assert response.status_code == 401


@pytest.mark.django_db
def test_an_inactive_users_token_is_refused(api_client, research_office):
    token = issue_token(research_office)
    research_office.is_active = False
    research_office.save(update_fields=["is_active"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api_client.get("/api/v1/trials/").status_code == 401


@pytest.mark.django_db
def test_session_authentication(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    assert api_client.login(request=HttpRequest(), username=research_office.username, password=PASSWORD)
    response = api_client.get(f"/api/v1/trials/{trial.pk}/")
    assert response.status_code == 200


@pytest.mark.django_db
def test_session_writes_need_the_csrf_token(research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    client = APIClient(enforce_csrf_checks=True)
    client.login(request=HttpRequest(), username=research_office.username, password=PASSWORD)
    response = client.post(f"/api/v1/trials/{trial.pk}/submit/")
    assert response.status_code == 403
    trial.refresh_from_db()
    assert trial.status == "draft"


@pytest.mark.django_db
def test_anonymous_requests_are_asked_to_authenticate(api_client):
    response = api_client.get("/api/v1/trials/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for operation_id in ("trials_list", "trials_submit", "sites_partial_update", "documents_download"):
        assert f"operationId: {operation_id}" in schema


@pytest.mark.django_db
def test_schema_and_docs_are_served(api_client):
    assert api_client.get("/api/schema/").status_code == 200
    docs = api_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
