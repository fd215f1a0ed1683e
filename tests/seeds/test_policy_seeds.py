"""The policy seeds: every value the issue names is there, and every one is traceable to its source."""

from itertools import pairwise

import pytest
from django.conf import settings

from cgtclinic.models import PolicyParameter, PolicyTarget

pytestmark = pytest.mark.django_db

POLICY_DIR = settings.BASE_DIR.parent / "shared" / "policy"

# (code, region code or None for national) that features read; the values themselves live only in seeds/.
REQUIRED_PARAMETERS = [
    ("recognition_feedback_working_days", "guangdong"),
    ("subsidy_per_patient_rmb", "shanghai"),
    ("subsidy_project_cap_rmb", "shanghai"),
    ("subsidy_institution_year_cap_rmb", "shanghai"),
    ("insurance_premium_subsidy_percent", "shanghai"),
    ("insurance_premium_subsidy_cap_rmb", "shanghai"),
    ("startup_target_weeks", "beijing"),
    ("iit_funding_disposable_income_percent", "beijing"),
    ("iit_funding_service_income_percent", "beijing"),
    ("review_pilot_working_days", "beijing"),
    ("new_technology_filing_working_days", None),
    ("continuing_review_interval_months", None),
]


def _names_a_document(source: str) -> bool:
    """A document outside the policy folder is cited by its title (《…》) or its number (〔year〕, 令第…号)."""
    return "《" in source or "〔" in source or "令第" in source


def _sourced_rows():
    return [*PolicyParameter.objects.all(), *PolicyTarget.objects.all()]


@pytest.mark.parametrize(("code", "region"), REQUIRED_PARAMETERS)
def test_every_parameter_the_features_need_is_seeded(policy_report, code, region):
    assert PolicyParameter.objects.filter(code=code, region__code=region).exists()


def test_the_beijing_startup_target_has_one_row_per_document(policy_report):
    rows = list(PolicyParameter.objects.filter(code="startup_target_weeks", region__code="beijing"))

    assert len({row.source_document for row in rows}) == len(rows) >= 3
    for earlier, later in pairwise(rows):
        assert earlier.effective_to is not None and earlier.effective_to < later.effective_from
        assert later.value < earlier.value


def test_every_region_target_is_seeded(policy_report):
    assert set(PolicyTarget.objects.values_list("region__code", flat=True)) == {"beijing", "shanghai", "guangdong"}


def test_every_row_cites_a_policy_file_or_names_its_document(policy_report):
    for row in _sourced_rows():
        assert row.source_clause.strip(), row
        if row.source_document.endswith(".txt"):
            assert row.source_quote.strip(), f"{row}: a row taken from a policy file quotes it"
        else:
            assert _names_a_document(row.source_document), row
            assert row.source_quote == "", f"{row}: a document not in the policy folder cannot be quoted verbatim"


def test_quotes_are_verbatim_from_the_policy_files(policy_report):
    if not POLICY_DIR.is_dir():
        pytest.skip(f"The policy documents are not checked out at {POLICY_DIR}; cannot compare the quotes.")
    for row in _sourced_rows():
        if not row.source_document.endswith(".txt"):
            continue
        path = POLICY_DIR / row.source_document
        assert path.is_file(), f"{row}: {row.source_document} is not in {POLICY_DIR}"
        assert row.source_quote in path.read_text(encoding="utf-8"), f"{row}: the quote is not in the file"
