"""Reports read from a replica when one is configured: their figures come from the replica connection, their request
log row and everything else from the primary, and every format states when its data was read (``data_as_of``).

The suite's ``replica`` alias is a test mirror of the default database (tests/conftest.py): a connection of its
own to the same database, so it sees committed rows only and these tests commit (``transaction=True``)."""

import csv
import io

import openpyxl
import pytest
import time_machine
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cgtclinic.api.reports import registered_reports
from cgtclinic.models import Region, ReportRequest
from cgtclinic.reporting.database import data_as_of, reading_reports
from cgtclinic.roles import Role
from tests.factories.cgtclinic import RegionFactory, UserFactory
from tests.reports.world import NOW, RegionWorld

REPORTS = [view.name for view in registered_reports()]
ON_REPLICA = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def world_and_regulator(review_interval, fresh_throttle):
    with time_machine.travel(NOW, tick=False):
        world = RegionWorld(RegionFactory(code="replica-region"))
        world.grow(2)
    return world, UserFactory(role=Role.REGULATOR, region=world.region)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def without_times(data: dict) -> dict:
    return {key: value for key, value in data.items() if key not in ("computed_at", "data_as_of")}


@ON_REPLICA
def test_reports_read_the_replica_and_log_on_the_primary(world_and_regulator, settings):
    _world, regulator = world_and_regulator
    client = client_for(regulator)
    primary, replica = connections["default"], connections["replica"]
    for name in REPORTS:
        settings.REPORTS_DATABASE = "default"
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(primary) as alone:
            expected = client.get(f"/api/v1/reports/{name}/")
        assert expected.status_code == 200, expected.content

        settings.REPORTS_DATABASE = "replica"
        with (
            time_machine.travel(NOW, tick=False),
            CaptureQueriesContext(primary) as on_primary,
            CaptureQueriesContext(replica) as on_replica,
        ):
            response = client.get(f"/api/v1/reports/{name}/")
        assert response.status_code == 200, response.content
        assert without_times(response.json()) == without_times(expected.json()), name
        # The report's own queries move to the replica, plus one for its replay time; the log row stays behind.
        assert len(on_replica) == len(alone), (name, [q["sql"] for q in on_replica])
        assert len(on_primary) == 1, (name, [q["sql"] for q in on_primary])
        assert f"INSERT INTO {ReportRequest._meta.db_table}" in on_primary[0]["sql"]
        assert "pg_last_xact_replay_timestamp" in on_replica[0]["sql"]
    assert ReportRequest.objects.filter(report__in=REPORTS, status_code=200).count() == 2 * len(REPORTS)


@ON_REPLICA
def test_every_format_states_when_the_replica_was_read(world_and_regulator, settings):
    """The mirror is a primary (it replays nothing): its data is as current as the moment the report started."""
    _world, regulator = world_and_regulator
    settings.REPORTS_DATABASE = "replica"
    client = client_for(regulator)
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connections["default"]) as on_primary:
        data = client.get("/api/v1/reports/pipeline/").json()
        as_csv = client.get("/api/v1/reports/pipeline/", {"format": "csv"})
        as_xlsx = client.get("/api/v1/reports/pipeline/", {"format": "xlsx"})
        # Exports are rendered after the report: nothing they show is read late, from the primary.
        client.get("/api/v1/reports/recognition-timeliness/", {"format": "xlsx"})
        client.get("/api/v1/reports/startup/", {"format": "csv"})
    assert [f"INSERT INTO {ReportRequest._meta.db_table}" in query["sql"] for query in on_primary] == [True] * 5
    # ISO 8601 in Asia/Shanghai.
    assert data["data_as_of"] == NOW.isoformat()
    assert data["data_as_of"].endswith("+08:00")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows and {row["data_as_of"] for row in rows} == {NOW.isoformat()}
    about = openpyxl.load_workbook(io.BytesIO(as_xlsx.content))["about"]
    assert {row[0]: row[1] for row in about.values}["data_as_of"] == NOW.isoformat()


@ON_REPLICA
def test_reads_inside_the_reports_context_go_to_the_replica_and_writes_to_the_primary(settings):
    settings.REPORTS_DATABASE = "replica"
    with reading_reports():
        assert Region.objects.all().db == "replica"
        region = Region.objects.create(code="written-inside", name_zh="写入", name_en="Written")
        assert region._state.db == "default"
        assert data_as_of(NOW) == NOW
    assert Region.objects.all().db == "default"


@pytest.mark.django_db
def test_without_a_replica_reports_read_the_primary_and_add_no_query(settings):
    assert settings.REPORTS_DATABASE == "default"
    with reading_reports(), CaptureQueriesContext(connections["default"]) as queries:
        assert Region.objects.all().db == "default"
        assert data_as_of(NOW) == NOW
    assert len(queries) == 0
