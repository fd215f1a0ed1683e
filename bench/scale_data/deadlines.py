"""Deadlines the sweeps watch besides recognition requests: research filings of investigator-initiated trials
(trials.filings: the initial filing, annual reports, the completion summary) and safety reports with their clocks
(ethics.safety: SAE to the sponsor and the committee, SUSAR review by the PI, the committee's review).

Deadlines come from the domain's own functions (trials.filings.compute_deadline, ethics.safety.period,
calendar_day_deadline, day_start and the reminder moment), with the seeded periods in force on the day. Each obligation
or clock is met on time, late, or not yet: what has not happened by the data set's end is open, its deadline overdue,
due soon or months away. An effect (reminder, escalation) whose moment came before the item was met and before the
end happened then, as the sweep would have made it, so a sweep finds only what fell due after the data set ends.
"""

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from types import SimpleNamespace

from django.utils.translation import gettext as _

from bench.scale_data.world import TS, TZ, TrialSim
from cgtclinic.models import PolicyParameter
from ethics import safety
from ethics.models import SafetyClock, SafetyEffect, SafetyEvent, SafetyEventStep
from trials import filings
from trials.filing_models import FilingEffect, FilingObligation
from trials.models import Trial

# The policy periods a generated safety report's clocks are timed by (ethics.safety.period).
SAFETY_PERIOD_CODES = (
    "sae_sponsor_report_hours",
    "sae_ec_report_hours",
    "safety_committee_review_calendar_days",
    "susar_expedited_calendar_days",
    "susar_pi_review_calendar_days",
)

FK = FilingObligation.Kind
FS = FilingObligation.Status
SC = SafetyClock.Kind
SE = SafetyEvent.Status
# What an SAE or SUSAR was about (term, description); no patient identity.
SAFETY_TERMS = [
    ("细胞因子释放综合征（3级）", "输注后第3天出现高热、低血压，需血管活性药物支持"),
    ("免疫效应细胞相关神经毒性综合征（2级）", "输注后第5天出现意识模糊、书写障碍"),
    ("IV度中性粒细胞减少伴发热", "清淋化疗后持续中性粒细胞缺乏伴发热，住院抗感染治疗"),
    ("肺部感染", "重度肺部感染，住院静脉抗感染治疗"),
    ("肝功能异常（3级）", "转氨酶升高超过正常上限5倍，住院保肝治疗"),
    ("噬血细胞性淋巴组织细胞增多症", "输注后持续高铁蛋白血症伴血细胞减少"),
    ("输注相关反应", "输注过程中出现寒战、呼吸困难，停止输注后缓解"),
]
CLOSED = (TS.COMPLETED, TS.TERMINATED, TS.WITHDRAWN)


@contextmanager
def policy_values_remembered():
    """PolicyParameter.value_for remembered per (code, region, day) while the deadlines are made: the domain's
    deadline functions read it for every obligation and clock (a query each, minutes at national scale), and the
    seeded values do not change during the run's transaction."""
    original = PolicyParameter.__dict__["value_for"]
    lookup = original.__get__(None, PolicyParameter)
    remembered = {}

    def value_for(cls, code, *, region=None, on=None):
        key = (code, getattr(region, "pk", region), on)
        if key not in remembered:
            try:
                remembered[key] = lookup(code, region=region, on=on)
            except PolicyParameter.DoesNotExist as missing:
                remembered[key] = missing
        found = remembered[key]
        if isinstance(found, PolicyParameter.DoesNotExist):
            raise PolicyParameter.DoesNotExist(*found.args)
        return found

    PolicyParameter.value_for = classmethod(value_for)
    try:
        yield
    finally:
        PolicyParameter.value_for = original


class DeadlinesPhase:
    trials: list[TrialSim]
    safety_periods: dict

    # --- how a deadline went -----------------------------------------------------------------------------------------

    def met_at(self, started: dt.datetime, due: dt.datetime, never: float) -> dt.datetime | None:
        """When a deadline was met: mostly on time, some late, a share ``never`` not at all (a backlog). The moment
        may lie after the data set's end: then the item is still open."""
        roll = self.rng.random()
        if roll < never:
            return None
        if roll < never + 0.1:
            return due + (due - started) * self.rng.uniform(0.05, 1.5)
        return started + dt.timedelta(minutes=5) + (due - started) * (self.rng.random() ** 1.4 * 0.95)

    def effects(self, table, key: str, item_id: int, row: dict, until: dt.datetime | None, *, remind_when_due=True):
        """The reminder and escalation that happened before the item was met and before the end (at their moment,
        as the ETA task makes them); an escalation stamps ``escalated_at``. A safety reminder is not sent once its
        deadline has passed (``remind_when_due``): the escalation says more."""
        # An open item's effect due at the very end (a deadline at 24:00 of the day before) happened too, as a sweep
        # at the end would make it.
        still_open = until is None or until > self.now
        until = min(until or self.now, self.now)
        remind, due = row["remind_at"], row["due_at"]

        def came(moment):
            return moment < until or (still_open and moment <= self.now)

        if came(remind) and (remind_when_due or remind < due):
            table.add(**{key: item_id}, kind="reminder", due_at=due, happened_at=self.soon_after(remind))
        if came(due):
            row["escalated_at"] = self.soon_after(due)
            table.add(**{key: item_id}, kind="escalation", due_at=due, happened_at=row["escalated_at"])

    def soon_after(self, moment: dt.datetime) -> dt.datetime:
        """When a timer made an effect due at ``moment`` (seconds later, never after the end)."""
        return min(moment + self.seconds(), self.now)

    def seconds(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.rng.randint(1, 55))

    # --- research filings --------------------------------------------------------------------------------------------

    def filing_deadline(self, trial: TrialSim, kind: str, basis: dt.date, sequence: int = 1) -> dict:
        return _filing_deadline(trial.lead.region, kind, basis, sequence, self.calendar)

    def make_filings(self) -> None:
        """Investigator-initiated trials approved by their lead committee owe the initial filing, annual reports
        while they run and a completion summary after they close, until ``research_filings`` are made."""
        rng, wanted = self.rng, self.opts["research_filings"]
        self.filings_made = 0
        self.progress.start(_("research filings"), wanted, _("filings"))
        iits = [t for t in self.trials if t.kind == Trial.Kind.IIT and t.approval is not None and t.approved]
        rng.shuffle(iits)
        for trial in iits:
            if self.filings_made >= wanted:
                break
            closed = trial.ended_at if trial.status in CLOSED else None

            def owe(kind, source_key, basis, sequence=1, opened=None, trial=trial, closed=closed):
                return self.owe_filing(trial, closed, kind, source_key, basis, sequence, opened)

            approved_on = trial.approval.decided_at.astimezone(TZ).date()
            initial = owe(FK.INITIAL, "approval", approved_on)
            # Until its initial filing is recorded the trial has no filing number (filings.filing_record sets it).
            trial.filing_due = initial is not None
            if initial is None or initial[1] is None:
                continue
            trial.filed_on = initial[0]["filed_on"]
            trial.filing_due = False
            # The next annual report opens when the previous one is filed or overdue (filings._open_next_annual).
            sequence, previous = 1, initial[0]
            while self.filings_made < wanted and not (closed and previous["due_at"] > closed):
                last = previous.get("filed_at") or previous["due_at"]
                if last > self.now or (closed and last > closed):
                    break
                annual = owe(FK.ANNUAL, f"year:{sequence}", trial.filed_on, sequence, opened=last)
                if annual is None or annual[0]["status"] == FS.CANCELLED:
                    break
                sequence, previous = sequence + 1, annual[0]
            if closed and self.filings_made < wanted and trial.status != TS.WITHDRAWN:
                owe(FK.COMPLETION, "closure", closed.astimezone(TZ).date())

    def owe_filing(self, trial: TrialSim, closed, kind: str, source_key: str, basis: dt.date, sequence: int, opened):
        """One obligation as filings._open opens it (``opened``: when, default the basis day) and how it went:
        (row, filed at) or None when no rule in force asked for it."""
        obligations = self.table(FilingObligation)
        deadline = self.filing_deadline(trial, kind, basis, sequence)
        if not deadline:
            return None
        opened = opened or dt.datetime.combine(basis, dt.time(9), tzinfo=TZ)
        row = {
            "id": obligations.alloc(),
            "trial_id": trial.id,
            "kind": kind,
            "source_key": source_key,
            "basis_on": basis,
            "created_at": min(opened, self.now),
            "status": FS.OPEN,
            **deadline,
        }
        filed = self.met_at(opened, row["due_at"], 0.04)
        if kind == FK.ANNUAL and closed and row["due_at"] > closed and (filed is None or filed > closed):
            # filings.after_transition: an annual report not yet due lapses when the trial closes.
            row.update(status=FS.CANCELLED, note=str(_("The trial closed: the completion summary replaces it.")))
            filed, until = None, closed
        elif filed is not None and filed <= self.now:
            filed = self.office(filed.astimezone(TZ).date())
            filed = min(max(filed, opened), self.now - dt.timedelta(minutes=1))
            row.update(
                status=FS.FILED,
                filed_on=filed.astimezone(TZ).date(),
                filed_at=filed,
                filed_by_id=trial.lead.ro,
                filing_number=f"MR-{trial.id:06d}-{kind}-{sequence}",
                late=filings._end_of(filed.astimezone(TZ).date()) > row["due_at"],
            )
            until = filed
        else:
            filed, until = None, None
        self.effects(self.table(FilingEffect), "obligation_id", row["id"], row, until)
        obligations.add(**row)
        self.filings_made += 1
        self.progress.advance()
        return row, filed

    # --- safety reports ----------------------------------------------------------------------------------------------

    def safety_period(self, code: str, site, on: dt.date) -> tuple[int, str]:
        """ethics.safety.period for the site; the generated institutions have no settings of their own, so the
        seeded value of the region on the day is remembered per (code, region, day)."""
        key = (code, site.inst.region.pk, on)
        if key not in self.safety_periods:
            probe = SimpleNamespace(institution_id=site.inst.id, institution=SimpleNamespace(region_id=key[1]))
            self.safety_periods[key] = safety.period(code, probe, on)
        return self.safety_periods[key]

    def safety_clock(self, site, event_id: int, kind: str, code: str, started: dt.datetime, *, met=None, after=None,
                     possible=True, never=0.03):  # fmt: skip
        """A clock as safety._open_clock starts it, and when it was met (None: still open): ``met`` when given, else
        drawn; never before the step it waits for (``after``), not at all if that step has not happened
        (``possible``)."""
        on = started.astimezone(TZ).date()
        value, source = self.safety_period(code, site, on)
        hours = code.endswith("_hours")
        due = started + dt.timedelta(hours=value) if hours else safety.calendar_day_deadline(started, value)
        if met is None and possible:
            met = self.met_at(started, due, never)
            if met is not None and after is not None:
                met = max(met, after + dt.timedelta(minutes=self.rng.randint(5, 240)))
        if met is not None and met > self.now:
            met = None
        clocks = self.table(SafetyClock)
        fields = {
            "id": clocks.alloc(),
            "event_id": event_id,
            "trial_id": site.trial.id,
            "site_institution_id": site.inst.id,
            "region_id": site.inst.region.pk,
            "kind": kind,
            "started_at": started,
            "due_at": due,
            "remind_at": safety._remind_at(started, due, on),
            "period": value,
            "unit": safety.HOURS if hours else safety.CALENDAR_DAYS,
            "period_source": source,
        }
        if met is not None:
            elapsed = Decimal((met - started).total_seconds() / 3600).quantize(Decimal("0.01"))
            fields.update(met_at=met, late=met > due, elapsed_hours=elapsed)
        self.effects(self.table(SafetyEffect), "clock_id", fields["id"], fields, met, remind_when_due=False)
        clocks.add(**fields)
        return met

    def make_safety_events(self) -> None:
        """SAEs the sites' investigators report and SUSARs sponsors send them, over the sites' enrolment (70 % of
        them in the site's last 21 days, where reports are still on their way), with every clock the service
        starts."""
        rng, wanted = self.rng, self.opts["safety_events"]
        # Safety reports fall on days when every period they are timed by is in force (the seeds say since when):
        # a national data set reaches back before the 2020 rules, whose periods do not exist on those days.
        rules_from = max(
            PolicyParameter.objects.filter(code=code)
            .order_by("effective_from")
            .values_list("effective_from", flat=True)[0]
            for code in SAFETY_PERIOD_CODES
        )
        sites = [
            s
            for t in self.trials
            for s in t.sites
            if s.first_patient is not None and (t.ended_at is None or t.ended_at.astimezone(TZ).date() >= rules_from)
        ]
        if not sites or not wanted:
            return
        self.progress.start(_("safety reports"), wanted, _("reports"))
        events, steps = self.table(SafetyEvent), self.table(SafetyEventStep)
        recent_days = 21
        for _n in range(wanted):
            site = rng.choice(sites)
            trial = site.trial
            end = min((trial.ended_at or self.now).astimezone(TZ).date(), self.today - dt.timedelta(days=1))
            first = max(site.first_patient, end - dt.timedelta(days=recent_days)) if rng.random() < 0.7 else None
            first = max(first or site.first_patient, rules_from)
            if end < first:
                end = first
            day = first + dt.timedelta(days=rng.randint(0, (end - first).days))
            start = min(self.office(day), self.now - dt.timedelta(minutes=rng.randint(10, 600)))
            event_id = events.alloc()
            # A sponsor sends each SUSAR to every site of the trial: as many reach a site as its own SAEs.
            sae = rng.random() < 0.5
            term, description = rng.choice(SAFETY_TERMS)
            pi = site.pi
            row = {
                "id": event_id,
                "kind": SafetyEvent.Kind.SAE if sae else SafetyEvent.Kind.SUSAR,
                "trial_id": trial.id,
                "site_id": site.id,
                "term": term,
                "description": description,
                # Generated SUSARs are neither fatal nor life-threatening: those owe follow-up reports, not made here.
                "criteria": [
                    rng.choice([SafetyEvent.Criterion.HOSPITALISATION, SafetyEvent.Criterion.OTHER_IMPORTANT])
                ],
                "expectedness": SafetyEvent.Expectedness.UNEXPECTED
                if not sae or rng.random() < 0.3
                else SafetyEvent.Expectedness.EXPECTED,
                "causality": rng.choice(list(SafetyEvent.Causality.values)),
                "onset_on": day - dt.timedelta(days=rng.randint(0, 2)),
                "reported_by_id": pi,
                "created_at": start,
            }
            history = []  # (step, from, to, at)

            def clock(kind, code, started, *, site=site, event_id=event_id, **how):
                return self.safety_clock(site, event_id, kind, code, started, **how)

            if sae:
                # Aware → sent to the sponsor → reported to the committee (which starts its review clock) → reviewed.
                row.update(aware_at=start, status=SE.RECORDED)
                history.append(("recorded", "", SE.RECORDED, start))
                sent = clock(SC.SPONSOR_REPORT, "sae_sponsor_report_hours", start)
                reported = clock(SC.EC_REPORT, "sae_ec_report_hours", start, after=sent, possible=sent is not None)
                if sent:
                    history.append(("send_to_sponsor", SE.RECORDED, SE.SENT_TO_SPONSOR, sent))
                    row.update(status=SE.SENT_TO_SPONSOR, sponsor_notified_at=sent)
                before_ec = SE.SENT_TO_SPONSOR
                if reported is not None:
                    reviewed = clock(SC.COMMITTEE_REVIEW, "safety_committee_review_calendar_days", reported)
                else:
                    reviewed = None
            else:
                # Received (the sponsor's expedited clock met) → reviewed by the PI → reported → reviewed; the
                # committee's clock runs from receipt.
                sponsor_day = day - dt.timedelta(days=rng.randint(1, 10))
                row.update(
                    sponsor_aware_on=sponsor_day,
                    received_at=start,
                    status=SE.RECEIVED,
                    sponsor_reference=f"SUSAR-{trial.id}-{event_id}",
                )
                history.append(("recorded", "", SE.RECEIVED, start))
                clock(SC.SUSAR_EXPEDITED, "susar_expedited_calendar_days", safety.day_start(sponsor_day), met=start)
                sent = clock(SC.PI_REVIEW, "susar_pi_review_calendar_days", start)
                if sent:
                    history.append(("pi_review", SE.RECEIVED, SE.PI_REVIEWED, sent))
                    row.update(status=SE.PI_REVIEWED, pi_reviewed_at=sent, pi_reviewed_by_id=pi)
                reported = sent + dt.timedelta(hours=rng.uniform(1, 72)) if sent else None
                reported = reported if reported and reported <= self.now else None
                before_ec = SE.PI_REVIEWED
                reviewed = clock(
                    SC.COMMITTEE_REVIEW,
                    "safety_committee_review_calendar_days",
                    start,
                    after=reported,
                    possible=reported is not None,
                )
            if reported is not None:
                history.append(("report_to_ec", before_ec, SE.REPORTED_TO_EC, reported))
                row.update(status=SE.REPORTED_TO_EC, ec_reported_at=reported)
            if reviewed is not None:
                committee = site.inst.committee or trial.lead.committee
                history.append(("committee_review", SE.REPORTED_TO_EC, SE.REVIEWED, reviewed))
                row.update(
                    status=SE.REVIEWED,
                    committee_reviewed_at=reviewed,
                    committee_reviewed_by_id=committee.inst.eo,
                    committee_opinion="同意继续开展研究，请加强受试者安全监测",
                )
            for step, from_status, to_status, at in history:
                steps.add(
                    event_id=event_id,
                    step=step,
                    from_status=from_status,
                    to_status=to_status,
                    actor_id=pi,
                    happened_at=at,
                    recorded_at=at,
                )
            events.add(**row)
            self.progress.advance()


@lru_cache(maxsize=65536)
def _filing_deadline(region, kind: str, basis: dt.date, sequence: int, calendar) -> dict:
    """trials.filings.compute_deadline for a lead institution in ``region`` (the only thing of the trial it reads);
    remembered, since many trials count from the same day."""
    trial = SimpleNamespace(lead_institution=SimpleNamespace(region=region))
    return filings.compute_deadline(trial, kind, basis, sequence=sequence, calendar=calendar)
