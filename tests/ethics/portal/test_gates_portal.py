"""The PI's pages for the gates: my certificates, a site's gates, delegation log and re-consent list. Each form
calls one service; refusals show its message and write nothing."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import active_site, days_ago, seed_gate_rules
from tests.trials.test_gates import approve_icf
from trials import enrolment
from trials.models import Delegation, Duty, GcpCertificate, SubjectConsent, Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(pi):
    return active_site(lead_institution=pi.institution, pi=pi)


def test_a_pi_records_a_certificate_and_sees_it(client, pi):
    client.force_login(pi)
    url = reverse("ethics_portal:qualifications")
    assert client.get(url).status_code == 200
    bad = client.post(url, {"number": "G-1", "issuer": "中心", "issued_on": days_ago(5), "expires_on": days_ago(10)})
    assert bad.status_code == 400 and GcpCertificate.objects.filter(number="G-1").count() == 0
    good = client.post(url, {"number": "G-1", "issuer": "中心", "issued_on": days_ago(5), "expires_on": days_ago(-900)})
    assert good.status_code == 302
    assert "G-1" in client.get(url).content.decode()


def test_the_site_page_shows_the_gates_and_keeps_the_delegation_log(client, site, pi):
    seed_gate_rules()
    colleague = UserFactory(role=Role.PI, institution=site.institution)
    client.force_login(pi)
    url = reverse("ethics_portal:site_startup", args=[site.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "尚未答复" in page.content.decode() or "not yet answered" in page.content.decode()
    added = client.post(
        url, {"action": "delegate", "person": colleague.pk, "duties": [Duty.REPORT], "starts_on": days_ago(20)}
    )
    assert added.status_code == 302
    line = Delegation.objects.get()
    refused = client.post(url, {"action": "end", "delegation": line.pk, "ends_on": days_ago(40)})
    assert refused.status_code == 400
    # The colleague, delegated, sees the site but may not keep its log.
    client.force_login(colleague)
    assert client.get(url).status_code == 200
    assert (
        client.post(
            url, {"action": "delegate", "person": colleague.pk, "duties": [Duty.ENROL], "starts_on": days_ago(1)}
        ).status_code
        == 403
    )
    client.force_login(UserFactory(role=Role.PI))
    assert client.get(url).status_code == 404


def test_reconsent_is_listed_and_recorded_on_the_site_page(client, site, pi):
    v1 = approve_icf(site.trial, 1, days_ago(220))
    enrolment.enrolment_report(
        site=site,
        actor=pi,
        kind="enrolled",
        occurred_on=days_ago(30),
        subject_code="RK-001",
        icf_version=v1,
        consented_on=days_ago(30),
    )
    v2 = approve_icf(site.trial, 2, days_ago(3))
    client.force_login(pi)
    url = reverse("ethics_portal:site_startup", args=[site.pk])
    assert "RK-001" in client.get(url).content.decode()
    subject = SubjectConsent.objects.get().subject
    done = client.post(
        url, {"action": "reconsent", "subject": subject.pk, "icf_version": v2.pk, "consented_on": days_ago(1)}
    )
    assert done.status_code == 302
    assert SubjectConsent.objects.filter(is_reconsent=True, icf_version=v2).exists()


def test_the_enrolment_form_records_the_consent(client, site, pi):
    version = approve_icf(site.trial, 1, days_ago(220))
    client.force_login(pi)
    url = reverse("ethics_portal:site_enrolment", args=[site.pk])
    data = {"kind": "enrolled", "occurred_on": days_ago(3).isoformat(), "count": "1", "subject_code": "RK-009"}
    refused = client.post(url, data)
    assert refused.status_code == 400
    done = client.post(url, {**data, "icf_version": version.pk, "consented_on": days_ago(4).isoformat()})
    assert done.status_code == 302
    assert SubjectConsent.objects.get().icf_version == version
    assert Trial.objects.count() == 1
