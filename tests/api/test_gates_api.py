"""The gates, certificates, delegation log and consents over the API: each POST is one service call, refusals are
400/403/409 with a code, rows are scoped by visible_to."""

import pytest
from rest_framework.test import APIClient

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import active_site, days_ago, seed_gate_rules, trial_with_history
from tests.trials.test_gates import approve_icf
from trials.models import Delegation, Duty, EnrolmentEntry, Gate, GcpCertificate, SubjectConsent, Trial

pytestmark = pytest.mark.django_db
S = Trial.Status
ANSWERS = "/api/v1/gate-answers/"
CERTIFICATES = "/api/v1/gcp-certificates/"
DELEGATIONS = "/api/v1/delegations/"
CONSENTS = "/api/v1/subject-consents/"


@pytest.fixture
def gate_rules():
    seed_gate_rules()


def as_user(user) -> APIClient:
    client = APIClient()
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    if user is not None:
        client.force_authenticate(user)
    return client


def approved_trial(**kwargs):
    return trial_with_history(
        [(S.SUBMITTED, days_ago(100)), (S.UNDER_REVIEW, days_ago(99)), (S.APPROVED, days_ago(90))], **kwargs
    )


def test_activation_over_the_api_waits_for_the_gate_answered_over_the_api(gate_rules):
    trial = approved_trial()
    office = as_user(UserFactory(role=Role.RESEARCH_OFFICE, institution=trial.lead_institution))
    refused = office.post(f"/api/v1/trials/{trial.pk}/activate/", {}, format="json")
    assert refused.status_code == 400 and refused.data["code"] == "gate_not_met"
    assert "Human genetic resources" in refused.data["detail"]
    status = office.get(ANSWERS + "status/", {"trial": trial.pk})
    assert [(row["gate"], row["met_today"]) for row in status.data] == [(Gate.HGR, False)]

    no_reason = office.post(ANSWERS, {"trial": trial.pk, "gate": Gate.HGR, "outcome": "not_applicable"}, format="json")
    assert (no_reason.status_code, no_reason.data["field"]) == (400, "reason")
    answered = office.post(
        ANSWERS,
        {"trial": trial.pk, "gate": Gate.HGR, "outcome": "met", "reference_number": "BC-9", "met_on": days_ago(2)},
        format="json",
    )
    assert answered.status_code == 201, answered.data
    assert answered.data["outcome"] == "met"
    assert office.post(f"/api/v1/trials/{trial.pk}/activate/", {}, format="json").status_code == 200


def test_gate_answers_are_scoped_and_bad_input_is_a_400(gate_rules):
    trial = approved_trial()
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=trial.lead_institution)
    as_user(office).post(ANSWERS, {"trial": trial.pk, "gate": Gate.HGR, "outcome": "pending"}, format="json")
    stranger = as_user(UserFactory(role=Role.RESEARCH_OFFICE))
    assert stranger.get(ANSWERS).data["results"] == []
    assert stranger.get(ANSWERS + "status/", {"trial": trial.pk}).status_code == 404
    assert stranger.get(ANSWERS + "status/", {"trial": "x"}).status_code == 400
    assert (
        stranger.post(ANSWERS, {"trial": trial.pk, "gate": Gate.HGR, "outcome": "pending"}, format="json").status_code
        == 400
    )
    assert as_user(UserFactory(role=Role.REGULATOR)).get(ANSWERS).status_code == 403
    assert as_user(None).get(ANSWERS).status_code in (401, 403)
    own = as_user(office)
    assert (
        own.post(ANSWERS, {"trial": trial.pk, "gate": "nope", "outcome": "pending"}, format="json").status_code == 400
    )
    assert (
        own.post(
            ANSWERS, {"trial": trial.pk, "gate": Gate.HGR, "outcome": "met", "met_on": "x"}, format="json"
        ).status_code
        == 400
    )


def test_enrolment_over_the_api_records_the_consent_and_the_certificate_rule():
    site = active_site()
    pi = site.site_pi
    version = approve_icf(site.trial, 1, days_ago(220))
    client = as_user(pi)
    body = {"site": site.pk, "kind": "enrolled", "occurred_on": days_ago(5).isoformat(), "subject_code": "RK-001"}
    refused = client.post("/api/v1/enrolment-entries/", body, format="json")
    assert (refused.status_code, refused.data["code"]) == (400, "consent_required")
    done = client.post(
        "/api/v1/enrolment-entries/",
        {**body, "icf_version": version.pk, "consented_on": days_ago(6).isoformat()},
        format="json",
    )
    assert done.status_code == 201, done.data
    assert SubjectConsent.objects.get().icf_version == version

    GcpCertificate.objects.filter(person=pi).delete()
    refused = client.post("/api/v1/enrolment-entries/", {**body, "subject_code": ""}, format="json")
    assert (refused.status_code, refused.data["code"]) == (400, "pi_not_qualified")
    assert EnrolmentEntry.objects.count() == 1


def test_certificates_and_delegations_over_the_api():
    site = active_site()
    pi = site.site_pi
    colleague = UserFactory(role=Role.PI, institution=site.institution)
    certificate = {
        "person": colleague.pk,
        "number": "G-1",
        "issuer": "培训中心",
        "issued_on": days_ago(10).isoformat(),
        "expires_on": days_ago(-900).isoformat(),
    }
    assert as_user(pi).post(CERTIFICATES, certificate, format="json").status_code == 403
    assert as_user(colleague).post(CERTIFICATES, certificate, format="json").status_code == 201
    assert as_user(colleague).post(CERTIFICATES, certificate, format="json").status_code == 409
    assert {row["number"] for row in as_user(colleague).get(CERTIFICATES).data["results"]} == {"G-1"}
    other_office = as_user(UserFactory(role=Role.RESEARCH_OFFICE))
    assert other_office.get(CERTIFICATES).data["results"] == []

    line = {
        "site": site.pk,
        "person": colleague.pk,
        "duties": [Duty.REPORT, Duty.ENROL],
        "starts_on": days_ago(30).isoformat(),
    }
    # The colleague does not see the site before the log names them: it reads as not existing.
    assert as_user(colleague).post(DELEGATIONS, line, format="json").status_code == 400
    created = as_user(pi).post(DELEGATIONS, line, format="json")
    assert created.status_code == 201 and {row["duty"] for row in created.data} == {Duty.REPORT, Duty.ENROL}
    report = as_user(colleague).post(
        "/api/v1/enrolment-entries/",
        {"site": site.pk, "kind": "screened", "occurred_on": days_ago(3).isoformat()},
        format="json",
    )
    assert report.status_code == 201, report.data
    first = Delegation.objects.get(duty=Duty.REPORT)
    assert as_user(pi).post(f"{DELEGATIONS}{first.pk}/end/", {"ends_on": "x"}, format="json").status_code == 400
    assert (
        as_user(pi)
        .post(f"{DELEGATIONS}{first.pk}/end/", {"ends_on": days_ago(1).isoformat()}, format="json")
        .status_code
        == 200
    )
    assert as_user(UserFactory(role=Role.REGULATOR)).get(DELEGATIONS).status_code == 403


def test_reconsent_over_the_api():
    site = active_site()
    pi = site.site_pi
    v1 = approve_icf(site.trial, 1, days_ago(220))
    client = as_user(pi)
    client.post(
        "/api/v1/enrolment-entries/",
        {
            "site": site.pk,
            "kind": "enrolled",
            "occurred_on": days_ago(30).isoformat(),
            "subject_code": "RK-001",
            "icf_version": v1.pk,
            "consented_on": days_ago(30).isoformat(),
        },
        format="json",
    )
    v2 = approve_icf(site.trial, 2, days_ago(3))
    due = client.get(CONSENTS + "reconsent-due/")
    assert [(row["subject_code"], row["current_version"]) for row in due.data] == [("RK-001", v2.pk)]
    assert as_user(UserFactory(role=Role.RESEARCH_OFFICE)).get(CONSENTS + "reconsent-due/").data == []
    subject = due.data[0]["subject"]
    recorded = client.post(
        CONSENTS, {"subject": subject, "icf_version": v2.pk, "consented_on": days_ago(1).isoformat()}, format="json"
    )
    assert recorded.status_code == 201 and recorded.data["is_reconsent"]
    assert client.get(CONSENTS + "reconsent-due/").data == []
    assert as_user(UserFactory(role=Role.REGULATOR)).get(CONSENTS).status_code == 403


def test_enrolment_over_the_api_is_refused_while_the_sites_biosafety_review_is_unanswered(gate_rules):
    site = active_site(kind=Trial.Kind.OTHER, therapy_category=Trial.TherapyCategory.GENE_EDITING)
    body = {"site": site.pk, "kind": "screened", "occurred_on": days_ago(3).isoformat()}
    refused = as_user(site.site_pi).post("/api/v1/enrolment-entries/", body, format="json")
    assert (refused.status_code, refused.data["code"]) == (400, "gate_not_met")
    assert "biosafety" in refused.data["detail"]
    office = as_user(UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution))
    answered = office.post(
        ANSWERS,
        {
            "trial": site.trial.pk,
            "site": site.pk,
            "gate": Gate.BIOSAFETY,
            "outcome": "not_applicable",
            "reason": "无病毒载体",
        },
        format="json",
    )
    assert answered.status_code == 201, answered.data
    assert as_user(site.site_pi).post("/api/v1/enrolment-entries/", body, format="json").status_code == 201
