"""Sponsors and hospitals are chosen by typing (a national directory has thousands): the suggestions a PI gets, how
a typed name or code is resolved, and the exact error when it names nothing or more than one choice."""

import pytest
from django.urls import reverse

from cgtclinic.models import Institution
from cgtclinic.roles import Role
from ethics.portal import lookups
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, SponsorFactory, UserFactory
from tests.factories.trials import TrialFactory
from trials.models import Trial

from .test_wizard import TRIAL_DATA, step_url

pytestmark = pytest.mark.django_db


def suggest(client, directory: str, text: str) -> dict:
    response = client.get(reverse("ethics_portal:lookup", args=[directory]), {"q": text})
    assert response.status_code == 200
    return response.json()


def test_a_pi_gets_the_sponsors_whose_name_or_code_holds_the_text(client, pi_client):
    SponsorFactory(name_zh="华东细胞治疗有限公司", name_en="East China Cell Therapy", credit_code="91310000ABCDEFGH12")
    SponsorFactory(name_zh="北方基因科技有限公司", name_en="Northern Gene Tech")
    label_en = "East China Cell Therapy（91310000ABCDEFGH12）"

    # In the interface's language (these tests read English; the portal's default is Chinese).
    assert suggest(pi_client, "sponsors", "细胞治疗") == {"results": [label_en], "more": False}
    assert suggest(pi_client, "sponsors", "east china")["results"] == [label_en]
    assert suggest(pi_client, "sponsors", "91310000")["results"] == [label_en]
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    assert suggest(client, "sponsors", "细胞")["results"] == ["华东细胞治疗有限公司（91310000ABCDEFGH12）"]
    # Nothing typed, or a text too long to be a name: no suggestions and no error.
    assert suggest(pi_client, "sponsors", "") == {"results": [], "more": False}
    assert suggest(pi_client, "sponsors", "x" * 5000) == {"results": [], "more": False}


def test_the_suggestions_are_few_and_say_there_are_more(pi_client, django_assert_max_num_queries):
    for n in range(lookups.SUGGESTIONS + 5):
        SponsorFactory(name_zh=f"生物医药公司{n:02d}", name_en="")

    with django_assert_max_num_queries(4):
        answer = suggest(pi_client, "sponsors", "生物医药")

    assert len(answer["results"]) == lookups.SUGGESTIONS and answer["more"] is True
    assert answer["results"][0].startswith("生物医药公司00（No. ")


def test_inactive_hospitals_are_not_suggested(pi_client):
    InstitutionFactory(name_zh="仁济医院分院", name_en="", is_active=False)
    active = InstitutionFactory(name_zh="仁济医院总院", name_en="")

    assert suggest(pi_client, "institutions", "仁济")["results"] == [f"仁济医院总院（No. {active.pk}）"]


def test_the_lookup_answers_only_pis_and_only_known_directories(client, pi_client, institution):
    assert pi_client.get(reverse("ethics_portal:lookup", args=["users"]), {"q": "a"}).status_code == 404
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=institution)
    client.force_login(office)
    assert client.get(reverse("ethics_portal:lookup", args=["sponsors"]), {"q": "a"}).status_code == 403


def test_the_new_project_page_does_not_list_every_sponsor(pi_client):
    sponsors = [SponsorFactory() for _n in range(30)]

    page = pi_client.get(reverse("ethics_portal:project_new")).content.decode()

    assert not any(sponsor.name_zh in page or sponsor.name_en in page for sponsor in sponsors)
    assert f'data-lookup-url="{reverse("ethics_portal:lookup", args=["sponsors"])}"' in page
    assert "portal-lookup.js" in page


@pytest.mark.parametrize("typed", ["label", "name_zh", "name_en", "credit_code"])
def test_a_sponsor_is_chosen_by_its_suggestion_its_name_or_its_code(pi_client, pi, typed, committee):
    sponsor = SponsorFactory(name_zh="申办方甲有限公司", name_en="Sponsor A Ltd", credit_code="91310000SPONSORA01")
    text = {
        "label": lookups.choice_label(sponsor),
        "name_zh": "申办方甲有限公司",
        "name_en": "sponsor a ltd",
        "credit_code": "91310000sponsora01",
    }[typed]

    response = pi_client.post(reverse("ethics_portal:project_new"), {**TRIAL_DATA, "sponsor": text, "action": "save"})

    assert response.status_code == 302, response.content.decode()
    assert Trial.objects.get(pi=pi).sponsor == sponsor


def test_a_sponsor_that_names_nothing_is_refused_with_what_to_type(pi_client, pi, committee):
    SponsorFactory(name_zh="申办方甲有限公司")

    response = pi_client.post(
        reverse("ethics_portal:project_new"), {**TRIAL_DATA, "sponsor": "申办方", "action": "save"}
    )

    assert response.status_code == 400
    assert "No choice matches “申办方”" in response.content.decode()
    assert 'value="申办方"' in response.content.decode()  # what was typed stays in the box
    assert not Trial.objects.filter(pi=pi).exists()


def test_the_edit_page_shows_the_chosen_sponsor_and_keeps_it(pi_client, pi, committee):
    sponsor = SponsorFactory(name_zh="申办方乙有限公司", name_en="", credit_code="91310000SPONSORB02")
    trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.DRAFT, sponsor=sponsor)

    page = pi_client.get(step_url(trial, 1)).content.decode()

    assert 'value="申办方乙有限公司（91310000SPONSORB02）"' in page


def test_namesake_hospitals_are_told_apart_by_the_suggestion(pi_client, pi, committee):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.DRAFT)
    north = InstitutionFactory(name_zh="人民医院", name_en="", region=RegionFactory(code="north"))
    InstitutionFactory(name_zh="人民医院", name_en="", region=RegionFactory(code="south"))

    response = pi_client.post(step_url(trial, 2), {"institution": "人民医院", "site_target": "3", "action": "add"})
    assert response.status_code == 400
    assert "More than one choice is named “人民医院”" in response.content.decode()

    suggested = suggest(pi_client, "institutions", "人民医院")["results"]
    assert {f"人民医院（No. {north.pk}）", f"人民医院（No. {north.pk + 1}）"} <= set(suggested)
    pi_client.post(
        step_url(trial, 2), {"institution": f"人民医院（No. {north.pk}）", "site_target": "3", "action": "add"}
    )
    assert trial.sites.filter(institution=north).exists()


def test_a_hospital_already_in_the_trial_cannot_be_added_again(pi_client, pi, committee):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.DRAFT)
    partner = InstitutionFactory(name_zh="合作医院")
    pi_client.post(step_url(trial, 2), {"institution": "合作医院", "site_target": "3", "action": "add"})

    response = pi_client.post(step_url(trial, 2), {"institution": "合作医院", "site_target": "3", "action": "add"})

    assert response.status_code == 400
    assert trial.sites.filter(institution=partner).count() == 1


@pytest.mark.parametrize("typed", ["人民医院（No. {pk}）", "人民医院（编号 {pk}）", "人民医院 (no.{pk})"])
def test_a_record_number_in_brackets_is_read_in_either_language(typed):
    hospital = InstitutionFactory(name_zh="人民医院")
    InstitutionFactory(name_zh="人民医院", region=RegionFactory(code="elsewhere"))

    assert list(lookups.matching(Institution.objects.all(), typed.format(pk=hospital.pk))) == [hospital]


@pytest.mark.parametrize("typed", ["申办方\x00甲", "申办方甲（No. 99999999999999999999999）", "申办方甲（No. 12345）"])
def test_a_text_no_record_could_have_is_refused_not_a_server_error(pi_client, pi, committee, typed):
    """A NUL cannot reach PostgreSQL and a record number longer than a bigint would overflow the query: both are a
    text naming no choice, for the suggestions and for the form alike."""
    SponsorFactory(name_zh="申办方甲")

    if "\x00" in typed:
        assert suggest(pi_client, "sponsors", typed) == {"results": [], "more": False}
    response = pi_client.post(reverse("ethics_portal:project_new"), {**TRIAL_DATA, "sponsor": typed, "action": "save"})

    assert response.status_code == 400
    assert "No choice matches" in response.content.decode()
    assert not Trial.objects.filter(pi=pi).exists()
