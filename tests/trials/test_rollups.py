"""The trials rollup (one row per site) stays equal to a recomputation from the raw rows whatever writes them:
services, admin-style saves, queryset updates (as the ethics app records approvals), deletions, renames; and the
reports read from it equal the reports after a rebuild."""

import datetime
import random

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cgtclinic import rollups as registry
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory
from tests.reports.helpers import report
from tests.reports.world import NOW, RegionWorld
from trials import enrolment, rollups, services
from trials.models import EnrolmentEntry, SiteRollup, Trial, TrialSite

pytestmark = pytest.mark.django_db
D = datetime.date
REPORTS = (
    ("pipeline", {}),
    ("pipeline", {"group_by": "status,institution"}),
    ("startup", {}),
    ("enrolment", {}),
    ("enrolment", {"group_by": "site"}),
    ("enrolment", {"group_by": "institution", "occurred_from": "2024-01-01"}),
)


@pytest.fixture(autouse=True)
def _reports(review_interval, fresh_throttle):
    """The ledger needs the national review interval; reports start with no throttle counts."""


@pytest.fixture
def other_region(db):
    return RegionFactory(code="other-region", name_zh="外省", name_en="Other Province")


def read_reports(*viewers) -> list[dict]:
    with time_machine.travel(NOW, tick=False):
        return [report(viewer, name, page_size=1000, **params) for viewer in viewers for name, params in REPORTS]


def random_writes(world: RegionWorld, other_region, rng: random.Random) -> None:
    """Trials, sites, milestones, status changes, ledger entries and reversals, renames and deletions."""
    admin = UserFactory(is_superuser=True)
    hospitals = [*world.hospitals, InstitutionFactory(region=other_region)]
    trials = []
    for _index in range(4):
        lead = rng.choice(hospitals)
        trial = TrialFactory(
            lead_institution=lead,
            kind=rng.choice(Trial.Kind.values),
            therapy_category=rng.choice(Trial.TherapyCategory.values),
        )
        for hospital in rng.sample([h for h in hospitals if h != lead], 2):
            services.site_add(trial=trial, actor=admin, institution=hospital, site_target=rng.randint(0, 9))
        trials.append(trial)
    for site in TrialSite.objects.filter(trial__in=trials):
        received = D(2025, 1, 1) + datetime.timedelta(days=rng.randint(0, 60))
        services.site_update(site=site, actor=admin, submission_received_on=received)
        if rng.random() < 0.7:
            # How the ethics app records an approval: a queryset update.
            TrialSite.objects.filter(pk=site.pk, ethics_approved_on=None).update(
                ethics_approved_on=received + datetime.timedelta(days=rng.randint(5, 50))
            )
        if rng.random() < 0.5:
            site.refresh_from_db()
            site.contract_signed_on = (site.ethics_approved_on or received) + datetime.timedelta(days=9)
            site.save()
    for trial in trials:
        Trial.objects.filter(pk=trial.pk).update(status=rng.choice([Trial.Status.ACTIVE, Trial.Status.SUSPENDED]))
    trial = trials[0]
    trial.refresh_from_db()
    trial.protocol_number = f"{trial.protocol_number}-R"
    trial.save()
    # The first site of a trial in a region goes: its flags move to a sibling.
    TrialSite.objects.filter(trial=trials[1], role=TrialSite.SiteRole.PARTICIPATING).order_by("pk").first().delete()
    renamed = world.hospitals[0]
    renamed.name_zh = f"{renamed.name_zh}（新址）"
    renamed.save()

    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=world.hospitals[-1])
    site = TrialSite.objects.filter(institution=world.hospitals[-1], role=TrialSite.SiteRole.LEAD).first()
    for _index in range(5):
        enrolment.enrolment_report(
            site=site,
            actor=office,
            kind="screened",
            occurred_on=D(2024, 3, 1) + datetime.timedelta(days=rng.randint(0, 30)),
            count=rng.randint(1, 3),
        )
    entry = EnrolmentEntry.objects.filter(site=site, kind="screened", reverses=None).order_by("?").first()
    enrolment.enrolment_reverse(entry=entry, actor=office, reason="duplicate")


@pytest.mark.parametrize("seed", [1, 2])
def test_rollup_equals_recomputation_after_random_writes(seed, region, other_region, regulator, system_admin):
    with time_machine.travel(NOW, tick=False):
        world = RegionWorld(region)
        world.grow(3)
        random_writes(world, other_region, random.Random(seed))
    assert registry.differences() == {}
    before = read_reports(regulator, system_admin)
    registry.rebuild(["trials.site"])
    assert read_reports(regulator, system_admin) == before


def test_differences_name_the_sites_that_drifted(region):
    site = TrialSiteFactory(institution=InstitutionFactory(region=region))
    SiteRollup.objects.filter(pk=site.pk).update(startup_days=99)
    other = TrialSiteFactory()
    SiteRollup.objects.filter(pk=other.pk).delete()
    found = registry.differences(["trials.site"])["trials.site"]
    assert any(f"site {site.pk}:" in line for line in found)
    assert any(f"site {other.pk}:" in line for line in found)
    assert rollups.rebuild() == TrialSite.objects.count()
    assert registry.differences() == {}


def test_flags_count_each_trial_once_per_region_and_in_all(region, other_region):
    trial = TrialFactory(lead_institution=InstitutionFactory(region=region))
    for institution in (InstitutionFactory(region=region), InstitutionFactory(region=other_region)):
        TrialSiteFactory(trial=trial, institution=institution)
    rows = SiteRollup.objects.filter(trial_id=trial.pk)
    assert rows.count() == 3
    assert rows.filter(first_in_trial=True).count() == 1
    assert sorted(rows.filter(first_in_region=True).values_list("region_id", flat=True)) == sorted(
        [region.pk, other_region.pk]
    )


def test_report_queries_do_not_grow_with_the_region(region, regulator, system_admin):
    with time_machine.travel(NOW, tick=False):
        world = RegionWorld(region)
        world.grow(1)
    counted = {}
    for size in (1, 4):
        with time_machine.travel(NOW, tick=False):
            world.grow(size)
        for viewer in (regulator, system_admin):
            for name, params in REPORTS:
                with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
                    report(viewer, name, **params)
                counted.setdefault((viewer.pk, name, tuple(params.items())), set()).add(len(queries))
    assert all(len(sizes) == 1 for sizes in counted.values()), counted
