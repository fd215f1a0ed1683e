"""Who an institution's office is: the one place deadlines, reminders and decisions find their readers."""

import pytest

from cgtclinic.models import User
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_office_of_is_the_active_people_of_that_institution_in_that_role():
    hospital, other = InstitutionFactory(), InstitutionFactory()
    clerk = UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital)
    UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital, is_active=False)
    UserFactory(role=Role.ETHICS_OFFICE, institution=hospital)
    UserFactory(role=Role.RESEARCH_OFFICE, institution=other)

    assert list(User.objects.office_of(hospital.pk, Role.RESEARCH_OFFICE)) == [clerk]


def test_an_institution_without_that_office_has_nobody():
    hospital = InstitutionFactory()
    UserFactory(role=Role.ETHICS_OFFICE, institution=hospital)

    assert not User.objects.office_of(hospital.pk, Role.RESEARCH_OFFICE).exists()
