"""The gates, certificates, delegation log and consents in the admin: every write goes through its service, and a
refusal shows on the page (never a 500)."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import active_site, days_ago, seed_gate_rules, trial_with_history
from trials import enrolment
from trials.models import Delegation, Duty, EnrolmentEntry, Gate, GateAnswer, GcpCertificate, Trial

pytestmark = pytest.mark.django_db
S = Trial.Status


@pytest.fixture
def gate_rules():
    seed_gate_rules()


def approved_trial(**kwargs):
    return trial_with_history(
        [(S.SUBMITTED, days_ago(100)), (S.UNDER_REVIEW, days_ago(99)), (S.APPROVED, days_ago(90))], **kwargs
    )


def test_activation_in_the_admin_is_refused_until_the_gate_is_answered_there(client, gate_rules):
    trial = approved_trial()
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=trial.lead_institution)
    client.force_login(office)
    transition = reverse("admin:trials_trial_transition", args=[trial.pk, "activate"])
    page = client.post(transition, {"reason": ""})
    assert page.status_code == 200
    assert str(Gate.HGR.label) in page.content.decode()
    trial.refresh_from_db()
    assert trial.status == S.APPROVED

    refused = client.post(
        reverse("admin:trials_gateanswer_add"), {"trial": trial.pk, "gate": Gate.HGR, "outcome": "not_applicable"}
    )
    assert refused.status_code == 200 and not GateAnswer.objects.exists()
    added = client.post(
        reverse("admin:trials_gateanswer_add"),
        {"trial": trial.pk, "gate": Gate.HGR, "outcome": "met", "reference_number": "BC-1", "met_on": days_ago(3)},
    )
    assert added.status_code == 302, [line for line in added.content.decode().splitlines() if "error" in line][:10]
    answer = GateAnswer.objects.get()
    assert answer.recorded_by == office
    assert client.post(transition, {"reason": ""}).status_code == 302
    trial.refresh_from_db()
    assert trial.status == S.ACTIVE
    assert client.get(reverse("admin:trials_gateanswer_changelist")).status_code == 200
    assert client.get(reverse("admin:trials_gateanswer_change", args=[answer.pk])).status_code == 200
    changed = client.post(
        reverse("admin:trials_gateanswer_change", args=[answer.pk]), {"outcome": "pending", "reference_number": ""}
    )
    assert changed.status_code == 302
    answer.refresh_from_db()
    assert answer.outcome == "pending"


def test_another_hospitals_office_neither_sees_nor_answers_the_gate(client, gate_rules):
    trial = approved_trial()
    stranger = UserFactory(role=Role.RESEARCH_OFFICE)
    client.force_login(stranger)
    page = client.post(
        reverse("admin:trials_gateanswer_add"), {"trial": trial.pk, "gate": Gate.HGR, "outcome": "pending"}
    )
    assert page.status_code == 200 and not GateAnswer.objects.exists()


def test_site_initiation_in_the_admin_needs_the_site_pis_certificate(client):
    site = active_site()
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    GcpCertificate.objects.filter(person=site.site_pi).delete()
    client.force_login(office)
    url = reverse("admin:trials_trialsite_change", args=[site.pk])
    data = {
        "site_pi": site.site_pi_id,
        "site_target": site.site_target,
        "ethics_approved_on": site.ethics_approved_on,
        "site_initiated_on": days_ago(2),
    }
    page = client.post(url, data)
    assert page.status_code == 200 and "GCP" in page.content.decode()
    added = client.post(
        reverse("admin:trials_gcpcertificate_add"),
        {
            "person": site.site_pi_id,
            "number": "GCP-1",
            "issuer": "某培训中心",
            "issued_on": days_ago(400),
            "expires_on": days_ago(-400),
        },
    )
    assert added.status_code == 302, [line for line in added.content.decode().splitlines() if "error" in line][:10]
    assert client.post(url, data).status_code == 302
    site.refresh_from_db()
    assert site.site_initiated_on == days_ago(2)


def test_the_delegation_log_in_the_admin_lets_a_colleague_report(client):
    site = active_site()
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    colleague = UserFactory(role=Role.PI, institution=site.institution)
    client.force_login(office)
    added = client.post(
        reverse("admin:trials_delegation_add"),
        {"site": site.pk, "person": colleague.pk, "duties": [Duty.REPORT, Duty.CONSENT], "starts_on": days_ago(30)},
    )
    assert added.status_code == 302, [line for line in added.content.decode().splitlines() if "error" in line][:10]
    assert set(Delegation.objects.values_list("duty", flat=True)) == {Duty.REPORT, Duty.CONSENT}
    line = Delegation.objects.get(duty=Duty.REPORT)
    ended = client.post(reverse("admin:trials_delegation_change", args=[line.pk]), {"ends_on": days_ago(40)})
    assert ended.status_code == 200  # before its start: refused on the page
    ended = client.post(reverse("admin:trials_delegation_change", args=[line.pk]), {"ends_on": days_ago(1)})
    assert ended.status_code == 302
    line.refresh_from_db()
    assert line.ends_on == days_ago(1)
    entry = enrolment.enrolment_report(site=site, actor=colleague, kind="screened", occurred_on=days_ago(2))
    assert EnrolmentEntry.objects.filter(pk=entry.pk, reported_by=colleague).exists()


def test_an_enrolment_report_in_the_admin_is_refused_while_the_sites_biosafety_review_is_pending(client, gate_rules):
    site = active_site(kind=Trial.Kind.OTHER, therapy_category=Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    client.force_login(office)
    form = {"site": site.pk, "kind": "screened", "occurred_on": days_ago(3), "count": "1"}
    refused = client.post(reverse("admin:trials_enrolmententry_add"), form)
    assert refused.status_code == 200
    assert str(Gate.BIOSAFETY.label) in " ".join(refused.context["form"].non_field_errors())
    assert not EnrolmentEntry.objects.exists()
    answer = {"trial": site.trial.pk, "gate": Gate.BIOSAFETY, "site": site.pk, "outcome": "met"}
    client.post(reverse("admin:trials_gateanswer_add"), {**answer, "reference_number": "IBC-2", "met_on": days_ago(30)})
    assert client.post(reverse("admin:trials_enrolmententry_add"), form).status_code == 302
    assert EnrolmentEntry.objects.count() == 1
