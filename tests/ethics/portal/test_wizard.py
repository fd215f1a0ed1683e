"""The new-project wizard: trial details, sites, documents, declarations, review and submit."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from ethics.models import Submission, SubmissionEvent
from ethics.services import DECLARATIONS, INITIAL_REQUIRED_DOCUMENTS, submission_return_incomplete
from tests.ethics.portal.conftest import pdf
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from trials.models import DocumentVersion, Trial, TrialSite

pytestmark = pytest.mark.django_db

TRIAL_DATA = {
    "title_zh": "CD19 CAR-T 治疗复发难治B细胞淋巴瘤",
    "title_en": "CD19 CAR-T for r/r B-cell lymphoma",
    "protocol_number": "CGT-PORTAL-001",
    "kind": Trial.Kind.IIT,
    "therapy_category": Trial.TherapyCategory.IMMUNE_CELL,
    "phase": Trial.Phase.PHASE_1,
    "target_enrolment": "24",
    "hgr_status": Trial.HGRStatus.NOT_REQUIRED,
}


def step_url(trial, step):
    return reverse("ethics_portal:project_edit", args=[trial.pk, step])


def documents_post(**extra):
    data = {}
    for kind in INITIAL_REQUIRED_DOCUMENTS:
        data[f"{kind}-title"] = f"{kind} 文件"
        data[f"{kind}-file"] = pdf(f"{kind}.pdf")
        data[f"{kind}-version_label"] = "V1.0"
    data.update(extra)
    return data


def test_wizard_end_to_end(pi_client, pi, committee):
    # Step 1 creates the draft trial and its draft initial application.
    response = pi_client.post(reverse("ethics_portal:project_new"), {**TRIAL_DATA, "action": "next"})
    trial = Trial.objects.get(protocol_number="CGT-PORTAL-001")
    assert response.status_code == 302
    assert response["Location"] == step_url(trial, 2)
    assert (trial.pi, trial.lead_institution, trial.status) == (pi, pi.institution, Trial.Status.DRAFT)
    submission = Submission.objects.get(trial=trial)
    assert (submission.kind, submission.status, submission.committee) == ("initial", "draft", committee)

    # Step 2: a participating site.
    partner = InstitutionFactory(region=pi.institution.region)
    response = pi_client.get(step_url(trial, 2))
    assert 'name="institution"' in response.content.decode()
    lookup = reverse("ethics_portal:lookup", args=["institutions"])
    assert partner.name_en in pi_client.get(lookup, {"q": partner.name_zh}).json()["results"][0]
    response = pi_client.post(step_url(trial, 2), {"institution": partner.name_zh, "site_target": "6", "action": "add"})
    assert response.status_code == 302
    site = TrialSite.objects.get(trial=trial, institution=partner)
    assert (site.role, site.site_target, site.site_pi) == (TrialSite.SiteRole.PARTICIPATING, 6, None)
    # Its site PI, put on record by name, and the lead site's target brought down so the sum is the trial's.
    response = pi_client.post(
        step_url(trial, 2), {"site": site.pk, "action": "site_pi", f"pi{site.pk}-full_name": "李主任"}
    )
    assert response.status_code == 302
    lead = trial.sites.get(role=TrialSite.SiteRole.LEAD)
    response = pi_client.post(
        step_url(trial, 2), {f"target_{lead.pk}": "18", f"target_{site.pk}": "6", "action": "next"}
    )
    assert response["Location"] == step_url(trial, 3)

    # Step 3: every required document.
    response = pi_client.post(step_url(trial, 3), {**documents_post(), "action": "next"})
    assert response.status_code == 302
    assert response["Location"] == step_url(trial, 4)
    kinds = set(submission.documents.values_list("document__kind", flat=True))
    assert kinds == set(INITIAL_REQUIRED_DOCUMENTS)

    # Step 4: summary and the four declarations.
    data = {f"declare_{key}": "on" for key in DECLARATIONS}
    response = pi_client.post(step_url(trial, 4), {"summary": "单臂、开放、剂量递增研究。", **data, "action": "next"})
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.declarations == dict.fromkeys(DECLARATIONS, True)

    # Step 5: nothing missing; submit.
    response = pi_client.get(step_url(trial, 5))
    assert "Nothing is missing" in response.content.decode() or "没有缺少" in response.content.decode()
    response = pi_client.post(step_url(trial, 5), {"action": "submit"})
    assert response.status_code == 302
    assert response["Location"] == reverse("ethics_portal:submission_detail", args=[submission.pk])
    submission.refresh_from_db()
    trial.refresh_from_db()
    assert submission.status == Submission.Status.SUBMITTED
    assert submission.reference
    assert trial.status == Trial.Status.SUBMITTED
    assert SubmissionEvent.objects.filter(submission=submission, kind="submitted").exists()

    # The dashboard now shows it as submitted; the wizard sends the PI to the read-only page.
    page = pi_client.get(reverse("ethics_portal:dashboard")).content.decode()
    assert submission.reference in page
    assert "status-submitted" in page
    assert pi_client.get(step_url(trial, 3))["Location"] == reverse(
        "ethics_portal:submission_detail", args=[submission.pk]
    )


def test_submit_with_gaps_lists_every_missing_item_and_changes_nothing(pi_client, pi, committee):
    pi_client.post(reverse("ethics_portal:project_new"), {**TRIAL_DATA, "action": "save"})
    trial = Trial.objects.get(protocol_number="CGT-PORTAL-001")
    submission = Submission.objects.get(trial=trial)
    events_before = submission.events.count()

    response = pi_client.post(step_url(trial, 5), {"action": "submit"})

    assert response.status_code == 400
    page = response.content.decode()
    # Five documents, four declarations and the summary: every one listed in one place.
    listed = page.count("<li>", page.index('id="missing-title"'), page.index('id="summary-title"'))
    assert listed == len(INITIAL_REQUIRED_DOCUMENTS) + len(DECLARATIONS) + 1
    submission.refresh_from_db()
    trial.refresh_from_db()
    assert submission.status == Submission.Status.DRAFT
    assert submission.reference == ""
    assert trial.status == Trial.Status.DRAFT
    assert submission.events.count() == events_before


def test_resume_a_draft_from_the_dashboard(pi_client, pi, committee):
    pi_client.post(reverse("ethics_portal:project_new"), {**TRIAL_DATA, "action": "save"})
    trial = Trial.objects.get(protocol_number="CGT-PORTAL-001")
    pi_client.post(step_url(trial, 4), {"summary": "先保存一部分", "declare_gcp_trained": "on", "action": "save"})

    dashboard = pi_client.get(reverse("ethics_portal:dashboard")).content.decode()
    assert step_url(trial, 1) in dashboard  # the "Resume" link

    page = pi_client.get(step_url(trial, 4)).content.decode()
    assert "先保存一部分" in page
    assert 'name="declare_gcp_trained" id="id_declare_gcp_trained" checked' in page
    assert 'name="declare_information_true" id="id_declare_information_true" checked' not in page
    page = pi_client.get(step_url(trial, 1)).content.decode()
    assert 'value="CGT-PORTAL-001"' in page

    # Editing step 1 later goes through trial_update.
    response = pi_client.post(step_url(trial, 1), {**TRIAL_DATA, "target_enrolment": "30", "action": "save"})
    assert response.status_code == 302
    trial.refresh_from_db()
    assert trial.target_enrolment == 30


def test_invalid_trial_details_change_nothing(pi_client, committee):
    response = pi_client.post(
        reverse("ethics_portal:project_new"), {**TRIAL_DATA, "chictr_id": "12345", "target_enrolment": ""}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'class="error-summary"' in page
    assert 'href="#id_chictr_id"' in page and 'href="#id_target_enrolment"' in page
    assert not Trial.objects.exists()
    assert not Submission.objects.exists()


def test_without_a_committee_nothing_is_created(pi_client):
    response = pi_client.post(reverse("ethics_portal:project_new"), {**TRIAL_DATA, "action": "next"})
    assert response.status_code == 400
    assert "error-summary" in response.content.decode()
    assert not Trial.objects.exists()


def test_duplicate_protocol_number_is_refused(pi_client, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    response = pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    assert response.status_code == 400
    assert Trial.objects.count() == 1


def test_a_second_upload_with_the_same_title_adds_a_version(pi_client, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    trial = Trial.objects.get()
    pi_client.post(step_url(trial, 3), documents_post())
    pi_client.post(step_url(trial, 3), {"protocol-title": "protocol 文件", "protocol-file": pdf("v2.pdf")})
    versions = DocumentVersion.objects.filter(document__trial=trial, document__kind="protocol").order_by("number")
    assert [v.number for v in versions] == [1, 2]
    submission = Submission.objects.get(trial=trial)
    attached = submission.documents.filter(document__kind="protocol")
    assert [v.number for v in attached] == [2]


def test_sites_step_saves_without_adding_when_nothing_chosen(pi_client, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    trial = Trial.objects.get()
    response = pi_client.post(step_url(trial, 2), {"action": "next"})
    assert response["Location"] == step_url(trial, 3)
    assert trial.sites.count() == 1  # the lead site trial_create made
    response = pi_client.post(step_url(trial, 2), {"institution": "", "site_target": "0", "action": "add"})
    assert response.status_code == 400


def test_unknown_step_is_404(pi_client, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    trial = Trial.objects.get()
    assert pi_client.get(step_url(trial, 6)).status_code == 404


def test_a_returned_application_shows_what_is_missing_and_is_resubmitted(pi_client, pi, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    trial = Trial.objects.get()
    pi_client.post(step_url(trial, 3), documents_post())
    declarations = {f"declare_{key}": "on" for key in DECLARATIONS}
    pi_client.post(step_url(trial, 4), {"summary": "概要", **declarations})
    pi_client.post(step_url(trial, 5), {"action": "submit"})
    submission = Submission.objects.get(trial=trial)
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=committee.institution)
    submission_return_incomplete(submission=submission, actor=office, items=["研究者简历需签字", "保险凭证已过期"])

    # The trial record is the office's now: step 1 is read-only and posting to it changes nothing.
    page = pi_client.get(step_url(trial, 1)).content.decode()
    assert "研究者简历需签字" in page and "保险凭证已过期" in page
    assert 'name="protocol_number" value="CGT-PORTAL-001" maxlength="100" required disabled' in page
    pi_client.post(step_url(trial, 1), {**TRIAL_DATA, "protocol_number": "CHANGED"})
    trial.refresh_from_db()
    assert trial.protocol_number == "CGT-PORTAL-001"

    # New versions of the two documents, then resubmit.
    response = pi_client.post(
        step_url(trial, 3),
        {
            "cv-title": "cv 文件",
            "cv-file": pdf("cv-signed.pdf"),
            "insurance-title": "insurance 文件",
            "insurance-file": pdf("insurance-2026.pdf"),
            "action": "next",
        },
    )
    assert response["Location"] == step_url(trial, 4)
    response = pi_client.post(step_url(trial, 5), {"action": "submit"})
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.status == Submission.Status.SUBMITTED
    numbers = dict(submission.documents.values_list("document__kind", "number"))
    assert numbers == {"protocol": 1, "icf": 1, "ib": 1, "cv": 2, "insurance": 2}
