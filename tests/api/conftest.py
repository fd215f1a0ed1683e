"""A small registry seen from one institution: its own trial, a neighbour's in the same region, and a trial in
another region, each with its lead site and a protocol document."""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from cgtclinic.models import Institution
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory
from tests.factories.trials import DocumentVersionFactory, TrialFactory
from trials.models import DocumentVersion, Trial


@dataclass
class World:
    institution: Institution
    neighbour_institution: Institution
    other_institution: Institution
    users: dict
    own: Trial
    neighbour: Trial
    other: Trial
    own_doc: DocumentVersion
    neighbour_doc: DocumentVersion
    other_doc: DocumentVersion

    def client(self, role: str) -> APIClient:
        client = APIClient()
        if role != "anonymous":
            client.force_authenticate(self.users[role])
        return client


@pytest.fixture
def world(region, institution, research_office, ethics_office, pi, regulator, system_admin):
    neighbour_institution = InstitutionFactory(region=region)
    other_institution = InstitutionFactory(region=RegionFactory(code="other-region"))
    own = TrialFactory(lead_institution=institution, pi=pi)
    neighbour = TrialFactory(lead_institution=neighbour_institution)
    other = TrialFactory(lead_institution=other_institution)
    docs = [DocumentVersionFactory(document__trial=t, uploaded_by=t.pi) for t in (own, neighbour, other)]
    return World(
        institution=institution,
        neighbour_institution=neighbour_institution,
        other_institution=other_institution,
        users={
            "research_office": research_office,
            "ethics_office": ethics_office,
            "pi": pi,
            "regulator": regulator,
            "system_admin": system_admin,
        },
        own=own,
        neighbour=neighbour,
        other=other,
        own_doc=docs[0],
        neighbour_doc=docs[1],
        other_doc=docs[2],
    )
