"""The participating ethics office answers a recognition request in the admin; nobody else reaches it."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from cgtclinic.roles import Role
from ethics.models import RecognitionRequest, Submission
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def open_request():
    lead_hospital, member_hospital = InstitutionFactory(), InstitutionFactory()
    lead, member = (
        EthicsCommitteeFactory(institution=lead_hospital),
        EthicsCommitteeFactory(institution=member_hospital),
    )
    trial = TrialFactory(lead_institution=lead_hospital)
    site = TrialSiteFactory(trial=trial, institution=member_hospital)
    now = timezone.now()
    return RecognitionRequest.objects.create(
        alliance=AllianceFactory(members=[lead, member]),
        trial=trial,
        site=site,
        committee=member,
        subject=Submission.Kind.INITIAL,
        received_at=now,
        remind_at=now + datetime.timedelta(days=2),
        due_at=now + datetime.timedelta(days=3),
    )


def office_of(request, institution):
    return UserFactory(role=Role.ETHICS_OFFICE, institution=institution)


def test_participating_office_answers_in_the_admin(client, open_request):
    client.force_login(office_of(open_request, open_request.committee.institution))
    page = client.get(reverse("admin:ethics_recognitionrequest_change", args=[open_request.pk]))
    assert reverse("admin:ethics_recognition_respond", args=[open_request.pk]) in page.content.decode()
    url = reverse("admin:ethics_recognition_respond", args=[open_request.pk])
    refused = client.post(url, {"outcome": "recognised_with_conditions", "note": ""})
    assert refused.status_code == 200 and refused.context["form"].errors
    open_request.refresh_from_db()
    assert open_request.status == RecognitionRequest.Status.OPEN
    done = client.post(url, {"outcome": "recognised_with_conditions", "note": "补充本中心联系人"})
    assert done.status_code == 302
    open_request.refresh_from_db()
    assert open_request.status == RecognitionRequest.Status.RECOGNISED_WITH_CONDITIONS and not open_request.late


def test_lead_office_sees_it_but_cannot_answer(client, open_request):
    client.force_login(office_of(open_request, open_request.trial.lead_institution))
    assert client.get(reverse("admin:ethics_recognitionrequest_changelist")).status_code == 200
    response = client.post(
        reverse("admin:ethics_recognition_respond", args=[open_request.pk]), {"outcome": "recognised"}
    )
    assert response.status_code == 200 and response.context["form"].non_field_errors()
    open_request.refresh_from_db()
    assert open_request.status == RecognitionRequest.Status.OPEN


def test_an_unrelated_hospital_cannot_reach_it(client, open_request):
    client.force_login(office_of(open_request, InstitutionFactory()))
    change = client.get(reverse("admin:ethics_recognitionrequest_change", args=[open_request.pk]))
    assert change.status_code == 302  # the admin's "does not exist" redirect
    assert (
        client.post(
            reverse("admin:ethics_recognition_respond", args=[open_request.pk]), {"outcome": "recognised"}
        ).status_code
        == 404
    )


def test_participating_office_records_an_external_lead_approval(client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from cgtclinic import workdays
    from tests.factories.trials import PDF_BYTES

    workdays.sync_from_package(years=[2026])
    member_hospital = InstitutionFactory()
    member = EthicsCommitteeFactory(institution=member_hospital)
    alliance = AllianceFactory(members=[member])
    site = TrialSiteFactory(institution=member_hospital)  # the lead is not in the system's alliance
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=member_hospital)
    client.force_login(office)
    assert (
        reverse("admin:ethics_recognition_record_external")
        in client.get(reverse("admin:ethics_recognitionrequest_changelist")).content.decode()
    )
    url = reverse("admin:ethics_recognition_record_external")
    form = {
        "site": site.pk,
        "alliance": alliance.pk,
        "letter_number": "外院伦审〔2026〕088号",
        "received_at": "2026-11-16 10:00",
    }
    refused = client.post(url, {**form, "letter": SimpleUploadedFile("批件.pdf", b"not a pdf")})
    assert refused.status_code == 200 and refused.context["form"].errors
    assert not RecognitionRequest.objects.exists()
    done = client.post(url, {**form, "letter": SimpleUploadedFile("批件.pdf", PDF_BYTES)})
    assert done.status_code == 302
    created = RecognitionRequest.objects.get()
    assert created.external_lead_letter_number == "外院伦审〔2026〕088号" and created.site == site
    # Received Monday 16 November: Tuesday, Wednesday, Thursday → due at the end of Thursday 19 November.
    assert timezone.localtime(created.due_at).date() == datetime.date(2026, 11, 20)


def test_the_page_explains_a_deadline_as_provisional_only_when_it_is(client, open_request):
    client.force_login(office_of(open_request, open_request.committee.institution))
    url = reverse("admin:ethics_recognitionrequest_change", args=[open_request.pk])
    with translation.override("en"):
        final = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "every working day it counts is on a published holiday schedule" in final
    assert "not yet published" not in final
    RecognitionRequest.objects.filter(pk=open_request.pk).update(provisional=True, provisional_years=[2031])
    with translation.override("en"):
        provisional = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "it reaches 2031, whose holiday schedule is not yet published" in provisional
