"""The subsidy programs with their eligibility rules (seeds/policy/subsidy_programs.yaml), and the demo claims
(seeds/demo/claims.yaml), replayed together with the demo enrolment ledger (seeds/demo/enrolment.yaml).

``load_policy`` runs at the end of the policy set: programs are upserted on their code and their rules on
(program, kind). A program names the policy values its amount rule reads (codes in parameters.yaml), never a
number; a fixed-amount program's amount is the regulator's, set in the app, and loading leaves it alone.

``load_demo`` runs last in the demo set, after the ethics decisions that keep the sites' approvals valid. It
replays, in the order they happened, the ledger's events (``trials.seeds.DemoLedger``, through
``trials.enrolment``) and each claim's steps (through ``subsidies.services``, by the demo research office and
regulator, with the clock at the step's moment), so a claim counts what the sites had reported by then and a
later report is left for a later claim. A claim already in the database (the same hospital and program, opened
at the row's moment) is left as it is, whatever happened to it since.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import Institution, PolicyParameter, Region, User
from cgtclinic.seeding import (
    DemoSeeds,
    PolicySeeds,
    Row,
    SeedError,
    check_keys,
    field_value,
    field_values,
    parse_date,
    read_rows,
    ref,
    refused,
    seed_clock,
    step_moment,
    upsert,
)
from subsidies import services
from subsidies.models import Claim, ClaimLine, EligibilityRule, SubsidyProgram
from trials.seeds import DemoLedger

PROGRAMS_FILE = "subsidy_programs.yaml"
CLAIMS_FILE = "claims.yaml"

PROGRAM_FIELDS = (
    "name_zh",
    "name_en",
    "source_document",
    "source_clause",
    "source_quote",
    "year_from",
    "year_to",
    "amount_rule",
    "rate_parameter",
    "percent_parameter",
    "item_cap_parameter",
    "project_cap_parameter",
    "project_cap_scope",
    "institution_year_cap_parameter",
    "selective",
)
# The unit each policy value a program names must have.
PARAMETER_UNITS = {
    "rate_parameter": PolicyParameter.Unit.RMB,
    "percent_parameter": PolicyParameter.Unit.PERCENT,
    "item_cap_parameter": PolicyParameter.Unit.RMB,
    "project_cap_parameter": PolicyParameter.Unit.RMB,
    "institution_year_cap_parameter": PolicyParameter.Unit.RMB,
}
# A rule kind whose parameters name a policy value, with the unit that value must have.
RULE_PARAMETER_UNITS = {EligibilityRule.Kind.STARTUP_WITHIN_TARGET: PolicyParameter.Unit.WEEKS}


# --- Policy: programs and their rules ---------------------------------------------------------------------


def load_policy(policy: PolicySeeds) -> None:
    """Load the subsidy programs and their eligibility rules; list programs and rules no longer in the file."""
    rows = read_rows(
        policy.directory / PROGRAMS_FILE,
        required={"code", "region", "name_zh", "source_document", "source_clause", "year_from", "amount_rule"}
        | {"rules"},
        optional=set(PROGRAM_FIELDS),
        key=("code",),
        label="code",
    )
    seeded_rules = set()
    for row in rows:
        region = policy.regions.get(row, "region")
        values = {"region": region, **field_values(row, SubsidyProgram, PROGRAM_FIELDS)}
        for name, unit in PARAMETER_UNITS.items():
            if values[name]:
                _check_parameter(row, name, values[name], region, unit)
        code = field_value(row, SubsidyProgram, "code")
        program = upsert(policy.report, row, SubsidyProgram, {"code": code}, values)
        seeded_rules |= {(program.pk, kind) for kind in _load_rules(policy, row, program)}
    seeded_programs = {row.data["code"] for row in rows}
    for program in SubsidyProgram.objects.order_by("code"):
        if program.code not in seeded_programs:
            policy.report.not_in_seeds.append(f"{program} ({program.code})")
    for rule in EligibilityRule.objects.select_related("program").order_by("program__code", "position"):
        if (rule.program_id, rule.kind) not in seeded_rules:
            policy.report.not_in_seeds.append(f"{rule.program.code}: {rule}")


def _check_parameter(row: Row, field: str, code, region: Region, unit: str) -> None:
    """The policy value a program or rule names exists for its region (or nationally), in the right unit."""
    units = set(
        PolicyParameter.objects.filter(code=code)
        .filter(Q(region=region) | Q(region__isnull=True))
        .values_list("unit", flat=True)
    )
    if not units:
        raise row.error(
            _("“%(field)s”: no policy value “%(code)s” for %(region)s in parameters.yaml.")
            % {"field": field, "code": code, "region": region.code}
        )
    if units != {unit}:
        raise row.error(
            _("“%(field)s”: the policy value “%(code)s” is not in %(unit)s.")
            % {"field": field, "code": code, "unit": PolicyParameter.Unit(unit).label}
        )


def _params(part: Row) -> dict:
    """A rule's parameters as stored (JSON): dates as ISO text."""
    raw = part.data.get("params") or {}
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        raise part.error(_("“params” must be a mapping of names to values."))
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in raw.items()}


def _load_rules(policy: PolicySeeds, row: Row, program: SubsidyProgram) -> list[str]:
    kinds = []
    for position, part in enumerate(row.parts("rules", _("rule %(number)d"))):
        check_keys(part, required={"kind", "source_clause"}, optional={"params"})
        kind = field_value(part, EligibilityRule, "kind")
        if kind in kinds:
            raise part.error(_("The program already has a rule of this kind; a program has one rule per kind."))
        kinds.append(kind)
        params = _params(part)
        if kind in RULE_PARAMETER_UNITS and params.get("parameter"):
            _check_parameter(part, "params", params["parameter"], program.region, RULE_PARAMETER_UNITS[kind])
        upsert(
            policy.report,
            part,
            EligibilityRule,
            {"program": program, "kind": kind},
            {
                "params": params,
                "position": position,
                "source_clause": field_value(part, EligibilityRule, "source_clause"),
            },
        )
    return kinds


# --- Demo: claims, with the enrolment ledger --------------------------------------------------------------

# Each step a claim's history may take: (required fields, optional fields) besides ``do``.
STEP_FIELDS = {
    "exclude": ({"date", "by", "trial", "reason"}, set()),
    "include": ({"date", "by", "trial"}, set()),
    "cost_item": ({"date", "by", "trial", "policy_number", "cost"}, set()),
    "recompute": ({"date", "by"}, set()),
    "submit": ({"date", "by"}, set()),
    "start_review": ({"date", "by"}, set()),
    "decide": ({"date", "by", "decision"}, {"note", "adjustments"}),
    "pay": ({"date", "by"}, {"amount", "payment_reference"}),
}


@dataclass
class _Step:
    part: Row
    verb: str
    actor: User
    moment: datetime
    plan: "_ClaimPlan"


@dataclass
class _ClaimPlan:
    institution: Institution
    program: SubsidyProgram
    year: int
    claim: Claim | None = None


def load_demo(demo: DemoSeeds) -> None:
    """Replay the demo enrolment ledger and the demo claims, each event and step at its own moment."""
    ledger = DemoLedger(demo)
    steps = _claim_steps(demo)
    # Stable: the steps of one claim keep their order, and a claim's step and a ledger event at the same
    # moment run ledger first (the step sees what was reported by its moment).
    for step in sorted(steps, key=lambda step: step.moment):
        ledger.load(until=step.moment)
        _run(step)
        if step.verb == "open":
            demo.report.tally(Claim).created += 1
    ledger.load()


def _claim_steps(demo: DemoSeeds) -> list[_Step]:
    """The steps of the claims not yet in the database, checked before anything is replayed."""
    rows = read_rows(
        demo.directory / CLAIMS_FILE,
        required={"institution", "program", "year", "by", "date"},
        optional={"steps"},
        key=("institution", "program", "year", "date"),
        label="program",
    )
    now = timezone.now()
    steps = []
    for row in rows:
        plan = _ClaimPlan(
            institution=ref(row, "institution", demo.institutions, "institutions.yaml"),
            program=_program(row),
            year=_year(row),
        )
        plan_steps = [_Step(row, "open", ref(row, "by", demo.people, "people.yaml"), _moment(row, 0), plan)]
        for position, part in enumerate(row.parts("steps", _("step %(number)d")), start=1):
            verb = part.data.get("do")
            if verb not in STEP_FIELDS:
                raise part.error(
                    _("Unknown step “%(verb)s”; “do” must be one of: %(verbs)s.")
                    % {"verb": verb, "verbs": ", ".join(STEP_FIELDS)}
                )
            required, optional = STEP_FIELDS[verb]
            check_keys(part, required=required | {"do"}, optional=optional)
            step = _Step(part, verb, ref(part, "by", demo.people, "people.yaml"), _moment(part, position), plan)
            if step.moment < plan_steps[-1].moment:
                raise part.error(_("The step is dated before the previous one."))
            plan_steps.append(step)
        for step in plan_steps:
            if step.moment > now:
                raise step.part.error(_("The step is dated in the future."))
        opened = Claim.objects.filter(
            institution=plan.institution, program=plan.program, opened_at=plan_steps[0].moment
        ).exists()
        if opened:
            demo.report.tally(Claim).unchanged += 1
            continue
        steps += plan_steps
    return steps


def _moment(part: Row, position: int) -> datetime:
    return step_moment(parse_date(part, "date"), position)


def _program(row: Row) -> SubsidyProgram:
    program = SubsidyProgram.objects.select_related("region").filter(code=row.data["program"]).first()
    if program is None:
        raise row.error(
            _("“program”: “%(code)s” is not a program in policy/%(file)s.")
            % {"code": row.data["program"], "file": PROGRAMS_FILE}
        )
    return program


def _year(row: Row) -> int:
    year = row.data["year"]
    if not isinstance(year, int) or isinstance(year, bool):
        raise row.error(_("“year” must be a year such as 2025."))
    return year


def _run(step: _Step) -> None:
    with seed_clock(step.moment):
        try:
            STEP_HANDLERS[step.verb](step)
        except SeedError:
            raise
        except DomainError as exc:
            raise refused(step.part, exc) from exc


def _line(step: _Step, protocol_number=None) -> ClaimLine:
    protocol_number = step.part.data["trial"] if protocol_number is None else protocol_number
    line = step.plan.claim.lines.filter(trial__protocol_number=protocol_number).first()
    if line is None:
        raise step.part.error(
            _("The claim has no line for the trial “%(trial)s”.") % {"trial": protocol_number},
        )
    return line


def _open(step: _Step) -> None:
    plan = step.plan
    plan.claim = services.claim_open(
        actor=step.actor, program=plan.program, year=plan.year, institution=plan.institution
    )


def _exclude(step: _Step) -> None:
    services.line_exclude(line=_line(step), actor=step.actor, reason=str(step.part.data["reason"]))


def _include(step: _Step) -> None:
    services.line_include(line=_line(step), actor=step.actor)


def _cost_item(step: _Step) -> None:
    data = step.part.data
    site = step.plan.claim.institution.trial_sites.filter(trial__protocol_number=data["trial"]).select_related("trial")
    site = site.first()
    if site is None:
        raise step.part.error(
            _("“trial”: the hospital is not a site of “%(trial)s” in trials.yaml.") % {"trial": data["trial"]}
        )
    services.cost_item_add(
        claim=step.plan.claim,
        actor=step.actor,
        trial=site.trial,
        item_reference=str(data["policy_number"]),
        cost_rmb=data["cost"],
    )


def _recompute(step: _Step) -> None:
    step.plan.claim = services.claim_recompute(claim=step.plan.claim, actor=step.actor)


def _submit(step: _Step) -> None:
    step.plan.claim = services.claim_submit(claim=step.plan.claim, actor=step.actor)


def _start_review(step: _Step) -> None:
    step.plan.claim = services.claim_start_review(claim=step.plan.claim, actor=step.actor)


def _decide(step: _Step) -> None:
    data = step.part.data
    adjustments = data.get("adjustments") or {}
    if not isinstance(adjustments, dict):
        raise step.part.error(_("“adjustments” must map a trial's protocol number to {amount, reason}."))
    by_line = {str(_line(step, protocol).pk): change for protocol, change in adjustments.items()}
    step.plan.claim = services.claim_decide(
        claim=step.plan.claim,
        actor=step.actor,
        decision=str(data["decision"]),
        note=str(data.get("note", "")),
        adjustments=by_line,
    )


def _pay(step: _Step) -> None:
    """Pay the balance still owed (or the ``amount`` given: less leaves the claim partly paid) on the step's day."""
    data = step.part.data
    claim = step.plan.claim
    # Undecided, there is nothing approved to pay: the service then says the claim cannot be paid yet.
    amount = data.get("amount", claim.balance if claim.balance is not None else Decimal("0"))
    step.plan.claim = services.claim_pay(
        claim=claim,
        actor=step.actor,
        amount=str(amount),
        paid_on=parse_date(step.part, "date"),
        payment_reference=str(data.get("payment_reference", "")),
    )


STEP_HANDLERS = {
    "open": _open,
    "exclude": _exclude,
    "include": _include,
    "cost_item": _cost_item,
    "recompute": _recompute,
    "submit": _submit,
    "start_review": _start_review,
    "decide": _decide,
    "pay": _pay,
}
