"""The subsidy arithmetic: a pure function from an amount rule and claim lines to amounts with explanations.

No database, no clock: the caller reads the policy values (``AmountRule``) and what earlier claims already took
(``LineInput.previously_*``, ``institution_year_already``), and stores what comes back. Money is ``Decimal``
rounded to the fen (0.01 RMB, half up) once per line, before any cap, so caps are compared in whole fen.

Order of the cuts, each recorded as a step: the line's gross amount; the per-item cap (percentage programs);
the per-project cap, less what earlier claims were awarded for the project; then the institution's yearly cap,
less what its earlier claims of the year took, applied to the lines in the order given (the first lines keep
their amount, a later line is cut when the remaining room runs out). A line's gross less the cuts of its steps
is its amount.

A per-patient line the yearly cap cuts claims only the patients it is paid for: whole patients at the rate, the
others stay claimable in a later year. A remainder of the year's room below one patient's rate is not paid (the
program pays per patient, 每人5万元: a patient paid in part could be neither claimed again without being paid twice
nor finished later), so the line's amount is its paid patients times the rate and the remainder stays unused.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

FEN = Decimal("0.01")
ZERO = Decimal("0.00")

PER_PATIENT = "per_patient"
PERCENT_OF_COST = "percent_of_cost"
FIXED_AMOUNT = "fixed_amount"


def to_fen(value: Decimal) -> Decimal:
    return Decimal(value).quantize(FEN, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class AmountRule:
    """The numbers of a program's amount rule, as read from the policy values in force."""

    kind: str
    rate: Decimal | None = None  # RMB per patient
    percent: Decimal | None = None  # share of the cost, in percent
    item_cap: Decimal | None = None  # RMB per cost item
    project_cap: Decimal | None = None  # RMB per project over all claims
    project_cap_scope: str = "project"  # "project": every hospital's awards count; "project_per_hospital": its own
    institution_year_cap: Decimal | None = None  # RMB per institution per year over all claims
    fixed_amount: Decimal | None = None  # RMB per project, set by the regulator


@dataclass(frozen=True)
class LineInput:
    key: object
    enrolled: int = 0  # net enrolled at the site, from the ledger
    previously_claimed: int = 0  # patients of this trial already in earlier counting claims
    previously_awarded: Decimal = ZERO  # RMB already counted against the project cap in earlier claims
    awarded_elsewhere: Decimal = ZERO  # of which, to other hospitals (when the cap covers the whole project)
    # Those awards one by one, for the explanation: ({"institution", "claim", "amount"}, ...).
    elsewhere_awards: tuple = ()
    cost: Decimal | None = None  # for a percentage program


@dataclass
class LineResult:
    key: object
    patients: int
    gross: Decimal
    amount: Decimal
    steps: list[dict] = field(default_factory=list)

    @property
    def cut(self) -> Decimal:
        return self.gross - self.amount


@dataclass
class Calculation:
    lines: list[LineResult]
    total: Decimal
    institution_year_cap: Decimal | None
    institution_year_already: Decimal

    @property
    def institution_year_room_left(self) -> Decimal | None:
        if self.institution_year_cap is None:
            return None
        return max(ZERO, self.institution_year_cap - self.institution_year_already - self.total)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(to_fen(value))


def _number(value: Decimal) -> str:
    """A policy number as people write it: 50 rather than 50.0000 or 5E+1."""
    return format(Decimal(value).normalize(), "f")


def _gross(rule: AmountRule, line: LineInput, patients: int) -> tuple[Decimal, list[dict]]:
    if rule.kind == PER_PATIENT:
        gross = to_fen(rule.rate * patients)
        step = {
            "code": "per_patient",
            "enrolled": line.enrolled,
            "previously_claimed": line.previously_claimed,
            "patients": patients,
            "rate": _money(rule.rate),
            "amount": _money(gross),
        }
        return gross, [step]
    if rule.kind == PERCENT_OF_COST:
        cost = line.cost or ZERO
        gross = to_fen(cost * rule.percent / 100)
        step = {
            "code": "percent_of_cost",
            "cost": _money(cost),
            "percent": _number(rule.percent),
            "amount": _money(gross),
        }
        return gross, [step]
    if rule.kind == FIXED_AMOUNT:
        if rule.fixed_amount is None:
            return ZERO, [{"code": "fixed_amount_not_set", "amount": _money(ZERO)}]
        gross = to_fen(rule.fixed_amount)
        return gross, [{"code": "fixed_amount", "amount": _money(gross)}]
    raise ValueError(f"unknown amount rule {rule.kind!r}")


def _cap_step(code: str, cap: Decimal, already: Decimal, before: Decimal, after: Decimal, **extra) -> dict:
    return {
        "code": code,
        "cap": _money(cap),
        "already": _money(already),
        **{key: _money(value) for key, value in extra.items()},
        "before": _money(before),
        "cut": _money(before - after),
        "amount": _money(after),
    }


def calculate(rule: AmountRule, lines: Sequence[LineInput], *, institution_year_already: Decimal = ZERO) -> Calculation:
    """Amounts for the lines of one claim, in order, with every cap applied and explained."""
    results = []
    year_room = None
    if rule.institution_year_cap is not None:
        year_room = max(ZERO, to_fen(rule.institution_year_cap) - to_fen(institution_year_already))
    this_claim = ZERO  # what the lines before the current one took, for the yearly cap's explanation
    for line in lines:
        patients = max(0, line.enrolled - line.previously_claimed) if rule.kind == PER_PATIENT else 0
        gross, steps = _gross(rule, line, patients)
        amount = gross
        if rule.item_cap is not None and amount > to_fen(rule.item_cap):
            steps.append(_cap_step("item_cap", rule.item_cap, ZERO, amount, to_fen(rule.item_cap)))
            amount = to_fen(rule.item_cap)
        if rule.project_cap is not None:
            room = max(ZERO, to_fen(rule.project_cap) - to_fen(line.previously_awarded))
            step = None
            if amount > room:
                step = _cap_step("project_cap", rule.project_cap, line.previously_awarded, amount, room)
                amount = room
            elif line.previously_awarded:
                # Not reached, but earlier awards counted against it: say which and how much room is left.
                step = {
                    "code": "project_cap_checked",
                    "cap": _money(rule.project_cap),
                    "already": _money(line.previously_awarded),
                    "room": _money(room),
                    "amount": _money(amount),
                }
            if step is not None:
                step["scope"] = rule.project_cap_scope
                if line.awarded_elsewhere:  # what other hospitals took, for the explanation
                    step["elsewhere"] = _money(line.awarded_elsewhere)
                    step["elsewhere_awards"] = [dict(award) for award in line.elsewhere_awards]
                steps.append(step)
        if year_room is not None:
            if amount > year_room:
                after = year_room
                paid = patients
                if rule.kind == PER_PATIENT and patients and rule.rate:
                    # Whole patients only: a remainder of the room below one patient's rate is not paid.
                    paid = min(patients, int(year_room / rule.rate))
                    while paid and to_fen(rule.rate * paid) > year_room:
                        paid -= 1
                    after = to_fen(rule.rate * paid)
                step = _cap_step(
                    "institution_year_cap",
                    rule.institution_year_cap,
                    institution_year_already,
                    amount,
                    after,
                    in_this_claim=this_claim,
                )
                if after != year_room:
                    step["room"] = _money(year_room)
                steps.append(step)
                amount = after
                if paid < patients:
                    # The patients the line is not paid for stay unclaimed, for a later year's claim.
                    steps.append(
                        {
                            "code": "patients_deferred",
                            "patients": patients - paid,
                            "paid_patients": paid,
                            "amount": _money(amount),
                        }
                    )
                    patients = paid
            year_room -= amount
        this_claim += amount
        results.append(LineResult(key=line.key, patients=patients, gross=gross, amount=amount, steps=steps))
    total = sum((r.amount for r in results), ZERO)
    return Calculation(
        lines=results,
        total=total,
        institution_year_cap=None if rule.institution_year_cap is None else to_fen(rule.institution_year_cap),
        institution_year_already=to_fen(institution_year_already),
    )


MONEY_KEYS = frozenset(
    {"rate", "amount", "cap", "already", "cut", "before", "cost", "in_this_claim", "room", "elsewhere"}
)


def grouped(value) -> str:
    """An amount in RMB as people read it: 50,000.00."""
    return f"{Decimal(value):,.2f}"


def describe_step(step: dict) -> str:
    """One explanation step in the reader's language (the stored steps hold only codes and numbers)."""
    code = step.get("code")
    step = {key: grouped(value) if key in MONEY_KEYS and value is not None else value for key, value in step.items()}
    if code == "per_patient":
        text = _("%(patients)s patients × %(rate)s RMB = %(amount)s RMB") % step
        if step.get("previously_claimed"):
            text += " " + _("(%(enrolled)s enrolled, %(previously_claimed)s already claimed earlier)") % step
        return text
    if code == "percent_of_cost":
        return _("%(percent)s%% of the cost %(cost)s RMB = %(amount)s RMB") % step
    if code == "fixed_amount":
        return _("Fixed amount set by the regulator: %(amount)s RMB") % step
    if code == "fixed_amount_not_set":
        return _("The regulator has not yet set the amount for this program.")
    if code == "item_cap":
        return _("Cap per item %(cap)s RMB: cut by %(cut)s RMB to %(amount)s RMB") % step
    if code in ("project_cap", "project_cap_checked"):
        return _project_cap_text(code, step)
    if code == "institution_year_cap":
        if step.get("in_this_claim") and step["in_this_claim"] != grouped(ZERO):
            text = (
                _(
                    "Cap per institution per year %(cap)s RMB, %(already)s RMB in earlier claims of the year and "
                    "%(in_this_claim)s RMB on the lines before this one: cut by %(cut)s RMB to %(amount)s RMB"
                )
                % step
            )
        else:
            text = (
                _(
                    "Cap per institution per year %(cap)s RMB, %(already)s RMB in earlier claims of the year: cut by "
                    "%(cut)s RMB to %(amount)s RMB"
                )
                % step
            )
        if step.get("room"):
            text += " " + _(
                "(the room left was %(room)s RMB; a patient is paid in full or not at all, so the rest of the room "
                "stays unused)"
            ) % {"room": step["room"]}
        return text
    if code == "patients_deferred":
        if step.get("paid_patients"):
            return (
                _(
                    "Patients claimed: %(paid_patients)s, those paid for. The other %(patients)s stay unclaimed and "
                    "can be claimed in a later year."
                )
                % step
            )
        return _("The %(patients)s patients stay unclaimed and can be claimed in a later year.") % step
    if code == "regulator_adjustment":
        return _("Adjusted by the regulator from %(before)s RMB to %(amount)s RMB: %(reason)s") % step
    return str(step)


def _project_cap_text(code: str, step: dict) -> str:
    """The project cap's step: which scope the program gives it, what earlier awards it counted, and the cut."""
    if step.get("scope") == "project_per_hospital":
        head = _(
            "Cap per project at this hospital %(cap)s RMB (each hospital's awards for the project count "
            "separately), %(already)s RMB already awarded to it for the project"
        )
    elif step.get("elsewhere") and step["elsewhere"] != grouped(ZERO):
        head = _(
            "Cap per project %(cap)s RMB over all hospitals, %(already)s RMB already awarded for it "
            "(%(elsewhere)s RMB of it to other hospitals)"
        )
    else:
        head = _("Cap per project %(cap)s RMB over all hospitals, %(already)s RMB already awarded for it")
    tail = _("cut by %(cut)s RMB to %(amount)s RMB") if code == "project_cap" else _("not reached (%(room)s RMB left)")
    text = pgettext("explanation", "%(head)s: %(tail)s") % {"head": head % step, "tail": tail % step}
    awards = step.get("elsewhere_awards") or []
    if awards:
        listed = pgettext("list separator", "; ").join(
            _("%(institution)s, claim %(claim)s: %(amount)s RMB") % {**award, "amount": grouped(award["amount"])}
            for award in awards
        )
        text += " " + _("(awards to other hospitals counted: %(awards)s)") % {"awards": listed}
    return text


def describe(steps: list[dict]) -> str:
    return pgettext("list separator", "; ").join(describe_step(step) for step in steps)
