"""The demo trials (seeds/demo/trials.yaml): each trial with its sites and its status history.

Called by ``manage.py load_seeds --demo`` through ``cgtclinic.seeding.load_demo``, after the demo hospitals,
sponsors and people, in the demo set's transaction. A trial's status is where its history ends; the history is
written as seeded (the tests replay every history through the lifecycle services).
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.models import User
from cgtclinic.seeding import (
    DemoSeeds,
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
    step_moment,
    sync,
    upsert,
)
from trials.models import Trial, TrialSite, TrialStatusChange
from trials.services import check_site_fields, check_trial_fields

TRIAL_FIELDS = (
    "title_zh",
    "title_en",
    "kind",
    "therapy_category",
    "phase",
    "target_enrolment",
    "nmpa_approval_number",
    "filing_number",
    "chictr_id",
    "nct_id",
    "hgr_status",
    "hgr_approval_number",
)


def load_demo(demo: DemoSeeds) -> None:
    """Load the demo trials, their sites and status histories."""
    _load_trials(demo.directory / "trials.yaml", demo.report, demo.institutions, demo.sponsors, demo.people)


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


def _load_trials(path: Path, report: SeedReport, institutions: dict, sponsors: dict, people: dict) -> None:
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
        _load_sites(report, row, trial, people, institutions, actor)
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


def _load_sites(report: SeedReport, row: Row, trial: Trial, people: dict, institutions: dict, actor: User) -> None:
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
        check_with(
            part,
            check_site_fields,
            actor=actor,
            trial=trial,
            site=None,
            data={"institution": institution, "site_pi": site_pi, **milestones},
        )
        target = part.data.get("site_target")
        values = {
            "role": role,
            "site_pi": site_pi,
            "site_target": field_value(part, TrialSite, "site_target")
            if target is not None
            else (trial.target_enrolment if role == TrialSite.SiteRole.LEAD else 0),
            **milestones,
        }
        upsert(report, part, TrialSite, {"trial": trial, "institution": institution}, values, actor=actor)
