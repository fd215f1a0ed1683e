"""Tokens are issued and revoked in the admin by a system administrator; the report request log is read there."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cgtclinic.models import ReportRequest
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory

pytestmark = pytest.mark.django_db
TOKENS = "admin:authtoken_tokenproxy_changelist"
LOG = "admin:cgtclinic_reportrequest_changelist"


def api_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_is_issued_and_its_key_shown_once(client, system_admin, regulator):
    client.force_login(system_admin)
    response = client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": regulator.pk})
    assert response.status_code == 302
    token = Token.objects.get(user=regulator)
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert token.key in message
    client.get(reverse(TOKENS))  # where the message is shown
    listing = client.get(reverse(TOKENS)).content.decode()
    assert token.key not in listing
    assert token.key[:6] in listing
    assert api_with(token.key).get("/api/v1/reports/pipeline/").status_code == 200


def test_only_active_people_without_a_token_can_be_given_one(client, system_admin, regulator, region):
    Token.objects.create(user=regulator)
    inactive = UserFactory(role=Role.REGULATOR, region=region, is_active=False)
    client.force_login(system_admin)
    response = client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": regulator.pk})
    assert response.status_code == 200  # the form is shown again with the error
    response = client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": inactive.pk})
    assert response.status_code == 200
    assert not Token.objects.filter(user=inactive).exists()


def test_deleting_a_token_revokes_it(client, system_admin, regulator):
    token = Token.objects.create(user=regulator)
    assert api_with(token.key).get("/api/v1/reports/pipeline/").status_code == 200
    client.force_login(system_admin)
    response = client.post(reverse("admin:authtoken_tokenproxy_delete", args=[regulator.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Token.objects.filter(user=regulator).exists()
    assert api_with(token.key).get("/api/v1/reports/pipeline/").status_code == 401


@pytest.mark.parametrize("role", ["research_office", "ethics_office"])
def test_offices_manage_no_tokens_and_read_no_log(client, role, request):
    client.force_login(request.getfixturevalue(role))
    for page in (TOKENS, "admin:authtoken_tokenproxy_add", LOG):
        assert client.get(reverse(page)).status_code == 403


@pytest.mark.parametrize("role", ["regulator", "pi"])
def test_roles_without_admin_are_sent_to_sign_in(client, role, request):
    client.force_login(request.getfixturevalue(role))
    response = client.get(reverse(TOKENS))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_the_request_log_is_read_only(client, system_admin, regulator):
    api = APIClient()
    api.force_authenticate(regulator)
    api.get("/api/v1/reports/policy-targets/", {"format": "csv"})
    client.force_login(system_admin)
    page = client.get(reverse(LOG)).content.decode()
    assert ReportRequest.objects.get().report == "policy-targets"
    assert "policy-targets" in page, page
    assert str(regulator) in page
    entry = ReportRequest.objects.get()
    assert client.get(reverse("admin:cgtclinic_reportrequest_add")).status_code == 403
    assert (
        client.post(reverse("admin:cgtclinic_reportrequest_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert ReportRequest.objects.filter(pk=entry.pk).exists()
