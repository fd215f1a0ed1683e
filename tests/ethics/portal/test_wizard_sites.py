"""Sites step: per-site targets with a flagged sum, and each participating site's PI."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from cgtclinic.errors import DomainError
from cgtclinic.models import User
from cgtclinic.roles import Role
from ethics.models import Submission
from ethics.services import DECLARATIONS, missing_items, submission_return_incomplete, submission_submit
from tests.ethics.portal.test_wizard import TRIAL_DATA, documents_post, step_url
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from trials import services
from trials.models import Trial, TrialSite

pytestmark = pytest.mark.django_db


@pytest.fixture
def trial(pi_client, committee):
    pi_client.post(reverse("ethics_portal:project_new"), TRIAL_DATA)  # target 24, the lead site gets 24
    return Trial.objects.get()


@pytest.fixture
def partner(pi):
    return InstitutionFactory(region=pi.institution.region)


@pytest.fixture
def site(trial, partner, pi):
    return services.site_add(trial=trial, actor=pi, institution=partner, site_target=6)


def lead_of(trial):
    return trial.sites.get(role=TrialSite.SiteRole.LEAD)


def complete(pi_client, trial):
    """Documents, summary and declarations: everything but the sites."""
    pi_client.post(step_url(trial, 3), documents_post())
    pi_client.post(step_url(trial, 4), {"summary": "概要", **{f"declare_{key}": "on" for key in DECLARATIONS}})


# --- targets -------------------------------------------------------------------------------------------------------


def test_a_new_site_has_no_default_target(pi_client, trial, partner):
    page = pi_client.get(step_url(trial, 2)).content.decode()
    assert 'name="site_target" min="0" inputmode="numeric" required id="id_site_target"' in page
    response = pi_client.post(step_url(trial, 2), {"institution": partner.name_zh, "site_target": "", "action": "add"})
    assert response.status_code == 400
    assert trial.sites.count() == 1


def test_a_sum_that_differs_from_the_trial_target_is_flagged_on_the_sites_step(pi_client, trial, site):
    page = pi_client.get(step_url(trial, 2)).content.decode()
    assert 'id="targets-warning"' in page
    assert "The site targets add up to 30, but the trial target is 24." in page

    lead = lead_of(trial)
    response = pi_client.post(
        step_url(trial, 2), {f"target_{lead.pk}": "20", f"target_{site.pk}": "6", "action": "save"}
    )
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.site_target == 20
    page = pi_client.get(step_url(trial, 2)).content.decode()
    assert "The site targets add up to 26, but the trial target is 24." in page  # said again after saving

    pi_client.post(step_url(trial, 2), {f"target_{lead.pk}": "18", f"target_{site.pk}": "6", "action": "save"})
    page = pi_client.get(step_url(trial, 2)).content.decode()
    assert 'id="targets-warning"' not in page
    assert "Sum of the site targets: 24. Trial target: 24." in page


def test_a_negative_target_is_refused_and_nothing_changes(pi_client, trial, site):
    lead = lead_of(trial)
    response = pi_client.post(
        step_url(trial, 2), {f"target_{lead.pk}": "-1", f"target_{site.pk}": "3", "action": "save"}
    )
    assert response.status_code == 400
    site.refresh_from_db()
    assert site.site_target == 6


def test_review_flags_the_sum_and_submission_needs_a_confirmation(pi_client, trial, site):
    services.site_set_pi(site=site, actor=trial.pi, full_name="李主任")
    complete(pi_client, trial)
    submission = Submission.objects.get(trial=trial)

    page = pi_client.get(step_url(trial, 5)).content.decode()
    assert "The site targets add up to 30, but the trial target is 24." in page
    assert 'name="confirm_site_targets"' in page

    response = pi_client.post(step_url(trial, 5), {"action": "submit"})
    assert response.status_code == 400
    assert "Correct the targets on the Sites step, or confirm that they are intended." in response.content.decode()
    submission.refresh_from_db()
    assert submission.status == Submission.Status.DRAFT

    response = pi_client.post(step_url(trial, 5), {"action": "submit", "confirm_site_targets": "on"})
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.status == Submission.Status.SUBMITTED


def test_matching_targets_need_no_confirmation(pi_client, trial, site):
    services.site_set_pi(site=site, actor=trial.pi, full_name="李主任")
    services.site_update(site=lead_of(trial), actor=trial.pi, site_target=18)
    complete(pi_client, trial)
    page = pi_client.get(step_url(trial, 5)).content.decode()
    assert 'name="confirm_site_targets"' not in page
    assert pi_client.post(step_url(trial, 5), {"action": "submit"}).status_code == 302


# --- site PIs ------------------------------------------------------------------------------------------------------


def test_the_site_pi_is_chosen_among_the_pis_of_the_sites_institution(pi_client, trial, site, partner):
    theirs = UserFactory(role=Role.PI, institution=partner, full_name="陈教授", email="chen@example.org")
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=partner, full_name="科研办小周")
    elsewhere = UserFactory(role=Role.PI, full_name="别院医生")

    page = pi_client.get(step_url(trial, 2)).content.decode()
    form = page[page.index(f'id="site-pi-{site.pk}"') :]
    form = form[: form.index("</form>")]
    assert f'<option value="{theirs.pk}">陈教授</option>' in form
    assert "chen@example.org" not in page  # names only
    assert office.full_name not in form and elsewhere.full_name not in form

    response = pi_client.post(
        step_url(trial, 2), {"site": site.pk, "action": "site_pi", f"pi{site.pk}-site_pi": theirs.pk}
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.site_pi == theirs


def test_a_site_pi_without_an_account_is_put_on_record(pi_client, trial, site, partner):
    response = pi_client.post(
        step_url(trial, 2),
        {
            "site": site.pk,
            "action": "site_pi",
            f"pi{site.pk}-full_name": " 李主任 ",
            f"pi{site.pk}-professional_title": "主任医师",
            f"pi{site.pk}-phone": "020-12345678",
            f"pi{site.pk}-email": "li@example.org",
        },
    )
    assert response.status_code == 302
    site.refresh_from_db()
    person = site.site_pi
    assert (person.full_name, person.professional_title, person.phone, person.email) == (
        "李主任",
        "主任医师",
        "020-12345678",
        "li@example.org",
    )
    assert (person.role, person.institution) == (Role.PI, partner)
    assert not person.has_usable_password()
    assert "李主任" in pi_client.get(step_url(trial, 2)).content.decode()


def test_a_site_pi_form_must_name_someone_and_not_two(pi_client, trial, site, partner):
    theirs = UserFactory(role=Role.PI, institution=partner)
    response = pi_client.post(step_url(trial, 2), {"site": site.pk, "action": "site_pi"})
    assert response.status_code == 400
    assert "Choose the site PI from the list or enter their name." in response.content.decode()
    response = pi_client.post(
        step_url(trial, 2),
        {"site": site.pk, "action": "site_pi", f"pi{site.pk}-site_pi": theirs.pk, f"pi{site.pk}-full_name": "李"},
    )
    assert response.status_code == 400
    site.refresh_from_db()
    assert site.site_pi is None


def test_a_name_already_on_record_is_chosen_not_duplicated(pi, trial, site, partner):
    UserFactory(role=Role.PI, institution=partner, full_name="陈教授")
    with pytest.raises(DomainError, match="already on record"):
        services.site_set_pi(site=site, actor=pi, full_name="陈教授")
    assert User.objects.filter(full_name="陈教授").count() == 1


def test_a_pi_of_another_institution_cannot_be_the_site_pi(pi_client, pi, trial, site):
    stranger = UserFactory(role=Role.PI, full_name="别院医生")
    response = pi_client.post(
        step_url(trial, 2), {"site": site.pk, "action": "site_pi", f"pi{site.pk}-site_pi": stranger.pk}
    )
    assert response.status_code == 400
    # Not even the PI's own account: the site PI belongs to the site's institution.
    with pytest.raises(DomainError, match="must be a PI of the site's institution"):
        services.site_set_pi(site=site, actor=pi, person=stranger)
    with pytest.raises(DomainError, match="must be a PI of the site's institution"):
        services.site_set_pi(site=site, actor=pi, person=pi)
    site.refresh_from_db()
    assert site.site_pi is None


def test_the_lead_sites_pi_stays_the_trials_pi(pi, trial):
    colleague = UserFactory(role=Role.PI, institution=pi.institution)
    with pytest.raises(DomainError, match="lead site's PI is the trial's PI"):
        services.site_set_pi(site=lead_of(trial), actor=pi, person=colleague)
    assert lead_of(trial).site_pi == pi


def test_another_pi_cannot_edit_my_sites(client, trial, site, other_pi):
    client.force_login(other_pi)
    response = client.post(step_url(trial, 2), {"site": site.pk, "action": "site_pi", f"pi{site.pk}-full_name": "X"})
    assert response.status_code == 404
    with pytest.raises(DomainError) as refused:
        services.site_set_pi(site=site, actor=other_pi, full_name="X")
    assert refused.value.code == "permission_denied"
    with pytest.raises(DomainError) as refused:
        services.site_pi_candidates(sites=[site], actor=other_pi)
    assert refused.value.code == "permission_denied"
    site.refresh_from_db()
    assert site.site_pi is None
    assert not User.objects.filter(full_name="X").exists()


def test_a_site_without_a_site_pi_is_missing_and_blocks_submission(pi_client, pi, trial, site, partner):
    services.site_update(site=lead_of(trial), actor=pi, site_target=18)
    complete(pi_client, trial)
    submission = Submission.objects.get(trial=trial)
    expected = f"Site PI of {partner}."

    assert missing_items(submission) == [expected]
    page = pi_client.get(step_url(trial, 5)).content.decode()
    assert escape(expected) in page
    review = page[page.index('id="review-sites"') :]
    assert "Missing" in review[: review.index("</table>")]
    with pytest.raises(DomainError) as refused:
        submission_submit(submission=submission, actor=pi)
    assert refused.value.code == "incomplete"
    assert pi_client.post(step_url(trial, 5), {"action": "submit"}).status_code == 400

    services.site_set_pi(site=site, actor=pi, full_name="李主任")
    assert missing_items(submission) == []
    assert pi_client.post(step_url(trial, 5), {"action": "submit"}).status_code == 302


def test_site_pi_refusals_are_translated(pi_client, trial, site):
    pi_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    response = pi_client.post(step_url(trial, 2), {"site": site.pk, "action": "site_pi"})
    assert (
        "请从列表中选择分中心PI，或填写其姓名。" in response.content.decode()
        or "请填写分中心PI的姓名。" in response.content.decode()
    )


def test_the_sites_step_stays_read_only_after_submission(pi_client, pi, trial, site):
    services.site_set_pi(site=site, actor=pi, full_name="李主任")
    services.site_update(site=lead_of(trial), actor=pi, site_target=18)
    complete(pi_client, trial)
    pi_client.post(step_url(trial, 5), {"action": "submit"})
    response = pi_client.post(step_url(trial, 2), {"site": site.pk, "action": "site_pi", f"pi{site.pk}-full_name": "Y"})
    # The submitted application's wizard sends the PI to the read-only page; nothing changes.
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.site_pi.full_name == "李主任"


def test_a_returned_application_shows_the_sites_read_only(pi_client, pi, trial, site, committee):
    services.site_set_pi(site=site, actor=pi, full_name="李主任")
    complete(pi_client, trial)
    pi_client.post(step_url(trial, 5), {"action": "submit", "confirm_site_targets": "on"})
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=committee.institution)
    submission_return_incomplete(submission=Submission.objects.get(trial=trial), actor=office, items=["补充材料"])

    response = pi_client.get(step_url(trial, 2))
    page = response.content.decode()
    assert response.status_code == 200
    assert "李主任" in page
    assert 'name="target_' not in page and 'value="site_pi"' not in page
    response = pi_client.post(step_url(trial, 2), {f"target_{site.pk}": "1", "action": "next"})
    assert response["Location"] == step_url(trial, 3)
    site.refresh_from_db()
    assert site.site_target == 6


def test_the_sites_step_reads_a_constant_number_of_queries(pi_client, pi, trial, site, django_assert_max_num_queries):
    UserFactory(role=Role.PI, institution=site.institution)
    pi_client.get(step_url(trial, 2))
    with django_assert_max_num_queries(14) as one_site:
        assert pi_client.get(step_url(trial, 2)).status_code == 200
    for _ in range(4):
        other = services.site_add(trial=trial, actor=pi, institution=InstitutionFactory(), site_target=1)
        UserFactory(role=Role.PI, institution=other.institution)
    with django_assert_max_num_queries(len(one_site.captured_queries)):
        assert pi_client.get(step_url(trial, 2)).status_code == 200
