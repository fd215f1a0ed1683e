"""Trials through the API: recording and editing through the services, every lifecycle action, what a
regulator receives, filters, search, ordering and pagination."""

import datetime

import pytest
from django.utils import timezone

from cgtclinic.roles import Role
from tests.api.helpers import trial_payload
from tests.factories.cgtclinic import DepartmentFactory, InstitutionFactory, RegionFactory, SponsorFactory, UserFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory
from trials.models import Trial, TrialSite, TrialStatusChange

S = Trial.Status
PERSONAL_KEYS = {"username", "email", "phone", "created_by", "professional_title"}


def client_for(api_client, user):
    api_client.force_authenticate(user)
    return api_client


# Recording and editing -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_records_a_draft_with_its_lead_site(api_client, research_office, pi):
    response = client_for(api_client, research_office).post(
        "/api/v1/trials/", trial_payload(lead=research_office.institution, pi=pi), format="json"
    )
    assert response.status_code == 201, response.data
    trial = Trial.objects.get(pk=response.data["id"])
    assert (trial.status, trial.created_by, trial.pi) == (S.DRAFT, research_office, pi)
    assert response.data["status_display"] == str(S.DRAFT.label)
    assert response.data["lead_institution_name"] == research_office.institution.name
    assert response.data["pi"]["full_name"] == pi.full_name
    site = TrialSite.objects.get(trial=trial)
    assert (site.role, site.institution, site.site_pi) == (TrialSite.SiteRole.LEAD, trial.lead_institution, pi)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title_zh": ""}, "title_zh"),
        ({"kind": "vaccine"}, "kind"),
        ({"target_enrolment": -1}, "target_enrolment"),
        ({"chictr_id": "CTR123"}, "chictr_id"),
        ({"lead_institution": 999999}, "lead_institution"),
    ],
)
def test_create_refuses_badly_shaped_input(overrides, field, api_client, research_office, pi):
    payload = trial_payload(lead=research_office.institution, pi=pi, **overrides)
    response = client_for(api_client, research_office).post("/api/v1/trials/", payload, format="json")
    assert response.status_code == 400
    assert field in response.data
    assert not Trial.objects.exists()


@pytest.mark.django_db
def test_create_refuses_what_the_service_refuses(api_client, research_office):
    not_a_pi = UserFactory(role=Role.ETHICS_OFFICE, institution=research_office.institution)
    payload = trial_payload(lead=research_office.institution, pi=not_a_pi)
    response = client_for(api_client, research_office).post("/api/v1/trials/", payload, format="json")
    assert response.status_code == 400
    assert response.data["field"] == "pi"
    assert not Trial.objects.exists()


@pytest.mark.django_db
def test_create_refuses_a_department_of_another_institution(api_client, research_office, pi):
    payload = trial_payload(lead=research_office.institution, pi=pi, department=DepartmentFactory().pk)
    response = client_for(api_client, research_office).post("/api/v1/trials/", payload, format="json")
    assert (response.status_code, response.data["field"]) == (400, "department")


@pytest.mark.django_db
def test_create_refuses_a_protocol_number_the_lead_already_uses(api_client, research_office, pi):
    TrialFactory(lead_institution=research_office.institution, protocol_number="CGT-API-0001")
    payload = trial_payload(lead=research_office.institution, pi=pi, protocol_number="CGT-API-0001")
    response = client_for(api_client, research_office).post("/api/v1/trials/", payload, format="json")
    assert response.status_code == 400
    assert Trial.objects.count() == 1


@pytest.mark.django_db
def test_partial_update_changes_the_record_and_keeps_history(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    response = client_for(api_client, research_office).patch(
        f"/api/v1/trials/{trial.pk}/", {"title_en": "New title", "target_enrolment": 40}, format="json"
    )
    assert response.status_code == 200, response.data
    trial.refresh_from_db()
    assert (trial.title_en, trial.target_enrolment) == ("New title", 40)
    assert trial.history.first().history_user == research_office


@pytest.mark.django_db
def test_status_is_not_writable(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    response = client_for(api_client, research_office).patch(
        f"/api/v1/trials/{trial.pk}/", {"status": S.ACTIVE}, format="json"
    )
    assert response.status_code == 200
    assert response.data["status"] == S.DRAFT
    trial.refresh_from_db()
    assert trial.status == S.DRAFT


@pytest.mark.django_db
def test_put_is_not_offered(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    response = client_for(api_client, research_office).put(
        f"/api/v1/trials/{trial.pk}/", trial_payload(lead=research_office.institution), format="json"
    )
    assert response.status_code == 405


@pytest.mark.django_db
def test_an_office_cannot_hand_its_trial_to_another_lead(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    response = client_for(api_client, research_office).patch(
        f"/api/v1/trials/{trial.pk}/", {"lead_institution": InstitutionFactory().pk}, format="json"
    )
    assert (response.status_code, response.data["field"]) == (403, "lead_institution")
    trial.refresh_from_db()
    assert trial.lead_institution == research_office.institution


@pytest.mark.django_db
def test_lead_cannot_change_after_submission(api_client, system_admin):
    trial = TrialFactory(status=S.SUBMITTED)
    lead = trial.lead_institution
    response = client_for(api_client, system_admin).patch(
        f"/api/v1/trials/{trial.pk}/", {"lead_institution": InstitutionFactory().pk}, format="json"
    )
    assert (response.status_code, response.data["field"]) == (400, "lead_institution")
    trial.refresh_from_db()
    assert trial.lead_institution == lead


@pytest.mark.django_db
def test_a_participating_office_sees_the_trial_but_cannot_edit_it(api_client, research_office):
    trial = TrialFactory()
    TrialSiteFactory(trial=trial, institution=research_office.institution)
    client = client_for(api_client, research_office)
    assert client.get(f"/api/v1/trials/{trial.pk}/").status_code == 200
    response = client.patch(f"/api/v1/trials/{trial.pk}/", {"title_en": "Mine now"}, format="json")
    assert response.status_code == 403
    assert response.data["code"] == "permission_denied"


# Lifecycle actions -----------------------------------------------------------------------------------------

# action, body, a state it accepts, the state it leads to, a state it refuses, a role that sees the trial and that
# the service refuses
ACTIONS = [
    ("submit", {}, S.DRAFT, S.SUBMITTED, S.ACTIVE, "ethics_office"),
    ("start-review", {}, S.SUBMITTED, S.UNDER_REVIEW, S.DRAFT, "pi"),
    ("approve", {}, S.UNDER_REVIEW, S.APPROVED, S.SUBMITTED, "pi"),
    ("activate", {}, S.APPROVED, S.ACTIVE, S.UNDER_REVIEW, "ethics_office"),
    ("close-enrolment", {}, S.ACTIVE, S.ENROLMENT_CLOSED, S.APPROVED, "pi"),
    ("complete", {}, S.ENROLMENT_CLOSED, S.COMPLETED, S.ACTIVE, "ethics_office"),
    ("suspend", {"reason": "SAE under evaluation"}, S.ACTIVE, S.SUSPENDED, S.DRAFT, "pi"),
    ("resume", {"reason": "DSMB cleared"}, S.SUSPENDED, S.ACTIVE, S.ACTIVE, "pi"),
    ("terminate", {"reason": "Futility"}, S.ACTIVE, S.TERMINATED, S.DRAFT, "pi"),
    ("withdraw", {"reason": "Sponsor withdrew funding"}, S.DRAFT, S.WITHDRAWN, S.ACTIVE, "participating_office"),
]
IDS = [a[0] for a in ACTIONS]


@pytest.fixture
def lead_people(research_office, ethics_office, pi):
    return {"research_office": research_office, "ethics_office": ethics_office, "pi": pi}


def _trial_in(state, lead_people):
    office = lead_people["research_office"]
    return TrialFactory(
        lead_institution=office.institution,
        pi=lead_people["pi"],
        status=state,
        status_before_suspension=S.ACTIVE if state == S.SUSPENDED else "",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "body", "source", "target", "_wrong", "_role"), ACTIONS, ids=IDS)
def test_action_allowed(action, body, source, target, _wrong, _role, api_client, lead_people):
    trial = _trial_in(source, lead_people)
    office = lead_people["research_office"]
    response = client_for(api_client, office).post(f"/api/v1/trials/{trial.pk}/{action}/", body, format="json")
    assert response.status_code == 200, response.data
    assert (response.data["id"], response.data["status"]) == (trial.pk, target)
    assert response.data["status_display"] == str(S(target).label)
    change = TrialStatusChange.objects.get(trial=trial)
    assert (change.from_status, change.to_status, change.actor) == (source, target, office)
    assert change.reason == body.get("reason", "")


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "body", "_source", "_target", "wrong", "_role"), ACTIONS, ids=IDS)
def test_action_refused_in_the_wrong_state(action, body, _source, _target, wrong, _role, api_client, lead_people):
    trial = _trial_in(wrong, lead_people)
    response = client_for(api_client, lead_people["research_office"]).post(
        f"/api/v1/trials/{trial.pk}/{action}/", body, format="json"
    )
    assert response.status_code == 409
    assert response.data["code"] == "transition_not_allowed"
    trial.refresh_from_db()
    assert trial.status == wrong
    assert not TrialStatusChange.objects.filter(trial=trial).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "body", "source", "_target", "_wrong", "role"), ACTIONS, ids=IDS)
def test_action_forbidden_to_a_role_on_the_trial(action, body, source, _target, _wrong, role, api_client, lead_people):
    trial = _trial_in(source, lead_people)
    # The research office of a participating site sees the trial but acts for the lead in nothing.
    site = TrialSiteFactory(trial=trial)
    lead_people["participating_office"] = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    response = client_for(api_client, lead_people[role]).post(
        f"/api/v1/trials/{trial.pk}/{action}/", body, format="json"
    )
    assert response.status_code == 403
    assert response.data["code"] == "permission_denied"
    trial.refresh_from_db()
    assert trial.status == source


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "body", "source", "_target", "_wrong", "_role"), ACTIONS, ids=IDS)
def test_action_forbidden_to_a_regulator(
    action, body, source, _target, _wrong, _role, api_client, lead_people, regulator
):
    trial = _trial_in(source, lead_people)
    response = client_for(api_client, regulator).post(f"/api/v1/trials/{trial.pk}/{action}/", body, format="json")
    assert response.status_code == 403
    trial.refresh_from_db()
    assert trial.status == source


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "body", "source", "_target", "_wrong", "_role"), ACTIONS, ids=IDS)
def test_action_on_another_institutions_trial_is_not_found(
    action, body, source, _target, _wrong, _role, api_client, research_office
):
    trial = TrialFactory(status=source, status_before_suspension=S.ACTIVE if source == S.SUSPENDED else "")
    response = client_for(api_client, research_office).post(f"/api/v1/trials/{trial.pk}/{action}/", body, format="json")
    assert response.status_code == 404
    trial.refresh_from_db()
    assert trial.status == source


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["suspend", "terminate", "withdraw"])
def test_actions_that_need_a_reason(action, api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=S.SUBMITTED)
    client = client_for(api_client, research_office)
    missing = client.post(f"/api/v1/trials/{trial.pk}/{action}/", {}, format="json")
    assert missing.status_code == 400
    assert "reason" in missing.data
    blank = client.post(f"/api/v1/trials/{trial.pk}/{action}/", {"reason": "   "}, format="json")
    assert (blank.status_code, blank.data["code"], blank.data["field"]) == (400, "reason_required", "reason")
    trial.refresh_from_db()
    assert trial.status == S.SUBMITTED


@pytest.mark.django_db
def test_resume_returns_to_the_state_suspended_from(api_client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=S.ENROLMENT_CLOSED)
    client = client_for(api_client, research_office)
    client.post(f"/api/v1/trials/{trial.pk}/suspend/", {"reason": "Inspection"}, format="json")
    response = client.post(f"/api/v1/trials/{trial.pk}/resume/", {}, format="json")
    assert (response.status_code, response.data["status"]) == (200, S.ENROLMENT_CLOSED)


@pytest.mark.django_db
def test_the_trials_pi_may_submit_but_not_activate(api_client, pi):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi)
    client = client_for(api_client, pi)
    assert client.post(f"/api/v1/trials/{trial.pk}/submit/").status_code == 200
    trial.status = S.APPROVED
    trial.save(update_fields=["status"])
    assert client.post(f"/api/v1/trials/{trial.pk}/activate/").status_code == 403


# What a regulator receives ---------------------------------------------------------------------------------


def _keys(value) -> set[str]:
    """Every key anywhere in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.mark.django_db
def test_regulator_gets_names_only(api_client, regulator, institution):
    trial = TrialFactory(lead_institution=institution, created_by=UserFactory(role=Role.RESEARCH_OFFICE))
    client = client_for(api_client, regulator)
    listing = client.get("/api/v1/trials/")
    detail = client.get(f"/api/v1/trials/{trial.pk}/")
    for body in (listing.data, detail.data):
        assert not (_keys(body) & PERSONAL_KEYS)
        assert "pi" not in _keys(body)
    assert detail.data["pi_name"] == trial.pi.full_name
    assert detail.data["lead_institution_name"] == institution.name
    assert detail.data["status_display"] == str(S.DRAFT.label)
    assert trial.pi.email not in str(detail.content, "utf-8")


@pytest.mark.django_db
def test_institution_staff_get_contact_details(api_client, ethics_office, institution):
    trial = TrialFactory(lead_institution=institution)
    detail = client_for(api_client, ethics_office).get(f"/api/v1/trials/{trial.pk}/").data
    assert detail["pi"]["email"] == trial.pi.email
    assert "pi_name" not in detail


# Filters, search, ordering, pagination ---------------------------------------------------------------------


@pytest.fixture
def catalogue(system_admin):
    """Trials differing in one attribute each, seen by an administrator so scoping does not interfere."""
    beijing = RegionFactory(code="beijing")
    sponsor = SponsorFactory()
    trials = {
        "plain": TrialFactory(protocol_number="P-001", title_zh="普通研究", title_en="Plain study"),
        "active": TrialFactory(status=S.ACTIVE, protocol_number="P-002"),
        "registration": TrialFactory(kind=Trial.Kind.REGISTRATION, protocol_number="P-003"),
        "stem": TrialFactory(therapy_category=Trial.TherapyCategory.STEM_CELL, protocol_number="P-004"),
        "phase2": TrialFactory(phase=Trial.Phase.PHASE_2, protocol_number="P-005"),
        "beijing": TrialFactory(lead_institution=InstitutionFactory(region=beijing), protocol_number="P-006"),
        "sponsored": TrialFactory(sponsor=sponsor, protocol_number="P-007"),
        "old": TrialFactory(protocol_number="P-008", title_en="Mesenchymal stem cells for GVHD"),
    }
    Trial.objects.filter(pk=trials["old"].pk).update(
        created_at=timezone.make_aware(datetime.datetime(2024, 3, 1, 10, 0))
    )
    return trials


def _found(api_client, admin, query) -> set[str]:
    response = client_for(api_client, admin).get(f"/api/v1/trials/?{query}")
    assert response.status_code == 200, response.data
    return {row["protocol_number"] for row in response.data["results"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=active", {"active"}),
        ("status=active&status=draft", "all"),
        ("kind=registration", {"registration"}),
        ("therapy_category=stem_cell", {"stem"}),
        ("phase=2", {"phase2"}),
        ("region=beijing", {"beijing"}),
        ("created_before=2024-12-31", {"old"}),
        ("created_after=2025-01-01&search=P-00", "all-but-old"),
        ("search=Plain", {"plain"}),
        ("search=普通", {"plain"}),
        ("search=P-007", {"sponsored"}),
        ("search=Mesenchymal", {"old"}),
    ],
)
def test_trial_filters(query, expected, api_client, system_admin, catalogue):
    numbers = {key: trial.protocol_number for key, trial in catalogue.items()}
    if expected == "all":
        wanted = set(numbers.values())
    elif expected == "all-but-old":
        wanted = set(numbers.values()) - {numbers["old"]}
    else:
        wanted = {numbers[key] for key in expected}
    assert _found(api_client, system_admin, query) == wanted


@pytest.mark.django_db
def test_trial_filters_by_institution_and_sponsor(api_client, system_admin, catalogue):
    beijing = catalogue["beijing"]
    assert _found(api_client, system_admin, f"lead_institution={beijing.lead_institution_id}") == {"P-006"}
    assert _found(api_client, system_admin, f"sponsor={catalogue['sponsored'].sponsor_id}") == {"P-007"}


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["status=paused", "lead_institution=999999", "created_after=yesterday"])
def test_bad_filter_values_are_refused(query, api_client, system_admin, catalogue):
    response = client_for(api_client, system_admin).get(f"/api/v1/trials/?{query}")
    assert response.status_code == 400


@pytest.mark.django_db
def test_ordering(api_client, system_admin, catalogue):
    client = client_for(api_client, system_admin)
    ascending = [r["protocol_number"] for r in client.get("/api/v1/trials/?ordering=protocol_number").data["results"]]
    descending = [r["protocol_number"] for r in client.get("/api/v1/trials/?ordering=-protocol_number").data["results"]]
    assert ascending == sorted(ascending)
    assert descending == ascending[::-1]


@pytest.mark.django_db
def test_pagination(api_client, system_admin, catalogue):
    client = client_for(api_client, system_admin)
    first = client.get("/api/v1/trials/?page_size=3&ordering=protocol_number").data
    assert first["count"] == len(catalogue)
    assert [r["protocol_number"] for r in first["results"]] == ["P-001", "P-002", "P-003"]
    assert first["previous"] is None
    last = client.get("/api/v1/trials/?page_size=3&ordering=protocol_number&page=3").data
    assert [r["protocol_number"] for r in last["results"]] == ["P-007", "P-008"]
    assert last["next"] is None
    assert client.get("/api/v1/trials/?page_size=3&page=4").status_code == 404
