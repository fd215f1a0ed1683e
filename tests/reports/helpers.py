"""Reading reports the way a client does, and percentiles computed the way PostgreSQL's PERCENTILE_CONT does."""

import statistics

from rest_framework.test import APIClient


def report(user, name: str, **params) -> dict:
    """GET a report as ``user`` and return its JSON, asserting it was answered."""
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/reports/{name}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def percentile(values, fraction: float):
    """Continuous percentile with linear interpolation (PERCENTILE_CONT), computed independently in the test."""
    values = sorted(float(v) for v in values)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def median(values):
    return statistics.median(values) if values else None
