"""Demo safety reports (seeds/demo/safety_events.yaml), recorded and stepped through ethics.safety at moments
relative to the time of loading, so the demo's clocks are live. Called by ethics.seeds.load_demo."""

from datetime import timedelta
from pathlib import Path

from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.seeding import DemoSeeds, Row, read_rows, ref, refused, seed_clock
from ethics import safety
from ethics.models import SafetyClock, SafetyEffect, SafetyEvent
from trials.models import TrialSite

STEPS = {
    safety.SEND_TO_SPONSOR: safety.safety_send_to_sponsor,
    safety.REPORT_TO_EC: safety.safety_report_to_ec,
    safety.PI_REVIEW: safety.safety_pi_review,
    safety.COMMITTEE_REVIEW: safety.safety_committee_review,
}


def load_demo_safety(demo: DemoSeeds) -> None:
    path: Path = demo.directory / "safety_events.yaml"
    rows = read_rows(
        path,
        required={"trial", "site", "kind", "by", "term", "description", "criteria", "expectedness", "causality"},
        optional={"outcome", "aware_hours_ago", "sponsor_aware_days_ago", "received_hours_ago", "steps"},
        key=("trial", "site", "term"),
        label="term",
    )
    now = timezone.now().replace(second=0, microsecond=0)
    for row in rows:
        site = _site(row, demo)
        if SafetyEvent.objects.filter(site=site, term=row.data["term"]).exists():
            demo.report.tally(SafetyEvent).unchanged += 1
            continue
        _replay(row, site, demo, now)
        demo.report.tally(SafetyEvent).created += 1


def _site(row: Row, demo: DemoSeeds) -> TrialSite:
    institution = ref(row, "site", demo.institutions, "institutions.yaml")
    site = TrialSite.objects.filter(trial__protocol_number=row.data["trial"], institution=institution).first()
    if site is None:
        raise row.error(_("“site”: no site of %(trial)s at that institution in trials.yaml.") % row.data)
    return site


def _replay(row: Row, site: TrialSite, demo: DemoSeeds, now) -> None:
    data = row.data
    if data["kind"] == SafetyEvent.Kind.SAE:
        start = now - timedelta(hours=data.get("aware_hours_ago", 1))
        moments = {"aware_at": start}
    else:
        start = now - timedelta(hours=data.get("received_hours_ago", 1))
        moments = {
            "sponsor_aware_on": timezone.localdate(now - timedelta(days=data.get("sponsor_aware_days_ago", 1))),
            "received_at": start,
        }
    with seed_clock(start):
        try:
            event = safety.safety_event_record(
                actor=ref(row, "by", demo.people, "people.yaml"),
                site=site,
                kind=data["kind"],
                term=data["term"],
                description=data["description"],
                criteria=data["criteria"],
                expectedness=data["expectedness"],
                causality=data["causality"],
                outcome=data.get("outcome", SafetyEvent.Outcome.ONGOING),
                **moments,
            )
        except DomainError as exc:
            raise refused(row, exc) from exc
    for part in row.parts("steps", "step %(number)d"):
        moment = start + timedelta(hours=part.data["hours_after_start"])
        _run_timers(moment)
        extra = {"opinion": part.data.get("opinion", "")} if part.data["do"] == safety.COMMITTEE_REVIEW else {}
        with seed_clock(moment):
            try:
                STEPS[part.data["do"]](
                    event=event, actor=ref(part, "by", demo.people, "people.yaml"), at=moment, **extra
                )
            except DomainError as exc:
                raise refused(part, exc) from exc
    _run_timers(now)


def _run_timers(until) -> None:
    """The reminders and escalations due by ``until``, each at its own moment, as the beat would have run them."""
    effects = SafetyEffect.objects.filter(clock=OuterRef("pk"), due_at=OuterRef("due_at"))
    while True:
        pending = (
            SafetyClock.objects.open()
            .filter(due_at__lte=until)
            .exclude(Exists(effects.filter(kind=SafetyEffect.Kind.ESCALATION)))
            .order_by("due_at")
            .values_list("due_at", flat=True)
            .first()
        )
        reminder = (
            SafetyClock.objects.open()
            .filter(remind_at__lte=until, due_at__gt=until)
            .exclude(Exists(effects.filter(kind=SafetyEffect.Kind.REMINDER)))
            .order_by("remind_at")
            .values_list("remind_at", flat=True)
            .first()
        )
        moments = [moment for moment in (pending, reminder) if moment is not None]
        if not moments:
            return
        with seed_clock(min(moments)):
            safety.sweep(now=min(moments))
