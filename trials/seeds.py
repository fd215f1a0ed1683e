"""The demo trials (seeds/demo/trials.yaml): each trial with its sites and its status history; and the demo
enrolment ledger (seeds/demo/enrolment.yaml).

``load_demo`` is called by ``manage.py load_seeds --demo`` through ``cgtclinic.seeding.load_demo``, after the demo
hospitals, sponsors and people, in the demo set's transaction. A trial's status is where its history ends; the
history is written as seeded (the tests replay every history through the lifecycle services).

The ledger is not written by ``load_demo``: an event needs the site's ethics approval in force on its day, and the
continuing-review approvals that keep some sites open are replayed later in the same transaction by the ethics
loader. ``DemoLedger`` reports the events through ``trials.enrolment`` (the only way the ledger is written), each
at its reported moment; the subsidies loader, the last one, replays it interleaved with the demo claims so that a
claim counts exactly what the sites had reported by then.
"""

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import User
from cgtclinic.seeding import (
    DemoSeeds,
    PolicySeeds,
    Row,
    SeedError,
    SeedReport,
    check_keys,
    check_with,
    department_of,
    field_value,
    field_values,
    parse_date,
    read_rows,
    ref,
    refused,
    seed_clock,
    step_moment,
    sync,
    upsert,
)
from trials import consent, enrolment, gate_seeds
from trials.filing_seeds import load_demo_filings
from trials.models import EnrolmentEntry, Trial, TrialSite, TrialStatusChange
from trials.services import check_site_fields, check_trial_fields

TRIAL_FIELDS = (
    "title_zh",
    "title_en",
    "kind",
    "therapy_category",
    "phase",
    "target_enrolment",
    "nmpa_approval_number",
    "nmpa_approved_on",
    "filing_number",
    "filed_on",
    "chictr_id",
    "nct_id",
    "hgr_status",
    "hgr_approval_number",
)


def load_policy(policy: PolicySeeds) -> None:
    """Load the gate rules (seeds/policy/gates.yaml)."""
    gate_seeds.load_gate_rules(policy)


def load_demo(demo: DemoSeeds) -> None:
    """Load the demo GCP certificates, then the trials, their gate answers, sites and status histories, then the
    sites' delegation logs."""
    qualifications = gate_seeds.DemoQualifications(demo.directory, demo.report, demo.people, demo.institutions)
    qualifications.load_certificates()
    _load_trials(
        demo.directory / "trials.yaml", demo.report, demo.institutions, demo.sponsors, demo.people, qualifications
    )
    qualifications.load_delegations()
    load_demo_filings(demo)


@dataclass(frozen=True)
class _Step:
    row: Row
    from_status: str
    to_status: str
    at: datetime
    actor: User
    reason: str


def _history(row: Row, people: dict) -> list[_Step]:
    entries = row.data.get("history") or []
    if not isinstance(entries, list):
        raise row.error(_("“history” must be a list of steps."))
    steps: list[_Step] = []
    previous = Trial.Status.DRAFT
    now = timezone.now()
    for position, entry in enumerate(entries):
        part = row.part(_("history step %(number)d") % {"number": position + 1}, entry)
        check_keys(part, required={"to", "date", "by"}, optional={"reason"})
        to_status = part.data["to"]
        if to_status not in Trial.Status.values:
            raise part.error(_("Unknown status “%(status)s”.") % {"status": to_status})
        at = step_moment(parse_date(part, "date"), position)
        if at > now:
            raise part.error(_("The step is dated in the future."))
        if steps and at < steps[-1].at:
            raise part.error(_("The step is dated before the previous one."))
        actor = ref(part, "by", people, "people.yaml")
        reason = field_value(part, TrialStatusChange, "reason", part.data.get("reason", ""))
        steps.append(_Step(part, previous, to_status, at, actor, reason))
        previous = to_status
    return steps


def _seed_actor(path: Path, people: dict[str, User]) -> User:
    actor = next((user for user in people.values() if user.is_superuser), None)
    if actor is None:
        raise SeedError(
            _("%(file)s: people.yaml must list a system administrator; demo trials are recorded as their work.")
            % {"file": path}
        )
    return actor


def _load_trials(
    path: Path,
    report: SeedReport,
    institutions: dict,
    sponsors: dict,
    people: dict,
    qualifications: gate_seeds.DemoQualifications,
) -> None:
    rows = read_rows(
        path,
        required={"lead", "protocol_number", "title_zh", "kind", "therapy_category", "phase", "pi"}
        | {"target_enrolment"},
        optional=set(TRIAL_FIELDS) | {"sponsor", "department", "lead_site", "sites", "history"},
        key=("lead", "protocol_number"),
        label="protocol_number",
    )
    actor = _seed_actor(path, people)
    for row in rows:
        lead = ref(row, "lead", institutions, "institutions.yaml")
        protocol_number = field_value(row, Trial, "protocol_number")
        pi = ref(row, "pi", people, "people.yaml")
        department = department_of(row, lead, row.data.get("department"))
        check_with(
            row,
            check_trial_fields,
            actor=actor,
            trial=None,
            data={"lead_institution": lead, "pi": pi, "department": department},
        )
        values = {
            "sponsor": ref(row, "sponsor", sponsors, "sponsors.yaml", required=False),
            "department": department,
            "pi": pi,
            **field_values(row, Trial, TRIAL_FIELDS),
        }
        steps = _history(row, people)
        trial = Trial.objects.filter(lead_institution=lead, protocol_number=protocol_number).first()
        recorded = list(trial.status_changes.order_by("id")) if trial else []
        if len(recorded) > len(steps):
            # Someone moved the trial on in the app: keep where it is now and the steps after the seeded ones.
            report.kept_trials.append(f"{protocol_number} ({trial.get_status_display()})")
        else:
            last = steps[-1] if steps else None
            values["status"] = last.to_status if last else Trial.Status.DRAFT
            values["status_changed_at"] = last.at if last else None
            is_suspended = last is not None and last.to_status == Trial.Status.SUSPENDED
            values["status_before_suspension"] = last.from_status if is_suspended else ""
        if trial is None:
            values["created_by"] = actor
        lookup = {"lead_institution": lead, "protocol_number": protocol_number}
        trial = sync(report, row, Trial, trial, {**lookup, **values}, actor=actor)
        qualifications.load_gates(trial)
        _load_sites(report, row, trial, people, institutions, actor, qualifications)
        for position, step in enumerate(steps):
            sync(
                report,
                step.row,
                TrialStatusChange,
                recorded[position] if position < len(recorded) else None,
                {
                    "trial": trial,
                    "from_status": step.from_status,
                    "to_status": step.to_status,
                    "at": step.at,
                    "actor": step.actor,
                    "reason": step.reason,
                },
            )


def _load_sites(
    report: SeedReport,
    row: Row,
    trial: Trial,
    people: dict,
    institutions: dict,
    actor: User,
    qualifications: gate_seeds.DemoQualifications,
) -> None:
    site_fields = {"site_target", *TrialSite.MILESTONES}
    lead_part = row.part("lead_site", row.data.get("lead_site") or {})
    check_keys(lead_part, required=set(), optional=site_fields)
    entries = [(lead_part, trial.lead_institution, TrialSite.SiteRole.LEAD, trial.pi)]
    sites = row.data.get("sites") or []
    if not isinstance(sites, list):
        raise row.error(_("“sites” must be a list."))
    seen = {trial.lead_institution_id}
    for position, entry in enumerate(sites, start=1):
        part = row.part(_("site %(number)d") % {"number": position}, entry)
        check_keys(part, required={"institution"}, optional={"site_pi", *site_fields})
        institution = ref(part, "institution", institutions, "institutions.yaml")
        if institution.pk in seen:
            raise part.error(_("This institution is already a site of the trial (or its lead)."))
        seen.add(institution.pk)
        site_pi = ref(part, "site_pi", people, "people.yaml", required=False)
        entries.append((part, institution, TrialSite.SiteRole.PARTICIPATING, site_pi))
    for part, institution, role, site_pi in entries:
        milestones = field_values(part, TrialSite, TrialSite.MILESTONES)
        target = part.data.get("site_target")
        values = {
            "role": role,
            "site_pi": site_pi,
            "site_target": field_value(part, TrialSite, "site_target")
            if target is not None
            else (trial.target_enrolment if role == TrialSite.SiteRole.LEAD else 0),
        }
        # The site exists before its milestones, as in the app: its gates are answered, then it is initiated.
        site = TrialSite.objects.filter(trial=trial, institution=institution).first()
        if site is None:
            site = TrialSite(trial=trial, institution=institution, **values)
            site._history_user = actor
            site.save()
        qualifications.load_gates(trial, site)
        check_with(
            part,
            check_site_fields,
            actor=actor,
            trial=trial,
            site=site,
            data={"institution": institution, "site_pi": site_pi, **milestones},
        )
        upsert(
            report, part, TrialSite, {"trial": trial, "institution": institution}, {**values, **milestones}, actor=actor
        )


# --- Enrolment ledger -------------------------------------------------------------------------------------

ENROLMENT_FILE = "enrolment.yaml"
EVENT_FIELDS = ({"kind", "date"}, {"count", "subject", "note", "reported", "by"})
CORRECTION_FIELDS = ({"reverse", "reported", "reason"}, {"by"})


@dataclass
class _Event:
    """One seeded ledger line: an event, or (``reverses`` set) the correction of an earlier event of the site."""

    part: Row
    actor: User
    moment: datetime
    kind: str = ""
    occurred_on: date | None = None
    count: int = 1
    subject: str = ""
    note: str = ""
    reverses: "_Event | None" = None
    reason: str = ""
    entry_id: int | None = None

    @property
    def key(self) -> tuple:
        """What tells the event's entry apart in the ledger: its kind, day, reporting moment and sign."""
        original = self.reverses or self
        return (original.kind, original.occurred_on, self.moment, self.reverses is not None)


@dataclass
class _SiteLedger:
    site: TrialSite
    events: list[_Event]


class DemoLedger:
    """The events of seeds/demo/enrolment.yaml, read and checked, ready to be reported through the ledger services.

    Each event is reported by the person the file names, with the clock at its reported moment (09:00 Beijing
    time on its ``reported`` day, else on its own day; a minute later per event of the site), so ``reported_at``
    says when the site told the system; the services then check it as they check any report (the site's ethics
    approval in force that day, the trial open for enrolment, the subject's state, the counts). An event already in
    the ledger (the same site, kind, day and reporting moment) is left as it is.
    """

    def __init__(self, demo: DemoSeeds):
        self.report = demo.report
        path = demo.directory / ENROLMENT_FILE
        rows = read_rows(
            path, required={"trial", "site", "by", "events"}, optional=set(), key=("trial", "site"), label="trial"
        )
        self.sites = [self._site_ledger(row, demo) for row in rows]
        self._match_loaded()

    def _site_ledger(self, row: Row, demo: DemoSeeds) -> _SiteLedger:
        trials = list(Trial.objects.filter(protocol_number=row.data["trial"]))
        if len(trials) != 1:
            raise row.error(
                _("“trial”: “%(trial)s” must be the protocol number of exactly one trial in trials.yaml.")
                % {"trial": row.data["trial"]}
            )
        institution = ref(row, "site", demo.institutions, "institutions.yaml")
        site = TrialSite.objects.select_related("trial").filter(trial=trials[0], institution=institution).first()
        if site is None:
            raise row.error(
                _("“site”: %(institution)s is not a site of %(trial)s in trials.yaml.")
                % {"institution": institution.name_zh, "trial": trials[0].protocol_number}
            )
        reporter = ref(row, "by", demo.people, "people.yaml")
        events: list[_Event] = []
        for position, part in enumerate(row.parts("events", _("event %(number)d"))):
            event = self._event(part, position, reporter, events, demo)
            if events and event.moment < events[-1].moment:
                raise part.error(_("It is reported before the previous event; list the events in the order reported."))
            events.append(event)
        return _SiteLedger(site, events)

    @staticmethod
    def _event(part: Row, position: int, reporter: User, earlier: list[_Event], demo: DemoSeeds) -> _Event:
        actor = ref(part, "by", demo.people, "people.yaml", required=False) or reporter
        if "reverse" in part.data:
            required, optional = CORRECTION_FIELDS
            check_keys(part, required=required, optional=optional)
            number = part.data["reverse"]
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(earlier):
                raise part.error(_("“reverse” must be the number of an earlier event of this site."))
            original = earlier[number - 1]
            if original.reverses is not None:
                raise part.error(_("A correction cannot itself be reversed; report the event again instead."))
            reported = parse_date(part, "reported")
            if reported < original.moment.date():
                raise part.error(_("A correction cannot be reported before the event it corrects."))
            return _Event(
                part,
                actor,
                step_moment(reported, position),
                reverses=original,
                reason=field_value(part, EnrolmentEntry, "reason"),
            )
        required, optional = EVENT_FIELDS
        check_keys(part, required=required, optional=optional)
        if part.data["kind"] not in EnrolmentEntry.Kind.values:
            raise part.error(
                _("Unknown event “%(kind)s”; “kind” must be one of: %(kinds)s.")
                % {"kind": part.data["kind"], "kinds": ", ".join(EnrolmentEntry.Kind.values)}
            )
        occurred_on = parse_date(part, "date")
        reported = parse_date(part, "reported") if "reported" in part.data else occurred_on
        if reported < occurred_on:
            raise part.error(_("“reported” cannot come before the event's own date."))
        count = part.data.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool):
            raise part.error(_("“count” must be a whole number."))
        subject = part.data.get("subject", "")
        if not isinstance(subject, str):
            raise part.error(_("“subject” must be text: put %(value)s in quotes.") % {"value": subject})
        return _Event(
            part,
            actor,
            step_moment(reported, position),
            kind=part.data["kind"],
            occurred_on=occurred_on,
            count=count,
            subject=subject,
            note=field_value(part, EnrolmentEntry, "note"),
        )

    def _match_loaded(self) -> None:
        """Find the events already in the ledger (one query), so a second run reports nothing twice."""
        by_site = {ledger.site.pk: ledger for ledger in self.sites}
        loaded = {}
        entries = EnrolmentEntry.objects.filter(site_id__in=list(by_site)).values_list(
            "pk", "site_id", "kind", "occurred_on", "reported_at", "reverses_id"
        )
        for pk, site_id, kind, occurred_on, reported_at, reverses_id in entries:
            loaded[(site_id, kind, occurred_on, reported_at, reverses_id is not None)] = pk
        tally = self.report.tally(EnrolmentEntry)
        for ledger in self.sites:
            for event in ledger.events:
                event.entry_id = loaded.get((ledger.site.pk, *event.key))
                if event.entry_id is not None:
                    tally.unchanged += 1

    def load(self, *, until: datetime | None = None) -> None:
        """Report the events not yet in the ledger that were reported by ``until`` (all of them without it)."""
        tally = self.report.tally(EnrolmentEntry)
        now = timezone.now()
        for ledger in self.sites:
            for event in ledger.events:
                if event.entry_id is not None:
                    continue
                if until is not None and event.moment > until:
                    break
                if event.moment > now:
                    raise event.part.error(_("The event is reported in the future."))
                with seed_clock(event.moment):
                    try:
                        entry = self._write(ledger.site, event)
                    except SeedError:
                        raise
                    except DomainError as exc:
                        raise refused(event.part, exc) from exc
                event.entry_id = entry.pk
                tally.created += 1

    @staticmethod
    def _write(site: TrialSite, event: _Event) -> EnrolmentEntry:
        if event.reverses is not None:
            original = EnrolmentEntry.objects.get(pk=event.reverses.entry_id)
            return enrolment.enrolment_reverse(entry=original, actor=event.actor, reason=event.reason)
        signed = {}
        if event.kind == EnrolmentEntry.Kind.ENROLLED and event.subject:
            # A named subject signed the ICF version in force that day, on the day of enrolment.
            version = consent.icf_version_in_force(site.trial_id, event.occurred_on)
            if version is not None:
                signed = {"icf_version": version, "consented_on": event.occurred_on}
        return enrolment.enrolment_report(
            site=site,
            actor=event.actor,
            kind=event.kind,
            occurred_on=event.occurred_on,
            count=event.count,
            subject_code=event.subject,
            note=event.note,
            **signed,
        )
