"""Tokens are issued and revoked in the admin by a system administrator; the report request log is read there."""

import datetime
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from cgtclinic.models import ApiToken, ReportRequest
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory, issue_token

pytestmark = pytest.mark.django_db
TOKENS = "admin:cgtclinic_apitoken_changelist"
ADD = "admin:cgtclinic_apitoken_add"
KEY = re.compile(r"cgt_[0-9a-f]{64}")
LOG = "admin:cgtclinic_reportrequest_changelist"


def api_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_is_issued_and_its_key_shown_once(client, system_admin, regulator):
    client.force_login(system_admin)
    response = client.post(reverse(ADD), {"user": regulator.pk, "valid_days": 30, "label": "报表工具"})
    assert response.status_code == 302
    token = ApiToken.objects.get(user=regulator)
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    key = KEY.search(message).group(0)
    # Issue 11: only a digest is kept, with the issuer, an expiry and the time of last use.
    assert key not in (token.digest, token.token_key) and key.startswith(token.token_key)
    assert token.created_by == system_admin and token.label == "报表工具"
    assert 29 <= (token.expiry - token.created).days <= 30
    assert token.last_used_at is None
    client.get(reverse(TOKENS))  # where the message is shown
    listing = client.get(reverse(TOKENS)).content.decode()
    assert key not in listing
    assert token.token_key in listing
    assert api_with(key).get("/api/v1/reports/pipeline/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_only_active_people_without_a_token_can_be_given_one(client, system_admin, regulator, region):
    issue_token(regulator)
    inactive = UserFactory(role=Role.REGULATOR, region=region, is_active=False)
    client.force_login(system_admin)
    response = client.post(reverse(ADD), {"user": regulator.pk, "valid_days": 365})
    assert response.status_code == 200  # the form is shown again with the error
    response = client.post(reverse(ADD), {"user": inactive.pk, "valid_days": 365})
    assert response.status_code == 200
    assert not ApiToken.objects.filter(user=inactive).exists()


def test_deleting_a_token_revokes_it(client, system_admin, regulator):
    token = issue_token(regulator)
    assert api_with(token.key).get("/api/v1/reports/pipeline/").status_code == 200
    client.force_login(system_admin)
    response = client.post(reverse("admin:cgtclinic_apitoken_delete", args=[token.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not ApiToken.objects.filter(user=regulator).exists()
    assert api_with(token.key).get("/api/v1/reports/pipeline/").status_code == 401


@pytest.mark.parametrize("role", ["research_office", "ethics_office"])
def test_offices_manage_no_tokens_and_read_no_log(client, role, request):
    client.force_login(request.getfixturevalue(role))
    for page in (TOKENS, ADD, LOG):
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


def test_an_expired_token_is_refused_and_kept_for_the_record(regulator):
    """Issue 11: API tokens never expired."""
    token = issue_token(regulator, expiry=datetime.timedelta(days=1))
    assert api_with(token.key).get("/api/v1/reports/pipeline/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - datetime.timedelta(seconds=1))
    refused = api_with(token.key).get("/api/v1/reports/pipeline/", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_tokens_issued_before_hashing_keep_working(regulator):
    """The migration turns each plaintext DRF token into a digest; the same key still authenticates."""
    from importlib import import_module

    from django.apps import apps
    from rest_framework.authtoken.models import Token

    old = Token.objects.create(user=regulator)
    import_module("cgtclinic.migrations.0008_api_token").hash_existing_tokens(apps, None)
    assert not Token.objects.exists()
    assert api_with(old.key).get("/api/v1/reports/pipeline/").status_code == 200
