"""The PI reports enrolment in the portal: the trial's enrolment by site, a site's report form, ledger and
subjects, and reversing an entry with a reason. Refusals show the service's message and write nothing."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory, active_site, approve_site, days_ago
from trials import enrolment
from trials.models import EnrolmentEntry, SiteEnrolment

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind


@pytest.fixture
def site(pi):
    """The lead site of the PI's active trial, approved and valid."""
    return active_site(lead_institution=pi.institution, pi=pi)


@pytest.fixture
def participating(site):
    """Another hospital's site of the PI's trial: the PI sees it but its own site PI reports."""
    return approve_site(TrialSiteFactory(trial=site.trial), days_ago(150), days_ago(-100))


def page_url(site):
    return reverse("ethics_portal:site_enrolment", args=[site.pk])


def reverse_url(entry):
    return reverse("ethics_portal:enrolment_entry_reverse", args=[entry.pk])


def form(**overrides):
    return {"kind": K.ENROLLED, "occurred_on": days_ago(3).isoformat(), "count": "1", **overrides}


def record(site, kind=K.ENROLLED, days=5, **kwargs):
    return enrolment.enrolment_report(site=site, actor=site.site_pi, kind=kind, occurred_on=days_ago(days), **kwargs)


# --- finding it ---------------------------------------------------------------------------------------------------


def test_the_trial_page_shows_enrolment_per_site_with_the_right_action(pi_client, site, participating):
    record(site, count=3)
    page = pi_client.get(reverse("ethics_portal:trial_detail", args=[site.trial_id])).content.decode()
    section = page[page.index('id="enrolment"') :]
    assert page_url(site) in section and page_url(participating) in section
    assert "Report enrolment" in section and "View ledger" in section
    assert f"3 ({round(300 / site.site_target)}%)" in section


def test_the_dashboard_shows_each_trials_enrolment(pi_client, site):
    record(site, count=2)
    page = pi_client.get(reverse("ethics_portal:dashboard")).content.decode()
    assert f"2 of {site.site_target}" in page
    assert reverse("ethics_portal:trial_detail", args=[site.trial_id]) + "#enrolment" in page


def test_a_draft_trial_has_no_enrolment_section(pi_client, pi):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi)
    page = pi_client.get(reverse("ethics_portal:trial_detail", args=[trial.pk])).content.decode()
    assert 'id="enrolment"' not in page


# --- reporting ----------------------------------------------------------------------------------------------------


def test_the_site_page_shows_counts_form_ledger_and_subjects(pi_client, site):
    record(site, K.SCREENED, days=9, subject_code="RK-001")
    record(site, days=8, subject_code="RK-001")
    response = pi_client.get(page_url(site))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="kind"' in content and 'name="subject_code"' in content
    assert response.context["progress"].enrolled == 1
    assert [state.value for _subject, state in response.context["subjects"]] == ["on_study"]
    assert content.index("Enrolled</td>") < content.index("Screened</td>")  # newest first


def test_a_good_report_is_recorded_and_the_pi_returns_to_the_page(pi_client, pi, site):
    response = pi_client.post(page_url(site), form(subject_code="RK-009", note="门诊入组"), follow=True)
    assert response.redirect_chain[-1][0] == page_url(site)
    entry = EnrolmentEntry.objects.get()
    assert (entry.site, entry.subject.code, entry.note, entry.reported_by) == (site, "RK-009", "门诊入组", pi)
    assert "Recorded: Enrolled of subject RK-009" in response.content.decode()
    assert SiteEnrolment.objects.get(site=site).enrolled == 1


def test_a_report_without_ethics_approval_shows_the_services_message_and_writes_nothing(pi_client, site):
    site.ethics_approved_on = None
    site.save(update_fields=["ethics_approved_on"])
    response = pi_client.post(page_url(site), form())
    assert response.status_code == 400
    assert "no ethics approval" in response.content.decode()
    assert 'class="error-summary"' in response.content.decode()
    assert not EnrolmentEntry.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"occurred_on": days_ago(-1).isoformat()}, "occurred_on"),
        ({"subject_code": "RK-001", "count": "2"}, "count"),
        ({"subject_code": "110101199003071234"}, "subject_code"),
        ({"kind": ""}, "kind"),
        ({"count": "0"}, "count"),
    ],
)
def test_refused_or_invalid_reports_show_the_error_on_the_field(pi_client, site, overrides, field):
    response = pi_client.post(page_url(site), form(**overrides))
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not EnrolmentEntry.objects.exists()


def test_a_subject_code_enrolled_twice_is_refused(pi_client, site):
    record(site, subject_code="RK-001")
    response = pi_client.post(page_url(site), form(subject_code="RK-001"))
    assert response.status_code == 400
    assert "already enrolled" in response.context["form"].errors["subject_code"][0]
    assert EnrolmentEntry.objects.count() == 1


# --- permissions --------------------------------------------------------------------------------------------------


def test_the_trial_pi_reads_a_participating_sites_ledger_but_cannot_report_there(pi_client, participating):
    record(participating)
    response = pi_client.get(page_url(participating))
    assert response.status_code == 200
    assert response.context["can_report"] is False
    assert 'name="kind"' not in response.content.decode()
    assert reverse_url(EnrolmentEntry.objects.get()) not in response.content.decode()
    refused = pi_client.post(page_url(participating), form())
    assert refused.status_code == 403
    assert "You may not report enrolment for this site." in refused.content.decode()
    assert EnrolmentEntry.objects.count() == 1


def test_another_pis_site_is_not_found(client, site):
    client.force_login(UserFactory(role=Role.PI, institution=site.institution))
    entry = record(site)
    assert client.get(page_url(site)).status_code == 404
    assert client.post(page_url(site), form()).status_code == 404
    assert client.post(reverse_url(entry), {"reason": "x"}).status_code == 404
    assert EnrolmentEntry.objects.count() == 1


def test_other_roles_get_the_portals_403_page_and_visitors_the_login(client, site):
    entry = record(site)
    for url in (page_url(site), reverse_url(entry)):
        assert client.get(url)["Location"].startswith(reverse("ethics_portal:login"))
    client.force_login(UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution))
    assert client.get(page_url(site)).status_code == 403
    assert client.post(page_url(site), form()).status_code == 403
    assert EnrolmentEntry.objects.count() == 1


# --- reversing ------------------------------------------------------------------------------------------------------


def test_reversing_an_entry_asks_for_a_reason_and_shows_the_correction_in_the_ledger(pi_client, pi, site):
    entry = record(site, count=2)
    page = pi_client.get(page_url(site)).content.decode()
    assert reverse_url(entry) in page
    assert pi_client.get(reverse_url(entry)).status_code == 200
    blank = pi_client.post(reverse_url(entry), {"reason": ""})
    assert blank.status_code == 400 and blank.context["form"].errors["reason"]
    response = pi_client.post(reverse_url(entry), {"reason": "重复录入"})
    assert response["Location"] == page_url(site)
    correction = EnrolmentEntry.objects.get(reverses=entry)
    assert (correction.reason, correction.reported_by) == ("重复录入", pi)
    assert SiteEnrolment.objects.get(site=site).enrolled == 0
    ledger = pi_client.get(page_url(site)).content.decode()
    assert f"Correction of entry #{entry.pk}" in ledger and f"Reversed by entry #{correction.pk}" in ledger
    assert "重复录入" in ledger
    assert reverse_url(entry) not in ledger and reverse_url(correction) not in ledger


def test_a_reversed_entry_or_a_correction_cannot_be_reversed(pi_client, pi, site):
    entry = record(site)
    correction = enrolment.enrolment_reverse(entry=entry, actor=pi, reason="录入错误")
    assert "already been reversed" in pi_client.get(reverse_url(entry)).content.decode()
    assert "cannot be reversed" in pi_client.get(reverse_url(correction)).content.decode()
    again = pi_client.post(reverse_url(entry), {"reason": "再次"})
    assert again.status_code == 400
    assert "already been reversed" in again.content.decode()
    assert EnrolmentEntry.objects.count() == 2


def test_a_subjects_enrolment_is_reversed_only_after_their_exit(pi_client, site):
    enrolled = record(site, days=9, subject_code="RK-001")
    record(site, K.WITHDRAWN, days=3, subject_code="RK-001")
    response = pi_client.post(reverse_url(enrolled), {"reason": "未入组"})
    assert response.status_code == 400
    assert "Reverse the later entries for subject RK-001 first." in response.content.decode()
    assert not EnrolmentEntry.objects.filter(reverses=enrolled).exists()


def test_the_trial_pi_cannot_reverse_at_a_participating_site(pi_client, participating):
    entry = record(participating)
    assert "You may not report enrolment" in pi_client.get(reverse_url(entry)).content.decode()
    assert pi_client.post(reverse_url(entry), {"reason": "无权"}).status_code == 403
    assert not EnrolmentEntry.objects.filter(reverses=entry).exists()


def test_site_page_queries_do_not_grow_with_rows(pi_client, pi, site, django_assert_max_num_queries):
    counts = []
    for size in (3, 12):
        while EnrolmentEntry.objects.count() < size:
            n = EnrolmentEntry.objects.count()
            entry = record(site, subject_code=f"RK-{n:03d}")
            if n % 4 == 0:
                enrolment.enrolment_reverse(entry=entry, actor=pi, reason="编码错误")
        with django_assert_max_num_queries(16) as captured:
            assert pi_client.get(page_url(site)).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
