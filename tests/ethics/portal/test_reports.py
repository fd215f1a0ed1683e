"""Filing reports and amendments, and answering a committee's requests for modification."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from ethics.models import Decision, Submission
from ethics.services import DECLARATIONS, REPORT_FIELDS, submission_return_incomplete, submission_submit
from tests.ethics.portal.conftest import decide, pdf
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import TrialFactory
from trials.models import DocumentVersion, TrialDocument
from trials.services import document_add_version

pytestmark = pytest.mark.django_db

K = Submission.Kind
S = Submission.Status

# A complete answer for every report detail, as a PI would type it.
ANSWERS = {
    "changes": "增加一个剂量组",
    "reason": "根据I期安全性数据",
    "enrolled_to_date": "12",
    "safety_summary": "未见新的安全性信号",
    "progress": "按计划入组",
    "event_date": "2026-02-03",
    "description": "3级细胞因子释放综合征",
    "causality": "很可能相关",
    "outcome": "已恢复",
    "occurred_on": "2026-01-15",
    "corrective_action": "重新培训研究护士",
    "action": "suspended",
    "subject_follow_up": "已入组受试者继续随访",
    "enrolled_total": "30",
    "completed_on": "2026-06-30",
    "results_summary": "达到主要终点",
}
REPORT_KINDS = [K.AMENDMENT, K.CONTINUING_REVIEW, K.DEVIATION, K.SUSPENSION_TERMINATION, K.FINAL_REPORT]


def report_post(kind, action, **extra):
    data = {
        "summary": f"{kind} 报告",
        "action": action,
        "upload-TOTAL_FORMS": "3",
        "upload-INITIAL_FORMS": "0",
        "upload-MIN_NUM_FORMS": "0",
        "upload-MAX_NUM_FORMS": "10",
    }
    data.update({f"detail_{key}": ANSWERS[key] for key in REPORT_FIELDS[kind]})
    data.update(extra)
    return data


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_each_report_kind_files_and_submits(pi_client, approved_trial, kind):
    url = reverse("ethics_portal:report_file", args=[approved_trial.pk, kind])
    page = pi_client.get(url).content.decode()
    for key in REPORT_FIELDS[kind]:
        assert f'name="detail_{key}"' in page
    extra = {}
    if kind == K.AMENDMENT:  # an amendment carries its revised documents
        extra = {"upload-0-kind": "protocol", "upload-0-title": "研究方案", "upload-0-file": pdf("protocol-v2.pdf")}

    response = pi_client.post(url, report_post(kind, "submit", **extra))

    submission = Submission.objects.get(trial=approved_trial, kind=kind)
    assert response.status_code == 302
    assert response["Location"] == reverse("ethics_portal:submission_detail", args=[submission.pk])
    assert submission.status == S.SUBMITTED
    assert submission.reference
    assert set(submission.details) == set(REPORT_FIELDS[kind])
    if kind == K.DEVIATION:
        assert submission.details["occurred_on"] == "2026-01-15"
    if kind == K.FINAL_REPORT:
        assert submission.details["enrolled_total"] == 30
    detail = pi_client.get(response["Location"]).content.decode()
    assert submission.reference in detail


def test_input_types_follow_the_kind_of_detail(pi_client, approved_trial):
    page = pi_client.get(reverse("ethics_portal:report_file", args=[approved_trial.pk, K.DEVIATION])).content.decode()
    assert 'type="date" name="detail_occurred_on"' in page
    assert '<textarea name="detail_description"' in page
    page = pi_client.get(
        reverse("ethics_portal:report_file", args=[approved_trial.pk, K.FINAL_REPORT])
    ).content.decode()
    assert 'type="number" name="detail_enrolled_total"' in page


def test_a_report_draft_is_saved_and_resumed_and_submit_lists_what_is_missing(pi_client, approved_trial):
    url = reverse("ethics_portal:report_file", args=[approved_trial.pk, K.DEVIATION])
    data = report_post(K.DEVIATION, "save")
    del data["detail_occurred_on"], data["detail_corrective_action"]

    response = pi_client.post(url, data)

    submission = Submission.objects.get(kind=K.DEVIATION)
    edit = reverse("ethics_portal:submission_edit", args=[submission.pk])
    assert response["Location"] == edit
    assert submission.status == S.DRAFT
    page = pi_client.get(edit).content.decode()
    assert "3级细胞因子释放综合征" in page
    missing = page[page.index('id="missing-title"') :]
    assert missing.count("<li>", 0, missing.index("</ul>")) == 2

    # Submitting while incomplete keeps the draft and says what is missing.
    response = pi_client.post(
        edit, report_post(K.DEVIATION, "submit", detail_occurred_on="", detail_corrective_action="")
    )
    assert response["Location"] == edit
    submission.refresh_from_db()
    assert submission.status == S.DRAFT

    response = pi_client.post(edit, report_post(K.DEVIATION, "submit"))
    submission.refresh_from_db()
    assert submission.status == S.SUBMITTED
    # A submitted report is no longer editable.
    assert pi_client.get(edit)["Location"] == reverse("ethics_portal:submission_detail", args=[submission.pk])


def test_reports_are_refused_before_the_committee_approved_the_study(pi_client, pi, committee):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi)
    response = pi_client.post(
        reverse("ethics_portal:report_file", args=[trial.pk, K.DEVIATION]), report_post(K.DEVIATION, "submit")
    )
    assert response.status_code == 400
    assert "error-summary" in response.content.decode()
    assert not Submission.objects.exists()


def test_unknown_report_kind_is_404(pi_client, approved_trial):
    for kind in ("initial", "modification_response", "nonsense"):
        assert pi_client.get(reverse("ethics_portal:report_file", args=[approved_trial.pk, kind])).status_code == 404


def test_an_upload_without_a_title_is_refused_and_nothing_is_saved(pi_client, approved_trial):
    url = reverse("ethics_portal:report_file", args=[approved_trial.pk, K.DEVIATION])
    response = pi_client.post(
        url, report_post(K.DEVIATION, "save", **{"upload-0-kind": "other", "upload-0-file": pdf("capa.pdf")})
    )
    assert response.status_code == 400
    assert 'href="#id_upload-0-title"' in response.content.decode()
    assert not Submission.objects.filter(kind=K.DEVIATION).exists()
    assert not DocumentVersion.objects.exists()


def test_respond_to_modifications_adds_a_new_version_and_keeps_the_old(pi_client, pi, committee):
    # A real path: the wizard's result decided by the ethics office with "approve after modification".
    trial = TrialFactory(lead_institution=pi.institution, pi=pi)
    documents = [
        document_add_version(trial=trial, actor=pi, kind=kind, title=f"{kind} 文件", uploaded_file=pdf(f"{kind}.pdf"))
        for kind in ("protocol", "icf", "ib", "cv", "insurance")
    ]
    initial = Submission.objects.create(
        trial=trial,
        committee=committee,
        kind=K.INITIAL,
        summary="首次审查",
        submitted_by=pi,
        declarations=dict.fromkeys(DECLARATIONS, True),
    )
    initial.documents.set(documents)
    submission_submit(submission=initial, actor=pi)
    decision = decide(initial, Decision.Outcome.APPROVE_AFTER_MODIFICATION, requested_modifications="请修订知情同意书")
    icf = TrialDocument.objects.get(trial=trial, kind="icf")
    old = icf.current_version

    detail = pi_client.get(reverse("ethics_portal:submission_detail", args=[initial.pk])).content.decode()
    assert reverse("ethics_portal:respond", args=[initial.pk]) in detail
    # decision_record issued the letter: it downloads from the decided submission's page.
    assert reverse("ethics_portal:letter_download", args=[initial.pk]) in detail
    download = pi_client.get(reverse("ethics_portal:letter_download", args=[initial.pk]))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert b"".join(download.streaming_content).startswith(b"%PDF")
    assert decision.letter_number in detail
    url = reverse("ethics_portal:respond", args=[initial.pk])
    page = pi_client.get(url).content.decode()
    assert "请修订知情同意书" in page
    response = pi_client.post(
        url,
        {
            "summary": "按意见修订",
            "detail_response": "第3节已按要求修订",
            "action": "submit",
            "upload-TOTAL_FORMS": "3",
            "upload-INITIAL_FORMS": "0",
            "upload-MIN_NUM_FORMS": "0",
            "upload-MAX_NUM_FORMS": "10",
            "upload-0-document": icf.pk,
            "upload-0-file": pdf("icf-v2.pdf"),
            "upload-0-version_label": "V2.0",
            "upload-0-note": "修订第3节",
        },
    )

    response_submission = Submission.objects.get(kind=K.MODIFICATION_RESPONSE)
    assert response["Location"] == reverse("ethics_portal:submission_detail", args=[response_submission.pk])
    assert response_submission.status == S.SUBMITTED
    assert response_submission.responds_to == initial
    assert response_submission.details == {"response": "第3节已按要求修订"}
    versions = list(icf.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert versions[0] == old and DocumentVersion.objects.filter(pk=old.pk).exists()
    assert list(response_submission.documents.all()) == [versions[1]]
    assert list(initial.documents.filter(document=icf)) == [old]  # the decided submission keeps what it was given

    # Answered: no second response is offered, and the respond page leads to the one filed.
    detail = pi_client.get(reverse("ethics_portal:submission_detail", args=[initial.pk])).content.decode()
    assert reverse("ethics_portal:respond", args=[initial.pk]) not in detail
    again = pi_client.get(url)
    assert again["Location"] == reverse("ethics_portal:submission_detail", args=[response_submission.pk])


def test_respond_is_refused_for_a_decision_that_asked_for_nothing(pi_client, approved_trial):
    initial = Submission.objects.get(trial=approved_trial, kind=K.INITIAL)
    response = pi_client.get(reverse("ethics_portal:respond", args=[initial.pk]))
    assert response["Location"] == reverse("ethics_portal:submission_detail", args=[initial.pk])
    assert not Submission.objects.filter(kind=K.MODIFICATION_RESPONSE).exists()


def test_letter_not_yet_generated_is_404_and_page_says_it_is_being_prepared(pi_client, approved_trial):
    initial = Submission.objects.get(trial=approved_trial, kind=K.INITIAL)
    page = pi_client.get(reverse("ethics_portal:submission_detail", args=[initial.pk])).content.decode()
    assert "The decision letter is being prepared." in page
    assert initial.decision.letter_number in page
    assert pi_client.get(reverse("ethics_portal:letter_download", args=[initial.pk])).status_code == 404


def test_a_returned_report_is_completed_and_resubmitted(pi_client, pi, approved_trial, committee):
    url = reverse("ethics_portal:report_file", args=[approved_trial.pk, K.DEVIATION])
    pi_client.post(
        url,
        report_post(
            K.DEVIATION, "submit", **{"upload-0-kind": "other", "upload-0-title": "CAPA", "upload-0-file": pdf("a.pdf")}
        ),
    )
    report = Submission.objects.get(kind=K.DEVIATION)
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=committee.institution)
    submission_return_incomplete(submission=report, actor=office, items=["请附偏离发生时的原始记录"])

    dashboard = pi_client.get(reverse("ethics_portal:dashboard")).content.decode()
    assert "请附偏离发生时的原始记录" in dashboard
    edit = reverse("ethics_portal:submission_edit", args=[report.pk])
    assert edit in dashboard
    page = pi_client.get(edit).content.decode()
    assert "请附偏离发生时的原始记录" in page
    old = report.documents.get()

    # A new version of the CAPA replaces the old one on the report; another document is added.
    response = pi_client.post(
        edit,
        report_post(
            K.DEVIATION,
            "submit",
            **{
                "upload-0-document": old.document_id,
                "upload-0-file": pdf("capa-v2.pdf"),
                "upload-1-kind": "other",
                "upload-1-title": "原始记录",
                "upload-1-file": pdf("records.pdf"),
            },
        ),
    )

    assert response["Location"] == reverse("ethics_portal:submission_detail", args=[report.pk])
    report.refresh_from_db()
    assert report.status == S.SUBMITTED
    attached = sorted((v.document.title, v.number) for v in report.documents.select_related("document"))
    assert attached == [("CAPA", 2), ("原始记录", 1)]
    assert DocumentVersion.objects.filter(pk=old.pk).exists()


def test_an_attached_document_can_be_removed_from_a_draft(pi_client, approved_trial):
    url = reverse("ethics_portal:report_file", args=[approved_trial.pk, K.AMENDMENT])
    pi_client.post(
        url,
        report_post(
            K.AMENDMENT, "save", **{"upload-0-kind": "icf", "upload-0-title": "知情同意书", "upload-0-file": pdf()}
        ),
    )
    draft = Submission.objects.get(kind=K.AMENDMENT)
    version = draft.documents.get()
    edit = reverse("ethics_portal:submission_edit", args=[draft.pk])
    pi_client.post(edit, report_post(K.AMENDMENT, "save", detach=[str(version.pk)]))
    assert not draft.documents.exists()
    assert DocumentVersion.objects.filter(pk=version.pk).exists()


def test_an_sae_is_reported_on_the_safety_page_with_its_clocks_not_as_a_bare_submission(pi_client, approved_trial):
    trial_page = pi_client.get(reverse("ethics_portal:trial_detail", args=[approved_trial.pk])).content.decode()
    safety_new = f"{reverse('ethics_portal:safety_new')}?trial={approved_trial.pk}"
    assert f'href="{safety_new}"' in trial_page
    assert reverse("ethics_portal:report_file", args=[approved_trial.pk, K.SAE]) not in trial_page

    response = pi_client.get(reverse("ethics_portal:report_file", args=[approved_trial.pk, K.SAE]))
    assert response.status_code == 302 and response["Location"] == safety_new
    form = pi_client.get(safety_new).context["form"]
    assert form.initial["site"] in {site.pk for site in approved_trial.sites.all()}
    assert not Submission.objects.filter(kind=K.SAE).exists()
