"""Subsidy claims per institution and program, their lines computed by the domain: eligibility and refusals
(subsidies.services.line_refusals over subsidies.eligibility), amounts (subsidies.rules), evidence
(subsidies.evidence); then the regulator's decision and payment."""

import datetime as dt
from collections import defaultdict
from contextlib import contextmanager
from decimal import Decimal

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from bench.scale_data.world import (
    AR,
    CS,
    GENE_CATEGORIES,
    ICF_TITLE,
    LS,
    SYNTHETIC,
    TS,
    TZ,
    Inst,
    SiteSim,
    apportion,
)
from cgtclinic.errors import DomainError
from cgtclinic.models import PolicyParameter
from subsidies import eligibility, evidence, rules
from subsidies.models import Claim, ClaimLine, ClaimPayment, ClaimStatusChange, EligibilityRule, SubsidyProgram
from subsidies.services import NOT_CANDIDATE_STATUSES, amount_rule, line_refusals
from trials.models import Trial, TrialSite

NOTHING_TAKEN = {"patients": 0, "amount": rules.ZERO, "claimed": False}


@contextmanager
def _policy_values_read_once():
    """Policy values do not change while the data set is made: the eligibility rules read the start-up target per
    site and language (PolicyParameter.value_for, one query each); here each (code, region, day) is read once."""
    original = PolicyParameter.__dict__["value_for"]
    values = {}

    def value_for(code: str, *, region=None, on=None):
        key = (code, getattr(region, "pk", region), on)
        if key not in values:
            try:
                values[key] = original.__func__(PolicyParameter, code, region=region, on=on)
            except PolicyParameter.DoesNotExist:
                values[key] = None
        if values[key] is None:
            # A new exception each time: one kept and raised again would hold every raising frame in its traceback.
            raise PolicyParameter.DoesNotExist(f"No policy parameter {code!r} in force on {on} for {region}")
        return values[key]

    PolicyParameter.value_for = staticmethod(value_for)
    try:
        yield
    finally:
        PolicyParameter.value_for = original


class ClaimsPhase:
    def make_claims(self) -> None:
        wanted = self.opts["claims"]
        programs = list(SubsidyProgram.objects.select_related("region").prefetch_related("eligibility_rules"))
        if not programs and wanted:
            programs = self.fallback_programs()
        self.progress.start(_("subsidy claims"), wanted, _("claims"))
        builder = ClaimBuilder(self, programs)
        with _policy_values_read_once():
            made = builder.build(wanted)
        if made < wanted:
            raise CommandError(
                _(
                    "Only %(made)d subsidy claims fit the generated data (programs, their regions' institutions and "
                    "eligible trials); ask for fewer claims or more institutions and trials."
                )
                % {"made": made}
            )

    def fallback_programs(self) -> list[SubsidyProgram]:
        """When the policy seeds hold no subsidy program yet: Shanghai's two programs on the seeded values."""
        shanghai = next((r for r in self.regions if r.code == "shanghai"), None)
        if shanghai is None:
            return []
        per_patient = SubsidyProgram.objects.create(
            code="scale-shanghai-gene-therapy",
            region=shanghai,
            name_zh="基因治疗临床研究医疗机构资助（基准测试数据）",
            name_en="Gene-therapy trial subsidy (benchmark data)",
            source_document=SYNTHETIC,
            source_clause="—",
            year_from=2023,
            amount_rule=AR.PER_PATIENT,
            rate_parameter="subsidy_per_patient_rmb",
            project_cap_parameter="subsidy_project_cap_rmb",
            institution_year_cap_parameter="subsidy_institution_year_cap_rmb",
            selective=True,
        )
        for position, (kind, params) in enumerate(
            [
                (EligibilityRule.Kind.THERAPY_CATEGORY, {"categories": list(GENE_CATEGORIES)}),
                (EligibilityRule.Kind.TRIAL_KIND, {"iit": True, "industry_sponsor_in_region": True}),
                (EligibilityRule.Kind.RESEARCH_COMPLETED, {"completed_on_or_after": "2023-08-31"}),
                (EligibilityRule.Kind.ETHICS_APPROVAL, {}),
            ]
        ):  # fmt: skip
            EligibilityRule.objects.create(program=per_patient, kind=kind, params=params, position=position)
        insurance = SubsidyProgram.objects.create(
            code="scale-shanghai-insurance",
            region=shanghai,
            name_zh="临床研究责任保险保费补贴（基准测试数据）",
            name_en="Trial liability-insurance premium subsidy (benchmark data)",
            source_document=SYNTHETIC,
            source_clause="—",
            year_from=2023,
            amount_rule=AR.PERCENT_OF_COST,
            percent_parameter="insurance_premium_subsidy_percent",
            item_cap_parameter="insurance_premium_subsidy_cap_rmb",
        )
        EligibilityRule.objects.create(program=insurance, kind=EligibilityRule.Kind.ETHICS_APPROVAL, params={})
        return list(SubsidyProgram.objects.select_related("region").prefetch_related("eligibility_rules"))


class ClaimBuilder:
    """Claims per institution and program, computed with the real eligibility rules and subsidy arithmetic.

    A per-patient or fixed-amount program is claimed once a year, for the year before (the current year may have a
    claim in progress); a percentage program's cost items (insurance policies) are claimed in monthly batches. A
    hospital has one claim per program open at a time: each is decided before the next is opened.
    """

    YEARLY = ((2, 20), (2, 15), (5, 40))
    BATCH = ((1, 5), (1, 4), (2, 10))

    def __init__(self, gen: "ClaimsPhase", programs: list[SubsidyProgram]):
        self.gen = gen
        self.rng = gen.rng
        self.programs = programs
        self.claims = gen.table(Claim)
        self.lines = gen.table(ClaimLine)
        self.changes = gen.table(ClaimStatusChange)
        self.payments = gen.table(ClaimPayment)
        self.rule_cache = {}
        # What the rules say depends only on these facts, which change a few times in a trial's life.
        self.reasons_cache = {}
        self.distinct_reasons = {}
        self.sites_by_inst = defaultdict(list)
        for trial in sorted(gen.trials, key=lambda t: t.protocol):
            for site in trial.sites:
                self.sites_by_inst[site.inst.id].append(site)
        # (inst, program, trial): what earlier counting claims took, and whether one listed it as eligible; only the
        # trials claimed have an entry (a default for every candidate looked at would hold one per site).
        self.taken = defaultdict(lambda: dict(NOTHING_TAKEN))
        self.rules_of = {program.pk: list(program.eligibility_rules.all()) for program in programs}
        self.year_taken = defaultdict(lambda: rules.ZERO)  # (inst, program, year)
        self.busy = defaultdict(list)  # (inst, program) -> [(opened, decided or date.max)]

    def build(self, wanted: int) -> int:
        gen, rng = self.gen, self.rng
        yearly = defaultdict(list)
        batches = []
        for program in self.programs:
            first = max(program.year_from, gen.start.year)
            last = min(program.year_to or gen.today.year, gen.today.year)
            for inst in gen.insts_by_region.get(program.region_id, []):
                if not self.sites_by_inst[inst.id]:
                    continue
                if program.amount_rule == AR.PERCENT_OF_COST:
                    months = [
                        dt.date(y, m, 1)
                        for y in range(first, last + 1)
                        for m in range(1, 13)
                        if dt.date(y, m, 12) < gen.today
                    ]
                    batches.append((program, inst, months))
                    continue
                for year in range(first, last + 1):
                    if year < gen.today.year:
                        opened = dt.date(year + 1, 1, 5) + dt.timedelta(days=rng.randint(0, 80))
                    else:
                        opened = gen.today - dt.timedelta(days=rng.randint(2, 60))
                    if opened < gen.today and opened.year >= year:
                        yearly[(program.pk, inst.id)].append((program, inst, opened, year))
        made = 0
        pairs = sorted(yearly)
        rng.shuffle(pairs)
        for pair in pairs:
            for program, inst, opened, year in yearly[pair]:
                if made < wanted:
                    made += self.claim(program, inst, opened, year, self.YEARLY)
        need = wanted - made
        if need > 0 and batches:
            capacity = [len(months) for _p, _i, months in batches]
            weights = [len(self.sites_by_inst[inst.id]) for _p, inst, _m in batches]
            counts = apportion(min(need, sum(capacity)), weights, caps=capacity)
            leftovers = []
            for (program, inst, months), count in zip(batches, counts, strict=True):
                chosen = set(rng.sample(months, count))
                for month in sorted(chosen):
                    made += self.claim(program, inst, month.replace(day=rng.randint(1, 10)), month.year, self.BATCH)
                leftovers.append((program, inst, [m for m in months if m not in chosen]))
            # Months that had nothing to claim are made up with other months.
            for program, inst, months in leftovers:
                for month in months:
                    if made >= wanted:
                        break
                    made += self.claim(program, inst, month.replace(day=rng.randint(1, 10)), month.year, self.BATCH)
        return made

    def rule(self, program: SubsidyProgram, on: dt.date):
        key = (program.pk, on)
        if key not in self.rule_cache:
            try:
                self.rule_cache[key] = amount_rule(program, on)
            except DomainError:
                self.rule_cache[key] = None
        return self.rule_cache[key]

    def facts(self, site: SiteSim, on: dt.date) -> eligibility.CandidateFacts:
        """The trial and site as they stood on the reference date, for the eligibility rules."""
        t = site.trial
        trial = Trial(
            id=t.id,
            protocol_number=t.protocol,
            kind=t.kind,
            therapy_category=t.category,
            phase=t.phase,
            title_zh=t.title_zh,
            title_en=t.title_en,
            **t.registration(),
            status=t.status_on(on),
            lead_institution_id=t.lead.id,
            pi_id=t.pi,
            target_enrolment=t.target,
        )
        trial.sponsor = t.sponsor

        def known(day):
            return day if day is not None and day <= on else None

        trial_site = TrialSite(
            id=site.id,
            trial_id=t.id,
            institution_id=site.inst.id,
            role=site.role,
            submission_received_on=known(site.received),
            ethics_approved_on=known(site.approved),
            site_initiated_on=known(site.initiated),
        )
        return eligibility.CandidateFacts(trial=trial, site=trial_site, completed_on=known(t.completed_on))

    def reasons(self, program: SubsidyProgram, facts, on: dt.date, *, enrolled=0, took=None) -> list[dict]:
        """Why the line cannot be paid, as subsidies.services.line_refusals says it (in both languages)."""
        site, trial = facts.site, facts.trial
        took = took or NOTHING_TAKEN
        key = (program.pk, site.id, trial.status, facts.completed_on, site.ethics_approved_on, site.site_initiated_on,
               enrolled <= took["patients"], took["claimed"])  # fmt: skip
        if key not in self.reasons_cache:
            reasons = line_refusals(
                self.rules_of[program.pk], program, facts, on, enrolled_total=enrolled,
                previously_claimed=took["patients"], claimed_before=took["claimed"],
            )  # fmt: skip
            # Most sites fail the same rules with the same words: one copy of each list of reasons.
            frozen = tuple(tuple(reason.items()) for reason in reasons)
            self.reasons_cache[key] = self.distinct_reasons.setdefault(frozen, frozen)
        return [dict(reason) for reason in self.reasons_cache[key]]

    def ethics(self, site: SiteSim, on: dt.date) -> dict | None:
        """The approval the site enrolled under as of ``on``, as subsidies.evidence.ethics_by_site finds it."""
        approval, recognised = site.approval, site.recognised
        if approval is not None and approval.decided_at.astimezone(TZ).date() <= on:
            committee = approval.committee
            return evidence.ethics_record(
                "decision", committee=committee.name_zh, letter_number=approval.letter_number,
                decided=approval.decided_at,
            )  # fmt: skip
        if recognised is not None and recognised.responded_at.astimezone(TZ).date() <= on:
            letter = recognised.lead_decision.letter_number
            return evidence.ethics_record("recognition", letter_number=letter, decided=recognised.responded_at)
        if site.approved and site.approved <= on:
            return evidence.ethics_record("recorded", decided=site.approved)
        return None

    def add_line_evidence(self, program: SubsidyProgram, on: dt.date, line: dict, patients: int) -> None:
        """Each claimed patient's evidence, the site's approval and the trial's registration, by
        subsidies.evidence.line_evidence as the service adds it to a computed line."""
        site, facts, first = line["site"], line["facts"], line["took"]["patients"]
        slots = self.slots(site, on, first + patients) if program.amount_rule == AR.PER_PATIENT else []
        line["evidence"].update(
            evidence.line_evidence(
                trial=facts.trial,
                site=facts.site,
                slots=slots,
                ethics=self.ethics(site, on),
                first=first,
                count=patients,
            )
        )

    @staticmethod
    def slots(site: SiteSim, on: dt.date, upto: int) -> list:
        """The site's first ``upto`` enrolled patients standing on ``on`` as subsidies.evidence.patient_slots lists
        them, each coded patient with the consent signed at screening."""
        out = []
        limit = on.toordinal()
        entries = zip(
            site.enrolled_days, site.enrolled_counts, site.enrolled_subjects, site.enrolled_consented, strict=True
        )
        for day, count, subject, consented in entries:
            if day > limit or len(out) >= upto:
                break
            enrolled_on = dt.date.fromordinal(day).isoformat()
            if not subject:
                out.extend({"subject": None, "enrolled_on": enrolled_on, "consent": None} for _k in range(count))
                continue
            consent = {
                "document": ICF_TITLE,
                "version": 1,
                "version_label": "V1.0",
                "consented_on": dt.date.fromordinal(consented).isoformat(),
                "is_reconsent": False,
            }
            out.append({"subject": f"{site.inst.code}-{subject:04d}", "enrolled_on": enrolled_on, "consent": consent})
        return out

    def timeline(self, opened: dt.date, pace) -> list[dt.datetime]:
        gen = self.gen
        moments = [gen.office(opened)]
        for low, high in pace:
            moments.append(gen.after(moments[-1], low, high))
        return moments  # opened, submitted, review started, decided

    def claim(self, program: SubsidyProgram, inst: Inst, opened: dt.date, year: int, pace) -> bool:
        """One claim as claim_open and claim_submit compute it, then its review; False if it cannot be made
        (another claim of the hospital under the program open then, or nothing eligible to claim)."""
        gen, rng = self.gen, self.rng
        pair = (inst.id, program.pk)
        moments = self.timeline(opened, pace)
        closes = moments[3].date() if moments[3] <= gen.now else dt.date.max
        if any(opened <= b and a <= closes for a, b in self.busy[pair]):
            return False
        submitted = moments[1] if moments[1] <= gen.now else None
        reference = min(dt.date(year, 12, 31), (submitted or moments[0]).date())
        rule = self.rule(program, reference)
        if rule is None:
            return False
        if program.amount_rule == AR.FIXED_AMOUNT and rule.fixed_amount is None:
            rule = self.set_fixed_amount(program, reference)
        candidates = [
            s
            for s in self.sites_by_inst[inst.id]
            if s.trial.created_at.date() <= reference and s.trial.status_on(reference) not in NOT_CANDIDATE_STATUSES
        ]
        if program.amount_rule == AR.PERCENT_OF_COST:
            insured = [
                s
                for s in candidates
                if s.approved and s.approved <= opened and s.trial.status_on(opened) in (TS.ACTIVE, TS.ENROLMENT_CLOSED)
            ]
            # The hospital lists the policies of the trials the program covers (and now and then one it does not).
            covered = [s for s in insured if not self.reasons(program, self.facts(s, reference), reference)]
            if not covered:
                return False
            candidates = rng.sample(covered, min(len(covered), rng.randint(1, 3)))
            others = [s for s in insured if s not in covered]
            if others and rng.random() < 0.1:
                candidates.append(rng.choice(others))
            candidates.sort(key=lambda s: s.trial.protocol)
        lines = []
        for site in candidates:
            facts = self.facts(site, reference)
            took = dict(self.taken.get((inst.id, program.pk, site.trial.id), NOTHING_TAKEN))
            enrolled = site.enrolled_on(reference)
            reasons = self.reasons(program, facts, reference, enrolled=enrolled, took=took)
            status = LS.INELIGIBLE if reasons else LS.ELIGIBLE
            if status == LS.ELIGIBLE and rng.random() < 0.03:
                status = LS.EXCLUDED
            cost = Decimal(rng.randrange(20000, 400000, 500)) if program.amount_rule == AR.PERCENT_OF_COST else None
            lines.append(
                {
                    "site": site,
                    "facts": facts,
                    "reasons": reasons,
                    "enrolled": enrolled,
                    "took": took,
                    "status": status,
                    "item_reference": f"PICC{year}{site.id:07d}{opened.month:02d}" if cost is not None else "",
                    "cost": cost,
                    "evidence": evidence.site_summary(facts.trial, facts.site, facts.completed_on),
                }
            )
        inputs = [
            rules.LineInput(
                key=index,
                enrolled=line["enrolled"],
                previously_claimed=line["took"]["patients"],
                previously_awarded=line["took"]["amount"],
                cost=line["cost"],
            )
            for index, line in enumerate(lines)
            if line["status"] == LS.ELIGIBLE
        ]
        # The yearly cap cuts the lines that come last: the research completed most recently.
        inputs.sort(
            key=lambda i: (lines[i.key]["facts"].completed_on or dt.date.max, lines[i.key]["site"].trial.protocol)
        )
        result = rules.calculate(rule, inputs, institution_year_already=self.year_taken[(inst.id, program.pk, year)])
        if result.total <= 0:
            return False
        self.busy[pair].append((opened, closes))
        self.write(program, inst, year, reference, rule, lines, result, moments)
        self.gen.progress.advance()
        return True

    def set_fixed_amount(self, program: SubsidyProgram, on: dt.date):
        """A fixed-amount program's amount is the regulator's to set; the generated regulator sets one."""
        program.fixed_amount_rmb = Decimal(self.rng.choice([300000, 500000, 1000000]))
        program.fixed_amount_set_by_id = self.gen.regulators[program.region_id]
        program.fixed_amount_set_at = dt.datetime.combine(self.gen.start, dt.time(10), tzinfo=TZ)
        program.save(update_fields=["fixed_amount_rmb", "fixed_amount_set_by", "fixed_amount_set_at"])
        self.rule_cache.clear()
        return self.rule(program, on)

    def write(self, program, inst, year, reference, rule, lines, result, moments) -> None:
        """The claim, its lines (with the regulator's approved amounts) and its status history, as of now."""
        gen, rng = self.gen, self.rng
        regulator = gen.regulators[program.region_id]
        claim_id = self.claims.alloc()
        decision = rng.choices([CS.APPROVED, CS.PARTIALLY_APPROVED, CS.REJECTED], weights=[0.62, 0.24, 0.14])[0]
        computed = {r.key: r for r in result.lines}
        if decision == CS.PARTIALLY_APPROVED and not any(r.amount > 0 for r in computed.values()):
            decision = CS.APPROVED
        partial_line = (
            rng.choice([k for k, r in computed.items() if r.amount > 0]) if decision == CS.PARTIALLY_APPROVED else None
        )
        history, status = [], CS.DRAFT
        for to, at, actor in zip(
            (CS.SUBMITTED, CS.UNDER_REVIEW, decision), moments[1:], (inst.ro, regulator, regulator), strict=True
        ):
            if at > gen.now:
                break
            history.append((status, to, at, actor))
            status = to
        decided = status in (CS.APPROVED, CS.PARTIALLY_APPROVED, CS.REJECTED)
        approved_total = rules.ZERO if decided else None
        note = ""
        rows = []
        for index, line in enumerate(lines):
            r = computed.get(index)
            patients, amount, explanation = (r.patients, r.amount, r.steps) if r else (0, rules.ZERO, [])
            if r:
                self.add_line_evidence(program, reference, line, patients)
            approved, line_note = None, ""
            if decided and line["status"] == LS.ELIGIBLE:
                approved = rules.ZERO if status == CS.REJECTED else amount
                if index == partial_line:
                    approved = rules.to_fen(amount * Decimal(rng.choice(["0.6", "0.7", "0.8", "0.9"])))
                    line_note = "部分受试者入组依据不足，按核定人数拨付"
                    explanation = [*explanation, {"code": "regulator_adjustment", "before": str(amount),
                                                  "amount": str(approved), "reason": line_note}]  # fmt: skip
                approved_total += approved
            rows.append((line, patients, amount, explanation, approved, line_note))
        if status == CS.REJECTED:
            note = "申报材料与入组台账不符，本年度不予补助"
        paid_at = None
        if status in (CS.APPROVED, CS.PARTIALLY_APPROVED) and approved_total > 0 and rng.random() < 0.85:
            paid_at = gen.after(history[-1][2], 15, 90)
            if paid_at <= gen.now:
                history.append((status, CS.PAID, paid_at, regulator))
                status = CS.PAID
            else:
                paid_at = None
        submitted_at = history[0][2] if history else None
        counting = status in Claim.COUNTING_STATUSES
        line_ids = []
        for line, patients, amount, explanation, approved, line_note in rows:
            site, excluded = line["site"], line["status"] == LS.EXCLUDED
            line_ids.append(
                self.lines.add(
                    claim_id=claim_id,
                    trial_id=site.trial.id,
                    site_id=site.id,
                    status=line["status"],
                    ineligible_reasons=line["reasons"],
                    enrolled_total=line["enrolled"],
                    previously_claimed=line["took"]["patients"],
                    patients_claimed=patients,
                    previously_awarded=line["took"]["amount"],
                    item_reference=line["item_reference"],
                    cost_rmb=line["cost"],
                    amount_computed=amount,
                    explanation=explanation,
                    evidence=line["evidence"],
                    excluded_reason="该项目已通过其他渠道获得资助" if excluded else "",
                    excluded_by_id=inst.ro if excluded else None,
                    excluded_at=moments[0] + dt.timedelta(hours=2) if excluded else None,
                    approved_amount=approved,
                    regulator_note=line_note,
                )
            )
            if counting and line["status"] == LS.ELIGIBLE:
                took = self.taken[(inst.id, program.pk, site.trial.id)]
                took["claimed"] = True
                took["patients"] += patients
                took["amount"] += approved if approved is not None else amount
        if counting:
            self.year_taken[(inst.id, program.pk, year)] += approved_total if decided else result.total
        snapshot = None
        if submitted_at:
            snapshot = {
                "frozen_at": submitted_at.isoformat(),
                "reference_date": reference.isoformat(),
                "program": {"code": program.code, "amount_rule": program.amount_rule},
                "rule": {k: (str(v) if v is not None else None) for k, v in vars(rule).items() if k != "kind"},
                "institution_year_already": str(result.institution_year_already),
                "amount_claimed": str(result.total),
                "lines": [
                    {
                        "id": line_id,
                        "trial_id": line["site"].trial.id,
                        "protocol_number": line["site"].trial.protocol,
                        "status": line["status"],
                        "item_reference": line["item_reference"],
                        "cost_rmb": None if line["cost"] is None else str(line["cost"]),
                        "enrolled_total": line["enrolled"],
                        "previously_claimed": line["took"]["patients"],
                        "patients_claimed": patients,
                        "amount_computed": str(amount),
                        "explanation": r_steps,
                        "ineligible_reasons": line["reasons"],
                        "excluded_reason": "该项目已通过其他渠道获得资助" if line["status"] == LS.EXCLUDED else "",
                        "evidence": line["evidence"],
                        "documents": [],
                    }
                    for line_id, (line, patients, amount, r_steps, _a, _n) in zip(line_ids, rows, strict=True)
                ],
            }
        for from_status, to_status, at, actor in history:
            self.changes.add(
                claim_id=claim_id,
                from_status=from_status,
                to_status=to_status,
                actor_id=actor,
                at=at,
                note=note if to_status == CS.REJECTED else "",
            )
        decided_at = moments[3] if decided or status == CS.PAID else None
        self.claims.add(
            id=claim_id,
            institution_id=inst.id,
            program_id=program.pk,
            year=year,
            status=status,
            reference_date=reference,
            opened_by_id=inst.ro,
            opened_at=moments[0],
            submitted_by_id=inst.ro if submitted_at else None,
            submitted_at=submitted_at,
            snapshot=snapshot,
            amount_claimed=result.total,
            amount_approved=approved_total,
            amount_paid=approved_total if paid_at else None,
            paid_on=paid_at.date() if paid_at else None,
            payment_reference=f"CZ{paid_at.year}{claim_id:06d}" if paid_at else "",
            decision_note=note,
            decided_by_id=regulator if decided_at else None,
            decided_at=decided_at,
            status_changed_at=history[-1][2] if history else moments[0],
        )
        if paid_at:
            # Paid in one payment of the whole approved amount, recorded by the regulator who paid it.
            self.payments.add(
                claim_id=claim_id,
                amount=approved_total,
                paid_on=paid_at.date(),
                reference=f"CZ{paid_at.year}{claim_id:06d}",
                recorded_by_id=regulator,
                recorded_at=paid_at,
                balance_after=rules.ZERO,
            )
