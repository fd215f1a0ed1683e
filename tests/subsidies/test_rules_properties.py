"""The subsidy arithmetic (subsidies.rules.calculate), a pure function: properties over generated claims, then
examples with the exact figures of Shanghai's programs as the factories hold them."""

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from subsidies import rules
from subsidies.rules import FEN, ZERO, AmountRule, LineInput, calculate
from tests.factories.subsidies import INSURANCE_VALUES, SHANGHAI_VALUES

PROPERTY = settings(max_examples=300, deadline=None)
CAP_CODES = ("item_cap", "project_cap", "institution_year_cap")

# Policy values are stored with four decimals, so rates and percentages may have fractions of a fen.
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("200000"), places=4)
percents = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100"), places=4)
money = st.decimals(min_value=Decimal("0"), max_value=Decimal("8000000"), places=2)
caps = st.one_of(st.none(), st.decimals(min_value=Decimal("0"), max_value=Decimal("6000000"), places=2))
counts = st.integers(min_value=0, max_value=150)


@st.composite
def per_patient_lines(draw, max_lines=8):
    size = draw(st.integers(min_value=0, max_value=max_lines))
    return [
        LineInput(
            key=index,
            enrolled=draw(counts),
            previously_claimed=draw(counts),
            previously_awarded=draw(money),
        )
        for index in range(size)
    ]


@st.composite
def per_patient_rules(draw):
    return AmountRule(
        kind=rules.PER_PATIENT,
        rate=draw(rates),
        project_cap=draw(caps),
        institution_year_cap=draw(caps),
    )


@st.composite
def cost_lines(draw):
    size = draw(st.integers(min_value=0, max_value=8))
    return [LineInput(key=index, cost=draw(money)) for index in range(size)]


@st.composite
def percent_rules(draw):
    return AmountRule(
        kind=rules.PERCENT_OF_COST,
        percent=draw(percents),
        item_cap=draw(caps),
        project_cap=draw(caps),
        institution_year_cap=draw(caps),
    )


any_rule_and_lines = st.one_of(
    st.tuples(per_patient_rules(), per_patient_lines()),
    st.tuples(percent_rules(), cost_lines()),
)
already_amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("7000000"), places=2)


def _whole_fen(value: Decimal) -> bool:
    return value == value.quantize(FEN) and value.as_tuple().exponent == -2


def _cuts(line) -> Decimal:
    return sum((Decimal(step["cut"]) for step in line.steps if step["code"] in CAP_CODES), ZERO)


# Properties -------------------------------------------------------------------------------------------------


@PROPERTY
@given(case=any_rule_and_lines, already=already_amounts)
def test_no_cap_is_ever_exceeded(case, already):
    rule, lines = case
    result = calculate(rule, lines, institution_year_already=already)

    for line, item in zip(result.lines, lines, strict=True):
        if rule.item_cap is not None:
            assert line.amount <= rule.item_cap
        if rule.project_cap is not None:
            assert line.amount <= max(ZERO, rule.project_cap - item.previously_awarded)
    if rule.institution_year_cap is not None:
        assert result.total <= max(ZERO, rule.institution_year_cap - already)
        assert result.institution_year_room_left == max(ZERO, rule.institution_year_cap - already - result.total)


@PROPERTY
@given(case=any_rule_and_lines, already=already_amounts)
def test_amounts_are_whole_fen_never_negative_and_add_up(case, already):
    rule, lines = case
    result = calculate(rule, lines, institution_year_already=already)

    assert [line.key for line in result.lines] == [item.key for item in lines]
    for line in result.lines:
        assert line.amount >= 0 and line.gross >= 0 and line.cut >= 0
        assert _whole_fen(line.amount) and _whole_fen(line.gross)
        for step in line.steps:
            assert _whole_fen(Decimal(step["amount"]))
    assert result.total == sum((line.amount for line in result.lines), ZERO)
    assert _whole_fen(result.total)


@PROPERTY
@given(case=any_rule_and_lines, already=already_amounts)
def test_gross_less_the_cuts_of_the_steps_is_the_amount(case, already):
    rule, lines = case
    result = calculate(rule, lines, institution_year_already=already)

    for line in result.lines:
        first, *caps_applied = line.steps
        assert Decimal(first["amount"]) == line.gross
        assert line.gross - _cuts(line) == line.amount
        assert line.cut == _cuts(line)
        # Each cap starts from where the step before left the line, and the last step gives the amount.
        previous = line.gross
        for step in caps_applied:
            if step["code"] == "patients_deferred":
                # The patients paid for are claimed, the rest deferred; the amount is the year cap's.
                assert (line.patients, Decimal(step["amount"])) == (step["paid_patients"], line.amount)
                continue
            if step["code"] == "project_cap_checked":
                # The cap was not reached: nothing cut, the room left said.
                assert Decimal(step["amount"]) == previous <= Decimal(step["room"])
                continue
            assert step["code"] in CAP_CODES
            assert Decimal(step["before"]) == previous
            assert Decimal(step["before"]) - Decimal(step["cut"]) == Decimal(step["amount"])
            assert Decimal(step["cut"]) > 0
            previous = Decimal(step["amount"])
        assert previous == line.amount


@PROPERTY
@given(rule=per_patient_rules(), lines=per_patient_lines(), already=already_amounts)
def test_per_patient_never_claims_patients_claimed_before(rule, lines, already):
    result = calculate(rule, lines, institution_year_already=already)

    for line, item in zip(result.lines, lines, strict=True):
        claimable = max(0, item.enrolled - item.previously_claimed)
        deferred = [step for step in line.steps if step["code"] == "patients_deferred"]
        # Patients a line is not paid for under this year's cap are not claimed: they stay for a later year.
        if deferred:
            assert line.patients + deferred[0]["patients"] == claimable
            # Whole patients at the rate: no patient is paid in part.
            assert line.amount == (rule.rate * line.patients).quantize(FEN, rounding=ROUND_HALF_UP)
        else:
            assert line.patients == claimable
        assert line.gross == (rule.rate * claimable).quantize(FEN, rounding=ROUND_HALF_UP)
        if item.enrolled <= item.previously_claimed:
            assert line.amount == 0
        step = line.steps[0]
        assert (step["code"], step["patients"], step["previously_claimed"]) == (
            "per_patient",
            claimable,
            item.previously_claimed,
        )


@PROPERTY
@given(
    rule=per_patient_rules(),
    lines=per_patient_lines(max_lines=6).filter(bool),
    already=already_amounts,
    data=st.data(),
)
def test_each_line_and_the_total_grow_with_enrolment(rule, lines, already, data):
    index = data.draw(st.integers(min_value=0, max_value=len(lines) - 1), label="line")
    more = data.draw(st.integers(min_value=1, max_value=40), label="more enrolled")
    grown = list(lines)
    item = grown[index]
    grown[index] = LineInput(
        key=item.key,
        enrolled=item.enrolled + more,
        previously_claimed=item.previously_claimed,
        previously_awarded=item.previously_awarded,
    )

    before = calculate(rule, lines, institution_year_already=already)
    after = calculate(rule, grown, institution_year_already=already)

    assert after.lines[index].amount >= before.lines[index].amount
    assert after.lines[index].gross >= before.lines[index].gross
    # Whole patients only under the yearly cap: a grown line may leave a later one a remainder it cannot use, so the
    # total may lose less than one patient's rate, never more.
    assert after.total >= before.total - (rule.rate + FEN if rule.institution_year_cap is not None else 0)
    # Lines before the grown one are untouched; only later lines can lose room under the yearly cap.
    assert [line.amount for line in after.lines[:index]] == [line.amount for line in before.lines[:index]]


@PROPERTY
@given(case=any_rule_and_lines, already=already_amounts)
def test_the_yearly_cap_cuts_the_last_lines_first(case, already):
    rule, lines = case
    result = calculate(rule, lines, institution_year_already=already)

    def year_cap_step(line):
        return next((step for step in line.steps if step["code"] == "institution_year_cap"), None)

    cut_at = [i for i, line in enumerate(result.lines) if year_cap_step(line)]
    if cut_at:
        room = max(ZERO, rule.institution_year_cap - already)
        if rule.kind == rules.PER_PATIENT:
            # Whole patients only: what stays unused of the room is less than one patient's rate, and only a line
            # the project cap already cut below one patient's rate can still fit into it.
            assert room - result.total < rule.rate + FEN
            assert all(line.amount < rule.rate + FEN for line in result.lines[cut_at[0] + 1 :])
        else:
            assert all(line.amount == 0 for line in result.lines[cut_at[0] + 1 :])
            assert result.total == room
        step = year_cap_step(result.lines[cut_at[0]])
        assert Decimal(step["in_this_claim"]) == sum((line.amount for line in result.lines[: cut_at[0]]), ZERO)
        assert Decimal(step["already"]) == already
    else:
        # Without the yearly cap biting, every line keeps what its own caps leave it.
        without_year_cap = calculate(
            AmountRule(**{**vars(rule), "institution_year_cap": None}), lines, institution_year_already=already
        )
        assert [line.amount for line in result.lines] == [line.amount for line in without_year_cap.lines]


@PROPERTY
@given(rule=percent_rules(), lines=cost_lines())
def test_percentage_of_a_cost_is_the_share_of_the_cost_capped_per_item(rule, lines):
    result = calculate(rule, lines)

    for line, item in zip(result.lines, lines, strict=True):
        share = (item.cost * rule.percent / 100).quantize(FEN, rounding=ROUND_HALF_UP)
        assert line.gross == share
        assert line.patients == 0
        if rule.item_cap is not None and rule.project_cap is None and rule.institution_year_cap is None:
            assert line.amount == min(share, rule.item_cap)


@PROPERTY
@given(
    amount=st.one_of(st.none(), st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000000"), places=2)),
    lines=per_patient_lines(),
)
def test_a_fixed_amount_is_paid_per_project_as_set(amount, lines):
    result = calculate(AmountRule(kind=rules.FIXED_AMOUNT, fixed_amount=amount), lines)

    for line in result.lines:
        assert line.amount == (amount if amount is not None else ZERO)
        assert line.steps == [
            {"code": "fixed_amount", "amount": str(amount)}
            if amount is not None
            else {"code": "fixed_amount_not_set", "amount": "0.00"}
        ]


# Examples with Shanghai's figures ---------------------------------------------------------------------------

RATE = SHANGHAI_VALUES["subsidy_per_patient_rmb"]
PROJECT_CAP = SHANGHAI_VALUES["subsidy_project_cap_rmb"]
YEAR_CAP = SHANGHAI_VALUES["subsidy_institution_year_cap_rmb"]
PERCENT = INSURANCE_VALUES["insurance_premium_subsidy_percent"]
ITEM_CAP = INSURANCE_VALUES["insurance_premium_subsidy_cap_rmb"]
SHANGHAI = AmountRule(kind=rules.PER_PATIENT, rate=RATE, project_cap=PROJECT_CAP, institution_year_cap=YEAR_CAP)
INSURANCE = AmountRule(kind=rules.PERCENT_OF_COST, percent=PERCENT, item_cap=ITEM_CAP)
PERCENT_TEXT = format(PERCENT.normalize(), "f")  # 50, not 50.0000 or 5E+1
# Patients whose subsidy just fits under the project cap.
FITS = int(PROJECT_CAP // RATE)


def test_per_patient_below_every_cap():
    result = calculate(SHANGHAI, [LineInput(key="a", enrolled=FITS - 3)])
    (line,) = result.lines
    assert (line.patients, line.gross, line.amount, line.cut) == (FITS - 3, RATE * (FITS - 3), RATE * (FITS - 3), 0)
    assert line.steps == [
        {
            "code": "per_patient",
            "enrolled": FITS - 3,
            "previously_claimed": 0,
            "patients": FITS - 3,
            "rate": str(rules.to_fen(RATE)),
            "amount": str(rules.to_fen(RATE * (FITS - 3))),
        }
    ]
    assert result.total == RATE * (FITS - 3)


def test_per_patient_cut_by_the_project_cap():
    (line,) = calculate(SHANGHAI, [LineInput(key="a", enrolled=FITS + 2)]).lines
    assert (line.gross, line.amount, line.cut) == (RATE * (FITS + 2), PROJECT_CAP, RATE * 2)
    assert line.steps[-1] == {
        "code": "project_cap",
        "cap": str(rules.to_fen(PROJECT_CAP)),
        "already": "0.00",
        "before": str(rules.to_fen(RATE * (FITS + 2))),
        "cut": str(rules.to_fen(RATE * 2)),
        "amount": str(rules.to_fen(PROJECT_CAP)),
        "scope": "project",
    }


def test_the_project_cap_counts_what_earlier_claims_were_awarded():
    earlier = RATE * (FITS - 2)
    line_input = LineInput(key="a", enrolled=FITS + 1, previously_claimed=FITS - 2, previously_awarded=earlier)
    (line,) = calculate(SHANGHAI, [line_input]).lines
    # Three new patients, but only two patients' worth of room is left under the project cap.
    assert (line.patients, line.gross, line.amount, line.cut) == (3, RATE * 3, PROJECT_CAP - earlier, RATE)
    assert line.steps[-1]["already"] == str(rules.to_fen(earlier))


def test_a_project_already_at_its_cap_gets_nothing():
    (line,) = calculate(SHANGHAI, [LineInput(key="a", enrolled=3, previously_awarded=PROJECT_CAP)]).lines
    assert (line.gross, line.amount) == (RATE * 3, 0)
    assert line.steps[-1]["code"] == "project_cap"


def test_the_yearly_cap_counts_earlier_claims_of_the_year():
    already = YEAR_CAP - RATE * 2
    result = calculate(
        SHANGHAI,
        [LineInput(key="first", enrolled=5), LineInput(key="second", enrolled=1)],
        institution_year_already=already,
    )
    first, second = result.lines
    assert (first.amount, first.cut) == (RATE * 2, RATE * 3)
    assert (second.amount, second.cut) == (0, RATE)
    # Only the patients paid for are claimed: two of the first line's five; the rest stay for a later year.
    assert (first.patients, second.patients) == (2, 0)
    assert first.steps[-1] == {
        "code": "patients_deferred",
        "patients": 3,
        "paid_patients": 2,
        "amount": str(rules.to_fen(RATE * 2)),
    }
    assert second.steps[-1] == {"code": "patients_deferred", "patients": 1, "paid_patients": 0, "amount": "0.00"}
    assert first.steps[-2] == {
        "code": "institution_year_cap",
        "cap": str(rules.to_fen(YEAR_CAP)),
        "already": str(rules.to_fen(already)),
        "in_this_claim": "0.00",
        "before": str(rules.to_fen(RATE * 5)),
        "cut": str(rules.to_fen(RATE * 3)),
        "amount": str(rules.to_fen(RATE * 2)),
    }
    assert second.steps[-2]["in_this_claim"] == str(rules.to_fen(RATE * 2))
    assert result.total == RATE * 2
    assert result.institution_year_room_left == 0


def test_the_yearly_cap_fills_with_full_projects_then_cuts_the_next():
    projects = int(YEAR_CAP // PROJECT_CAP)
    lines = [LineInput(key=i, enrolled=FITS) for i in range(projects + 1)]
    result = calculate(SHANGHAI, lines)
    assert [line.amount for line in result.lines] == [PROJECT_CAP] * projects + [0]
    assert result.total == YEAR_CAP
    last = result.lines[-1].steps[-2]
    assert result.lines[-1].patients == 0
    assert (last["code"], last["in_this_claim"], last["cut"]) == (
        "institution_year_cap",
        str(rules.to_fen(YEAR_CAP)),
        str(rules.to_fen(PROJECT_CAP)),
    )


def test_insurance_premium_share_below_and_above_the_cap_per_policy():
    below = ITEM_CAP * 100 / PERCENT - 1000
    above = ITEM_CAP * 100 / PERCENT + 1000
    first, second = calculate(INSURANCE, [LineInput(key="p1", cost=below), LineInput(key="p2", cost=above)]).lines
    assert (first.gross, first.amount, first.steps[-1]["code"]) == (
        rules.to_fen(below * PERCENT / 100),
        rules.to_fen(below * PERCENT / 100),
        "percent_of_cost",
    )
    assert (second.gross, second.amount, second.cut) == (
        rules.to_fen(above * PERCENT / 100),
        ITEM_CAP,
        rules.to_fen(above * PERCENT / 100) - ITEM_CAP,
    )
    assert first.steps[0]["percent"] == PERCENT_TEXT
    assert second.steps[-1]["code"] == "item_cap"


def test_amounts_round_half_up_to_the_fen_once_per_line():
    # Half a fen rounds up (banker's rounding would give 0.00 and 0.02 here).
    rule = AmountRule(kind=rules.PER_PATIENT, rate=Decimal("0.0050"))
    assert Decimal("0.0050").quantize(FEN, rounding=ROUND_HALF_EVEN) == 0
    (line,) = calculate(rule, [LineInput(key="a", enrolled=1)]).lines
    assert line.amount == Decimal("0.01")
    (line,) = calculate(rule, [LineInput(key="a", enrolled=5)]).lines
    assert line.amount == Decimal("0.03")  # 0.025 rounded once, not 5 × 0.01
    (line,) = calculate(INSURANCE, [LineInput(key="p", cost=Decimal("0.03"))]).lines
    assert line.amount == rules.to_fen(Decimal("0.03") * PERCENT / 100)


def test_an_unknown_rule_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown amount rule"):
        calculate(AmountRule(kind="per_day"), [LineInput(key="a")])


def test_the_explanation_reads_in_english():
    already = YEAR_CAP - RATE
    result = calculate(
        SHANGHAI,
        [LineInput(key="a", enrolled=FITS + 2, previously_claimed=1)],
        institution_year_already=already,
    )
    with translation.override("en"):
        text = rules.describe(result.lines[0].steps)
    assert text.split("; ") == [
        f"{FITS + 1} patients × {rules.grouped(RATE)} RMB = {rules.grouped(RATE * (FITS + 1))} RMB "
        f"({FITS + 2} enrolled, 1 already claimed earlier)",
        f"Cap per project {rules.grouped(PROJECT_CAP)} RMB over all hospitals, 0.00 RMB already awarded for it: "
        f"cut by {rules.grouped(RATE)} RMB to {rules.grouped(PROJECT_CAP)} RMB",
        f"Cap per institution per year {rules.grouped(YEAR_CAP)} RMB, {rules.grouped(already)} RMB in earlier claims "
        f"of the year: cut by {rules.grouped(PROJECT_CAP - RATE)} RMB to {rules.grouped(RATE)} RMB",
        f"Patients claimed: 1, those paid for. The other {FITS} stay unclaimed and can be claimed in a later year.",
    ]


def test_every_step_code_has_a_sentence():
    steps = [
        *calculate(INSURANCE, [LineInput(key="p", cost=ITEM_CAP * 4)]).lines[0].steps,
        *calculate(AmountRule(kind=rules.FIXED_AMOUNT, fixed_amount=RATE), [LineInput(key="f")]).lines[0].steps,
        *calculate(AmountRule(kind=rules.FIXED_AMOUNT), [LineInput(key="f")]).lines[0].steps,
        {"code": "regulator_adjustment", "before": "100.00", "amount": "50.00", "reason": "audit"},
    ]
    with translation.override("en"):
        texts = [rules.describe_step(step) for step in steps]
    assert texts == [
        f"{PERCENT_TEXT}% of the cost {rules.grouped(ITEM_CAP * 4)} RMB = "
        f"{rules.grouped(ITEM_CAP * 4 * PERCENT / 100)} RMB",
        f"Cap per item {rules.grouped(ITEM_CAP)} RMB: cut by {rules.grouped(ITEM_CAP * 4 * PERCENT / 100 - ITEM_CAP)} "
        f"RMB to {rules.grouped(ITEM_CAP)} RMB",
        f"Fixed amount set by the regulator: {rules.grouped(RATE)} RMB",
        "The regulator has not yet set the amount for this program.",
        "Adjusted by the regulator from 100.00 RMB to 50.00 RMB: audit",
    ]
