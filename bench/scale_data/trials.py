"""Trials with their lifecycle and status history, the lead site and the participating sites with their start-up
milestones (trials' data; the reviews they go through are ethics.py's)."""

import datetime as dt
import math
from collections import defaultdict

from django.utils.translation import gettext as _

from bench.scale_data.world import (
    CATEGORY_CODES,
    CATEGORY_WEIGHTS,
    ONE_DAY,
    OUT,
    PHASE_NAMES,
    PHASE_NAMES_EN,
    RS,
    SK,
    TARGET_BY_PHASE,
    THERAPIES,
    TS,
    Committee,
    DecisionRow,
    RequestSim,
    SiteSim,
    TrialSim,
    apportion,
    pick,
)
from trials.models import Delegation, Duty, Trial, TrialSite, TrialStatusChange


class TrialsPhase:
    def make_trials(self) -> None:
        rng = self.rng
        n = self.opts["trials"]
        span = (self.today - ONE_DAY - self.start).days
        inst_weights = [i.weight for i in self.insts]
        self.trials: list[TrialSim] = []
        protocol_seq = defaultdict(int)
        sites = self.table(TrialSite)
        self.progress.start(_("trials"), n, _("trials"))
        for _k in range(n):
            lead = rng.choices(self.insts, weights=inst_weights)[0]
            kind = rng.choices(list(Trial.Kind.values), weights=[0.55, 0.37, 0.08])[0]
            category = pick(rng, CATEGORY_WEIGHTS)
            if kind == Trial.Kind.REGISTRATION:
                phase = rng.choices(["1", "1_2", "2", "2_3", "3"], weights=[0.35, 0.25, 0.2, 0.08, 0.12])[0]
                sponsor = rng.choice(self.enterprises)
            elif kind == Trial.Kind.IIT:
                phase = rng.choices(["early", "1", "1_2", "2", "na"], weights=[0.4, 0.3, 0.15, 0.1, 0.05])[0]
                sponsor = rng.choice(self.academic) if rng.random() < 0.3 else None
            else:
                phase = rng.choice(["na", "4", "early"])
                sponsor = None
            # More trials every year: the creation date leans towards the present.
            created = self.office(self.start + dt.timedelta(days=int(span * math.sqrt(rng.random()))))
            year = created.year
            protocol_seq[(lead.id, year)] += 1
            low, high = TARGET_BY_PHASE[phase]
            trial = TrialSim(
                id=self.table(Trial).alloc(),
                lead=lead,
                kind=kind,
                category=category,
                phase=phase,
                sponsor=sponsor,
                pi=rng.choice(lead.pis),
                target=rng.randint(low, high),
                created_at=created,
                protocol=f"{lead.code}-{CATEGORY_CODES[category]}-{year}-{protocol_seq[(lead.id, year)]:03d}",
            )
            trial.title_zh, trial.title_en = rng.choice(THERAPIES[category])
            trial.title_zh = f"{trial.title_zh}的{PHASE_NAMES[phase]}临床研究"
            trial.title_en = f"{trial.title_en}: {PHASE_NAMES_EN[phase]} study"
            trial.department = rng.choice(lead.departments)
            trial.status_at = created
            trial.sites.append(SiteSim(sites.alloc(), trial, lead, TrialSite.SiteRole.LEAD, trial.pi, trial.target))
            self.trials.append(trial)
            self.simulate_lifecycle(trial)
            self.progress.advance()
        self.plan_participating_sites()

    def move(self, trial: TrialSim, to: str, at: dt.datetime, actor: int, reason: str = "") -> bool:
        if at > self.now:
            return False
        if to == TS.SUSPENDED:
            trial.before_suspension = trial.status
        elif trial.status == TS.SUSPENDED:
            trial.before_suspension = ""
        trial.history.append((trial.status, to, at, actor, reason))
        trial.status, trial.status_at = to, at
        return True

    def simulate_lifecycle(self, trial: TrialSim) -> None:
        """Draft → submitted → under review → (ethics) approved → active → closed → completed, with withdrawals,
        suspensions and terminations on the way; stops where the trial is today."""
        rng = self.rng
        lead, ro, committee = trial.lead, trial.lead.ro, trial.lead.committee
        lead_site = trial.sites[0]
        if rng.random() < 0.02:
            self.move(
                trial, TS.WITHDRAWN, self.after(trial.created_at, 10, 90), trial.pi, "申办方调整研发策略，撤回立项"
            )
            return
        # Drafting takes weeks, now and then months (documents, the sponsor's contract, the HGR application).
        submitted = self.after(trial.created_at, 2, 2 + self.lognormal_days(18, 0.9))
        if not self.move(trial, TS.SUBMITTED, submitted, trial.pi):
            return
        review_started = self.after(submitted, 1, 10)
        if not self.move(trial, TS.UNDER_REVIEW, review_started, ro):
            return
        full_board = rng.random() < 0.7
        outcomes = (
            {
                OUT.APPROVE: 0.72,
                OUT.APPROVE_AFTER_MODIFICATION: 0.18,
                OUT.MODIFY_AND_RESUBMIT: 0.05,
                OUT.DISAPPROVE: 0.05,
            }
            if full_board
            else {OUT.APPROVE: 0.8, OUT.APPROVE_AFTER_MODIFICATION: 0.17, OUT.MODIFY_AND_RESUBMIT: 0.03}
        )
        ethics_submitted, decision, lead_site.approval = self.approve_with_modifications(
            trial, committee, kind=SK.INITIAL, created_at=review_started, by=trial.pi, full_board=full_board,
            outcomes=outcomes,
        )  # fmt: skip
        if ethics_submitted:
            lead_site.received = ethics_submitted.date()
        if decision is None:
            return
        if decision.outcome == OUT.DISAPPROVE:
            self.move(trial, TS.WITHDRAWN, decision.decided_at + dt.timedelta(minutes=5), lead.eo, "伦理委员会不同意")
            return
        trial.approval = decision
        self.move(trial, TS.APPROVED, decision.decided_at + dt.timedelta(minutes=2), lead.eo)
        lead_site.approved = decision.decided_at.date()
        if trial.kind == Trial.Kind.REGISTRATION:
            trial.nmpa = f"CXSL{decision.decided_at.year % 100:02d}{rng.randint(1000, 99999):05d}"
        # Start-up at the lead site: contract, then initiation, when the trial becomes active.
        contract = lead_site.approved + dt.timedelta(days=self.lognormal_days(45, 0.8))
        initiated = contract + dt.timedelta(days=self.lognormal_days(25, 0.7))
        if rng.random() < 0.03:
            stop = self.after(decision.decided_at, 60, 240)
            if stop.date() < initiated and self.move(trial, TS.TERMINATED, stop, ro, "申办方终止研发计划"):
                trial.ended_at = stop
                lead_site.contract = contract if contract < stop.date() else None
                self.after_end(trial, committee, decision)
                return
        lead_site.contract = contract if contract < self.today else None
        activation = self.office(initiated)
        if not self.move(trial, TS.ACTIVE, activation, ro):
            self.after_end(trial, committee, decision)
            return
        lead_site.initiated = initiated
        active_from = initiated
        months = rng.uniform(8, 30) if trial.target > 30 else rng.uniform(6, 20)
        close = activation + dt.timedelta(days=int(months * 30.4))
        ended = False
        if rng.random() < 0.06:
            suspend = activation + (close - activation) * rng.uniform(0.2, 0.8)
            suspend = self.office(suspend.date())
            if self.move(trial, TS.SUSPENDED, suspend, lead.eo, "发生严重不良事件，暂停入组并评估安全性"):
                trial.active.append([active_from, suspend.date() - ONE_DAY])
                length = rng.randint(30, 150)
                if rng.random() < 0.3:
                    stop = self.after(suspend, 10, length)
                    if self.move(trial, TS.TERMINATED, stop, lead.eo, "安全性评估后终止研究"):
                        trial.ended_at = stop
                    ended = True
                else:
                    resume = self.after(suspend, length, length + 5)
                    if self.move(trial, TS.ACTIVE, resume, lead.eo, "安全性评估完成，恢复研究"):
                        active_from = resume.date()
                        close += dt.timedelta(days=length)
                    else:
                        ended = True
            else:
                ended = True
                trial.active.append([active_from, self.today - ONE_DAY])
        if not ended:
            if rng.random() < 0.04:
                span = (close.date() - active_from).days
                stop = self.office(active_from + dt.timedelta(days=int(span * rng.uniform(0.1, 0.9))))
                if stop > trial.status_at and self.move(trial, TS.TERMINATED, stop, ro, "入组困难，申办方终止研究"):
                    trial.ended_at = stop
                    trial.active.append([active_from, stop.date() - ONE_DAY])
                    ended = True
            if not ended:
                if self.move(trial, TS.ENROLMENT_CLOSED, close, ro):
                    trial.active.append([active_from, close.date() - ONE_DAY])
                    complete = self.after(close, 90, 400)
                    if self.move(trial, TS.COMPLETED, complete, ro):
                        trial.ended_at = complete
                        trial.completed_on = complete.date()
                else:
                    trial.active.append([active_from, self.today - ONE_DAY])
        trial.active = [[a, min(b, self.today - ONE_DAY)] for a, b in trial.active if a <= min(b, self.today - ONE_DAY)]
        self.after_end(trial, committee, decision)

    def after_end(self, trial: TrialSim, committee: Committee, decision: DecisionRow) -> None:
        """Continuing reviews while the study runs, SAE reports while it enrols, and its closure report."""
        rng = self.rng
        end = trial.ended_at or self.now
        trial.valid_until = self.validity_chain(trial, committee, decision, end)
        trial.sites[0].valid_until = trial.valid_until
        for start, stop in trial.active:
            for _k in range(rng.choices([0, 1, 2, 3], weights=[0.75, 0.15, 0.07, 0.03])[0]):
                when = self.office(start + dt.timedelta(days=rng.randint(0, max(0, (stop - start).days))))
                self.report(trial=trial, committee=committee, kind=SK.SAE, at=when, by=trial.pi,
                            summary="严重不良事件报告：细胞因子释放综合征（3级）")  # fmt: skip
        if trial.completed_on:
            self.report(trial=trial, committee=committee, kind=SK.FINAL_REPORT, at=self.after(trial.ended_at, 5, 40),
                        by=trial.pi, summary="研究结题报告")  # fmt: skip

    # --- participating sites ----------------------------------------------------------------------------------------

    def plan_participating_sites(self) -> None:
        rng = self.rng
        extra = self.opts["sites"] - len(self.trials)
        if extra <= 0:
            return
        multi_weight = {Trial.Kind.REGISTRATION: 0.85, Trial.Kind.IIT: 0.45, Trial.Kind.OTHER: 0.3}
        multi = [t for t in self.trials if rng.random() < multi_weight[t.kind]]
        rng.shuffle(multi)
        if not multi:
            multi = self.trials[:]
        multi = multi[: max(1, min(len(multi), extra))]
        cap = len(self.insts) - 1
        counts = apportion(extra, [rng.lognormvariate(0, 0.8) for _t in multi], minimum=1, caps=[cap] * len(multi))
        sites = self.table(TrialSite)
        weights = [i.weight for i in self.insts]
        for trial, count in zip(multi, counts, strict=True):
            taken = {trial.lead.id}
            same_region = self.insts_by_region[trial.lead.region.pk]
            while len(taken) < count + 1:
                pool = same_region if rng.random() < 0.7 and len(same_region) > 1 else self.insts
                inst = rng.choices(pool, weights=[i.weight for i in pool] if pool is not self.insts else weights)[0]
                if inst.id in taken:
                    continue
                taken.add(inst.id)
                trial.sites.append(
                    SiteSim(sites.alloc(), trial, inst, TrialSite.SiteRole.PARTICIPATING, rng.choice(inst.pis), 0)
                )
            participating = trial.sites[1:]
            lead_share = rng.uniform(0.3, 0.5)
            trial.sites[0].target = max(1, int(trial.target * lead_share))
            rest = trial.target - trial.sites[0].target
            for site, share in zip(participating, apportion(max(rest, 0), [1] * len(participating)), strict=True):
                site.target = share

    def make_participating_sites(self) -> None:
        """Each participating site of an approved trial: recognition of the lead's result through a shared alliance,
        or a full local review; then contract, initiation and (later) enrolment."""
        rng = self.rng
        eligible = []
        for trial in self.trials:
            if trial.approval is None:
                continue
            for site in trial.sites[1:]:
                if self.shared_alliance(trial.lead.committee, site.inst.committee):
                    eligible.append(site)
        wanted = self.opts["recognition_requests"]
        asked = {id(s) for s in (rng.sample(eligible, wanted) if len(eligible) > wanted else eligible)}
        self.progress.start(_("participating sites"), self.opts["sites"] - len(self.trials), _("sites"))
        for trial in self.trials:
            if trial.approval is None:
                continue
            lead_decision = trial.approval
            for site in trial.sites[1:]:
                if id(site) in asked:
                    alliance = self.shared_alliance(trial.lead.committee, site.inst.committee)
                    request = self.open_request(
                        alliance, trial, site, lead_decision, SK.INITIAL, lead_decision.decided_at
                    )
                    site.received = request.received_at.date()
                    answered = request.responded_at
                    if request.status in (RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS):
                        site.approved = answered.date()
                        site.valid_until = trial.valid_until
                    elif request.status == RS.DECLINED:
                        self.local_review(trial, site, answered + dt.timedelta(hours=2), declined=request)
                else:
                    start = self.after(lead_decision.decided_at, 5, 60)
                    if start <= (trial.ended_at or self.now):
                        self.local_review(trial, site, start)
                self.site_startup(trial, site)
                self.progress.advance()

    def local_review(self, trial: TrialSim, site: SiteSim, start: dt.datetime, declined: RequestSim | None = None):
        committee = site.inst.committee
        submitted, decision, site.approval = self.approve_with_modifications(
            trial, committee, kind=SK.INITIAL, created_at=start, by=site.pi, full_board=self.rng.random() < 0.5,
            outcomes={OUT.APPROVE: 0.85, OUT.APPROVE_AFTER_MODIFICATION: 0.15},
        )  # fmt: skip
        if declined is not None:
            declined.local_review_id = decision.submission_id if decision else None
        if submitted and site.received is None:
            site.received = submitted.date()
        if decision is not None and decision.outcome == OUT.APPROVE:
            site.approved = decision.decided_at.date()
            site.valid_until = self.validity_chain(trial, committee, decision, trial.ended_at or self.now)

    def site_startup(self, trial: TrialSim, site: SiteSim) -> None:
        if site.approved is None:
            return
        stop = trial.ended_at.date() if trial.ended_at else self.today
        contract = site.approved + dt.timedelta(days=self.lognormal_days(55, 0.85))
        if contract >= stop:
            return
        site.contract = contract
        initiated = contract + dt.timedelta(days=self.lognormal_days(28, 0.75))
        first_active = trial.active[0][0] if trial.active else None
        if first_active is None or initiated >= stop:
            return
        site.initiated = max(initiated, first_active)
        if site.initiated >= stop:
            site.initiated = None

    # --- rows -------------------------------------------------------------------------------------------------------

    def delegation_log(self, site: SiteSim) -> None:
        """An initiated site's delegation log: its PI for consent, enrolment, reporting and safety, and a
        sub-investigator of the hospital for consent, enrolment and data, from initiation (one in ten left)."""
        if site.initiated is None:
            return
        rng, table = self.rng, self.table(Delegation)
        recorded = self.office(site.initiated - dt.timedelta(days=rng.randint(0, 5)))
        log = [(site.pi, duty) for duty in (Duty.CONSENT, Duty.ENROL, Duty.REPORT, Duty.SAFETY)]
        others = [pi for pi in site.inst.pis if pi != site.pi]
        if others:
            sub_investigator = rng.choice(others)
            log += [(sub_investigator, duty) for duty in (Duty.CONSENT, Duty.ENROL, Duty.DATA)]
        left = None
        if others and rng.random() < 0.1:
            left = site.initiated + dt.timedelta(days=rng.randint(60, 700))
            left = left if left < self.today else None
        for person, duty in log:
            table.add(
                site_id=site.id,
                person_id=person,
                duty=duty,
                starts_on=site.initiated,
                ends_on=left if person != site.pi else None,
                recorded_by_id=site.pi,
                recorded_at=recorded,
            )

    def write_trials(self) -> None:
        """Trials and sites now that their story is known (the ledger set each site's first patient), and each
        trial's status history."""
        trials, changes, sites = self.table(Trial), self.table(TrialStatusChange), self.table(TrialSite)
        hgr = Trial.HGRStatus
        for trial in self.trials:
            for from_status, to_status, at, actor, reason in trial.history:
                changes.add(trial_id=trial.id, from_status=from_status, to_status=to_status, actor_id=actor, at=at,
                            reason=reason)  # fmt: skip
            registered = trial.approved and trial.sponsor and trial.kind == Trial.Kind.REGISTRATION
            trials.add(
                id=trial.id,
                title_zh=trial.title_zh,
                title_en=trial.title_en,
                protocol_number=trial.protocol,
                kind=trial.kind,
                therapy_category=trial.category,
                phase=trial.phase,
                sponsor_id=trial.sponsor.pk if trial.sponsor else None,
                lead_institution_id=trial.lead.id,
                department_id=trial.department,
                pi_id=trial.pi,
                target_enrolment=trial.target,
                **trial.registration(),
                filed_on=trial.filed_on,
                hgr_status=hgr.APPROVED if registered else hgr.NOT_REQUIRED,
                status=trial.status,
                status_changed_at=trial.history[-1][2] if trial.history else None,
                status_before_suspension=trial.before_suspension,
                created_by_id=trial.pi,
                created_at=trial.created_at,
                updated_at=trial.status_at,
            )
            for site in trial.sites:
                self.delegation_log(site)
                sites.add(
                    id=site.id,
                    trial_id=trial.id,
                    institution_id=site.inst.id,
                    role=site.role,
                    site_pi_id=site.pi,
                    site_target=site.target,
                    submission_received_on=site.received,
                    ethics_approved_on=site.approved,
                    contract_signed_on=site.contract,
                    site_initiated_on=site.initiated,
                    first_patient_in_on=site.first_patient,
                    ethics_valid_until=site.valid_until,
                )
