"""Targets against actuals: the per-site flags (in Python and as filters agree), per-trial totals, subject states."""

import pytest

from cgtclinic import rollups as registry
from tests.factories.trials import TrialSiteFactory, active_site, approve_site, days_ago, move_trial
from trials import enrolment
from trials.models import EnrolmentEntry, EnrolmentSubject, Trial, TrialSite

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind
STALLED = enrolment.STALLED_AFTER_DAYS


def site_with(*, target=10, initiated=150, enrolled=(), trial_status=None) -> TrialSite:
    """A lead site with a target, initiated ``initiated`` days ago (None: not yet), with enrolments on the given
    days ago (each one subject)."""
    site = active_site(started=STALLED + 120)
    site.site_target = target
    site.site_initiated_on = None if initiated is None else days_ago(initiated)
    site.save(update_fields=["site_target", "site_initiated_on"])
    for days in enrolled:
        enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(days))
    if trial_status:
        move_trial(site.trial, trial_status, days_ago(1))
    return site


def flags(site: TrialSite) -> tuple[bool, bool]:
    loaded = enrolment.with_progress(TrialSite.objects.filter(pk=site.pk)).get()
    progress = enrolment.site_progress(loaded)
    by_filter = (
        TrialSite.objects.filter(enrolment.over_target_sites_q(), pk=site.pk).exists(),
        TrialSite.objects.filter(enrolment.stalled_sites_q(), pk=site.pk).exists(),
    )
    assert (progress.over_target, progress.stalled) == by_filter
    return progress.over_target, progress.stalled


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        ("initiated long ago, nobody enrolled", {}, (False, True)),
        ("enrolled recently", {"enrolled": [STALLED - 30]}, (False, False)),
        ("last enrolment long ago", {"enrolled": [STALLED + 20]}, (False, True)),
        ("no target", {"target": 0}, (False, False)),
        ("above target", {"target": 2, "enrolled": [STALLED + 20, STALLED + 10, STALLED + 5]}, (True, False)),
        ("exactly at target", {"target": 1, "enrolled": [STALLED + 20]}, (False, False)),
        ("not initiated", {"initiated": None}, (False, False)),
        ("initiated recently", {"initiated": STALLED - 10}, (False, False)),
        ("trial suspended", {"trial_status": Trial.Status.SUSPENDED}, (False, False)),
    ],
)
def test_over_target_and_stalled_agree_between_the_page_and_the_filter(case, kwargs, expected):
    assert flags(site_with(**kwargs)) == expected, case


def test_site_progress_reports_every_count():
    site = active_site()
    pi = site.site_pi
    for kind, count in ((K.SCREENED, 6), (K.SCREEN_FAILED, 2), (K.ENROLLED, 4), (K.WITHDRAWN, 1), (K.COMPLETED, 1)):
        enrolment.enrolment_report(site=site, actor=pi, kind=kind, occurred_on=days_ago(10), count=count)
    progress = enrolment.site_progress(enrolment.with_progress(TrialSite.objects.filter(pk=site.pk)).get())
    assert (progress.screened, progress.screen_failed, progress.enrolled) == (6, 2, 4)
    assert (progress.withdrawn, progress.completed, progress.on_study) == (1, 1, 2)
    assert progress.percent == round(4 * 100 / site.site_target)


def test_a_site_that_never_reported_has_zero_counts():
    site = active_site()
    progress = enrolment.site_progress(enrolment.with_progress(TrialSite.objects.filter(pk=site.pk)).get())
    assert (progress.enrolled, progress.on_study, progress.last_enrolled_on) == (0, 0, None)


def test_trial_totals_sum_the_sites_given(django_assert_num_queries):
    lead = site_with(target=10, enrolled=[20, 15])
    participating = approve_site(
        TrialSiteFactory(trial=lead.trial, site_target=5, site_initiated_on=days_ago(STALLED + 50)),
        days_ago(STALLED + 100),
        days_ago(-100),
    )
    for days in (40, 30, 20, 10, 5, 1):
        enrolment.enrolment_report(
            site=participating, actor=participating.site_pi, kind=K.ENROLLED, occurred_on=days_ago(days)
        )
    other = site_with(target=3)
    with django_assert_num_queries(2):
        rows = enrolment.trial_progress(TrialSite.objects.all())
    by_trial = {row.trial: row for row in rows}
    first = by_trial[lead.trial]
    assert (first.sites, first.target, first.enrolled, first.on_study) == (2, 15, 8, 8)
    assert (first.over_target_sites, first.stalled_sites, first.over_target) == (1, 0, False)
    assert first.last_enrolled_on == days_ago(1)
    assert first.percent == round(8 * 100 / 15)
    second = by_trial[other.trial]
    assert (second.sites, second.enrolled, second.stalled_sites, second.last_enrolled_on) == (1, 0, 1, None)
    only_lead = enrolment.trial_progress(TrialSite.objects.filter(pk=lead.pk))
    assert [(row.trial, row.sites, row.enrolled) for row in only_lead] == [(lead.trial, 1, 2)]


def test_subject_states_come_from_the_ledger(django_assert_num_queries):
    site = active_site()
    pi = site.site_pi

    def do(kind, code, days=10):
        return enrolment.enrolment_report(site=site, actor=pi, kind=kind, occurred_on=days_ago(days), subject_code=code)

    do(K.SCREENED, "S-1")
    do(K.SCREENED, "S-2", 30)
    do(K.SCREEN_FAILED, "S-2", 20)
    do(K.ENROLLED, "S-3")
    do(K.ENROLLED, "S-4", 30)
    do(K.WITHDRAWN, "S-4", 20)
    do(K.ENROLLED, "S-5", 30)
    do(K.COMPLETED, "S-5", 5)
    mistake = do(K.ENROLLED, "S-6", 3)
    enrolment.enrolment_reverse(entry=mistake, actor=pi, reason="编码错误")
    with django_assert_num_queries(1):
        states = {
            subject.code: (enrolment.subject_state(subject), subject.last_event_on)
            for subject in EnrolmentSubject.objects.filter(site=site)
        }
    State = enrolment.SubjectState
    assert states == {
        "S-1": (State.SCREENED, days_ago(10)),
        "S-2": (State.SCREEN_FAILED, days_ago(20)),
        "S-3": (State.ON_STUDY, days_ago(10)),
        "S-4": (State.WITHDRAWN, days_ago(20)),
        "S-5": (State.COMPLETED, days_ago(5)),
        "S-6": (State.NONE, None),
    }
    # Kept on the rows by the services, equal to the ledger's recomputation.
    assert registry.differences(["trials.subject_state"]) == {}
