"""The enrolment ledger's rules: who may report, on which days, which counts add up, subject codes, corrections."""

import datetime

import pytest
from dateutil.relativedelta import relativedelta
from django.db import DatabaseError, connection, transaction

from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.trials import TrialSiteFactory, active_site, approve_site, days_ago, move_trial
from trials import enrolment
from trials.models import EnrolmentEntry, EnrolmentSubject, SiteEnrolment, Trial, TrialSite

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind
S = Trial.Status


@pytest.fixture
def site():
    return active_site()


@pytest.fixture
def pi(site):
    return site.site_pi


def report(site, actor, kind=K.ENROLLED, on=None, **kwargs):
    return enrolment.enrolment_report(site=site, actor=actor, kind=kind, occurred_on=on or days_ago(10), **kwargs)


def refused(code=None, field=None, **report_kwargs) -> DomainError:
    """Report and expect a refusal that writes nothing."""
    before = (EnrolmentEntry.objects.count(), list(SiteEnrolment.objects.values()))
    with pytest.raises(DomainError) as caught:
        report(**report_kwargs)
    assert (EnrolmentEntry.objects.count(), list(SiteEnrolment.objects.values())) == before
    if code is not None:
        assert caught.value.code == code
    if field is not None:
        assert caught.value.field == field
    return caught.value


def counts(site) -> dict:
    cached = SiteEnrolment.objects.get(site=site)
    return {kind: getattr(cached, kind) for kind in enrolment.COUNT_FIELDS}


# --- a report and the cache ---------------------------------------------------------------------------------------


def test_a_report_is_written_with_who_and_when_and_moves_the_cached_counts(site, pi):
    entry = report(site, pi, count=3, note="首批入组")
    assert (entry.site, entry.trial, entry.kind, entry.count, entry.note) == (
        site,
        site.trial,
        K.ENROLLED,
        3,
        "首批入组",
    )
    assert entry.reported_by == pi and entry.reported_at is not None
    assert counts(site)[K.ENROLLED] == 3
    assert SiteEnrolment.objects.get(site=site).last_enrolled_on == days_ago(10)
    report(site, pi, K.WITHDRAWN, on=days_ago(5))
    cached = SiteEnrolment.objects.get(site=site)
    assert (cached.enrolled, cached.withdrawn, cached.on_study) == (3, 1, 2)


@pytest.mark.parametrize("bad", [0, -1])
def test_the_number_of_subjects_is_at_least_one(site, pi, bad):
    refused(site=site, actor=pi, count=bad, field="count")


def test_an_unknown_event_is_refused(site, pi):
    refused(site=site, actor=pi, kind="transferred", field="kind")


# --- ethics approval and dates ------------------------------------------------------------------------------------


def test_a_site_without_ethics_approval_is_refused_with_a_clear_message(site, pi):
    site.ethics_approved_on = None
    site.save(update_fields=["ethics_approved_on"])
    error = refused(site=site, actor=pi, code="no_ethics_approval")
    assert str(site.institution) in str(error)


def test_a_participating_site_without_approval_or_recognition_is_refused(site):
    participating = TrialSiteFactory(trial=site.trial)
    refused(site=participating, actor=participating.site_pi, code="no_ethics_approval")


def test_an_event_before_the_approval_date_is_refused(site, pi):
    refused(site=site, actor=pi, on=site.ethics_approved_on - datetime.timedelta(days=1), field="occurred_on")


def test_a_future_date_is_refused(site, pi):
    refused(site=site, actor=pi, on=days_ago(-1), field="occurred_on")


def test_screening_or_enrolling_after_the_approval_expired_is_refused_but_exits_are_not():
    site = active_site(valid_for=-30)  # the approval ran out 30 days ago
    pi = site.site_pi
    report(site, pi, on=days_ago(60), count=2)
    for kind in (K.SCREENED, K.ENROLLED):
        error = refused(site=site, actor=pi, kind=kind, on=days_ago(10), code="ethics_approval_expired")
        assert site.ethics_valid_until.isoformat() in str(error)
    report(site, pi, K.WITHDRAWN, on=days_ago(10))
    report(site, pi, K.COMPLETED, on=days_ago(5))
    assert counts(site) == {K.SCREENED: 0, K.ENROLLED: 2, K.SCREEN_FAILED: 0, K.WITHDRAWN: 1, K.COMPLETED: 1}


def test_an_approval_without_validity_follows_the_national_review_interval(review_interval):
    site = active_site(started=500, valid_for=None)
    pi = site.site_pi
    expires = site.ethics_approved_on + relativedelta(months=int(review_interval.value))
    assert enrolment.ethics_valid_until(site) == expires
    report(site, pi, on=expires)
    refused(site=site, actor=pi, on=expires + datetime.timedelta(days=1), code="ethics_approval_expired")


def test_without_a_validity_or_the_national_interval_enrolment_is_refused_not_crashed(review_interval):
    site = active_site(valid_for=None)
    review_interval.delete()
    assert enrolment.ethics_valid_until(site) is None
    refused(site=site, actor=site.site_pi, code="ethics_validity_unknown")


def test_enrolment_needs_the_trial_to_have_been_active_on_that_day(site, pi):
    activated = days_ago(200)
    refused(site=site, actor=pi, on=activated - datetime.timedelta(days=1), code="trial_not_enrolling")
    report(site, pi, on=activated)


def test_a_suspended_trial_takes_no_new_subjects_but_earlier_days_can_still_be_reported(site, pi):
    move_trial(site.trial, S.SUSPENDED, days_ago(20))
    refused(site=site, actor=pi, on=days_ago(10), code="trial_not_enrolling")
    report(site, pi, on=days_ago(30))
    report(site, pi, K.WITHDRAWN, on=days_ago(10))


def test_exits_are_reported_after_enrolment_closed_and_after_completion(site, pi):
    report(site, pi, on=days_ago(100), count=3)
    move_trial(site.trial, S.ENROLMENT_CLOSED, days_ago(50))
    refused(site=site, actor=pi, on=days_ago(40), code="trial_not_enrolling")
    refused(site=site, actor=pi, kind=K.SCREENED, on=days_ago(40), code="trial_not_enrolling")
    report(site, pi, K.WITHDRAWN, on=days_ago(40))
    move_trial(site.trial, S.COMPLETED, days_ago(20))
    report(site, pi, K.COMPLETED, on=days_ago(10), count=2)
    assert SiteEnrolment.objects.get(site=site).on_study == 0


def test_exits_before_the_trial_started_are_refused(site, pi):
    refused(site=site, actor=pi, kind=K.WITHDRAWN, on=days_ago(205), code="trial_not_enrolling")


# --- counts -------------------------------------------------------------------------------------------------------


def test_screen_failures_cannot_exceed_subjects_screened(site, pi):
    report(site, pi, K.SCREENED, count=2)
    report(site, pi, K.SCREEN_FAILED, count=2)
    refused(site=site, actor=pi, kind=K.SCREEN_FAILED, code="count_inconsistent")


def test_withdrawn_and_completed_cannot_exceed_enrolled(site, pi):
    report(site, pi, count=2)
    report(site, pi, K.WITHDRAWN)
    report(site, pi, K.COMPLETED)
    refused(site=site, actor=pi, kind=K.COMPLETED, code="count_inconsistent")
    refused(site=site, actor=pi, kind=K.WITHDRAWN, code="count_inconsistent")


def test_counts_never_go_negative_through_corrections(site, pi):
    enrolled = report(site, pi, count=2)
    report(site, pi, K.WITHDRAWN, count=2)
    with pytest.raises(DomainError) as caught:
        enrolment.enrolment_reverse(entry=enrolled, actor=pi, reason="录入错误")
    assert caught.value.code == "count_inconsistent"
    assert not EnrolmentEntry.objects.filter(reverses=enrolled).exists()
    screened = report(site, pi, K.SCREENED)
    enrolment.enrolment_reverse(entry=screened, actor=pi, reason="重复录入")
    assert min(counts(site).values()) == 0


# --- subject codes --------------------------------------------------------------------------------------------------


def test_a_subject_code_is_enrolled_only_once_per_trial(site, pi):
    report(site, pi, K.SCREENED, on=days_ago(20), subject_code="RK-001")
    report(site, pi, on=days_ago(15), subject_code="RK-001")
    refused(site=site, actor=pi, subject_code="RK-001", code="subject_state", field="subject_code")
    report(site, pi, K.WITHDRAWN, subject_code="RK-001")
    error = refused(site=site, actor=pi, subject_code="RK-001", code="subject_state")
    assert "RK-001" in str(error)
    assert EnrolmentSubject.objects.get().code == "RK-001"


def test_a_subject_code_of_another_site_is_refused_and_another_trial_may_reuse_it(site, pi):
    participating = approve_site(TrialSiteFactory(trial=site.trial), days_ago(150), days_ago(-100))
    report(site, pi, subject_code="RK-001")
    error = refused(site=participating, actor=participating.site_pi, subject_code="RK-001", code="subject_other_site")
    assert str(site.institution) in str(error)
    other_trial_site = active_site()
    report(other_trial_site, other_trial_site.site_pi, subject_code="RK-001")
    assert EnrolmentSubject.objects.filter(code="RK-001").count() == 2


def test_subject_events_follow_the_subjects_own_history(site, pi):
    refused(site=site, actor=pi, kind=K.SCREEN_FAILED, subject_code="RK-002", code="subject_state")
    refused(site=site, actor=pi, kind=K.WITHDRAWN, subject_code="RK-002", code="subject_state")
    report(site, pi, K.SCREENED, subject_code="RK-002")
    refused(site=site, actor=pi, kind=K.SCREENED, subject_code="RK-002", code="subject_state")
    report(site, pi, K.SCREEN_FAILED, subject_code="RK-002")
    refused(site=site, actor=pi, subject_code="RK-002", code="subject_state")
    # A refused report leaves no new subject code behind.
    refused(site=site, actor=pi, kind=K.COMPLETED, subject_code="RK-404", code="subject_state")
    assert not EnrolmentSubject.objects.filter(code="RK-404").exists()


def test_a_subject_code_counts_one_subject(site, pi):
    refused(site=site, actor=pi, count=2, subject_code="RK-003", field="count")


@pytest.mark.parametrize("code", ["张三", "RK 001", "-RK"])
def test_subject_codes_are_short_pseudonyms(site, pi, code):
    refused(site=site, actor=pi, subject_code=code, field="subject_code")


@pytest.mark.parametrize("code", ["11010119900307123X", "110101199003071234", "110101900307123", "13912345678"])
def test_id_card_and_mobile_numbers_are_refused_as_subject_codes(site, pi, code):
    error = refused(site=site, actor=pi, subject_code=code, code="subject_code_personal", field="subject_code")
    assert code not in str(error)


# --- corrections ----------------------------------------------------------------------------------------------------


def test_a_reversal_adds_a_correcting_entry_with_its_reason_and_keeps_the_original(site, pi):
    first = report(site, pi, on=days_ago(30), count=2)
    second = report(site, pi, on=days_ago(10))
    correction = enrolment.enrolment_reverse(entry=second, actor=pi, reason="重复录入")
    assert (correction.reverses, correction.kind, correction.count, correction.signed_count) == (
        second,
        K.ENROLLED,
        1,
        -1,
    )
    assert correction.reason == "重复录入" and correction.is_correction
    assert EnrolmentEntry.objects.filter(pk__in=[first.pk, second.pk]).count() == 2
    cached = SiteEnrolment.objects.get(site=site)
    assert (cached.enrolled, cached.last_enrolled_on) == (2, days_ago(30))


def test_a_reversal_needs_a_reason(site, pi):
    entry = report(site, pi)
    with pytest.raises(DomainError) as caught:
        enrolment.enrolment_reverse(entry=entry, actor=pi, reason="  ")
    assert caught.value.field == "reason"


def test_an_entry_is_reversed_only_once_and_a_correction_is_not_reversed(site, pi):
    entry = report(site, pi)
    correction = enrolment.enrolment_reverse(entry=entry, actor=pi, reason="录入错误")
    with pytest.raises(DomainError) as again:
        enrolment.enrolment_reverse(entry=entry, actor=pi, reason="再次")
    assert again.value.code == "already_reversed"
    with pytest.raises(DomainError):
        enrolment.enrolment_reverse(entry=correction, actor=pi, reason="撤销更正")
    assert EnrolmentEntry.objects.count() == 2
    assert counts(site)[K.ENROLLED] == 0


def test_a_subjects_enrolment_is_reversed_only_after_their_later_exit(site, pi):
    screened = report(site, pi, K.SCREENED, on=days_ago(20), subject_code="RK-001")
    enrolled = report(site, pi, on=days_ago(15), subject_code="RK-001")
    withdrawn = report(site, pi, K.WITHDRAWN, subject_code="RK-001")
    for entry in (enrolled, screened):
        with pytest.raises(DomainError) as caught:
            enrolment.enrolment_reverse(entry=entry, actor=pi, reason="顺序错误")
        assert caught.value.code == "subject_state"
    enrolment.enrolment_reverse(entry=withdrawn, actor=pi, reason="未退出")
    enrolment.enrolment_reverse(entry=enrolled, actor=pi, reason="未入组")
    report(site, pi, on=days_ago(5), subject_code="RK-001")
    assert counts(site)[K.ENROLLED] == 1


# --- who may report -------------------------------------------------------------------------------------------------


def _people(site: TrialSite, participating: TrialSite) -> dict:
    hospital = site.institution
    return {
        "site PI": (site.site_pi, True),
        "research office of the site's hospital": (UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital), True),
        "system administrator": (UserFactory(role=Role.SYSTEM_ADMIN), True),
        "research office of another hospital": (UserFactory(role=Role.RESEARCH_OFFICE), False),
        "ethics office of the site's hospital": (UserFactory(role=Role.ETHICS_OFFICE, institution=hospital), False),
        "regulator of the region": (UserFactory(role=Role.REGULATOR, region=hospital.region), False),
        "another PI of the hospital": (UserFactory(role=Role.PI, institution=hospital), False),
        "participating site's PI": (participating.site_pi, False),
    }


def test_who_may_report_for_a_site(site):
    participating = approve_site(TrialSiteFactory(trial=site.trial), days_ago(150), days_ago(-100))
    for who, (actor, allowed) in _people(site, participating).items():
        assert enrolment.may_report(actor, site) is allowed, who
        assert enrolment.sites_reportable_by(actor).filter(pk=site.pk).exists() is allowed, who
        if allowed:
            report(site, actor)
        else:
            assert str(refused(site=site, actor=actor, code="permission_denied"))


def test_a_deactivated_site_pi_may_no_longer_report(site, pi):
    pi.is_active = False
    pi.save(update_fields=["is_active"])
    assert not enrolment.may_report(pi, site)
    refused(site=site, actor=pi, code="permission_denied")


def test_the_trials_pi_reports_for_the_lead_site_but_not_for_a_participating_site(site):
    trial_pi = site.trial.pi
    participating = approve_site(TrialSiteFactory(trial=site.trial), days_ago(150), days_ago(-100))
    assert enrolment.may_report(trial_pi, site)
    assert not enrolment.may_report(trial_pi, participating)
    refused(site=participating, actor=trial_pi, code="permission_denied")
    report(participating, participating.site_pi)
    research_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=participating.institution)
    assert set(enrolment.sites_reportable_by(research_office)) == {participating}
    assert set(enrolment.sites_reportable_by(trial_pi)) == {site}


def test_only_those_who_may_report_may_reverse(site, pi):
    entry = report(site, pi)
    for actor in (
        UserFactory(role=Role.ETHICS_OFFICE, institution=site.institution),
        UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory()),
    ):
        with pytest.raises(DomainError) as caught:
            enrolment.enrolment_reverse(entry=entry, actor=actor, reason="无权")
        assert caught.value.code == "permission_denied"
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=site.institution)
    assert enrolment.enrolment_reverse(entry=entry, actor=office, reason="机构办更正").reported_by == office


# --- the ledger is append-only ----------------------------------------------------------------------------------


def test_the_database_refuses_to_change_or_delete_a_ledger_entry(site, pi):
    entry = report(site, pi)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        EnrolmentEntry.objects.filter(pk=entry.pk).update(count=5)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        EnrolmentEntry.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.count == 1


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_to_truncate_the_ledger(site, pi):
    """Issue 11: TRUNCATE trials_enrolmententry succeeded (the row trigger covers UPDATE and DELETE only)."""
    report(site, pi)
    with pytest.raises(DatabaseError, match="never truncated"), transaction.atomic(), connection.cursor() as cursor:
        # The test suite's own connections may empty tables between tests; an ordinary session may not.
        cursor.execute("SET LOCAL cgtclinic.allow_ledger_truncate = 'off'")
        cursor.execute("TRUNCATE trials_enrolmententry CASCADE")
    assert EnrolmentEntry.objects.filter(site=site).count() == 1


@pytest.mark.parametrize("count", [2_147_483_648, enrolment.MAX_SUBJECTS_PER_ENTRY + 1])
def test_an_implausible_count_is_refused_clearly(site, pi, count):
    """Issue 11: count=2147483648 on an enrolment report answered 500."""
    with pytest.raises(DomainError) as refused:
        report(site, pi, K.SCREENED, count=count)
    assert refused.value.field == "count"
    assert not EnrolmentEntry.objects.filter(site=site).exists()


def test_rebuilding_the_cache_from_the_ledger_gives_the_same_counts(site, pi):
    report(site, pi, K.SCREENED, on=days_ago(40), count=5)
    report(site, pi, K.SCREEN_FAILED, on=days_ago(35), count=2)
    mistaken = report(site, pi, on=days_ago(30), count=3)
    report(site, pi, on=days_ago(25), subject_code="RK-010")
    report(site, pi, K.COMPLETED, on=days_ago(5), subject_code="RK-010")
    enrolment.enrolment_reverse(entry=mistaken, actor=pi, reason="应为2例")
    report(site, pi, on=days_ago(30), count=2)
    cached = SiteEnrolment.objects.values(*enrolment.COUNT_FIELDS, "last_enrolled_on").get(site=site)
    SiteEnrolment.objects.filter(site=site).update(enrolled=99, screened=0, last_enrolled_on=None)
    rebuilt = enrolment.rebuild_site_counts(site)
    assert {field: getattr(rebuilt, field) for field in cached} == cached
    assert cached[K.ENROLLED] == 3 == enrolment.enrolled_as_of(site_ids=[site.pk])[site.pk]
    assert cached["last_enrolled_on"] == days_ago(25)
