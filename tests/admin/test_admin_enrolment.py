"""The enrolment ledger in the admin: who reaches which page, reporting and reversing through the services, no
change or delete ever, targets against actuals per trial and per site, subject codes with their state."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.trials import TrialSiteFactory, active_site, approve_site, days_ago
from trials import enrolment
from trials.models import EnrolmentEntry, SiteEnrolment

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind
ALLOW, DENY, HIDDEN = "allow", "deny", "hidden"


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def world(db):
    hospital_a = InstitutionFactory(region=RegionFactory(code="a"))
    hospital_b = InstitutionFactory(region=RegionFactory(code="b"))
    site_a, site_b = active_site(lead_institution=hospital_a), active_site(lead_institution=hospital_b)
    entry_a = enrolment.enrolment_report(
        site=site_a, actor=site_a.site_pi, kind=K.ENROLLED, occurred_on=days_ago(5), subject_code="A-001"
    )
    entry_b = enrolment.enrolment_report(
        site=site_b, actor=site_b.site_pi, kind=K.ENROLLED, occurred_on=days_ago(5), subject_code="B-001"
    )
    return {
        "site_a": site_a,
        "site_b": site_b,
        "entry_a": entry_a,
        "entry_b": entry_b,
        "users": {
            "anonymous": None,
            "research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital_a),
            "ethics_office": UserFactory(role=Role.ETHICS_OFFICE, institution=hospital_a),
            "pi": site_a.site_pi,
            "regulator": UserFactory(role=Role.REGULATOR, region=hospital_a.region),
            "system_admin": UserFactory(role=Role.SYSTEM_ADMIN),
        },
    }


PAGES = {
    "entry list": ("admin:trials_enrolmententry_changelist", None),
    "report form": ("admin:trials_enrolmententry_add", None),
    "own entry": ("admin:trials_enrolmententry_change", "entry_a"),
    "other hospital's entry": ("admin:trials_enrolmententry_change", "entry_b"),
    "own entry history": ("admin:trials_enrolmententry_history", "entry_a"),
    "other hospital's entry history": ("admin:trials_enrolmententry_history", "entry_b"),
    "reverse own entry": ("admin:trials_enrolmententry_reverse", "entry_a"),
    "reverse other hospital's entry": ("admin:trials_enrolmententry_reverse", "entry_b"),
    "delete own entry": ("admin:trials_enrolmententry_delete", "entry_a"),
    "targets against actuals": ("admin:trials_siteenrolment_changelist", None),
    "subject codes": ("admin:trials_enrolmentsubject_changelist", None),
}
NO_ADMIN = dict.fromkeys(PAGES, DENY)
EXPECTED = {
    "anonymous": NO_ADMIN,
    "pi": NO_ADMIN,
    "regulator": NO_ADMIN,
    "research_office": {
        **dict.fromkeys(PAGES, ALLOW),
        "other hospital's entry": HIDDEN,
        "other hospital's entry history": HIDDEN,
        "reverse other hospital's entry": HIDDEN,
        "delete own entry": DENY,
    },
    "ethics_office": {
        **dict.fromkeys(PAGES, ALLOW),
        "report form": DENY,
        "other hospital's entry": HIDDEN,
        "other hospital's entry history": HIDDEN,
        "reverse own entry": DENY,
        "reverse other hospital's entry": HIDDEN,
        "delete own entry": DENY,
    },
    "system_admin": {**dict.fromkeys(PAGES, ALLOW), "delete own entry": DENY},
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_admin_access(client, world, role):
    """Every page for one role (one world per role keeps this matrix quick)."""
    user = world["users"][role]
    if user is not None:
        client.force_login(user)
    for page, (name, key) in PAGES.items():
        response = client.get(reverse(name, args=[world[key].pk] if key else []))
        expected = EXPECTED[role][page]
        if expected == ALLOW:
            assert response.status_code == 200, (role, page, response.status_code)
        elif expected == DENY:
            assert response.status_code in (302, 403), (role, page, response.status_code)
            if response.status_code == 302:
                assert reverse("admin:login") in response["Location"], (role, page)
        else:
            assert response.status_code in (302, 404), (role, page, response.status_code)
            if response.status_code == 302:
                assert reverse("admin:login") not in response["Location"], (role, page)
            assert world["site_b"].trial.protocol_number.encode() not in response.content, (role, page)


def test_lists_show_only_visible_rows(client, world):
    client.force_login(world["users"]["research_office"])
    for name in ("admin:trials_enrolmententry_changelist", "admin:trials_siteenrolment_changelist"):
        content = client.get(reverse(name)).content.decode()
        assert world["site_a"].trial.protocol_number in content
        assert world["site_b"].trial.protocol_number not in content
    subjects = client.get(reverse("admin:trials_enrolmentsubject_changelist")).content.decode()
    assert "A-001" in subjects and "B-001" not in subjects


# --- reporting ----------------------------------------------------------------------------------------------------


def report_form(site, **overrides):
    return {"site": site.pk, "kind": K.ENROLLED, "occurred_on": days_ago(3).isoformat(), "count": "2", **overrides}


def test_the_research_office_reports_through_the_service(client, world):
    office = world["users"]["research_office"]
    client.force_login(office)
    response = client.post(reverse("admin:trials_enrolmententry_add"), report_form(world["site_a"], note="门诊筛选"))
    assert response.status_code == 302
    entry = EnrolmentEntry.objects.latest("id")
    assert (entry.site, entry.count, entry.reported_by, entry.note) == (world["site_a"], 2, office, "门诊筛选")
    assert SiteEnrolment.objects.get(site=world["site_a"]).enrolled == 3


def test_the_report_form_offers_only_the_sites_the_office_may_report_for(client, world):
    participating = TrialSiteFactory(trial=world["site_a"].trial)
    client.force_login(world["users"]["research_office"])
    form = client.get(reverse("admin:trials_enrolmententry_add")).context["form"]
    assert list(form.fields["site"].queryset) == [world["site_a"]]
    response = client.post(reverse("admin:trials_enrolmententry_add"), report_form(participating))
    assert response.status_code == 200
    assert response.context["form"].errors["site"]
    assert not EnrolmentEntry.objects.filter(site=participating).exists()


def test_a_refused_report_shows_the_services_message_and_writes_nothing(client, world):
    site = world["site_a"]
    site.ethics_approved_on = None
    site.save(update_fields=["ethics_approved_on"])
    client.force_login(world["users"]["research_office"])
    response = client.post(reverse("admin:trials_enrolmententry_add"), report_form(site))
    assert response.status_code == 200
    assert "no ethics approval" in " ".join(response.context["form"].non_field_errors())
    future = client.post(reverse("admin:trials_enrolmententry_add"), report_form(site, occurred_on=days_ago(-2)))
    assert future.context["form"].errors["occurred_on"]
    assert EnrolmentEntry.objects.count() == 2


def test_the_ethics_office_cannot_report(client, world):
    client.force_login(world["users"]["ethics_office"])
    response = client.post(reverse("admin:trials_enrolmententry_add"), report_form(world["site_a"]))
    assert response.status_code == 403
    assert EnrolmentEntry.objects.count() == 2


# --- never changed, never deleted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["research_office", "system_admin"])
def test_entries_are_never_changed_or_deleted(client, world, role):
    client.force_login(world["users"][role])
    entry = world["entry_a"]
    change = reverse("admin:trials_enrolmententry_change", args=[entry.pk])
    page = client.get(change).content.decode()
    assert 'name="_save"' not in page
    assert reverse("admin:trials_enrolmententry_delete", args=[entry.pk]) not in page
    assert client.post(change, {"count": "9"}).status_code == 403
    assert (
        client.post(reverse("admin:trials_enrolmententry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    )
    changelist = client.get(reverse("admin:trials_enrolmententry_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    response = client.post(
        reverse("admin:trials_enrolmententry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    entry.refresh_from_db()
    assert entry.count == 1


# --- reversing ------------------------------------------------------------------------------------------------------


def test_reversing_an_entry_with_a_reason(client, world):
    office = world["users"]["research_office"]
    entry = world["entry_a"]
    client.force_login(office)
    change = reverse("admin:trials_enrolmententry_change", args=[entry.pk])
    reverse_url = reverse("admin:trials_enrolmententry_reverse", args=[entry.pk])
    assert reverse_url in client.get(change).content.decode()

    blank = client.post(reverse_url, {"reason": ""})
    assert blank.status_code == 200 and blank.context["form"].errors["reason"]
    response = client.post(reverse_url, {"reason": "受试者编码录错"})
    correction = EnrolmentEntry.objects.get(reverses=entry)
    assert response["Location"] == reverse("admin:trials_enrolmententry_change", args=[correction.pk])
    assert (correction.reason, correction.reported_by) == ("受试者编码录错", office)
    assert SiteEnrolment.objects.get(site=world["site_a"]).enrolled == 0

    assert reverse_url not in client.get(change).content.decode()
    correction_page = client.get(reverse("admin:trials_enrolmententry_change", args=[correction.pk])).content.decode()
    assert reverse("admin:trials_enrolmententry_reverse", args=[correction.pk]) not in correction_page
    again = client.post(reverse_url, {"reason": "再次"})
    assert again.status_code == 200 and "already been reversed" in " ".join(again.context["form"].non_field_errors())
    listed = client.get(reverse("admin:trials_enrolmententry_changelist"), {"correction": "correction"})
    assert f"#{entry.pk}" in listed.content.decode() and "受试者编码录错" in listed.content.decode()


def test_the_ethics_office_sees_no_reverse_button(client, world):
    client.force_login(world["users"]["ethics_office"])
    page = client.get(reverse("admin:trials_enrolmententry_change", args=[world["entry_a"].pk])).content.decode()
    assert reverse("admin:trials_enrolmententry_reverse", args=[world["entry_a"].pk]) not in page
    assert (
        client.post(
            reverse("admin:trials_enrolmententry_reverse", args=[world["entry_a"].pk]), {"reason": "x"}
        ).status_code
        == 403
    )
    assert not EnrolmentEntry.objects.filter(reverses=world["entry_a"]).exists()


# --- targets against actuals ----------------------------------------------------------------------------------------


def test_targets_against_actuals_per_trial_and_per_site_with_highlights(client, world):
    office = world["users"]["research_office"]
    site = world["site_a"]
    site.site_target = 1
    site.save(update_fields=["site_target"])
    enrolment.enrolment_report(site=site, actor=office, kind=K.ENROLLED, occurred_on=days_ago(2))
    stalled = approve_site(
        TrialSiteFactory(trial=site.trial, site_target=6, site_initiated_on=days_ago(150)), days_ago(160), days_ago(-90)
    )
    client.force_login(office)
    url = reverse("admin:trials_siteenrolment_changelist")
    response = client.get(url)
    trial_row = response.context["trials"][0]
    assert (trial_row.sites, trial_row.target, trial_row.enrolled, trial_row.stalled_sites) == (2, 7, 2, 1)
    rows = {row.site: row for row in response.context["sites"]}
    assert rows[site].over_target and not rows[site].stalled
    assert rows[stalled].stalled and rows[stalled].enrolled == 0
    content = response.content.decode()
    assert "cgt-over-target" in content and "cgt-stalled" in content
    only_stalled = client.get(url, {"show": "stalled"}).context["sites"]
    assert [row.site for row in only_stalled] == [stalled]
    only_over = client.get(url, {"show": "over_target"}).context["sites"]
    assert [row.site for row in only_over] == [site]
    other_trial = active_site(lead_institution=site.institution)
    by_trial = client.get(url, {"trial": other_trial.trial_id}).context
    assert [row.trial for row in by_trial["trials"]] == [other_trial.trial]


def test_targets_page_queries_do_not_grow_with_rows(client, world, django_assert_max_num_queries):
    office = world["users"]["research_office"]
    client.force_login(office)
    counts = []
    for size in (2, 8):
        while SiteEnrolment.objects.filter(site__institution=office.institution).count() < size:
            site = active_site(lead_institution=office.institution)
            TrialSiteFactory(trial=site.trial, site_initiated_on=days_ago(150))
            enrolment.enrolment_report(site=site, actor=office, kind=K.ENROLLED, occurred_on=days_ago(3))
        with django_assert_max_num_queries(12) as captured:
            assert client.get(reverse("admin:trials_siteenrolment_changelist")).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("name", ["admin:trials_enrolmententry_changelist", "admin:trials_enrolmentsubject_changelist"])
def test_ledger_and_subject_lists_queries_do_not_grow_with_rows(client, world, name, django_assert_max_num_queries):
    office = world["users"]["research_office"]
    site = world["site_a"]
    client.force_login(office)
    counts = []
    for size in (3, 12):
        while EnrolmentEntry.objects.filter(site=site).count() < size:
            n = EnrolmentEntry.objects.count()
            entry = enrolment.enrolment_report(
                site=site, actor=office, kind=K.ENROLLED, occurred_on=days_ago(3), subject_code=f"RK-{n}"
            )
            if n % 3 == 0:
                enrolment.enrolment_reverse(entry=entry, actor=office, reason="录入错误")
        with django_assert_max_num_queries(20) as captured:
            assert client.get(reverse(name)).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_subject_codes_with_their_state_and_a_state_filter(client, world):
    office = world["users"]["research_office"]
    site = world["site_a"]
    enrolment.enrolment_report(site=site, actor=office, kind=K.WITHDRAWN, occurred_on=days_ago(1), subject_code="A-001")
    enrolment.enrolment_report(site=site, actor=office, kind=K.SCREENED, occurred_on=days_ago(1), subject_code="A-002")
    enrolment.enrolment_report(site=site, actor=office, kind=K.ENROLLED, occurred_on=days_ago(1), subject_code="A-003")
    client.force_login(office)
    url = reverse("admin:trials_enrolmentsubject_changelist")
    content = client.get(url).content.decode()
    assert "Withdrawn" in content and "On study" in content and "Screened" in content

    def codes(state):
        return {subject.code for subject in client.get(url, {"state": state}).context["cl"].result_list}

    assert codes("withdrawn") == {"A-001"}
    assert codes("screened") == {"A-002"}
    assert codes("on_study") == {"A-003"}
    assert codes("none") == set()
