"""Issue 11, done-when: a schemathesis run over the whole OpenAPI schema with regulator, PI and research-office
tokens finds no server error and no answer that contradicts the schema. Bounded (a few generated requests per
operation and role) so the suite stays within its time; more is an environment variable away:
``make test PYTEST_ARGS="tests/api/test_schema_fuzz.py" SCHEMA_FUZZ_EXAMPLES=50``."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory, issue_token
from tests.factories.trials import TrialFactory, TrialSiteFactory

pytestmark = pytest.mark.django_db
EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "10"))
ROLES = ("regulator", "pi", "research_office")
# What the issue asks: no server error, and every answer as the schema documents it (status, type, body, headers).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api_schema():
    # As Django's test client does: a request must not close the test's connection (and with it its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(region, institution):
    """One token per role, each with something of its own to see."""
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=institution)
    investigator = UserFactory(role=Role.PI, institution=institution)
    regulator = UserFactory(role=Role.REGULATOR, region=region)
    trial = TrialFactory(lead_institution=institution, pi=investigator)
    TrialSiteFactory(trial=trial)
    people = {"regulator": regulator, "pi": investigator, "research_office": office}
    return {role: issue_token(person).key for role, person in people.items()}


def fuzz(operation, token: str, failures: list[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def run(case):
        try:
            response = case.call(headers={"Authorization": f"Token {token}", "Accept-Language": "en"})
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, Exception) as exc:  # a failed check: collected with the operation that made it
            detail = " ".join(line.strip() for line in str(exc).splitlines()[1:7] if line.strip())
            failures.append(f"{operation.label}: {detail[:300]}")

    run()


@pytest.mark.parametrize("role", ROLES)
def test_no_server_error_and_every_answer_matches_the_schema(api_schema, tokens, role, fresh_throttle):
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        fuzz(result.ok(), tokens[role], failures)
    assert not failures, f"{len(failures)} failed checks:\n" + "\n".join(sorted(set(failures)))
