"""A participating site's PI through trials.services.site_set_pi, and the site-target check."""

import pytest

from cgtclinic.errors import DomainError
from cgtclinic.models import User
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory
from trials import services
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return TrialSiteFactory(site_pi=None, trial=TrialFactory(status=Trial.Status.SUBMITTED))


def test_the_lead_research_office_records_a_site_pi_by_name_after_submission(site):
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.trial.lead_institution)
    saved = services.site_set_pi(site=site, actor=office, full_name="李主任", email="li@example.org")
    person = saved.site_pi
    assert (person.role, person.institution, person.email) == (Role.PI, site.institution, "li@example.org")
    assert not person.has_usable_password()
    assert person.history.first().history_user == office


def test_the_sites_own_research_office_chooses_one_of_its_pis(site):
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    theirs = UserFactory(role=Role.PI, institution=site.institution)
    assert list(services.site_pi_candidates(sites=[site], actor=office)[site.pk]) == [theirs]
    assert services.site_set_pi(site=site, actor=office, person=theirs).site_pi == theirs


def test_an_unrelated_office_and_a_pi_after_submission_are_refused(site):
    for actor in (
        UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory()),
        UserFactory(role=Role.ETHICS_OFFICE, institution=site.trial.lead_institution),
        site.trial.pi,  # the trial is submitted: the office keeps the record now
    ):
        with pytest.raises(DomainError) as refused:
            services.site_set_pi(site=site, actor=actor, full_name="李主任")
        assert refused.value.code == "permission_denied"
    assert not User.objects.filter(full_name="李主任").exists()


def test_bad_person_details_are_refused_and_nothing_is_created(site):
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.trial.lead_institution)
    with pytest.raises(DomainError) as refused:
        services.site_set_pi(site=site, actor=office, full_name="李主任", email="not an address")
    assert refused.value.field == "email"
    with pytest.raises(DomainError):
        services.site_set_pi(site=site, actor=office)
    inactive = UserFactory(role=Role.PI, institution=site.institution, is_active=False)
    with pytest.raises(DomainError):
        services.site_set_pi(site=site, actor=office, person=inactive)
    assert not User.objects.filter(full_name="李主任").exists()
    site.refresh_from_db()
    assert site.site_pi is None


def test_site_targets_that_differ_need_a_confirmation():
    trial = TrialFactory(target_enrolment=30)  # the lead site has 30
    TrialSiteFactory(trial=trial, site_target=20)
    assert services.site_targets_differ(trial) == (50, 30)
    with pytest.raises(DomainError) as refused:
        services.check_site_targets(trial=trial, confirmed=False)
    assert refused.value.code == "site_targets_differ"
    services.check_site_targets(trial=trial, confirmed=True)
    trial.sites.filter(role="lead").update(site_target=10)
    assert services.site_targets_differ(trial) is None
    services.check_site_targets(trial=trial, confirmed=False)


def test_the_named_site_pi_and_the_sites_research_office_are_told_once(site, django_capture_on_commit_callbacks):
    from cgtclinic.models import Notification

    lead_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.trial.lead_institution)
    site_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    other_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory())
    theirs = UserFactory(role=Role.PI, institution=site.institution)
    with django_capture_on_commit_callbacks(execute=False):
        services.site_set_pi(site=site, actor=lead_office, person=theirs)
        site.refresh_from_db()
        services.site_set_pi(site=site, actor=lead_office, person=theirs)  # the same PI again: nothing new
    told = Notification.objects.filter(topic="site.pi_named")
    assert {n.recipient for n in told} == {theirs, site_office}
    assert other_office not in {n.recipient for n in told}
    pi_notice = told.get(recipient=theirs)
    assert site.trial.protocol_number in pi_notice.subject
    assert pi_notice.link == f"/pi/trials/{site.trial_id}/"
    assert told.get(recipient=site_office).link.startswith("/admin/trials/trialsite/")
