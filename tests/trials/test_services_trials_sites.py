"""Creating and editing trials and sites through the services: the rules beyond field validation."""

import datetime

import pytest
import time_machine

from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from tests.factories.cgtclinic import DepartmentFactory, InstitutionFactory, UserFactory
from tests.factories.trials import GcpCertificateFactory, TrialFactory, TrialSiteFactory
from trials import services
from trials.models import Trial, TrialSite


def trial_data(institution, pi, **overrides):
    data = {
        "title_zh": "造血干细胞基因治疗β地中海贫血",
        "protocol_number": "GT-001",
        "kind": Trial.Kind.IIT,
        "therapy_category": Trial.TherapyCategory.VIRAL_VECTOR_GENE,
        "phase": Trial.Phase.PHASE_1,
        "lead_institution": institution,
        "pi": pi,
        "target_enrolment": 12,
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_create_makes_a_draft_with_its_lead_site(research_office, pi):
    trial = services.trial_create(actor=research_office, **trial_data(research_office.institution, pi))
    assert trial.status == Trial.Status.DRAFT
    site = trial.sites.get()
    assert (site.role, site.institution, site.site_pi, site.site_target) == ("lead", trial.lead_institution, pi, 12)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"chictr_id": "CTR123"}, "chictr_id"),
        ({"nct_id": "NCT123"}, "nct_id"),
        ({"target_enrolment": -1}, "target_enrolment"),
        ({"kind": "nonsense"}, "kind"),
    ],
)
def test_create_refuses_bad_fields(research_office, pi, overrides, field):
    with pytest.raises(DomainError) as err:
        services.trial_create(actor=research_office, **trial_data(research_office.institution, pi, **overrides))
    assert err.value.field == field
    assert not Trial.objects.exists()


@pytest.mark.django_db
def test_duplicate_protocol_number_at_the_same_lead_is_refused(research_office, pi):
    services.trial_create(actor=research_office, **trial_data(research_office.institution, pi))
    with pytest.raises(DomainError):
        services.trial_create(actor=research_office, **trial_data(research_office.institution, pi))
    assert Trial.objects.count() == 1


@pytest.mark.django_db
def test_department_must_belong_to_the_lead(research_office, pi):
    with pytest.raises(DomainError) as err:
        services.trial_create(
            actor=research_office, **trial_data(research_office.institution, pi, department=DepartmentFactory())
        )
    assert err.value.field == "department"


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ETHICS_OFFICE, Role.PI])
def test_only_the_research_office_records_trials(role, institution, pi):
    actor = UserFactory(role=role, institution=institution)
    with pytest.raises(DomainError) as err:
        services.trial_create(actor=actor, **trial_data(institution, pi))
    assert err.value.code == "permission_denied"


@pytest.mark.django_db
def test_lead_institution_is_fixed_after_submission(research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=Trial.Status.SUBMITTED)
    with pytest.raises(DomainError):
        services.trial_update(trial=trial, actor=research_office, lead_institution=InstitutionFactory())
    updated = services.trial_update(trial=trial, actor=research_office, title_en="New English title")
    assert updated.title_en == "New English title"


@pytest.mark.django_db
def test_status_cannot_be_edited_directly(research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    with pytest.raises(DomainError):
        services.trial_update(trial=trial, actor=research_office, status=Trial.Status.COMPLETED)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.DRAFT


@pytest.mark.django_db
def test_lead_office_adds_participating_site_and_that_site_sets_its_milestones(research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    other = InstitutionFactory()
    site = services.site_add(trial=trial, actor=research_office, institution=other, site_target=8)
    assert site.role == TrialSite.SiteRole.PARTICIPATING

    other_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=other)
    other_pi = UserFactory(role=Role.PI, institution=other)
    milestones = {
        "submission_received_on": datetime.date(2026, 1, 5),
        "ethics_approved_on": datetime.date(2026, 2, 2),
        "contract_signed_on": datetime.date(2026, 3, 2),
        "site_initiated_on": datetime.date(2026, 4, 6),
        "first_patient_in_on": datetime.date(2026, 5, 4),
    }
    # A site PI without a GCP certificate valid on the initiation day cannot initiate the site.
    with pytest.raises(DomainError) as refused:
        services.site_update(site=site, actor=other_office, site_pi=other_pi, **milestones)
    assert refused.value.code == "pi_not_qualified"
    GcpCertificateFactory(person=other_pi)
    site = services.site_update(site=site, actor=other_office, site_pi=other_pi, **milestones)
    assert site.startup_days == 91
    assert site.days_to_first_patient == 119
    assert site.history.first().history_user == other_office


@pytest.mark.django_db
@pytest.mark.parametrize("day", [datetime.date(1, 1, 1), datetime.date(1999, 12, 31)])
def test_an_implausibly_early_milestone_is_refused(research_office, day):
    """Issue 11: a site's submission_received_on=0001-01-01 was accepted."""
    trial = TrialFactory(lead_institution=research_office.institution)
    with pytest.raises(DomainError) as refused:
        services.site_add(
            trial=trial, actor=research_office, institution=InstitutionFactory(), submission_received_on=day
        )
    assert refused.value.field == "submission_received_on"
    assert not trial.sites.exclude(role=TrialSite.SiteRole.LEAD).exists()


@pytest.mark.django_db
def test_participating_office_cannot_add_sites(research_office):
    trial = TrialFactory()
    TrialSiteFactory(trial=trial, institution=research_office.institution)
    with pytest.raises(DomainError):
        services.site_add(trial=trial, actor=research_office, institution=InstitutionFactory())


@pytest.mark.django_db
def test_a_third_hospital_cannot_touch_a_site(research_office):
    site = TrialSiteFactory()
    with pytest.raises(DomainError):
        services.site_update(site=site, actor=research_office, site_target=99)


@pytest.mark.django_db
def test_same_institution_twice_is_refused(research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    with pytest.raises(DomainError):
        services.site_add(trial=trial, actor=research_office, institution=research_office.institution)


@pytest.mark.django_db
def test_site_pi_must_be_a_pi_of_that_institution(research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    with pytest.raises(DomainError) as err:
        services.site_add(trial=trial, actor=research_office, institution=InstitutionFactory(), site_pi=trial.pi)
    assert err.value.field == "site_pi"


@pytest.mark.django_db
@time_machine.travel(datetime.date(2026, 6, 1))
def test_milestones_must_be_in_order_and_not_in_the_future(research_office):
    site = TrialFactory(lead_institution=research_office.institution).sites.get()
    with pytest.raises(DomainError) as err:
        services.site_update(
            site=site,
            actor=research_office,
            submission_received_on=datetime.date(2026, 3, 1),
            site_initiated_on=datetime.date(2026, 2, 1),
        )
    assert err.value.field == "site_initiated_on"
    with pytest.raises(DomainError) as err:
        services.site_update(site=site, actor=research_office, first_patient_in_on=datetime.date(2026, 6, 2))
    assert err.value.field == "first_patient_in_on"
    site.refresh_from_db()
    assert site.submission_received_on is None
