"""The summary computed in the page's statement holds for every page, past the end and with no rows; the request
log written in one autocommit statement keeps every request; grouped reports compute their groups and total in one
statement."""

import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient

from cgtclinic.models import ReportRequest
from cgtclinic.reporting.sql import _COMPILED
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory, issue_token
from tests.reports.helpers import report
from tests.reports.world import NOW, RegionWorld

GROUPED = ("subsidies", "subsidy-projects")


@pytest.fixture
def world(region):
    with time_machine.travel(NOW, tick=False):
        built = RegionWorld(region)
        built.grow(2)
    return built


@pytest.mark.django_db
@pytest.mark.parametrize("name", GROUPED)
def test_every_page_carries_the_summary_of_all_rows(world, regulator, name):
    whole = report(regulator, name)
    count = whole["pagination"]["count"]
    assert count > 1, "the world has several groups"
    pages = [report(regulator, name, page_size=1, page=page) for page in (1, count, count + 5)]
    for data in pages:
        assert data["summary"] == whole["summary"]
        assert data["pagination"]["count"] == count
    assert [len(data["rows"]) for data in pages] == [1, 1, 0]
    assert pages[0]["rows"][0] == whole["rows"][0]
    assert pages[1]["rows"][0] == whole["rows"][-1]


@pytest.mark.django_db
@pytest.mark.parametrize("name", GROUPED)
def test_a_region_without_claims_reads_zeros(regulator, name):
    data = report(regulator, name)
    assert data["rows"] == []
    assert data["pagination"]["count"] == 0
    assert data["summary"] and all(float(value) == 0 for value in data["summary"].values())


@pytest.mark.django_db
def test_the_chosen_statuses_count_institutions_and_programs_with_such_claims(world, regulator):
    every = report(regulator, "subsidies")
    assert every["summary"]["institutions"] == len({row["institution_id"] for row in every["rows"]})
    assert every["summary"]["programs"] == len({row["program_id"] for row in every["rows"]})
    paid = report(regulator, "subsidies", status="paid")
    with_paid = [row for row in paid["rows"] if row["claims"]]
    assert paid["summary"]["institutions"] == len({row["institution_id"] for row in with_paid})
    assert paid["summary"]["programs"] == len({row["program_id"] for row in with_paid})
    assert paid["summary"]["claims"] == sum(row["claims_paid"] for row in every["rows"])


@pytest.mark.django_db(transaction=True)
def test_the_log_row_of_every_request_is_written_outside_a_transaction(region, regulator):
    token = issue_token(regulator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert not connection.in_atomic_block
    for params in ({}, {"format": "csv"}, {"status": ["paid", "approved"]}, {"year": "1900"}):
        client.get("/api/v1/reports/subsidies/", params)
    rows = list(ReportRequest.objects.order_by("pk").values("user_id", "report", "format", "filters", "status_code"))
    assert rows == [
        {"user_id": regulator.pk, "report": "subsidies", "format": "json", "filters": {}, "status_code": 200},
        {
            "user_id": regulator.pk,
            "report": "subsidies",
            "format": "csv",
            "filters": {"format": "csv"},
            "status_code": 200,
        },
        {
            "user_id": regulator.pk,
            "report": "subsidies",
            "format": "json",
            "filters": {"status": ["paid", "approved"]},
            "status_code": 200,
        },
        {
            "user_id": regulator.pk,
            "report": "subsidies",
            "format": "json",
            "filters": {"year": "1900"},
            "status_code": 400,
        },
    ]
    assert all(entry.requested_at and entry.duration_ms >= 0 for entry in ReportRequest.objects.all())


@pytest.mark.django_db
def test_compiled_statements_are_never_shared_between_viewers_or_filters(region, other_region, system_admin):
    with time_machine.travel(NOW, tick=False):
        RegionWorld(region).grow(2)
        RegionWorld(other_region).grow(1)
    ours, theirs = (
        UserFactory(role=Role.REGULATOR, region=region),
        UserFactory(role=Role.REGULATOR, region=other_region),
    )
    asks = [
        (ours, "subsidies", {}),
        (theirs, "subsidies", {}),
        (ours, "subsidies", {"status": "paid"}),
        (ours, "subsidies", {"year": "2024"}),
        (system_admin, "subsidies", {"region": other_region.code}),
        (system_admin, "subsidies", {}),
        (ours, "policy-targets", {}),
        (theirs, "policy-targets", {}),
        (system_admin, "policy-targets", {}),
    ]
    with time_machine.travel(NOW, tick=False):
        compiled_once = [report(user, name, **params) for user, name, params in asks]
        _COMPILED.clear()
        fresh = [report(user, name, **params) for user, name, params in asks]
    for (user, name, params), first, again in zip(asks, compiled_once, fresh, strict=True):
        assert (first["rows"], first["summary"]) == (again["rows"], again["summary"]), (user.username, name, params)
    assert compiled_once[0]["summary"] != compiled_once[1]["summary"]
    assert compiled_once[1]["summary"] == compiled_once[4]["summary"]
    assert (
        compiled_once[0]["summary"]["claims"] + compiled_once[1]["summary"]["claims"]
        == (compiled_once[5]["summary"]["claims"])
    )
    assert {row["region_code"] for row in compiled_once[6]["rows"]} == {region.code}
    assert {row["region_code"] for row in compiled_once[8]["rows"]} == {region.code, other_region.code}


@pytest.mark.django_db
def test_turnaround_groups_and_total_come_from_one_statement(world, regulator, django_assert_num_queries):
    client = APIClient()
    client.force_authenticate(regulator)
    for params in ({}, {"group_by": "kind,institution"}):
        # The report's statement and the log row.
        with django_assert_num_queries(2):
            data = client.get("/api/v1/reports/ethics-turnaround/", params).json()
        assert data["rows"] and all(row["review_type"] for row in data["rows"])
        assert data["summary"]["decided"] == sum(row["decided"] for row in data["rows"])
        assert data["summary"]["in_review"] == sum(row["in_review"] for row in data["rows"])
        assert data["summary"]["max_days"] == max(row["max_days"] for row in data["rows"] if row["decided"])
    nothing = report(regulator, "ethics-turnaround", decided_from="2001-01-01", decided_to="2001-01-02")
    assert nothing["summary"]["decided"] == 0
    assert nothing["summary"]["median_days"] is None


@pytest.mark.django_db
def test_timeliness_groups_and_total_come_from_one_statement(world, regulator, django_assert_num_queries):
    client = APIClient()
    client.force_authenticate(regulator)
    for params in ({}, {"group_by": "institution"}):
        # The groups with their total, the overdue requests with their count, and the log row.
        with django_assert_num_queries(3):
            data = client.get("/api/v1/reports/recognition-timeliness/", params).json()
        assert data["rows"]
        for name in ("received", "answered_on_time", "answered_late", "open", "overdue"):
            assert data["summary"][name] == sum(row[name] for row in data["rows"]), name
        assert data["summary"]["overdue"] == data["overdue_requests"]["count"]
    nothing = report(regulator, "recognition-timeliness", received_from="2001-01-01", received_to="2001-01-02")
    assert nothing["rows"] == [] and nothing["summary"]["received"] == 0
    assert nothing["summary"]["median_working_hours"] is None and nothing["summary"]["on_time_share"] is None
