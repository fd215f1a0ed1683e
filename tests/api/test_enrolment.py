"""The enrolment API: the ledger (report, reverse, list), and targets against actuals per site and per trial."""

import pytest
from rest_framework.test import APIClient

from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import TrialSiteFactory, active_site, approve_site, days_ago
from trials import enrolment
from trials.models import EnrolmentEntry, SiteEnrolment

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind
ENTRIES = "/api/v1/enrolment-entries/"
SITES = "/api/v1/site-enrolment/"
TRIALS = "/api/v1/trial-enrolment/"


def as_user(user) -> APIClient:
    client = APIClient()
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def own(institution, pi):
    """An active trial led by the test hospital, its PI the hospital's PI."""
    return active_site(lead_institution=institution, pi=pi)


@pytest.fixture
def elsewhere():
    """Another region's hospital, with an entry of its own."""
    site = active_site(lead_institution=InstitutionFactory(region=RegionFactory(code="elsewhere")))
    enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(3))
    return site


def payload(site, **overrides) -> dict:
    return {"site": site.pk, "kind": K.ENROLLED, "occurred_on": days_ago(5).isoformat(), **overrides}


# --- reporting ----------------------------------------------------------------------------------------------------


def test_the_site_pi_reports_through_the_api(own, pi):
    response = as_user(pi).post(ENTRIES, payload(own, subject_code="RK-001", note="首例"), format="json")
    assert response.status_code == 201, response.data
    body = response.data
    assert (body["site"], body["trial"], body["kind"], body["count"], body["signed_count"]) == (
        own.pk,
        own.trial_id,
        K.ENROLLED,
        1,
        1,
    )
    assert (body["subject_code"], body["note"], body["reported_by_name"]) == ("RK-001", "首例", pi.full_name)
    assert body["is_correction"] is False and body["reversed_by"] is None
    assert SiteEnrolment.objects.get(site=own).enrolled == 1


def test_the_research_office_of_the_site_reports(own, research_office):
    response = as_user(research_office).post(ENTRIES, payload(own, count=4), format="json")
    assert response.status_code == 201
    assert SiteEnrolment.objects.get(site=own).enrolled == 4


@pytest.mark.parametrize(("role", "status"), [("ethics_office", 403), ("regulator", 403), ("anonymous", 401)])
def test_roles_without_the_add_permission_cannot_report(request, own, role, status):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    response = as_user(user).post(ENTRIES, payload(own), format="json")
    assert response.status_code == status
    assert not EnrolmentEntry.objects.exists()


def test_a_report_for_a_site_without_approval_is_refused_with_the_services_message(own, pi):
    own.ethics_approved_on = None
    own.save(update_fields=["ethics_approved_on"])
    response = as_user(pi).post(ENTRIES, payload(own), format="json")
    assert response.status_code == 400
    assert response.data["code"] == "no_ethics_approval"
    assert "no ethics approval" in response.data["detail"]
    assert not EnrolmentEntry.objects.exists()


def test_a_future_date_is_refused_on_its_field(own, pi):
    response = as_user(pi).post(ENTRIES, payload(own, occurred_on=days_ago(-1).isoformat()), format="json")
    assert response.status_code == 400
    assert response.data["field"] == "occurred_on"


def test_shape_errors_come_per_field(own, pi):
    response = as_user(pi).post(ENTRIES, payload(own, count=0, kind="transferred"), format="json")
    assert response.status_code == 400
    assert set(response.data) >= {"count", "kind"}


def test_a_site_the_caller_cannot_see_reads_as_not_existing(elsewhere, research_office):
    response = as_user(research_office).post(ENTRIES, payload(elsewhere), format="json")
    assert response.status_code == 400
    assert "site" in response.data
    assert EnrolmentEntry.objects.count() == 1


def test_a_pi_who_sees_a_site_but_may_not_report_for_it_gets_403(own, pi):
    participating = approve_site(TrialSiteFactory(trial=own.trial), days_ago(150), days_ago(-100))
    response = as_user(pi).post(ENTRIES, payload(participating), format="json")
    assert response.status_code == 403
    assert response.data["code"] == "permission_denied"


# --- reversing ------------------------------------------------------------------------------------------------------


def test_reversing_an_entry_adds_a_correction_once(own, pi, research_office):
    entry = enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5), count=2)
    url = f"{ENTRIES}{entry.pk}/reverse/"
    assert as_user(pi).post(url, {"reason": ""}, format="json").data["field"] == "reason"
    response = as_user(research_office).post(url, {"reason": "重复录入"}, format="json")
    assert response.status_code == 201
    assert (response.data["reverses"], response.data["signed_count"], response.data["reason"]) == (
        entry.pk,
        -2,
        "重复录入",
    )
    again = as_user(pi).post(url, {"reason": "再次"}, format="json")
    assert (again.status_code, again.data["code"]) == (409, "already_reversed")
    original = as_user(pi).get(f"{ENTRIES}{entry.pk}/").data
    assert original["reversed_by"] == response.data["id"]
    correction = f"{ENTRIES}{response.data['id']}/reverse/"
    assert as_user(pi).post(correction, {"reason": "撤销更正"}, format="json").status_code == 400
    assert SiteEnrolment.objects.get(site=own).enrolled == 0


def test_reversal_is_refused_to_the_ethics_office_and_hidden_from_other_hospitals(own, pi, ethics_office):
    entry = enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5))
    url = f"{ENTRIES}{entry.pk}/reverse/"
    assert as_user(ethics_office).post(url, {"reason": "无权"}, format="json").status_code == 403
    stranger = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory())
    assert as_user(stranger).post(url, {"reason": "无权"}, format="json").status_code == 404
    assert EnrolmentEntry.objects.count() == 1


# --- reading the ledger -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "sees_own", "sees_elsewhere"),
    [
        ("research_office", True, False),
        ("ethics_office", True, False),
        ("pi", True, False),
        ("system_admin", True, True),
    ],
)
def test_the_ledger_list_is_scoped(request, own, pi, elsewhere, role, sees_own, sees_elsewhere):
    enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5))
    response = as_user(request.getfixturevalue(role)).get(ENTRIES)
    assert response.status_code == 200
    sites = {row["site"] for row in response.data["results"]}
    assert (own.pk in sites, elsewhere.pk in sites) == (sees_own, sees_elsewhere)


def test_regulators_do_not_read_the_ledger(own, pi, regulator):
    entry = enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5))
    assert as_user(regulator).get(ENTRIES).status_code == 403
    assert as_user(regulator).get(f"{ENTRIES}{entry.pk}/").status_code == 403


def test_the_ledger_filters(own, pi):
    other = active_site(lead_institution=own.institution, pi=pi)
    enrolment.enrolment_report(site=own, actor=pi, kind=K.SCREENED, occurred_on=days_ago(30))
    enrolled = enrolment.enrolment_report(
        site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(20), subject_code="RK-001"
    )
    correction = enrolment.enrolment_reverse(entry=enrolled, actor=pi, reason="编码错误")
    in_other = enrolment.enrolment_report(site=other, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(2))
    client = as_user(pi)

    def ids(query):
        response = client.get(f"{ENTRIES}?{query}")
        assert response.status_code == 200
        return {row["id"] for row in response.data["results"]}

    assert ids(f"site={other.pk}") == {in_other.pk}
    assert ids(f"trial={own.trial_id}&kind=enrolled") == {enrolled.pk, correction.pk}
    assert ids("is_correction=true") == {correction.pk}
    assert ids(f"occurred_after={days_ago(10).isoformat()}") == {in_other.pk}
    assert ids("subject_code=RK-001") == {enrolled.pk, correction.pk}
    newest = client.get(ENTRIES).data["results"][0]["id"]
    assert newest == in_other.pk


# --- targets against actuals ----------------------------------------------------------------------------------------


def test_site_enrolment_lists_every_visible_site_with_counts_and_flags(own, pi, research_office):
    quiet_hospital = InstitutionFactory(region=own.institution.region)
    quiet = approve_site(
        TrialSiteFactory(trial=own.trial, institution=quiet_hospital, site_target=5, site_initiated_on=days_ago(150)),
        days_ago(160),
        days_ago(-100),
    )
    own.site_target = 2
    own.save(update_fields=["site_target"])
    enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5), count=3)
    response = as_user(research_office).get(SITES)
    assert response.status_code == 200
    rows = {row["site"]: row for row in response.data["results"]}
    assert set(rows) == {own.pk, quiet.pk}
    assert (rows[own.pk]["enrolled"], rows[own.pk]["target"], rows[own.pk]["over_target"]) == (3, 2, True)
    assert rows[own.pk]["percent"] == 150
    assert (rows[quiet.pk]["enrolled"], rows[quiet.pk]["stalled"], rows[quiet.pk]["last_enrolled_on"]) == (
        0,
        True,
        None,
    )
    client = as_user(research_office)
    assert [r["site"] for r in client.get(f"{SITES}?over_target=true").data["results"]] == [own.pk]
    assert [r["site"] for r in client.get(f"{SITES}?stalled=true").data["results"]] == [quiet.pk]
    assert [r["site"] for r in client.get(f"{SITES}?stalled=false").data["results"]] == [own.pk]
    assert client.get(f"{SITES}{quiet.pk}/").data["stalled"] is True


def test_regulators_read_counts_without_subject_codes_or_people(own, pi, regulator, elsewhere):
    enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5), subject_code="RK-001")
    response = as_user(regulator).get(SITES)
    assert response.status_code == 200
    rows = response.data["results"]
    assert [row["site"] for row in rows] == [own.pk]
    assert rows[0]["enrolled"] == 1
    text = str(response.data)
    assert "RK-001" not in text and pi.full_name not in text and pi.username not in text
    assert as_user(regulator).get(f"{SITES}{elsewhere.pk}/").status_code == 404
    trials = as_user(regulator).get(TRIALS).data["results"]
    assert [(row["trial"], row["enrolled"]) for row in trials] == [(own.trial_id, 1)]


def test_trial_enrolment_sums_the_visible_sites(own, pi, research_office):
    participating = approve_site(TrialSiteFactory(trial=own.trial, site_target=4), days_ago(150), days_ago(-100))
    enrolment.enrolment_report(site=own, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(5), count=2)
    enrolment.enrolment_report(
        site=participating, actor=participating.site_pi, kind=K.ENROLLED, occurred_on=days_ago(4), count=3
    )
    row = as_user(research_office).get(TRIALS).data["results"][0]
    assert (row["trial"], row["sites"], row["target"], row["enrolled"]) == (
        own.trial_id,
        2,
        own.site_target + 4,
        5,
    )
    assert row["trial_target_enrolment"] == own.trial.target_enrolment
    # The participating hospital's office sees its own site only.
    their_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=participating.institution)
    theirs = as_user(their_office).get(TRIALS).data["results"][0]
    assert (theirs["sites"], theirs["enrolled"]) == (1, 3)
    assert as_user(None).get(TRIALS).status_code == 401


def test_the_enrolment_operations_are_in_the_schema(research_office):
    schema = as_user(research_office).get("/api/schema/?format=json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "enrolment_entries_list",
        "enrolment_entries_create",
        "enrolment_entries_reverse",
        "site_enrolment_list",
        "site_enrolment_retrieve",
        "trial_enrolment_list",
    } <= operations


# --- query counts -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "viewer"),
    [(ENTRIES, "research_office"), (SITES, "research_office"), (SITES, "regulator"), (TRIALS, "research_office")],
)
def test_list_queries_do_not_grow_with_rows(request, institution, pi, path, viewer, django_assert_max_num_queries):
    client = as_user(request.getfixturevalue(viewer))
    counts = []
    for size in (2, 8):
        while SiteEnrolment.objects.count() < size:
            site = active_site(lead_institution=institution, pi=pi)
            TrialSiteFactory(trial=site.trial, institution=InstitutionFactory(region=institution.region))
            enrolment.enrolment_report(
                site=site, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(3), subject_code=f"RK-{site.pk}"
            )
            enrolment.enrolment_report(site=site, actor=pi, kind=K.SCREENED, occurred_on=days_ago(4), count=2)
        with django_assert_max_num_queries(4) as captured:
            response = client.get(f"{path}?page_size=100")
        assert response.status_code == 200
        assert len(response.data["results"]) >= size
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
