"""Admin lists whose cost follows the page: a count that stops at a cap (and says so), search that filters by key,
and a fixed number of queries per page whatever the size of the tables behind it."""

import pytest
from django.urls import reverse

from cgtclinic.paging import CappedPaginator
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import DecisionFactory, EthicsCommitteeFactory, SubmissionFactory
from tests.factories.trials import DelegationFactory, TrialSiteFactory, active_site, days_ago
from trials import enrolment
from trials.models import EnrolmentEntry, TrialSite

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def system_admin(db):
    return UserFactory(role=Role.SYSTEM_ADMIN)


def _report(site, n):
    for _ in range(n):
        enrolment.enrolment_report(
            site=site,
            actor=site.site_pi,
            kind=K.SCREENED,
            occurred_on=days_ago(3),
            subject_code=f"S-{site.pk}-{site.subjects.count()}",
        )


def test_a_list_over_the_cap_says_so_instead_of_counting(client, system_admin, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    site = active_site()
    _report(site, 5)
    client.force_login(system_admin)
    url = reverse("admin:trials_enrolmententry_changelist")

    response = client.get(url)
    assert response.context["cl"].paginator.capped
    assert "more than 3 enrolment entries — narrow the list with search or a filter" in response.content.decode()

    searched = client.get(url, {"q": site.trial.protocol_number})
    assert "more than 3 results" in searched.content.decode()

    narrowed = client.get(url, {"q": f"S-{site.pk}-1"})
    assert not narrowed.context["cl"].paginator.capped
    assert narrowed.context["cl"].result_count == 1
    assert "1 enrolment entry" in narrowed.content.decode()


def test_below_the_cap_the_count_is_exact(client, system_admin):
    site = active_site()
    _report(site, 4)
    client.force_login(system_admin)
    response = client.get(reverse("admin:trials_enrolmententry_changelist"))
    assert response.context["cl"].result_count == 4
    assert not response.context["cl"].paginator.capped
    assert "4 enrolment entries" in response.content.decode()


def test_the_capped_paginator_counts_at_most_cap_plus_one_rows(django_assert_num_queries, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 2)
    for _ in range(4):
        TrialSiteFactory()
    paginator = CappedPaginator(TrialSite.objects.order_by("pk"), 1)
    with django_assert_num_queries(1) as captured:
        assert paginator.count == 3
    assert "LIMIT 3" in captured.captured_queries[0]["sql"]
    assert paginator.capped and paginator.num_pages == 3


def test_ledger_search_finds_by_trial_institution_subject_and_reporter(client, system_admin):
    site, other = active_site(), active_site()
    _report(site, 2)
    _report(other, 1)
    client.force_login(system_admin)
    url = reverse("admin:trials_enrolmententry_changelist")

    def found(term):
        return {entry.site_id for entry in client.get(url, {"q": term}).context["cl"].result_list}

    assert found(site.trial.protocol_number) == {site.pk}
    assert found(other.institution.name_zh) == {other.pk}
    assert found(f"S-{other.pk}-0") == {other.pk}
    assert found(f"S-{other.pk}") == set()  # subject codes match exactly: the subject table is large
    assert found(site.site_pi.full_name) == {site.pk}


def test_subject_search_by_code_and_trial(client, system_admin):
    site, other = active_site(), active_site()
    _report(site, 2)
    _report(other, 1)
    client.force_login(system_admin)
    url = reverse("admin:trials_enrolmentsubject_changelist")

    def codes(term):
        return {subject.code for subject in client.get(url, {"q": term}).context["cl"].result_list}

    assert codes(f"S-{site.pk}-1") == {f"S-{site.pk}-1"}
    assert codes(other.trial.protocol_number) == {f"S-{other.pk}-0"}


def test_targets_page_searches_and_sums_only_the_trials_on_its_page(client, system_admin, monkeypatch):
    from trials.admin import SiteEnrolmentAdmin

    monkeypatch.setattr(SiteEnrolmentAdmin, "sites_per_page", 2)
    sites = [active_site() for _ in range(3)]
    client.force_login(system_admin)
    url = reverse("admin:trials_siteenrolment_changelist")

    first = client.get(url).context
    assert [row.site for row in first["sites"]] == sites[:2]
    assert [row.trial for row in first["trials"]] == [site.trial for site in sites[:2]]

    searched = client.get(url, {"q": sites[2].trial.protocol_number}).context
    assert [row.site for row in searched["sites"]] == [sites[2]]
    assert client.get(url, {"q": sites[1].institution.name_zh}).context["sites"][0].site == sites[1]


HEAVY_LISTS = [
    "admin:trials_trial_changelist",
    "admin:trials_trialsite_changelist",
    "admin:trials_enrolmententry_changelist",
    "admin:trials_enrolmentsubject_changelist",
    "admin:trials_siteenrolment_changelist",
    "admin:trials_filingobligation_changelist",
    "admin:ethics_submission_changelist",
    "admin:ethics_recognitionrequest_changelist",
    "admin:ethics_decision_changelist",
    "admin:ethics_safetyevent_changelist",
    "admin:subsidies_claim_changelist",
]


@pytest.mark.parametrize("name", HEAVY_LISTS)
@pytest.mark.parametrize("role", [Role.SYSTEM_ADMIN, Role.RESEARCH_OFFICE])
def test_heavy_lists_take_the_same_queries_at_two_sizes(client, name, role, django_assert_max_num_queries):
    home = active_site()
    viewer = UserFactory(role=role, institution=home.institution if role == Role.RESEARCH_OFFICE else None)
    client.force_login(viewer)
    counts = []
    for size in (2, 6):
        while TrialSite.objects.filter(trial__lead_institution=home.institution).count() < size:
            site = active_site(lead_institution=home.institution)
            TrialSiteFactory(trial=site.trial)
            SubmissionFactory(trial=site.trial)
            _report(site, 2)
        with django_assert_max_num_queries(25) as captured:
            assert client.get(reverse(name)).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_a_big_trials_page_takes_the_same_queries_whatever_its_site_count(
    client, system_admin, django_assert_max_num_queries
):
    site = active_site()
    client.force_login(system_admin)
    url = reverse("admin:trials_trial_change", args=[site.trial_id])
    client.get(url)  # caches filled once per process (content types, the calendar) stay out of the count
    counts = []
    for size in (2, 7):
        while site.trial.sites.count() < size:
            TrialSiteFactory(trial=site.trial)
        with django_assert_max_num_queries(40) as captured:
            assert client.get(url).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_the_pi_site_page_takes_the_same_queries_and_pages_its_subjects(client, django_assert_max_num_queries):
    site = active_site()
    client.force_login(site.site_pi)
    url = reverse("ethics_portal:site_enrolment", args=[site.pk])
    client.get(url)
    counts = []
    for size in (2, 7):
        _report(site, size - site.subjects.count())
        with django_assert_max_num_queries(40) as captured:
            response = client.get(url)
        assert response.status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
    assert len(response.context["subjects"]) == 7
    assert isinstance(response.context["subjects_page"].paginator, CappedPaginator)


@pytest.mark.parametrize(
    "changelist", ["trials_enrolmentsubject", "trials_enrolmententry", "trials_trialsite", "trials_trial"]
)
def test_facet_counts_are_never_computed_on_big_lists(client, system_admin, changelist):
    """The "show counts" link (?_facets) counted every filter choice over the whole list, and on the subjects list
    answered 500; facets are off on every cgtclinic admin, and the parameter is ignored."""
    _report(active_site(), 2)
    client.force_login(system_admin)
    url = reverse(f"admin:{changelist}_changelist")
    # The subjects list's state filter is where the facet count answered 500.
    states = ("", "on_study") if changelist == "trials_enrolmentsubject" else ("",)
    for state in states:
        response = client.get(url, {"_facets": "True", **({"state": state} if state else {})})
        assert response.status_code == 200
        assert not response.context["cl"].add_facets


@pytest.mark.parametrize(
    "changelist",
    [
        "trials_enrolmententry",
        "trials_enrolmentsubject",
        "ethics_submission",
        "ethics_recognitionrequest",
        "trials_trial",
        "trials_trialsite",
        "trials_delegation",
        "trials_subjectconsent",
        "ethics_decision",
        "subsidies_claim",
    ],
)
def test_keyed_search_takes_any_term_without_an_error(client, system_admin, changelist):
    """The big lists look the term up in small tables first: a NUL byte, a LIKE wildcard or a pasted page of text
    finds nothing or something, never a server error."""
    _report(active_site(), 1)
    client.force_login(system_admin)
    url = reverse(f"admin:{changelist}_changelist")
    for term in ("a\x00b", "%", "_", "x" * 5000):
        assert client.get(url, {"q": term}).status_code == 200


def test_decision_search_by_letter_number_submission_reference_and_trial(client, system_admin):
    """Letter numbers and submission references match exactly (by index); protocol numbers as a part."""
    decision = DecisionFactory(letter_number="沪伦审〔2026〕017号", submission__reference="伦审受〔2026〕00017")
    other = DecisionFactory(letter_number="沪伦审〔2026〕018号")
    client.force_login(system_admin)
    url = reverse("admin:ethics_decision_changelist")

    def found(term):
        return {row.pk for row in client.get(url, {"q": term}).context["cl"].result_list}

    assert found("沪伦审〔2026〕017号") == {decision.pk}
    assert found("伦审受〔2026〕00017") == {decision.pk}
    assert found(decision.submission.trial.protocol_number) == {decision.pk}
    assert found(other.submission.trial.protocol_number) == {other.pk}
    assert found("沪伦审") == set()


@pytest.mark.parametrize("role", [Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE])
def test_offices_see_the_decisions_of_their_committee_and_their_trials(client, role):
    home = active_site()
    committee = EthicsCommitteeFactory(institution=home.institution)
    own_committee = DecisionFactory(submission__committee=committee)
    own_trial = DecisionFactory(submission__trial=home.trial, submission__committee=EthicsCommitteeFactory())
    elsewhere = DecisionFactory()
    viewer = UserFactory(role=role, institution=home.institution)
    client.force_login(viewer)
    listed = {row.pk for row in client.get(reverse("admin:ethics_decision_changelist")).context["cl"].result_list}
    expected = {own_committee.pk, own_trial.pk} if role == Role.RESEARCH_OFFICE else {own_committee.pk}
    assert listed == expected and elsewhere.pk not in listed


def test_delegation_search_by_key(client, system_admin):
    site, other = active_site(), active_site()
    _report(site, 1)
    _report(other, 1)
    client.force_login(system_admin)

    def sites(name, term):
        rows = client.get(reverse(f"admin:trials_{name}_changelist"), {"q": term}).context["cl"].result_list
        return {row.site_id for row in rows}

    DelegationFactory(site=site)
    DelegationFactory(site=other)
    assert sites("delegation", site.trial.protocol_number) == {site.pk}
    assert sites("delegation", other.institution.name_zh) == {other.pk}
