"""List endpoints run a fixed number of queries however many rows they return, for each output shape."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories.cgtclinic import InstitutionFactory
from tests.factories.trials import DocumentVersionFactory, TrialFactory, TrialSiteFactory
from trials.models import Trial

# Session, user, count, rows.
MAX_QUERIES = 4
# Trials also prefetch their IIT reviews (the governance block of the payload).
MAX_TRIAL_QUERIES = MAX_QUERIES + 1
SIZES = (3, 30)


def _grow_to(size: int, institution) -> None:
    """Trials led by the institution, each with a participating site in its region and a document."""
    while Trial.objects.count() < size:
        trial = TrialFactory(lead_institution=institution, created_by=institution.people.first())
        TrialSiteFactory(trial=trial, institution=InstitutionFactory(region=institution.region))
        DocumentVersionFactory(document__trial=trial)


def _measure(client, path: str) -> tuple[int, int]:
    """How many queries one page took, and how many rows it returned."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{path}?page_size=100")
    assert response.status_code == 200
    return len(queries), len(response.data["results"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "viewer"),
    [
        ("/api/v1/trials/", "research_office"),
        ("/api/v1/trials/", "regulator"),
        ("/api/v1/sites/", "research_office"),
        ("/api/v1/sites/", "regulator"),
        ("/api/v1/documents/", "research_office"),
    ],
)
def test_list_queries_do_not_grow_with_rows(path, viewer, request, client, institution, django_assert_max_num_queries):
    client.force_login(request.getfixturevalue(viewer))
    counts = []
    for size in SIZES:
        _grow_to(size, institution)
        with django_assert_max_num_queries(MAX_TRIAL_QUERIES if path == "/api/v1/trials/" else MAX_QUERIES):
            used, rows = _measure(client, path)
        assert rows >= size
        counts.append(used)
    assert counts[0] == counts[1]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/institutions/", "/api/v1/sponsors/", "/api/v1/regions/"])
def test_directory_queries_do_not_grow_with_rows(path, client, research_office, django_assert_max_num_queries):
    client.force_login(research_office)
    counts = []
    for size in SIZES:
        # Each trial brings its own sponsor, and both come with a region of their own.
        while Trial.objects.count() < size:
            TrialFactory()
        with django_assert_max_num_queries(MAX_QUERIES):
            used, rows = _measure(client, path)
        assert rows >= size
        counts.append(used)
    assert counts[0] == counts[1]
