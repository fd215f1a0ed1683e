"""The trials rollup (one row per site) stays equal to a recomputation from the raw rows whatever writes them:
services, admin-style saves, queryset updates (as the ethics app records approvals), deletions, renames; and the
reports read from it equal the reports after a rebuild."""

import datetime
import random

import pytest
import time_machine
from django.db import connection
from django.db.models import Case, F, IntegerField, Max, Sum, When
from django.test.utils import CaptureQueriesContext

from cgtclinic import rollups as registry
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory, active_site, days_ago
from tests.reports.helpers import report
from tests.reports.world import NOW, RegionWorld
from trials import enrolment, reports, rollups, services
from trials.models import (
    EnrolmentEntry,
    EnrolmentSubject,
    SiteEnrolment,
    SiteEnrolmentMonth,
    SiteRollup,
    Trial,
    TrialSite,
)

pytestmark = pytest.mark.django_db
D = datetime.date
REPORTS = (
    ("pipeline", {}),
    ("pipeline", {"group_by": "status,institution"}),
    ("startup", {}),
    ("enrolment", {}),
    ("enrolment", {"group_by": "site"}),
    ("enrolment", {"group_by": "institution", "occurred_from": "2024-01-01"}),
    ("enrolment", {"group_by": "month"}),
    ("enrolment", {"group_by": "month", "occurred_from": "2024-03-03", "occurred_to": "2025-06-01"}),
    ("enrolment", {"group_by": "trial", "occurred_from": "2024-03-05", "occurred_to": "2024-03-31"}),
    ("enrolment", {"group_by": "site", "occurred_to": "2024-03-10"}),
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
    registry.rebuild()
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


# --- the ledger's rollups: site counts, site months, subject states ---------------------------------------------


def ledger_writes(rng: random.Random) -> list[TrialSite]:
    """Reports at two sites over seven months, named subjects through their stages, counts without names, and
    reversals of either (the latest enrolment of a site among them)."""
    sites = [active_site(), active_site()]
    written = []
    for site in sites:
        for number in range(12):
            code = f"S-{site.pk}-{number}"
            day = days_ago(rng.randint(30, 190))
            chain = [("screened", day)]
            if rng.random() < 0.3:
                chain.append(("screen_failed", day + datetime.timedelta(days=rng.randint(0, 5))))
            else:
                enrolled_on = day + datetime.timedelta(days=rng.randint(0, 10))
                chain.append(("enrolled", enrolled_on))
                if rng.random() < 0.6:
                    chain.append((rng.choice(["withdrawn", "completed"]), enrolled_on + datetime.timedelta(days=20)))
            for kind, on in chain:
                written.append(
                    enrolment.enrolment_report(
                        site=site, actor=site.site_pi, kind=kind, occurred_on=on, subject_code=code
                    )
                )
        for _index in range(4):
            written.append(
                enrolment.enrolment_report(
                    site=site, actor=site.site_pi, kind="screened", occurred_on=days_ago(rng.randint(1, 190)), count=3
                )
            )
    # Reverse the latest entry of some subjects (a subject's later entries must go first) and some counts.
    latest = {}
    for entry in written:
        latest[entry.subject_id or entry.pk] = entry
    for entry in rng.sample(sorted(latest.values(), key=lambda e: e.pk), 10):
        enrolment.enrolment_reverse(entry=entry, actor=entry.site.site_pi, reason="录入错误")
    # The latest enrolment of a site, reversed (when its subject has not left since): its last enrolment day moves.
    last = EnrolmentEntry.objects.filter(site=sites[0], kind="enrolled", reverses=None, reversed_by=None)
    last = last.order_by("-occurred_on", "-pk").first()
    if last is not None and last.subject.state == "on_study":
        enrolment.enrolment_reverse(entry=last, actor=sites[0].site_pi, reason="重复")
    return sites


def raw_period_counts(start, end, by):
    """The ledger's own grouped sums for a period: what the reports showed before the month rollup."""
    entries = EnrolmentEntry.objects.all()
    if start:
        entries = entries.filter(occurred_on__gte=start)
    if end:
        entries = entries.filter(occurred_on__lte=end)
    signed = Case(When(reverses__isnull=False, then=-F("count")), default=F("count"), output_field=IntegerField())
    field = {"site": "site_id", "institution": "site__institution_id", None: None}[by]
    counts = {}
    rows = entries.values("kind", **({"key": F(field)} if field else {})).annotate(
        n=Sum(signed), last=Max("occurred_on")
    )
    for row in rows.order_by():
        group = counts.setdefault(row.get("key"), {**reports.no_counts()})
        group[row["kind"]] = row["n"]
        if row["kind"] == "enrolled":
            group["last_enrolled_on"] = row["last"]
    return counts


def raw_period_months(start, end):
    months = {}
    for entry in EnrolmentEntry.objects.all():
        if (start and entry.occurred_on < start) or (end and entry.occurred_on > end):
            continue
        month = months.setdefault(entry.occurred_on.replace(day=1), dict.fromkeys(reports.COUNTS, 0))
        month[entry.kind] += entry.signed_count
    return [{"month": month, **counts} for month, counts in sorted(months.items())]


@pytest.mark.parametrize("seed", [3, 4])
def test_ledger_rollups_equal_the_ledger_and_periods_read_the_same_figures(seed):
    rng = random.Random(seed)
    ledger_writes(rng)
    assert registry.differences() == {}
    sites = SiteRollup.objects.all()
    today = datetime.date.today()
    periods = [(None, None), (None, today), (days_ago(400), None)]
    for _index in range(12):
        # Month boundaries, days within one month, and periods across several.
        first = days_ago(rng.randint(0, 200))
        if rng.random() < 0.3:
            first = first.replace(day=1)
        last = first + datetime.timedelta(days=rng.choice([0, 3, 27, 45, 90]))
        if rng.random() < 0.3:
            last = (last.replace(day=1) + datetime.timedelta(days=32)).replace(day=1) - datetime.timedelta(days=1)
        periods += [(first, last), (first, None), (None, last)]
    for start, end in periods:
        for by in (None, "site", "institution"):
            assert reports.period_counts(sites=sites, occurred_from=start, occurred_to=end, by=by) == (
                raw_period_counts(start, end, by)
            ), (start, end, by)
        assert reports.period_months(sites=sites, occurred_from=start, occurred_to=end) == raw_period_months(
            start, end
        ), (start, end)
    kept = {
        "counts": list(SiteEnrolment.objects.order_by("pk").values_list(*enrolment.COUNT_FIELDS, "last_enrolled_on")),
        "months": list(SiteEnrolmentMonth.objects.order_by("site_id", "month").values()),
        "subjects": list(EnrolmentSubject.objects.order_by("pk").values_list("pk", "state", "last_event_on")),
        "rollup": list(SiteRollup.objects.order_by("pk").values_list("enrolled", "last_enrolled_on")),
    }
    registry.rebuild()
    for name in ("months",):
        rebuilt = list(SiteEnrolmentMonth.objects.order_by("site_id", "month").values())
        assert [{**row, "id": None} for row in rebuilt] == [{**row, "id": None} for row in kept[name]]
    assert (
        list(SiteEnrolment.objects.order_by("pk").values_list(*enrolment.COUNT_FIELDS, "last_enrolled_on"))
        == kept["counts"]
    )
    assert list(EnrolmentSubject.objects.order_by("pk").values_list("pk", "state", "last_event_on")) == kept["subjects"]
    assert list(SiteRollup.objects.order_by("pk").values_list("enrolled", "last_enrolled_on")) == kept["rollup"]


def test_ledger_differences_name_what_drifted():
    site = active_site()
    entry = enrolment.enrolment_report(
        site=site, actor=site.site_pi, kind="enrolled", occurred_on=days_ago(5), subject_code="RK-001"
    )
    SiteEnrolment.objects.filter(pk=site.pk).update(enrolled=7)
    SiteEnrolmentMonth.objects.filter(site=site).update(screened=2)
    EnrolmentSubject.objects.filter(pk=entry.subject_id).update(state="completed")
    found = registry.differences()
    assert {"trials.site_enrolment", "trials.site", "trials.site_month", "trials.subject_state"} <= set(found)
    assert any(
        "RK" not in line and f"'subject_id': {entry.subject_id}" in line for line in found["trials.subject_state"]
    )
    registry.rebuild()
    assert registry.differences() == {}
    assert EnrolmentSubject.objects.get(pk=entry.subject_id).state == "on_study"
