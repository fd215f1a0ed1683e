"""The demo enrolment ledger: every event of seeds/demo/enrolment.yaml reported through the ledger services, by
whom and when the file says, counts that equal the ledger, something for the offices to look at, and a bad event
refused with its file, row and event."""

import pytest
import yaml
from django.db import transaction
from django.utils import timezone

from cgtclinic.models import Institution, Sponsor, User
from cgtclinic.seeding import SEEDS_DIR, DemoSeeds, Regions, SeedError, SeedReport, load_seeds
from tests.seeds.files import read_rows
from trials.enrolment import over_target_sites_q, rebuild_site_counts, stalled_sites_q
from trials.models import EnrolmentEntry, SiteEnrolment, Trial, TrialSite
from trials.seeds import DemoLedger

pytestmark = pytest.mark.django_db

DEMO = SEEDS_DIR / "demo"
K = EnrolmentEntry.Kind
S = Trial.Status
COUNTS = tuple(K.values)
# Trials that have enrolled: their started sites have a ledger.
ENROLLED_STATUSES = (S.ACTIVE, S.ENROLMENT_CLOSED, S.COMPLETED, S.SUSPENDED, S.TERMINATED)


@pytest.fixture
def demo_report(demo_loaded_once, db):
    """Every test here reads the demo set, so it is loaded once for the module."""
    return demo_loaded_once


def demo_seeds(directory) -> DemoSeeds:
    """What the demo loader hands an app, rebuilt from the loaded demo set, reading the files in ``directory``."""
    institutions = {
        row["ref"]: Institution.objects.get(region__code=row["region"], name_zh=row["name_zh"])
        for row in read_rows(DEMO / "institutions.yaml")
    }
    sponsors = {row["ref"]: Sponsor.objects.get(name_zh=row["name_zh"]) for row in read_rows(DEMO / "sponsors.yaml")}
    people = {user.username: user for user in User.objects.all()}
    return DemoSeeds(directory, SeedReport(), Regions(), institutions, sponsors, people)


def net_counts(events, *, reported_by=None) -> dict[str, int]:
    """Net subjects per event kind in a site's events (corrections subtract), optionally only those reported by a
    day."""
    counts = dict.fromkeys(COUNTS, 0)
    for event in events:
        if reported_by is not None and event.get("reported", event.get("date")) > reported_by:
            continue
        if "reverse" in event:
            original = events[event["reverse"] - 1]
            counts[original["kind"]] -= original.get("count", 1)
        else:
            counts[event["kind"]] += event.get("count", 1)
    return counts


def site_of(row, institutions) -> TrialSite:
    return TrialSite.objects.get(trial__protocol_number=row["trial"], institution=institutions[row["site"]])


def _counts(cached: SiteEnrolment) -> dict:
    return {name: getattr(cached, name) for name in (*COUNTS, "last_enrolled_on")}


def test_every_event_of_the_file_is_in_the_ledger(demo_report):
    institutions = demo_seeds(DEMO).institutions
    rows = read_rows(DEMO / "enrolment.yaml")

    assert demo_report.tally(EnrolmentEntry).created == EnrolmentEntry.objects.count()
    assert EnrolmentEntry.objects.count() == sum(len(row["events"]) for row in rows)
    for row in rows:
        site = site_of(row, institutions)
        assert site.enrolment_entries.count() == len(row["events"]), row["trial"]
        cached = SiteEnrolment.objects.get(site=site)
        assert {name: getattr(cached, name) for name in COUNTS} == net_counts(row["events"]), row["trial"]


def test_each_event_was_reported_by_whom_and_when_the_file_says(demo_report):
    institutions = demo_seeds(DEMO).institutions
    for row in read_rows(DEMO / "enrolment.yaml"):
        entries = list(
            site_of(row, institutions)
            .enrolment_entries.select_related("reported_by", "subject", "reverses")
            .order_by("reported_at", "id")
        )
        for entry, event in zip(entries, row["events"], strict=True):
            assert entry.reported_by.username == event.get("by", row["by"])
            assert timezone.localdate(entry.reported_at) == event.get("reported", event.get("date"))
            if "reverse" in event:
                assert entry.reverses == entries[event["reverse"] - 1]
                assert entry.reason == event["reason"]
                continue
            assert (entry.kind, entry.occurred_on, entry.count) == (event["kind"], event["date"], event.get("count", 1))
            assert (entry.subject.code if entry.subject else "") == event.get("subject", "")
            assert entry.note == event.get("note", "")


def test_the_demo_has_a_correction_and_late_reports(demo_report):
    correction = EnrolmentEntry.objects.exclude(reverses=None).select_related("reverses").get()
    assert correction.reason and correction.reverses.subject_id == correction.subject_id
    late = [
        entry
        for entry in EnrolmentEntry.objects.filter(kind=K.ENROLLED)
        if (timezone.localdate(entry.reported_at) - entry.occurred_on).days > 365
    ]
    assert late and all(entry.note for entry in late)


def test_cached_counts_equal_the_ledger_for_every_site(demo_report):
    cached = {row.site_id: _counts(row) for row in SiteEnrolment.objects.all()}

    assert cached
    for site in TrialSite.objects.filter(pk__in=cached):
        assert _counts(rebuild_site_counts(site)) == cached[site.pk], site
    assert not SiteEnrolment.objects.exclude(site__enrolment_entries__isnull=False).exists()


def test_every_started_site_of_a_trial_that_enrolled_has_its_ledger(demo_report):
    sites = TrialSite.objects.filter(trial__status__in=ENROLLED_STATUSES).exclude(first_patient_in_on=None)

    assert sites.count() >= 15
    for site in sites:
        first = (
            site.enrolment_entries.filter(kind=K.ENROLLED, reverses=None, reversed_by=None)
            .order_by("occurred_on")
            .first()
        )
        assert first is not None, site
        assert first.occurred_on == site.first_patient_in_on, f"{site}: the first enrolment is the first patient in"
    assert not EnrolmentEntry.objects.filter(site__first_patient_in_on=None).exists()


def test_the_research_office_has_stalled_and_over_target_sites_to_look_at(demo_report):
    office = User.objects.get(username="research_office")
    visible = TrialSite.objects.visible_to(office)

    assert visible.filter(stalled_sites_q()).exists()
    assert visible.filter(over_target_sites_q()).exists()
    assert TrialSite.objects.filter(stalled_sites_q()).values("trial").distinct().count() >= 3


def test_loading_again_reports_nothing_twice(demo_report):
    entries = EnrolmentEntry.objects.count()

    again = load_seeds(SEEDS_DIR, demo=True)

    tally = again.tally(EnrolmentEntry)
    assert (tally.created, tally.updated, tally.unchanged) == (0, 0, entries)
    assert EnrolmentEntry.objects.count() == entries


# --- Bad rows ---------------------------------------------------------------------------------------------


def _row(trial, site, by, *events):
    return {"trial": trial, "site": site, "by": by, "events": list(events)}


BAD_ROWS = {
    "before_the_sites_approval": (
        _row("RK-CART-2025-01", "sh-shencheng", "shencheng_pi_zhao", {"kind": "screened", "date": "2025-03-03"}),
        "event 1): occurred_on: The site's ethics approval dates from 2025-03-12",
    ),
    "after_the_approval_lapsed": (
        _row("RK-CART-2025-01", "sh-shencheng", "shencheng_pi_zhao", {"kind": "enrolled", "date": "2026-06-01"}),
        "valid until 2026-03-12",
    ),
    "while_enrolment_was_closed": (
        _row("RK-IIT-2024-03", "sh-ruikang", "ruikang_pi_li", {"kind": "enrolled", "date": "2025-04-01"}),
        "not open for enrolment",
    ),
    "by_someone_who_may_not_report": (
        _row("RK-CART-2025-01", "sh-ruikang", "regulator", {"kind": "screened", "date": "2026-05-06"}),
        "may not report enrolment",
    ),
    "more_exits_than_enrolments": (
        _row("WQ-AAV-2024-06", "gd-wanqu", "wanqu_ro", {"kind": "withdrawn", "date": "2025-10-13", "count": 9}),
        "cannot exceed subjects enrolled",
    ),
    "a_subject_enrolled_twice": (
        _row(
            "RK-GT-2023-01",
            "sh-ruikang",
            "research_office",
            {"kind": "enrolled", "date": "2024-10-15", "subject": "RK-GT-001"},
        ),
        "already enrolled",
    ),
    "reversing_a_later_event": (
        _row(
            "RK-CART-2025-01",
            "sh-ruikang",
            "pi",
            {"reverse": 2, "reported": "2026-05-06", "reason": "重复录入"},
            {"kind": "screened", "date": "2026-05-06"},
        ),
        "event 1): “reverse” must be the number of an earlier event",
    ),
    "reported_before_it_happened": (
        _row(
            "RK-CART-2025-01", "sh-ruikang", "pi", {"kind": "screened", "date": "2026-05-06", "reported": "2026-05-01"}
        ),
        "“reported” cannot come before",
    ),
    "listed_out_of_reporting_order": (
        _row(
            "RK-CART-2025-01",
            "sh-ruikang",
            "pi",
            {"kind": "screened", "date": "2026-05-06"},
            {"kind": "screened", "date": "2026-05-04"},
        ),
        "event 2): It is reported before the previous event",
    ),
    "at_a_hospital_that_is_not_a_site": (
        _row("RK-CART-2025-01", "gd-wanqu", "pi", {"kind": "screened", "date": "2026-05-06"}),
        "is not a site of RK-CART-2025-01",
    ),
    "an_unknown_event": (
        _row("RK-CART-2025-01", "sh-ruikang", "pi", {"kind": "randomised", "date": "2026-05-06"}),
        "Unknown event “randomised”",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_event_names_file_row_and_event_and_writes_nothing(demo_report, tmp_path, case):
    row, expected = BAD_ROWS[case]
    (tmp_path / "enrolment.yaml").write_text(yaml.safe_dump([row], allow_unicode=True), encoding="utf-8")
    entries = EnrolmentEntry.objects.count()

    with pytest.raises(SeedError) as caught, transaction.atomic():
        DemoLedger(demo_seeds(tmp_path)).load()

    message = str(caught.value)
    assert f"enrolment.yaml, row 1 (trial: {row['trial']}" in message
    assert expected in message
    assert EnrolmentEntry.objects.count() == entries
