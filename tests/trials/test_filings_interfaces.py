"""The IIT review gate and the filings through the admin, the API and the PI's portal: the same service, the same
refusals."""

import datetime

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from cgtclinic.seeding import load_policy
from tests.factories.trials import PDF_BYTES, FilingObligationFactory, TrialFactory, answer_gates
from trials.models import FilingObligation, Trial, TrialReview, TrialSite

SH = datetime.timezone(datetime.timedelta(hours=8))
S = Trial.Status
RK = TrialReview.Kind


@pytest.fixture(autouse=True)
def policy(db):
    load_policy(settings.BASE_DIR / "seeds" / "policy")


@pytest.fixture
def trial(institution, pi):
    trial = TrialFactory(lead_institution=institution, pi=pi, status=S.APPROVED, reviews_passed=False)
    TrialSite.objects.filter(trial=trial).update(ethics_approved_on=datetime.date(2026, 3, 2))
    answer_gates(trial)  # the HGR gate is not what these tests are about
    return trial


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- API ----------------------------------------------------------------------------------------------------------


def test_api_activation_refused_then_reviews_recorded_then_activated(trial, research_office):
    client = api(research_office)
    refused = client.post(f"/api/v1/trials/{trial.pk}/activate/")
    assert refused.status_code == 400 and refused.json()["code"] == "reviews_missing"
    payload = client.get(f"/api/v1/trials/{trial.pk}/").json()
    assert len(payload["governance"]["missing_before_activation"]) == 2
    assert payload["governance"]["available_review_steps"][RK.ACADEMIC] == ["passed", "not_passed", "revise"]
    for kind in (RK.ACADEMIC, RK.INSTITUTIONAL):
        response = client.post(
            f"/api/v1/trials/{trial.pk}/review/", {"kind": kind, "outcome": "passed", "decided_on": "2026-03-05"}
        )
        assert response.status_code == 200, response.content
    assert response.json()["governance"]["missing_before_activation"] == []
    assert client.post(f"/api/v1/trials/{trial.pk}/activate/").json()["status"] == S.ACTIVE


def test_api_refusals(trial, pi, research_office):
    assert (
        api(pi).post(f"/api/v1/trials/{trial.pk}/review/", {"kind": "academic", "outcome": "passed"}).status_code == 403
    )
    bad = api(research_office).post(f"/api/v1/trials/{trial.pk}/review/", {"kind": "academic", "outcome": "maybe"})
    assert bad.status_code == 400
    order = api(research_office).post(
        f"/api/v1/trials/{trial.pk}/review/", {"kind": "institutional", "outcome": "passed"}
    )
    assert order.status_code == 400 and order.json()["code"] == "order"


def test_api_new_technology_answer_and_filing_record(trial, pi, research_office):
    with time_machine.travel(datetime.datetime(2026, 6, 10, 10, tzinfo=SH), tick=False):
        answer = api(research_office).post(
            f"/api/v1/trials/{trial.pk}/new-technology/", {"answer": True, "reason": "首次应用的基因编辑技术"}
        )
        assert answer.status_code == 200 and answer.json()["is_new_technology"] is True
        api(research_office).post(f"/api/v1/trials/{trial.pk}/review/", {"kind": "academic", "outcome": "passed"})
        (filing,) = api(pi).get("/api/v1/filings/", {"trial": trial.pk}).json()["results"]
        assert filing["kind"] == FilingObligation.Kind.NEW_TECHNOLOGY
        missing_number = api(pi).post(f"/api/v1/filings/{filing['id']}/record/", {"filed_on": "2026-06-10"})
        assert missing_number.status_code == 400
        recorded = api(pi).post(
            f"/api/v1/filings/{filing['id']}/record/",
            {
                "filed_on": "2026-06-10",
                "filing_number": "GD-SWJS-2026-007",
                "document": SimpleUploadedFile("备案回执.pdf", PDF_BYTES, content_type="application/pdf"),
            },
            format="multipart",
        )
    assert recorded.status_code == 200, recorded.content
    assert recorded.json()["status"] == "filed" and recorded.json()["document"]


def test_regulators_do_not_list_filings(trial, regulator):
    FilingObligationFactory(trial=trial)
    assert api(regulator).get("/api/v1/filings/").status_code == 403


# --- admin --------------------------------------------------------------------------------------------------------


def test_admin_activation_shows_the_refusal_and_the_review_buttons_record(client, trial, research_office):
    client.force_login(research_office)
    page = client.get(reverse("admin:trials_trial_change", args=[trial.pk]))
    review_url = reverse("admin:trials_trial_review", args=[trial.pk, RK.ACADEMIC])
    assert review_url in page.content.decode()
    refused = client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "activate"]), {"reason": ""})
    assert refused.status_code == 200
    assert str(RK.INSTITUTIONAL.label) in refused.content.decode()
    for kind in (RK.ACADEMIC, RK.INSTITUTIONAL):
        done = client.post(
            reverse("admin:trials_trial_review", args=[trial.pk, kind]),
            {"outcome": "passed", "decided_on": "2026-03-05", "comments": ""},
        )
        assert done.status_code == 302
    client.post(reverse("admin:trials_trial_transition", args=[trial.pk, "activate"]), {"reason": ""})
    trial.refresh_from_db()
    assert trial.status == S.ACTIVE


def test_admin_offers_no_review_button_to_the_ethics_office(client, trial, ethics_office):
    client.force_login(ethics_office)
    page = client.get(reverse("admin:trials_trial_change", args=[trial.pk])).content.decode()
    assert reverse("admin:trials_trial_review", args=[trial.pk, RK.ACADEMIC]) not in page
    assert client.get(reverse("admin:trials_trial_review", args=[trial.pk, RK.ACADEMIC])).status_code == 302
    assert client.get(reverse("admin:trials_trial_newtech", args=[trial.pk])).status_code == 302
    assert not TrialReview.objects.filter(trial=trial).exists()


def test_admin_new_technology_answer(client, trial, research_office):
    client.force_login(research_office)
    url = reverse("admin:trials_trial_newtech", args=[trial.pk])
    assert url in client.get(reverse("admin:trials_trial_change", args=[trial.pk])).content.decode()
    assert client.post(url, {"answer": "yes", "reason": ""}).status_code == 200  # a reason is required
    assert client.post(url, {"answer": "yes", "reason": "首次用于人体的基因编辑技术"}).status_code == 302
    trial.refresh_from_db()
    assert trial.is_new_technology is True and trial.new_technology_set_by == research_office


# --- the PI's portal ----------------------------------------------------------------------------------------------


def test_pi_page_shows_what_is_missing_and_records_a_filing(client, trial, pi):
    obligation = FilingObligationFactory(trial=trial, basis_on=datetime.date(2026, 3, 1))
    client.force_login(pi)
    page = client.get(reverse("ethics_portal:trial_detail", args=[trial.pk]), HTTP_ACCEPT_LANGUAGE="en")
    body = page.content.decode()
    assert str(RK.INSTITUTIONAL.label) in body and str(obligation.get_kind_display()) in body
    url = reverse("ethics_portal:filing_record", args=[trial.pk, obligation.pk])
    assert url in body
    with time_machine.travel(datetime.datetime(2026, 3, 20, 10, tzinfo=SH), tick=False):
        done = client.post(url, {"filed_on": "2026-03-20", "filing_number": "", "note": "年度报告已提交"})
    assert done.status_code == 302
    obligation.refresh_from_db()
    assert obligation.status == FilingObligation.Status.FILED and obligation.filed_by == pi
