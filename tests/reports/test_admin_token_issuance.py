"""Issuing a report token: the picker tells people apart (username, name, role, institution or region) and finds
them by any of these; a person whose role cannot read the reports gets no token, with the reason; a regulator's
token still reads its region's reports."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from cgtclinic import services
from cgtclinic.admin import person_label
from cgtclinic.errors import DomainError
from cgtclinic.models import ApiToken
from cgtclinic.roles import Role, may_read_reports
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory, issue_token

pytestmark = pytest.mark.django_db
ADD = "admin:cgtclinic_apitoken_add"
HOLDERS = "admin:cgtclinic_apitoken_holders"
KEY = re.compile(r"cgt_[0-9a-f]{64}")


@pytest.fixture
def regulators():
    """Two regulators whose names alone say nothing: typing "regulator" finds both."""
    beijing = RegionFactory(code="beijing", name_zh="北京市", name_en="Beijing")
    guangdong = RegionFactory(code="guangdong", name_zh="广东省", name_en="Guangdong")
    return {
        "beijing": UserFactory(username="regulator-bj", full_name="王监管", role=Role.REGULATOR, region=beijing),
        "guangdong": UserFactory(username="regulator-gd", full_name="李监管", role=Role.REGULATOR, region=guangdong),
    }


def holders(client, term: str) -> list[str]:
    response = client.get(
        reverse(HOLDERS),
        {"term": term, "app_label": "cgtclinic", "model_name": "apitoken", "field_name": "user"},
    )
    assert response.status_code == 200, response.content
    return [row["text"] for row in response.json()["results"]]


def test_the_picker_labels_each_person_with_role_and_region_or_institution(client, system_admin, regulators):
    with translation.override("zh-hans"):
        assert person_label(regulators["guangdong"]) == "regulator-gd · 李监管 · 监管人员 · 广东省"
        office = UserFactory(username="ky-office", full_name="张科研", role=Role.RESEARCH_OFFICE)
        assert person_label(office) == f"ky-office · 张科研 · {office.get_role_display()} · {office.institution}"
    client.force_login(system_admin)
    found = holders(client, "regulator")
    assert found == [person_label(regulators["beijing"]), person_label(regulators["guangdong"])]
    form = client.get(reverse(ADD)).context["adminform"].form
    assert form.fields["user"].label_from_instance(regulators["beijing"]) == person_label(regulators["beijing"])


def test_the_picker_searches_by_region_and_institution_and_offers_only_report_readers(
    client, system_admin, regulators, institution
):
    UserFactory(username="regulator-ro", role=Role.RESEARCH_OFFICE, institution=institution)
    client.force_login(system_admin)
    assert holders(client, "广东") == [person_label(regulators["guangdong"])]
    assert holders(client, "Guangdong") == [person_label(regulators["guangdong"])]
    assert holders(client, "王监管") == [person_label(regulators["beijing"])]
    # The research office's person called "regulator-ro" cannot read the reports, so is not offered.
    assert all("regulator-ro" not in text for text in holders(client, "regulator"))
    assert holders(client, institution.name_zh) == []
    # Someone who already holds a token is not offered again.
    issue_token(regulators["beijing"])
    assert holders(client, "regulator") == [person_label(regulators["guangdong"])]


@pytest.mark.parametrize("role", ["research_office", "ethics_office", "pi"])
def test_a_token_for_a_role_that_cannot_read_reports_is_refused_with_the_reason(client, system_admin, role, request):
    person = request.getfixturevalue(role)
    client.force_login(system_admin)
    response = client.post(reverse(ADD), {"user": person.pk, "valid_days": 365}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert not ApiToken.objects.filter(user=person).exists()
    errors = " ".join(response.context["adminform"].form.errors["user"])
    assert "cannot read the reports" in errors and person.get_role_display() in errors
    chinese = client.post(reverse(ADD), {"user": person.pk, "valid_days": 365}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "cannot read the reports" not in " ".join(chinese.context["adminform"].form.errors["user"])


def test_the_service_refuses_as_the_form_does(system_admin, research_office, regulator):
    assert not may_read_reports(research_office) and may_read_reports(regulator) and may_read_reports(system_admin)
    with pytest.raises(DomainError) as caught:
        services.api_token_issue(actor=system_admin, user=research_office)
    assert caught.value.code == "cannot_read_reports"
    with pytest.raises(DomainError) as caught:
        services.api_token_issue(actor=research_office, user=regulator)
    assert caught.value.code == "permission_denied"
    services.api_token_issue(actor=system_admin, user=regulator)
    with pytest.raises(DomainError) as caught:
        services.api_token_issue(actor=system_admin, user=regulator)
    assert caught.value.code == "token_exists"


def test_a_regulators_token_is_shown_once_and_reads_its_regions_reports(client, system_admin, regulators):
    client.force_login(system_admin)
    response = client.post(reverse(ADD), {"user": regulators["guangdong"].pk, "valid_days": 365})
    assert response.status_code == 302
    token = ApiToken.objects.get(user=regulators["guangdong"])
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    key = KEY.search(message).group(0)
    assert key.startswith(token.token_key)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/reports/pipeline/").status_code == 200
    assert not ApiToken.objects.filter(user=regulators["beijing"]).exists()


def test_offices_cannot_use_the_picker(client, research_office):
    client.force_login(research_office)
    response = client.get(
        reverse(HOLDERS), {"term": "", "app_label": "cgtclinic", "model_name": "apitoken", "field_name": "user"}
    )
    assert response.status_code == 403


def test_a_new_institutions_person_is_labelled_with_it():
    hospital = InstitutionFactory(name_zh="中山大学附属第一医院")
    person = UserFactory(username="pi-zs", full_name="陈医生", role=Role.PI, institution=hospital)
    with translation.override("zh-hans"):
        assert person_label(person).endswith("· 中山大学附属第一医院")
