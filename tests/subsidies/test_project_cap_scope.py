"""001 task 5 caps "每个项目资助总额不超过50万元": a trial at two Shanghai hospitals shares one cap over both, unless
the program caps each hospital separately. The claim's explanation names the scope and lists the other hospitals'
awards it counted; the subsidy-projects report gives the room per project across hospitals."""

from decimal import Decimal

import pytest
from django.utils import translation

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from subsidies import rules, services
from subsidies.models import ClaimLine, SubsidyProgram
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.subsidies import CLAIM_YEAR, completed_gene_trial
from tests.factories.trials import TrialSiteFactory, approve_site
from tests.reports.helpers import report
from trials import enrolment
from trials.models import TrialSite

pytestmark = pytest.mark.django_db


def value(code, region) -> Decimal:
    return PolicyParameter.objects.get(code=code, region=region).value


@pytest.fixture
def shared(institution, research_office, program, region):
    """One trial led by ``institution`` with a second Shanghai hospital as a participating site; the lead enrols
    two patients fewer than the cap pays for, the second hospital six."""
    rate, cap = value("subsidy_per_patient_rmb", region), value("subsidy_project_cap_rmb", region)
    fits = int(cap // rate)
    trial = completed_gene_trial(institution, enrolled=fits - 2, actor=research_office, protocol_number="GT-SH-2")
    second = InstitutionFactory(region=region, name_zh="上海第二医院")
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=second)
    site = TrialSiteFactory(trial=trial, institution=second, role=TrialSite.SiteRole.PARTICIPATING)
    approve_site(site, trial.sites.get(institution=institution).ethics_approved_on)
    enrolment.enrolment_report(
        site=site, actor=office, kind="enrolled", occurred_on=enrolment_day(trial, institution), count=6
    )
    first_claim = services.claim_submit(
        claim=services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR), actor=research_office
    )
    return {"trial": trial, "office": office, "rate": rate, "cap": cap, "first_claim": first_claim, "fits": fits}


def enrolment_day(trial, institution):
    return trial.enrolment_entries.get(site__institution=institution).occurred_on


def test_the_cap_covers_the_project_at_both_hospitals(shared, program, institution):
    rate, cap = shared["rate"], shared["cap"]
    claim = services.claim_open(actor=shared["office"], program=program, year=CLAIM_YEAR)
    line = ClaimLine.objects.get(claim=claim, trial=shared["trial"])

    assert shared["first_claim"].amount_claimed == cap - 2 * rate
    assert line.amount_computed == 2 * rate
    assert shared["first_claim"].amount_claimed + line.amount_computed == cap  # never more than 500,000 in total
    step = line.explanation[-1]
    assert (step["code"], step["scope"], Decimal(step["elsewhere"])) == ("project_cap", "project", cap - 2 * rate)
    assert step["elsewhere_awards"] == [
        {
            "institution": institution.name_zh,
            "claim": shared["first_claim"].reference,
            "amount": str(rules.to_fen(cap - 2 * rate)),
        }
    ]
    with translation.override("en"):
        text = rules.describe_step(step)
    assert "over all hospitals" in text
    assert (
        f"{institution.name_zh}, claim {shared['first_claim'].reference}: {rules.grouped(cap - 2 * rate)} RMB" in text
    )


def test_a_cap_per_hospital_counts_only_its_own_awards(shared, program):
    SubsidyProgram.objects.filter(pk=program.pk).update(
        project_cap_scope=SubsidyProgram.ProjectCapScope.PROJECT_PER_HOSPITAL
    )
    program.refresh_from_db()
    claim = services.claim_open(actor=shared["office"], program=program, year=CLAIM_YEAR)
    line = ClaimLine.objects.get(claim=claim, trial=shared["trial"])

    assert line.amount_computed == 6 * shared["rate"]
    assert line.previously_awarded == 0
    assert not [step for step in line.explanation if step["code"].startswith("project_cap")]


def test_a_project_under_its_cap_still_lists_what_other_hospitals_took(shared, program, region):
    rate = shared["rate"]
    raised = shared["cap"] + 10 * rate
    PolicyParameter.objects.filter(code="subsidy_project_cap_rmb", region=region).update(value=raised)
    claim = services.claim_open(actor=shared["office"], program=program, year=CLAIM_YEAR)
    line = claim.lines.get()

    assert line.amount_computed == 6 * rate
    step = line.explanation[-1]
    assert (step["code"], Decimal(step["room"])) == ("project_cap_checked", raised - (shared["cap"] - 2 * rate))
    assert step["elsewhere_awards"][0]["claim"] == shared["first_claim"].reference
    with translation.override("en"):
        assert "not reached" in rules.describe_step(step)


def test_the_projects_report_gives_the_room_per_project_across_hospitals(shared, program, regulator):
    services.claim_submit(
        claim=services.claim_open(actor=shared["office"], program=program, year=CLAIM_YEAR), actor=shared["office"]
    )
    data = report(regulator, "subsidy-projects")
    (row,) = [r for r in data["rows"] if r["trial_id"] == shared["trial"].pk]
    assert (row["cap_scope"], row["institution_id"], row["institutions"], row["claims"]) == ("project", None, 2, 2)
    assert Decimal(str(row["amount_counted"])) == shared["cap"]
    assert Decimal(str(row["room_under_project_cap"])) == 0
    assert row["patients_claimed"] == shared["fits"] - 2 + 6
    # Filtered by the second hospital: the same project, still summed over both.
    data = report(regulator, "subsidy-projects", institution=shared["office"].institution_id)
    (row,) = data["rows"]
    assert Decimal(str(row["amount_counted"])) == shared["cap"]


def test_the_projects_report_per_hospital_when_the_program_says_so(shared, program, regulator):
    SubsidyProgram.objects.filter(pk=program.pk).update(
        project_cap_scope=SubsidyProgram.ProjectCapScope.PROJECT_PER_HOSPITAL
    )
    program.refresh_from_db()
    services.claim_submit(
        claim=services.claim_open(actor=shared["office"], program=program, year=CLAIM_YEAR), actor=shared["office"]
    )
    rows = [r for r in report(regulator, "subsidy-projects")["rows"] if r["trial_id"] == shared["trial"].pk]
    assert {r["institution_id"]: Decimal(str(r["room_under_project_cap"])) for r in rows} == {
        shared["first_claim"].institution_id: 2 * shared["rate"],
        shared["office"].institution_id: shared["cap"] - 6 * shared["rate"],
    }
    assert {r["cap_scope"] for r in rows} == {"project_per_hospital"}


def test_the_cover_letter_and_the_workbook_explain_the_shared_cap(shared, program, institution):
    import io

    from openpyxl import load_workbook

    from subsidies import exports
    from tests.subsidies.test_exports_claims import pdf_text

    claim = services.claim_open(actor=shared["office"], program=program, year=CLAIM_YEAR)
    text = pdf_text(exports.claim_cover_letter_pdf(claim, "en"))
    assert "overallhospitals" in text and shared["first_claim"].reference in text
    book = load_workbook(io.BytesIO(exports.claim_workbook(claim, "en")))
    lines = list(book["Lines"].iter_rows(values_only=True))
    header = lines[0].index("How the amount was computed")
    assert institution.name_zh in lines[1][header] and "over all hospitals" in lines[1][header]
    summary = dict(row[:2] for row in book["Summary"].iter_rows(values_only=True))
    assert summary["The project cap counts"] == "per project, over all hospitals"
