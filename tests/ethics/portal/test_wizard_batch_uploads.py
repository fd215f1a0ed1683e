"""Documents step: one refused file in a batch does not discard the valid files uploaded with it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ethics.models import Submission
from ethics.services import INITIAL_REQUIRED_DOCUMENTS
from tests.ethics.portal.conftest import pdf
from tests.ethics.portal.test_wizard import TRIAL_DATA, documents_post, step_url
from trials.models import DocumentVersion, Trial

pytestmark = pytest.mark.django_db


def renamed_text(name="protocol.pdf"):
    return SimpleUploadedFile(name, b"this is a Word file renamed to .pdf", content_type="application/pdf")


@pytest.fixture
def trial(pi_client, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)
    return Trial.objects.get()


def test_valid_files_are_kept_when_one_of_the_batch_is_refused(pi_client, trial):
    data = documents_post(**{"protocol-file": renamed_text(), "other-title": "招募广告", "other-file": pdf("ad.pdf")})

    response = pi_client.post(step_url(trial, 3), {**data, "action": "next"})

    assert response.status_code == 400
    page = response.content.decode()
    # The refusal names the file and says why, next to its slot and in the summary at the top.
    assert 'href="#id_protocol-file"' in page
    assert "“protocol.pdf” was refused: The content of “protocol.pdf” is not a .pdf file." in page
    # The other five are stored, attached to the application and listed as kept.
    stored = DocumentVersion.objects.filter(document__trial=trial)
    assert sorted(stored.values_list("document__kind", flat=True)) == sorted(
        [k for k in INITIAL_REQUIRED_DOCUMENTS if k != "protocol"] + ["other"]
    )
    submission = Submission.objects.get(trial=trial)
    assert set(submission.documents.all()) == set(stored)
    kept = page[page.index('id="kept"') : page.index("</section>", page.index('id="kept"'))]
    assert "5 files were kept" in kept
    for version in stored:
        assert version.original_name in kept
    assert "protocol.pdf" not in kept

    # Only the refused file needs choosing again.
    response = pi_client.post(
        step_url(trial, 3), {"protocol-title": "protocol 文件", "protocol-file": pdf("protocol.pdf"), "action": "next"}
    )
    assert response["Location"] == step_url(trial, 4)
    kinds = set(submission.documents.values_list("document__kind", flat=True))
    assert kinds == {*INITIAL_REQUIRED_DOCUMENTS, "other"}


def test_a_batch_with_only_a_refused_file_stores_nothing(pi_client, trial):
    response = pi_client.post(step_url(trial, 3), {"protocol-title": "方案", "protocol-file": renamed_text()})
    assert response.status_code == 400
    assert 'id="kept"' not in response.content.decode()
    assert not DocumentVersion.objects.exists()


def test_a_file_without_a_title_is_refused_by_name(pi_client, trial):
    response = pi_client.post(step_url(trial, 3), {"other-title": "", "other-file": pdf("letter.pdf")})
    assert response.status_code == 400
    assert "Please give “letter.pdf” a title." in response.content.decode()
    assert not DocumentVersion.objects.exists()


def test_the_refusal_is_translated(pi_client, trial):
    pi_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    data = documents_post(**{"protocol-file": renamed_text()})
    page = pi_client.post(step_url(trial, 3), data).content.decode()
    assert "“protocol.pdf”未被接受：" in page
    assert "已保留 4 个文件" in page
