"""The subsidy programs of the policy seeds: loaded with their rules, traceable to the policy texts, naming policy
values rather than numbers, loaded again without change, and refused row by row when a row is wrong."""

import re

import pytest
from django.conf import settings
from django.utils import timezone

from cgtclinic.errors import DomainError
from cgtclinic.models import PolicyParameter, Region
from cgtclinic.roles import Role
from cgtclinic.seeding import CHANGE_REASON, SEEDS_DIR, SeedError, load_seeds
from subsidies import services
from subsidies.models import EligibilityRule, SubsidyProgram
from tests.factories.cgtclinic import UserFactory
from tests.factories.subsidies import SHANGHAI_RULES
from tests.seeds.files import read_rows, write_rows

pytestmark = pytest.mark.django_db

POLICY_DIR = settings.BASE_DIR.parent / "shared" / "policy"
PROGRAMS_FILE = SEEDS_DIR / "policy" / "subsidy_programs.yaml"
PARAMETER_FIELDS = (
    "rate_parameter",
    "percent_parameter",
    "item_cap_parameter",
    "project_cap_parameter",
    "institution_year_cap_parameter",
)
POLICY_FILE_NAME = re.compile(r"\d{3}_[0-9a-f]{16}\.txt")
Kind = EligibilityRule.Kind
Rule = SubsidyProgram.AmountRule


def _program_row(rows, **match):
    return next(row for row in rows if all(row.get(key) == value for key, value in match.items()))


def _seeded(region: str, amount_rule: str) -> SubsidyProgram:
    return SubsidyProgram.objects.get(region__code=region, amount_rule=amount_rule)


def _rules(program) -> list[tuple[str, dict]]:
    return [(rule.kind, rule.params) for rule in program.eligibility_rules.order_by("position")]


def test_every_program_of_the_file_is_loaded_with_its_rules_in_order(policy_report):
    rows = read_rows(PROGRAMS_FILE)

    assert SubsidyProgram.objects.count() == len(rows) == policy_report.tally(SubsidyProgram).created
    for row in rows:
        program = SubsidyProgram.objects.get(code=row["code"])
        assert program.region.code == row["region"]
        assert (program.year_from, program.year_to) == (row["year_from"], row["year_to"])
        assert program.amount_rule == row["amount_rule"]
        assert program.selective == row["selective"]
        for name in PARAMETER_FIELDS:
            assert getattr(program, name) == row.get(name, "")
        expected = [
            (rule["kind"], {k: v if isinstance(v, str | bool | list) else str(v) for k, v in rule["params"].items()})
            for rule in row["rules"]
        ]
        assert _rules(program) == expected
        assert [rule.source_clause for rule in program.eligibility_rules.order_by("position")] == [
            rule["source_clause"] for rule in row["rules"]
        ]
        assert program.history.get().history_change_reason == CHANGE_REASON


def test_the_three_programs_of_the_texts_are_seeded(policy_report):
    per_patient = _seeded("shanghai", Rule.PER_PATIENT)
    insurance = _seeded("shanghai", Rule.PERCENT_OF_COST)
    beijing = _seeded("beijing", Rule.FIXED_AMOUNT)

    assert per_patient.selective and per_patient.project_cap_parameter and per_patient.institution_year_cap_parameter
    assert per_patient.year_from == 2023 and per_patient.year_to is None
    assert insurance.item_cap_parameter and not insurance.selective
    assert beijing.fixed_amount_rmb is None, "the text fixes no amount: the Beijing regulator sets it"
    assert dict(_rules(beijing))[Kind.TRIAL_KIND] == {
        "industry_sponsor_in_region": True,
        "sponsor_cgt_enterprise": True,
    }
    assert dict(_rules(beijing))[Kind.STARTUP_WITHIN_TARGET] == {"parameter": "startup_target_weeks"}
    assert set(dict(_rules(per_patient))) == {
        Kind.THERAPY_CATEGORY,
        Kind.TRIAL_KIND,
        Kind.RESEARCH_COMPLETED,
        Kind.ETHICS_APPROVAL,
    }


def test_the_test_factories_build_the_seeded_shanghai_rules(policy_report):
    """tests/factories/subsidies.py stands in for the seeded program; it must not drift from the seeds."""
    assert _rules(_seeded("shanghai", Rule.PER_PATIENT)) == [(kind, params) for kind, params in SHANGHAI_RULES]


def test_every_program_reads_values_in_force_for_its_region(policy_report):
    today = timezone.localdate()
    for program in SubsidyProgram.objects.select_related("region"):
        rule = services.amount_rule(program, today)
        for name, value in (("rate_parameter", rule.rate), ("percent_parameter", rule.percent)):
            code = getattr(program, name)
            if code:
                assert value == PolicyParameter.value_for(code, region=program.region, on=today)
    per_patient = services.amount_rule(_seeded("shanghai", Rule.PER_PATIENT), today)
    assert per_patient.rate < per_patient.project_cap < per_patient.institution_year_cap


def test_quotes_are_verbatim_from_the_policy_files(policy_report):
    if not POLICY_DIR.is_dir():
        pytest.skip(f"The policy documents are not checked out at {POLICY_DIR}; cannot compare the quotes.")
    for program in SubsidyProgram.objects.all():
        assert program.source_document.endswith(".txt"), program
        assert program.source_quote, program
        text = (POLICY_DIR / program.source_document).read_text(encoding="utf-8")
        assert program.source_quote in text, f"{program}: the quote is not in {program.source_document}"


def test_rules_quote_the_words_they_rest_on_verbatim(policy_report):
    """A rule's clause quotes its words in “…” from the program's document, or from the policy file it names;
    a clause without a quote names the document outside the policy folder it rests on."""
    if not POLICY_DIR.is_dir():
        pytest.skip(f"The policy documents are not checked out at {POLICY_DIR}; cannot compare the quotes.")
    for rule in EligibilityRule.objects.select_related("program"):
        quotes = re.findall(r"“([^”]+)”", rule.source_clause)
        if not quotes:
            assert "《" in rule.source_clause, f"{rule.program.code} {rule}: neither a quote nor a document"
            continue
        named = POLICY_FILE_NAME.search(rule.source_clause)
        document = named.group(0) if named else rule.program.source_document
        text = (POLICY_DIR / document).read_text(encoding="utf-8")
        for quote in quotes:
            assert quote in text, f"{rule.program.code} {rule}: “{quote}” is not in {document}"


def test_loading_again_changes_nothing(policy_report):
    history = (SubsidyProgram.history.count(), EligibilityRule.history.count())

    again = load_seeds(SEEDS_DIR)

    for model in (SubsidyProgram, EligibilityRule):
        tally = again.tally(model)
        assert (tally.created, tally.updated, tally.unchanged) == (0, 0, model.objects.count())
    assert (SubsidyProgram.history.count(), EligibilityRule.history.count()) == history
    assert again.not_in_seeds == []


def test_the_amount_a_regulator_set_survives_a_reload(policy_report):
    program = _seeded("beijing", Rule.FIXED_AMOUNT)
    regulator = UserFactory(role=Role.REGULATOR, region=Region.objects.get(code="beijing"))
    services.program_set_fixed_amount(program=program, actor=regulator, amount="300000.00")

    load_seeds(SEEDS_DIR)

    program.refresh_from_db()
    assert program.fixed_amount_rmb is not None and program.fixed_amount_set_by == regulator


def test_a_regulator_of_another_region_cannot_set_the_amount(policy_report):
    regulator = UserFactory(role=Role.REGULATOR, region=Region.objects.get(code="shanghai"))

    with pytest.raises(DomainError) as refused:
        services.program_set_fixed_amount(
            program=_seeded("beijing", Rule.FIXED_AMOUNT), actor=regulator, amount="300000.00"
        )

    assert refused.value.code == "permission_denied"


def test_an_edited_rule_updates_its_row_and_its_history(seeds_dir):
    load_seeds(seeds_dir)
    path = seeds_dir / "policy" / "subsidy_programs.yaml"
    rows = read_rows(path)
    row = _program_row(rows, amount_rule=Rule.PER_PATIENT)
    rule = next(rule for rule in row["rules"] if rule["kind"] == Kind.THERAPY_CATEGORY)
    rule["params"]["categories"].append("stem_cell")
    write_rows(path, rows)

    report = load_seeds(seeds_dir)

    assert (report.tally(EligibilityRule).updated, report.tally(SubsidyProgram).updated) == (1, 0)
    stored = EligibilityRule.objects.get(program__code=row["code"], kind=Kind.THERAPY_CATEGORY)
    assert "stem_cell" in stored.params["categories"]
    latest = stored.history.first()
    assert latest.history_type == "~" and latest.history_change_reason == CHANGE_REASON


def test_a_rule_removed_from_the_file_is_kept_and_reported(seeds_dir):
    load_seeds(seeds_dir)
    path = seeds_dir / "policy" / "subsidy_programs.yaml"
    rows = read_rows(path)
    row = _program_row(rows, amount_rule=Rule.FIXED_AMOUNT)
    removed = row["rules"].pop()
    write_rows(path, rows)

    report = load_seeds(seeds_dir)

    assert EligibilityRule.objects.filter(program__code=row["code"], kind=removed["kind"]).exists()
    assert [item for item in report.not_in_seeds if row["code"] in item]


def _unknown_parameter(row):
    row["rate_parameter"] = "subsidy_per_bed_rmb"


def _parameter_in_the_wrong_unit(row):
    row["project_cap_parameter"] = "insurance_premium_subsidy_percent"


def _parameter_of_another_region(row):
    row["rate_parameter"] = "startup_target_weeks"


def _per_patient_without_a_rate(row):
    del row["rate_parameter"]


def _unknown_rule(row):
    row["rules"][0]["kind"] = "sponsor_size"


def _bad_rule_params(row):
    row["rules"][0]["params"] = {"categories": ["gene_therapy"]}


def _two_rules_of_a_kind(row):
    row["rules"].append(dict(row["rules"][0]))


def _last_year_before_the_first(row):
    row["year_to"] = row["year_from"] - 1


def _unknown_region(row):
    row["region"] = "atlantis"


def _unknown_field(row):
    row["amount_rmb"] = 50000


@pytest.mark.parametrize(
    ("break_row", "expected"),
    [
        (_unknown_parameter, "subsidy_per_bed_rmb"),
        (_parameter_in_the_wrong_unit, "project_cap_parameter"),
        (_parameter_of_another_region, "startup_target_weeks"),
        (_per_patient_without_a_rate, "rate_parameter"),
        (_unknown_rule, "rule 1)"),
        (_bad_rule_params, "rule 1): params"),
        (_two_rules_of_a_kind, "rule 5)"),
        (_last_year_before_the_first, "year_to"),
        (_unknown_region, "atlantis"),
        (_unknown_field, "amount_rmb"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_bad_program_row_names_file_and_row_and_loads_nothing(seeds_dir, break_row, expected):
    path = seeds_dir / "policy" / "subsidy_programs.yaml"
    rows = read_rows(path)
    break_row(rows[0])
    write_rows(path, rows)

    with pytest.raises(SeedError) as caught:
        load_seeds(seeds_dir)

    message = str(caught.value)
    assert "subsidy_programs.yaml, row 1" in message
    assert expected in message
    assert not SubsidyProgram.objects.exists()
    assert not PolicyParameter.objects.exists(), "the policy set loads whole or not at all"


def test_each_program_says_whether_it_counts_gene_modified_cell_therapy(policy_report):
    """Shanghai's plan (001) counts gene-modified cells (CAR-T, TCR-T) in "基因治疗领域" and leaves other cell
    therapy to its cell-therapy plan; the rule's clause quotes the words the reading rests on (checked verbatim by
    test_rules_quote_the_words_they_rest_on_verbatim). Beijing's program has no category rule: its text names
    细胞与基因治疗企业, so every category counts."""
    for amount_rule in (Rule.PER_PATIENT, Rule.PERCENT_OF_COST):
        rule = _seeded("shanghai", amount_rule).eligibility_rules.get(kind=Kind.THERAPY_CATEGORY)
        assert "gene_modified_cell" in rule.params["categories"]
        assert not {"immune_cell", "stem_cell"} & set(rule.params["categories"])
    clause = _seeded("shanghai", Rule.PER_PATIENT).eligibility_rules.get(kind=Kind.THERAPY_CATEGORY).source_clause
    for words in ("在基因治疗领域", "基因编辑、药物递送等领域", "推动基因治疗与细胞治疗协同发展"):
        assert f"“{words}”" in clause
    if POLICY_DIR.exists():
        text = (POLICY_DIR / _seeded("shanghai", Rule.PER_PATIENT).source_document).read_text(encoding="utf-8")
        assert "在基因治疗领域" in text and "推动基因治疗与细胞治疗协同发展" in text
    beijing = _seeded("beijing", Rule.FIXED_AMOUNT)
    assert not beijing.eligibility_rules.filter(kind=Kind.THERAPY_CATEGORY).exists()
    assert "细胞与基因治疗" in beijing.source_quote
