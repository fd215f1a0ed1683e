"""visible_to for each role on trials, sites and documents: the single scoping rule, checked directly."""

import pytest

from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import DocumentVersionFactory, TrialDocumentFactory, TrialFactory, TrialSiteFactory
from trials.models import DocumentVersion, Trial, TrialDocument, TrialSite


@pytest.fixture
def network(db):
    """Trial X led by hospital A (region 1) with a participating site at hospital B (region 2);
    trial Y led by hospital C (region 2) with no link to A."""
    r1, r2 = RegionFactory(code="one"), RegionFactory(code="two")
    a, b, c = InstitutionFactory(region=r1), InstitutionFactory(region=r2), InstitutionFactory(region=r2)
    x = TrialFactory(lead_institution=a)
    x_site_b = TrialSiteFactory(trial=x, institution=b)
    y = TrialFactory(lead_institution=c)
    for trial in (x, y):
        DocumentVersionFactory(document=TrialDocumentFactory(trial=trial))
    return {"r1": r1, "r2": r2, "a": a, "b": b, "c": c, "x": x, "y": y, "x_site_b": x_site_b}


def visible(model, user):
    return set(model.objects.visible_to(user))


@pytest.mark.django_db
def test_offices_see_trials_led_or_hosted(network):
    office_a = UserFactory(role=Role.RESEARCH_OFFICE, institution=network["a"])
    office_b = UserFactory(role=Role.ETHICS_OFFICE, institution=network["b"])
    assert visible(Trial, office_a) == {network["x"]}
    assert visible(Trial, office_b) == {network["x"]}
    # The lead sees every site of its trial; a participating hospital sees only its own site.
    assert visible(TrialSite, office_a) == set(network["x"].sites.all())
    assert visible(TrialSite, office_b) == {network["x_site_b"]}


@pytest.mark.django_db
def test_pi_sees_own_trials_and_sites(network):
    site_pi = network["x_site_b"].site_pi
    assert visible(Trial, network["x"].pi) == {network["x"]}
    assert visible(Trial, site_pi) == {network["x"]}
    assert visible(TrialSite, site_pi) == {network["x_site_b"]}
    colleague = UserFactory(role=Role.PI, institution=network["a"])
    assert visible(Trial, colleague) == set()


@pytest.mark.django_db
def test_regulator_sees_own_region_and_no_documents(network):
    regulator_2 = UserFactory(role=Role.REGULATOR, region=network["r2"])
    assert visible(Trial, regulator_2) == {network["x"], network["y"]}
    assert visible(TrialSite, regulator_2) == {network["x_site_b"], *network["y"].sites.all()}
    assert visible(TrialDocument, regulator_2) == set()
    assert visible(DocumentVersion, regulator_2) == set()
    regulator_1 = UserFactory(role=Role.REGULATOR, region=network["r1"])
    assert visible(Trial, regulator_1) == {network["x"]}


@pytest.mark.django_db
def test_inactive_and_anonymous_see_nothing(network):
    from django.contrib.auth.models import AnonymousUser

    inactive = UserFactory(role=Role.RESEARCH_OFFICE, institution=network["a"], is_active=False)
    for user in (inactive, AnonymousUser()):
        assert visible(Trial, user) == set()
        assert visible(TrialSite, user) == set()
        assert visible(TrialDocument, user) == set()


@pytest.mark.django_db
def test_system_admin_sees_everything(network):
    admin = UserFactory(role=Role.SYSTEM_ADMIN)
    assert visible(Trial, admin) == {network["x"], network["y"]}
    assert len(visible(TrialDocument, admin)) == 2


@pytest.mark.django_db
def test_trial_visibility_has_no_duplicates_with_many_sites(network):
    office_a = UserFactory(role=Role.RESEARCH_OFFICE, institution=network["a"])
    for _ in range(3):
        TrialSiteFactory(trial=network["x"])
    assert Trial.objects.visible_to(office_a).count() == 1
