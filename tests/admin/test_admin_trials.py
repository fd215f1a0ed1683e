"""The research office's admin flows go through the services: create, transitions, sites, documents, people."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cgtclinic.models import User
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, SponsorFactory, UserFactory
from tests.factories.trials import PDF_BYTES, TrialFactory
from trials.models import DocumentVersion, Trial, TrialSite, TrialStatusChange


def trial_form(**overrides):
    data = {
        "title_zh": "BCMA CAR-T 治疗多发性骨髓瘤",
        "title_en": "BCMA CAR-T for multiple myeloma",
        "protocol_number": "IIT-2026-077",
        "kind": Trial.Kind.IIT,
        "therapy_category": Trial.TherapyCategory.IMMUNE_CELL,
        "phase": Trial.Phase.PHASE_1,
        "target_enrolment": "24",
        "hgr_status": Trial.HGRStatus.NOT_REQUIRED,
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_research_office_creates_trial_through_the_service(client, research_office, pi):
    client.force_login(research_office)
    response = client.post(
        reverse("admin:trials_trial_add"),
        trial_form(lead_institution=research_office.institution_id, pi=pi.pk, sponsor=SponsorFactory().pk),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    trial = Trial.objects.get(protocol_number="IIT-2026-077")
    assert trial.status == Trial.Status.DRAFT
    assert trial.created_by == research_office
    lead = TrialSite.objects.get(trial=trial)
    assert (lead.role, lead.institution_id, lead.site_pi) == ("lead", research_office.institution_id, pi)
    assert trial.history.first().history_user == research_office


@pytest.mark.django_db
def test_research_office_cannot_record_a_trial_for_another_hospital(client, research_office):
    other = InstitutionFactory()
    other_pi = UserFactory(role=Role.PI, institution=other)
    client.force_login(research_office)
    response = client.post(reverse("admin:trials_trial_add"), trial_form(lead_institution=other.pk, pi=other_pi.pk))
    assert response.status_code == 200
    assert not Trial.objects.exists()


@pytest.mark.django_db
def test_pi_must_have_the_pi_role(client, research_office, ethics_office):
    client.force_login(research_office)
    response = client.post(
        reverse("admin:trials_trial_add"),
        trial_form(lead_institution=research_office.institution_id, pi=ethics_office.pk),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["pi"]
    assert not Trial.objects.exists()


@pytest.mark.django_db
def test_transition_buttons_run_the_service(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    client.force_login(research_office)
    page = client.get(reverse("admin:trials_trial_change", args=[trial.pk])).content.decode()
    assert reverse("admin:trials_trial_transition", args=[trial.pk, "submit"]) in page
    assert reverse("admin:trials_trial_transition", args=[trial.pk, "activate"]) not in page

    response = client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "submit"]))
    assert response.status_code == 302
    trial.refresh_from_db()
    assert trial.status == Trial.Status.SUBMITTED
    assert TrialStatusChange.objects.get(trial=trial).actor == research_office


@pytest.mark.django_db
def test_refused_transition_shows_the_reason_and_changes_nothing(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=Trial.Status.ACTIVE)
    client.force_login(research_office)
    response = client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "suspend"]), {"reason": ""})
    assert response.status_code == 200
    assert response.context["form"].errors
    response = client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "submit"]))
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE
    assert not TrialStatusChange.objects.exists()


@pytest.mark.django_db
def test_transition_on_another_hospitals_trial_is_not_found(client, research_office):
    trial = TrialFactory()
    client.force_login(research_office)
    response = client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "submit"]))
    assert response.status_code == 404
    trial.refresh_from_db()
    assert trial.status == Trial.Status.DRAFT


@pytest.mark.django_db
def test_site_milestones_out_of_order_are_refused(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    other = InstitutionFactory()
    client.force_login(research_office)
    response = client.post(
        reverse("admin:trials_trialsite_add"),
        {
            "trial": trial.pk,
            "institution": other.pk,
            "site_target": "5",
            "submission_received_on": "2026-03-10",
            "ethics_approved_on": "2026-03-01",
        },
    )
    assert response.status_code == 200
    assert "ethics_approved_on" in response.context["adminform"].form.errors
    assert TrialSite.objects.filter(trial=trial).count() == 1

    response = client.post(
        reverse("admin:trials_trialsite_add"),
        {
            "trial": trial.pk,
            "institution": other.pk,
            "site_target": "5",
            "submission_received_on": "2026-03-01",
            "ethics_approved_on": "2026-03-10",
        },
    )
    assert response.status_code == 302
    site = TrialSite.objects.get(trial=trial, institution=other)
    assert site.role == TrialSite.SiteRole.PARTICIPATING
    assert site.ethics_approved_on == datetime.date(2026, 3, 10)


@pytest.mark.django_db
def test_document_upload_adds_versions_and_keeps_old_ones(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    client.force_login(research_office)
    form = {"trial": trial.pk, "kind": "protocol", "title": "研究方案", "version_label": "V1.0"}
    response = client.post(
        reverse("admin:trials_trialdocument_add"),
        {**form, "upload": SimpleUploadedFile("方案.pdf", PDF_BYTES, "application/pdf")},
    )
    assert response.status_code == 302
    first = DocumentVersion.objects.get()
    document = first.document
    response = client.post(
        reverse("admin:trials_trialdocument_change", args=[document.pk]),
        {
            "version_label": "V2.0",
            "note": "修订入排标准",
            "upload": SimpleUploadedFile("方案.pdf", PDF_BYTES + b"%v2"),
            # The read-only versions table's management form, as the browser sends it.
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
            "versions-0-id": str(first.pk),
            "versions-0-document": str(document.pk),
        },
    )
    assert response.status_code == 302
    versions = list(document.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].file.name != versions[1].file.name
    assert versions[0].file.storage.exists(versions[0].file.name)

    download = client.get(reverse("admin:trials_documentversion_download", args=[versions[0].pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF_BYTES


@pytest.mark.django_db
def test_document_upload_with_wrong_content_is_refused(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    client.force_login(research_office)
    response = client.post(
        reverse("admin:trials_trialdocument_add"),
        {
            "trial": trial.pk,
            "kind": "icf",
            "title": "知情同意书",
            "upload": SimpleUploadedFile("icf.pdf", b"MZ\x90\x00 not a pdf", "application/pdf"),
        },
    )
    assert response.status_code == 200
    assert "upload" in response.context["adminform"].form.errors
    assert not DocumentVersion.objects.exists()


@pytest.mark.django_db
def test_research_office_records_people_of_own_hospital_only(client, research_office):
    client.force_login(research_office)
    add = reverse("admin:cgtclinic_user_add")
    base = {"usable_password": "false", "full_name": "李医生", "institution": research_office.institution_id}
    response = client.post(add, {**base, "username": "li_pi", "role": Role.PI})
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = User.objects.get(username="li_pi")
    assert created.role == Role.PI and not created.has_usable_password()

    response = client.post(add, {**base, "username": "reg", "role": Role.REGULATOR})
    assert response.status_code == 200
    other = InstitutionFactory()
    response = client.post(add, {**base, "username": "elsewhere", "role": Role.PI, "institution": other.pk})
    assert response.status_code == 200
    assert not User.objects.filter(username__in=["reg", "elsewhere"]).exists()


@pytest.mark.django_db
def test_history_page_shows_who_changed_what(client, research_office, pi):
    client.force_login(research_office)
    client.post(
        reverse("admin:trials_trial_add"),
        trial_form(lead_institution=research_office.institution_id, pi=pi.pk),
    )
    trial = Trial.objects.get()
    client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "submit"]))
    page = client.get(reverse("admin:trials_trial_history", args=[trial.pk])).content.decode()
    assert research_office.username in page or research_office.full_name in page
    assert trial.history.count() == 2
