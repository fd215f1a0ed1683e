"""Every role × every admin page: who gets in, and whose rows they see.

Two hospitals in two regions each lead one trial; each role of hospital A (and regulator of region A) is
sent to every page, including hospital B's trial, its history and its documents.
"""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import DocumentVersionFactory, TrialDocumentFactory, TrialFactory

ALLOW, DENY, HIDDEN = "allow", "deny", "hidden"


@pytest.fixture
def world(db):
    region_a, region_b = RegionFactory(code="a"), RegionFactory(code="b")
    hospital_a, hospital_b = InstitutionFactory(region=region_a), InstitutionFactory(region=region_b)
    trial_a, trial_b = TrialFactory(lead_institution=hospital_a), TrialFactory(lead_institution=hospital_b)
    version_a = DocumentVersionFactory(document=TrialDocumentFactory(trial=trial_a))
    version_b = DocumentVersionFactory(document=TrialDocumentFactory(trial=trial_b))
    users = {
        "anonymous": None,
        "research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital_a),
        "ethics_office": UserFactory(role=Role.ETHICS_OFFICE, institution=hospital_a),
        "pi": trial_a.pi,
        "regulator": UserFactory(role=Role.REGULATOR, region=region_a),
        "system_admin": UserFactory(role=Role.SYSTEM_ADMIN),
    }
    return {
        "users": users,
        "trial_a": trial_a,
        "trial_b": trial_b,
        "version_a": version_a,
        "version_b": version_b,
        "hospital_a": hospital_a,
    }


def page(name, *args_from_world):
    return name, args_from_world


PAGES = {
    "index": page("admin:index"),
    "trial list": page("admin:trials_trial_changelist"),
    "trial add": page("admin:trials_trial_add"),
    "own trial": page("admin:trials_trial_change", "trial_a"),
    "other institution's trial": page("admin:trials_trial_change", "trial_b"),
    "own trial history": page("admin:trials_trial_history", "trial_a"),
    "other institution's trial history": page("admin:trials_trial_history", "trial_b"),
    "site list": page("admin:trials_trialsite_changelist"),
    "document list": page("admin:trials_trialdocument_changelist"),
    "own document download": page("admin:trials_documentversion_download", "version_a"),
    "other institution's document download": page("admin:trials_documentversion_download", "version_b"),
    "people": page("admin:cgtclinic_user_changelist"),
    "institutions": page("admin:cgtclinic_institution_changelist"),
    "own institution": page("admin:cgtclinic_institution_change", "hospital_a"),
    "sponsors": page("admin:cgtclinic_sponsor_changelist"),
    "regions": page("admin:cgtclinic_region_changelist"),
    "policy parameters": page("admin:cgtclinic_policyparameter_changelist"),
    "periodic tasks": page("admin:django_celery_beat_periodictask_changelist"),
    "holiday schedules": page("admin:cgtclinic_holidayschedule_changelist"),
    "holiday schedule add": page("admin:cgtclinic_holidayschedule_add"),
}

# Roles without admin access are sent to the login page for every page.
NO_ADMIN = dict.fromkeys(PAGES, DENY)
EXPECTED = {
    "anonymous": NO_ADMIN,
    "pi": NO_ADMIN,
    "regulator": NO_ADMIN,
    "research_office": {
        **dict.fromkeys(PAGES, ALLOW),
        "other institution's trial": HIDDEN,
        "other institution's trial history": HIDDEN,
        "other institution's document download": HIDDEN,
        "periodic tasks": DENY,
        # One national calendar for every hospital: offices read it, the system administrator keeps it.
        "holiday schedule add": DENY,
    },
    "ethics_office": {
        **dict.fromkeys(PAGES, ALLOW),
        "trial add": DENY,
        "other institution's trial": HIDDEN,
        "other institution's trial history": HIDDEN,
        "other institution's document download": HIDDEN,
        "periodic tasks": DENY,
        "holiday schedule add": DENY,
    },
    "system_admin": dict.fromkeys(PAGES, ALLOW),
}

CASES = [(role, page_name) for role in EXPECTED for page_name in PAGES]


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "page_name"), CASES, ids=[f"{r}:{p}" for r, p in CASES])
def test_admin_access(client, world, role, page_name):
    user = world["users"][role]
    if user is not None:
        client.force_login(user)
    name, arg_keys = PAGES[page_name]
    url = reverse(name, args=[world[key].pk for key in arg_keys])
    response = client.get(url)
    expected = EXPECTED[role][page_name]
    if expected == ALLOW:
        assert response.status_code == 200, (role, page_name, response.status_code)
    elif expected == DENY:
        # Not signed in / no admin role: redirect to login. Signed-in admin role without the permission: 403.
        assert response.status_code in (302, 403), (role, page_name, response.status_code)
        if response.status_code == 302:
            assert reverse("admin:login") in response["Location"]
    else:
        # Another institution's row: it must look as if it does not exist.
        assert response.status_code in (302, 404), (role, page_name, response.status_code)
        if response.status_code == 302:
            assert reverse("admin:login") not in response["Location"]
        assert world["trial_b"].title_zh.encode() not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["research_office", "ethics_office", "system_admin"])
def test_trial_list_shows_only_visible_trials(client, world, role):
    client.force_login(world["users"][role])
    content = client.get(reverse("admin:trials_trial_changelist")).content.decode()
    assert world["trial_a"].protocol_number in content
    assert (world["trial_b"].protocol_number in content) is (role == "system_admin")


@pytest.mark.django_db
def test_ethics_office_sees_trial_read_only(client, world):
    client.force_login(world["users"]["ethics_office"])
    url = reverse("admin:trials_trial_change", args=[world["trial_a"].pk])
    assert b'name="_save"' not in client.get(url).content
    response = client.post(url, {"title_zh": "改名"})
    assert response.status_code == 403
    world["trial_a"].refresh_from_db()
    assert world["trial_a"].title_zh != "改名"
