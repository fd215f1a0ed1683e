"""Who may use the portal: PIs only, each seeing only their own trials, submissions, documents and letters."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from cgtclinic.roles import Role
from ethics.models import Decision, Submission
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import DecisionFactory, SubmissionFactory
from tests.factories.trials import DocumentVersionFactory, TrialFactory

pytestmark = pytest.mark.django_db


def portal_urls(trial, submission, version):
    return [
        reverse("ethics_portal:dashboard"),
        reverse("ethics_portal:inbox"),
        reverse("ethics_portal:project_new"),
        reverse("ethics_portal:project_edit", args=[trial.pk, 1]),
        reverse("ethics_portal:trial_detail", args=[trial.pk]),
        reverse("ethics_portal:report_file", args=[trial.pk, "deviation"]),
        reverse("ethics_portal:submission_detail", args=[submission.pk]),
        reverse("ethics_portal:submission_edit", args=[submission.pk]),
        reverse("ethics_portal:respond", args=[submission.pk]),
        reverse("ethics_portal:letter_download", args=[submission.pk]),
        reverse("ethics_portal:document_download", args=[version.pk]),
    ]


@pytest.fixture
def own(pi):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi)
    submission = SubmissionFactory(trial=trial)
    version = DocumentVersionFactory(document__trial=trial, uploaded_by=pi)
    return trial, submission, version


def test_login_page_logs_a_pi_in_and_out(client, pi):
    page = client.get(reverse("ethics_portal:login"))
    assert page.status_code == 200
    assert 'name="viewport"' in page.content.decode()
    response = client.post(
        reverse("ethics_portal:login"), {"username": pi.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("ethics_portal:dashboard")
    assert client.get(reverse("ethics_portal:dashboard")).status_code == 200
    response = client.post(reverse("ethics_portal:logout"))
    assert response["Location"] == reverse("ethics_portal:login")
    assert client.get(reverse("ethics_portal:dashboard")).status_code == 302


def test_wrong_password_shows_an_error_summary(client, pi):
    response = client.post(reverse("ethics_portal:login"), {"username": pi.username, "password": "nope"})
    assert response.status_code == 200
    assert 'class="error-summary"' in response.content.decode()


def test_login_keeps_the_page_asked_for(client, pi, own):
    trial = own[0]
    target = reverse("ethics_portal:trial_detail", args=[trial.pk])
    response = client.post(
        f"{reverse('ethics_portal:login')}?next={target}",
        {"username": pi.username, "password": "correct-horse-battery", "next": target},
    )
    assert response["Location"] == target


def test_anonymous_visitors_are_sent_to_the_login_page(client, own):
    login = reverse("ethics_portal:login")
    for url in portal_urls(*own):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{login}?next="), url


@pytest.mark.parametrize("role", [Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE, Role.REGULATOR, Role.SYSTEM_ADMIN])
def test_other_roles_get_a_friendly_403(client, institution, own, role):
    if role == Role.REGULATOR:
        user = UserFactory(role=role, region=institution.region)
    elif role == Role.SYSTEM_ADMIN:
        user = UserFactory(role=role)
    else:
        user = UserFactory(role=role, institution=institution)
    client.force_login(user)
    inbox = reverse("ethics_portal:inbox")
    for url in portal_urls(*own):
        response = client.get(url)
        if url == inbox and user.is_staff:
            # Office staff read their messages in the admin (tests/admin/test_admin_home.py).
            assert response.status_code == 302 and response["Location"] == reverse(
                "admin:cgtclinic_notification_changelist"
            )
            continue
        assert response.status_code == 403, url
        assert "ethics/portal/403.html" in [t.name for t in response.templates], url
    page = client.get(reverse("ethics_portal:dashboard")).content.decode()
    if user.is_staff:
        assert reverse("admin:index") in page


def test_a_pi_never_sees_another_pis_trials_submissions_or_letters(client, other_pi, own, pi):
    trial, submission, version = own
    submission.status = Submission.Status.DECIDED
    submission.save()
    decision = DecisionFactory(submission=submission, outcome=Decision.Outcome.MODIFY_AND_RESUBMIT)
    decision.letter_file.save("letter.pdf", ContentFile(b"%PDF-1.4 letter"), save=True)

    client.force_login(other_pi)
    for url in portal_urls(trial, submission, version):
        if url in (reverse("ethics_portal:dashboard"), reverse("ethics_portal:inbox")):
            continue
        if url == reverse("ethics_portal:project_new"):
            continue
        assert client.get(url).status_code == 404, url
    # Nor by posting to it.
    assert client.post(reverse("ethics_portal:project_edit", args=[trial.pk, 5])).status_code == 404
    assert client.post(reverse("ethics_portal:respond", args=[submission.pk]), {"action": "submit"}).status_code == 404
    page = client.get(reverse("ethics_portal:dashboard")).content.decode()
    assert trial.protocol_number not in page
    assert not Submission.objects.filter(submitted_by=other_pi).exists()

    # The owner does get the letter, privately.
    client.force_login(pi)
    response = client.get(reverse("ethics_portal:letter_download", args=[submission.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content).startswith(b"%PDF")


def test_a_site_pi_sees_the_trial_but_cannot_edit_the_leads_draft(client, own, institution):
    from tests.factories.trials import TrialSiteFactory

    trial = own[0]
    site = TrialSiteFactory(trial=trial)
    client.force_login(site.site_pi)
    assert client.get(reverse("ethics_portal:trial_detail", args=[trial.pk])).status_code == 200
    assert client.get(reverse("ethics_portal:project_edit", args=[trial.pk, 1])).status_code == 404


def test_pages_are_chinese_by_default_and_english_on_request(pi_client):
    pi_client.defaults.pop("HTTP_ACCEPT_LANGUAGE", None)  # a browser that states no preference
    page = pi_client.get(reverse("ethics_portal:dashboard"))
    assert '<html lang="zh-hans">' in page.content.decode()
    assert "我的" in page.content.decode()
    assert f'action="{reverse("set_language")}"' in page.content.decode()
    response = pi_client.post(reverse("set_language"), {"language": "en", "next": reverse("ethics_portal:dashboard")})
    assert response.status_code == 302
    page = pi_client.get(reverse("ethics_portal:dashboard"))
    assert '<html lang="en">' in page.content.decode()
    assert "My trials and submissions" in page.content.decode()
