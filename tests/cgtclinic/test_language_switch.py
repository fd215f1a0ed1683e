"""The language switch (admin header and PI portal) also sets the person's language for their notifications."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory

pytestmark = pytest.mark.django_db


def test_switching_language_remembers_it_on_the_person(client):
    person = UserFactory(role=Role.PI, language="zh-hans")
    client.force_login(person)
    response = client.post(reverse("set_language"), {"language": "en", "next": "/pi/"})
    assert response.status_code == 302 and response["Location"] == "/pi/"
    person.refresh_from_db()
    assert person.language == "en"
    assert person.history.first().language == "en"


def test_an_unknown_language_changes_nothing(client):
    person = UserFactory(role=Role.RESEARCH_OFFICE, language="zh-hans")
    client.force_login(person)
    client.post(reverse("set_language"), {"language": "fr", "next": "/admin/"})
    person.refresh_from_db()
    assert person.language == "zh-hans"


def test_anonymous_visitors_switch_without_an_account(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/pi/login/"})
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "en"
