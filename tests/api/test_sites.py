"""Trial sites through the API: adding and updating through the services, milestones and the durations
computed from them, what a regulator receives, and the filters."""

import datetime

import pytest
from django.utils import timezone

from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory
from trials.models import TrialSite


def client_for(api_client, user):
    api_client.force_authenticate(user)
    return api_client


@pytest.mark.django_db
def test_lead_office_adds_a_participating_site(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    hospital = InstitutionFactory()
    site_pi = UserFactory(role=Role.PI, institution=hospital)
    response = client_for(api_client, research_office).post(
        "/api/v1/sites/",
        {"trial": trial.pk, "institution": hospital.pk, "site_pi": site_pi.pk, "site_target": 8},
        format="json",
    )
    assert response.status_code == 201, response.data
    site = TrialSite.objects.get(pk=response.data["id"])
    assert (site.role, site.institution, site.site_pi, site.site_target) == ("participating", hospital, site_pi, 8)
    assert response.data["institution_name"] == hospital.name
    assert response.data["role_display"] == str(TrialSite.SiteRole.PARTICIPATING.label)
    assert response.data["site_pi"]["full_name"] == site_pi.full_name


@pytest.mark.django_db
def test_adding_the_same_institution_twice_is_refused(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    response = client_for(api_client, research_office).post(
        "/api/v1/sites/", {"trial": trial.pk, "institution": research_office.institution.pk}, format="json"
    )
    assert (response.status_code, response.data["field"]) == (400, "institution")
    assert trial.sites.count() == 1


@pytest.mark.django_db
def test_a_site_pi_from_another_institution_is_refused(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    response = client_for(api_client, research_office).post(
        "/api/v1/sites/",
        {"trial": trial.pk, "institution": InstitutionFactory().pk, "site_pi": trial.pi.pk},
        format="json",
    )
    assert (response.status_code, response.data["field"]) == (400, "site_pi")
    assert trial.sites.count() == 1


@pytest.mark.django_db
def test_milestones_give_startup_durations(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    site = trial.sites.get()
    response = client_for(api_client, research_office).patch(
        f"/api/v1/sites/{site.pk}/",
        {
            "submission_received_on": "2025-01-06",
            "ethics_approved_on": "2025-02-10",
            "contract_signed_on": "2025-03-03",
            "site_initiated_on": "2025-04-01",
            "first_patient_in_on": "2025-05-06",
        },
        format="json",
    )
    assert response.status_code == 200, response.data
    assert (response.data["startup_days"], response.data["days_to_first_patient"]) == (85, 120)
    site.refresh_from_db()
    assert site.site_initiated_on == datetime.date(2025, 4, 1)


@pytest.mark.django_db
def test_durations_are_empty_until_the_dates_are_known(api_client, research_office):
    site = TrialFactory(lead_institution=research_office.institution).sites.get()
    data = client_for(api_client, research_office).get(f"/api/v1/sites/{site.pk}/").data
    assert (data["startup_days"], data["days_to_first_patient"]) == (None, None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"submission_received_on": "2025-02-01", "ethics_approved_on": "2025-01-15"}, "ethics_approved_on"),
        ({"site_initiated_on": "FUTURE"}, "site_initiated_on"),
    ],
)
def test_milestones_out_of_order_or_in_the_future_are_refused(dates, field, api_client, research_office):
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    dates = {name: tomorrow if value == "FUTURE" else value for name, value in dates.items()}
    site = TrialFactory(lead_institution=research_office.institution).sites.get()
    response = client_for(api_client, research_office).patch(f"/api/v1/sites/{site.pk}/", dates, format="json")
    assert (response.status_code, response.data["field"]) == (400, field)
    site.refresh_from_db()
    assert all(getattr(site, name) is None for name in TrialSite.MILESTONES)


@pytest.mark.django_db
def test_a_participating_office_updates_its_own_site_only(api_client, research_office):
    trial = TrialFactory()
    own_site = TrialSiteFactory(trial=trial, institution=research_office.institution)
    client = client_for(api_client, research_office)
    assert client.patch(f"/api/v1/sites/{own_site.pk}/", {"site_target": 5}, format="json").status_code == 200
    # The lead site is not its own and is not visible to it.
    lead_site = trial.sites.get(role="lead")
    assert client.patch(f"/api/v1/sites/{lead_site.pk}/", {"site_target": 5}, format="json").status_code == 404
    # Only the lead's office adds sites.
    response = client.post("/api/v1/sites/", {"trial": trial.pk, "institution": InstitutionFactory().pk}, format="json")
    assert response.status_code == 403


@pytest.mark.django_db
def test_regulator_gets_site_pi_by_name_only(api_client, regulator, institution):
    site = TrialFactory(lead_institution=institution).sites.get()
    data = client_for(api_client, regulator).get(f"/api/v1/sites/{site.pk}/").data
    assert data["site_pi_name"] == site.site_pi.full_name
    assert "site_pi" not in data
    assert site.site_pi.email not in str(data)


@pytest.fixture
def sites(system_admin):
    shanghai = RegionFactory(code="shanghai")
    trial = TrialFactory()
    started = TrialSiteFactory(
        trial=trial, submission_received_on=datetime.date(2025, 1, 2), site_initiated_on=datetime.date(2025, 3, 3)
    )
    far = TrialSiteFactory(trial=trial, institution=InstitutionFactory(region=shanghai))
    other_trial_lead = TrialFactory().sites.get()
    return {"lead": trial.sites.get(role="lead"), "started": started, "far": far, "other": other_trial_lead}


def _found(api_client, admin, sites, query) -> set[str]:
    response = client_for(api_client, admin).get(f"/api/v1/sites/?{query}")
    assert response.status_code == 200, response.data
    names = {site.pk: name for name, site in sites.items()}
    return {names[row["id"]] for row in response.data["results"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("role=lead", {"lead", "other"}),
        ("role=participating", {"started", "far"}),
        ("region=shanghai", {"far"}),
        ("has_site_initiated=true", {"started"}),
        ("has_site_initiated=false", {"lead", "far", "other"}),
        ("has_first_patient_in=true", set()),
        ("trial_status=draft", {"lead", "started", "far", "other"}),
        ("trial_status=active", set()),
    ],
)
def test_site_filters(query, expected, api_client, system_admin, sites):
    assert _found(api_client, system_admin, sites, query) == expected


@pytest.mark.django_db
def test_site_filters_by_trial_and_institution(api_client, system_admin, sites):
    assert _found(api_client, system_admin, sites, f"trial={sites['lead'].trial_id}") == {"lead", "started", "far"}
    assert _found(api_client, system_admin, sites, f"institution={sites['far'].institution_id}") == {"far"}
