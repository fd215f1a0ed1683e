"""IIT reviews before activation, and the research filings' clocks: computed deadlines on the calendar (calendar
days for the national filing system, working days for new-technology filings), reminders and escalations exactly
once, who is told, what waits in whose work queue."""

import datetime

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.utils import timezone

from cgtclinic import workdays, workqueue
from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import HolidaySchedule, Notification, PolicyParameter
from cgtclinic.roles import Role
from cgtclinic.seeding import load_policy
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import TrialFactory, answer_gates
from trials import filings, services
from trials.models import FilingEffect, FilingObligation, Trial, TrialReview, TrialSite

SH = datetime.timezone(datetime.timedelta(hours=8))
D = datetime.date
S = Trial.Status
K = FilingObligation.Kind
O = TrialReview.Outcome  # noqa: E741
RK = TrialReview.Kind


@pytest.fixture(autouse=True)
def policy(db):
    """The seeded periods (the tests read them from the rows, never as literals) and the 2025–2026 calendar."""
    load_policy(settings.BASE_DIR / "seeds" / "policy")
    workdays.sync_from_package(years=[2025, 2026])


def value(code: str, on: D) -> int:
    return int(PolicyParameter.value_for(code, on=on))


def end_of(day: D) -> datetime.datetime:
    return datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(0), tzinfo=SH)


@pytest.fixture
def people(institution):
    return {
        "office": UserFactory(role=Role.RESEARCH_OFFICE, institution=institution),
        "ethics": UserFactory(role=Role.ETHICS_OFFICE, institution=institution),
    }


@pytest.fixture
def trial(institution, people):
    trial = TrialFactory(lead_institution=institution, status=S.APPROVED, reviews_passed=False)
    TrialSite.objects.filter(trial=trial).update(ethics_approved_on=D(2026, 3, 2))
    answer_gates(trial)  # the HGR gate is not what these tests are about
    return trial


REVIEWED_ON = D(2026, 3, 5)


def review(trial, actor, kind, outcome=O.PASSED, on=REVIEWED_ON, comments=""):
    return filings.review_record(trial=trial, actor=actor, kind=kind, outcome=outcome, decided_on=on, comments=comments)


# --- reviews and the activation gate ------------------------------------------------------------------------------


def test_activation_refused_until_both_reviews_passed_naming_what_is_missing(trial, people):
    office = people["office"]
    with pytest.raises(DomainError) as refused:
        services.trial_activate(trial=trial, actor=office)
    assert refused.value.code == "reviews_missing"
    assert str(RK.ACADEMIC.label) in str(refused.value.message)
    assert str(RK.INSTITUTIONAL.label) in str(refused.value.message)

    review(trial, office, RK.ACADEMIC, O.REVISE, comments="样本量计算依据不足")
    review(trial, office, RK.ACADEMIC)
    with pytest.raises(DomainError) as refused:
        services.trial_activate(trial=trial, actor=office)
    assert str(RK.ACADEMIC.label) not in str(refused.value.message)
    assert str(RK.INSTITUTIONAL.label) in str(refused.value.message)

    review(trial, office, RK.INSTITUTIONAL)
    assert services.trial_activate(trial=trial, actor=office).status == S.ACTIVE


def test_the_refusal_is_translated(trial, people):
    from django.utils import translation

    with translation.override("zh-hans"), pytest.raises(DomainError) as refused:
        services.trial_activate(trial=trial, actor=people["office"])
    assert "学术（科学性）审查" in str(refused.value.message) and "机构立项" in str(refused.value.message)


def test_review_refusals(trial, people, pi):
    office = people["office"]
    with pytest.raises(DomainError) as denied:
        review(trial, trial.pi, RK.ACADEMIC)
    assert denied.value.code == "permission_denied"
    with pytest.raises(DomainError):
        review(trial, people["ethics"], RK.ACADEMIC)
    with pytest.raises(DomainError) as order:
        review(trial, office, RK.INSTITUTIONAL)
    assert order.value.code == "order"
    with pytest.raises(DomainError) as no_comments:
        review(trial, office, RK.ACADEMIC, O.NOT_PASSED)
    assert no_comments.value.field == "comments"
    review(trial, office, RK.ACADEMIC, O.NOT_PASSED, comments="科学性不足")
    with pytest.raises(TransitionNotAllowed):
        review(trial, office, RK.ACADEMIC)
    assert filings.available_review_steps(trial, office)[RK.ACADEMIC] == []


def test_reviews_only_for_iits_after_submission(institution, people):
    office = people["office"]
    registration = TrialFactory(lead_institution=institution, kind=Trial.Kind.REGISTRATION, status=S.APPROVED)
    answer_gates(registration)
    with pytest.raises(DomainError):
        review(registration, office, RK.ACADEMIC)
    assert services.trial_activate(trial=registration, actor=office).status == S.ACTIVE
    draft = TrialFactory(lead_institution=institution, reviews_passed=False)
    with pytest.raises(TransitionNotAllowed):
        review(draft, office, RK.ACADEMIC)


def test_institutional_approval_needs_the_lead_ethics_approval(trial, people):
    TrialSite.objects.filter(trial=trial).update(ethics_approved_on=None)
    review(trial, people["office"], RK.ACADEMIC)
    with pytest.raises(DomainError) as refused:
        review(trial, people["office"], RK.INSTITUTIONAL)
    assert refused.value.code == "order"


# --- the national filing system's obligations --------------------------------------------------------------------


@time_machine.travel(datetime.datetime(2026, 3, 6, 10, tzinfo=SH), tick=False)
def test_institutional_approval_opens_the_initial_filing_and_tells_pi_and_office(trial, people):
    review(trial, people["office"], RK.ACADEMIC)
    review(trial, people["office"], RK.INSTITUTIONAL)
    (initial,) = FilingObligation.objects.filter(trial=trial)
    days = value("research_filing_initial_days", D(2026, 3, 5))
    assert initial.kind == K.INITIAL and initial.basis_on == D(2026, 3, 5)
    assert initial.due_at == end_of(D(2026, 3, 5) + datetime.timedelta(days=days))
    reminder = value("research_filing_reminder_days", D(2026, 3, 5))
    assert initial.remind_at == initial.due_at - datetime.timedelta(days=reminder)
    told = set(Notification.objects.filter(topic="filing.opened").values_list("recipient", flat=True))
    assert told == {trial.pi_id, people["office"].pk}


@pytest.fixture
def filed(trial, people):
    with time_machine.travel(datetime.datetime(2026, 3, 6, 10, tzinfo=SH), tick=False):
        review(trial, people["office"], RK.ACADEMIC)
        review(trial, people["office"], RK.INSTITUTIONAL)
        initial = FilingObligation.objects.get(trial=trial, kind=K.INITIAL)
        filings.filing_record(
            obligation=initial, actor=trial.pi, filed_on=D(2026, 3, 6), filing_number="MR-31-2026-0101"
        )
    trial.refresh_from_db()
    return trial


def test_recording_the_initial_filing_sets_the_trial_and_opens_the_first_annual_report(filed):
    assert (filed.filing_number, filed.filed_on) == ("MR-31-2026-0101", D(2026, 3, 6))
    initial = FilingObligation.objects.get(trial=filed, kind=K.INITIAL)
    assert initial.status == FilingObligation.Status.FILED and not initial.late
    (annual,) = FilingObligation.objects.filter(trial=filed, kind=K.ANNUAL)
    months = value("research_filing_annual_report_months", D(2026, 3, 6))
    assert annual.due_at == end_of(D(2026, 3, 6) + relativedelta(months=months))


def test_reminder_and_escalation_happen_once_and_an_overdue_annual_report_opens_the_next(filed, people):
    annual = FilingObligation.objects.get(trial=filed, kind=K.ANNUAL)
    with time_machine.travel(annual.remind_at + datetime.timedelta(minutes=1), tick=False):
        assert filings.sweep() == {"reminders": 1, "escalations": 0}
        assert filings.sweep() == {"reminders": 0, "escalations": 0}
    with time_machine.travel(annual.due_at + datetime.timedelta(minutes=1), tick=False):
        assert filings.sweep()["escalations"] == 1
        assert filings.sweep()["escalations"] == 0
    assert FilingEffect.objects.filter(obligation=annual).count() == 2
    reminded = set(Notification.objects.filter(topic="filing.reminder").values_list("recipient", flat=True))
    escalated = set(Notification.objects.filter(topic="filing.escalation").values_list("recipient", flat=True))
    assert reminded == {filed.pi_id, people["office"].pk}
    assert escalated == {filed.pi_id, people["office"].pk, people["ethics"].pk}
    second = FilingObligation.objects.get(trial=filed, kind=K.ANNUAL, source_key="year:2")
    months = value("research_filing_annual_report_months", D(2026, 3, 6))
    assert second.due_at == end_of(D(2026, 3, 6) + relativedelta(months=2 * months))


def test_a_late_filing_is_accepted_and_marked_late(filed):
    annual = FilingObligation.objects.get(trial=filed, kind=K.ANNUAL)
    last_day = timezone.localdate(annual.due_at) - datetime.timedelta(days=1)
    with time_machine.travel(annual.due_at + datetime.timedelta(days=3), tick=False):
        recorded = filings.filing_record(
            obligation=annual, actor=filed.pi, filed_on=last_day + datetime.timedelta(days=1)
        )
        assert recorded.late
        with pytest.raises(TransitionNotAllowed):
            filings.filing_record(obligation=annual, actor=filed.pi, filed_on=last_day)


def test_only_the_pi_and_the_lead_office_record_filings(filed, institution):
    annual = FilingObligation.objects.get(trial=filed, kind=K.ANNUAL)
    for outsider in (UserFactory(role=Role.PI, institution=institution), UserFactory(role=Role.REGULATOR)):
        with pytest.raises(DomainError) as denied:
            filings.filing_record(obligation=annual, actor=outsider, filed_on=D(2026, 3, 6))
        assert denied.value.code == "permission_denied"


def test_an_approved_amendment_owes_a_change_filing_once(filed):
    for _ in range(2):
        filings.on_lead_ethics_approval(trial=filed, amendment=True, approved_on=D(2026, 4, 1), key="decision:9")
    (change,) = FilingObligation.objects.filter(trial=filed, kind=K.CHANGE)
    days = value("research_filing_change_days", D(2026, 4, 1))
    assert change.due_at == end_of(D(2026, 4, 1) + datetime.timedelta(days=days))


def test_closure_owes_the_completion_summary_and_lapses_later_annual_reports(filed, people):
    office = people["office"]
    with time_machine.travel(datetime.datetime(2026, 6, 1, 10, tzinfo=SH), tick=False):
        services.trial_activate(trial=filed, actor=office)
        services.trial_terminate(trial=filed, actor=office, reason="入组困难")
    completion = FilingObligation.objects.get(trial=filed, kind=K.COMPLETION)
    months = value("research_filing_completion_months", D(2026, 6, 1))
    assert completion.due_at == end_of(D(2026, 6, 1) + relativedelta(months=months))
    annual = FilingObligation.objects.get(trial=filed, kind=K.ANNUAL)
    assert annual.status == FilingObligation.Status.CANCELLED


# --- biomedical new-technology filings on the working-day calendar ------------------------------------------------


def new_technology(trial, office, academic_on: D):
    filings.new_technology_set(trial=trial, actor=office, answer=True, reason="首次用于人体的基因编辑技术")
    review(trial, office, RK.ACADEMIC, on=academic_on)
    return FilingObligation.objects.get(trial=trial, kind=K.NEW_TECHNOLOGY)


@time_machine.travel(datetime.datetime(2026, 10, 12, 10, tzinfo=SH), tick=False)
def test_new_technology_deadline_crosses_the_national_day_holiday(trial, people):
    # Academic review passed on Tuesday 29 September 2026, after ethics: Wednesday 30 September is the first working
    # day; 1–7 October are holidays; 8, 9 October and Saturday 10 October (a make-up working day) follow.
    days = value("new_technology_filing_working_days", D(2026, 9, 29))
    obligation = new_technology(trial, people["office"], D(2026, 9, 29))
    counted, day = 0, D(2026, 9, 29)
    holidays = {D(2026, 10, n) for n in range(1, 8)}
    while counted < days:
        day += datetime.timedelta(days=1)
        counted += day not in holidays and (day.weekday() < 5 or day == D(2026, 10, 10))
    assert obligation.basis_on == D(2026, 9, 29)
    assert obligation.due_at == end_of(day) and day > D(2026, 10, 7)
    assert not obligation.provisional


@time_machine.travel(datetime.datetime(2026, 6, 10, 10, tzinfo=SH), tick=False)
def test_the_later_review_counts_and_a_late_evening_approval_is_its_beijing_day(institution, people):
    trial = TrialFactory(lead_institution=institution, status=S.UNDER_REVIEW, reviews_passed=False)
    office = people["office"]
    filings.new_technology_set(trial=trial, actor=office, answer=True, reason="干细胞新技术")
    review(trial, office, RK.ACADEMIC, on=D(2026, 6, 1))
    assert not FilingObligation.objects.filter(trial=trial).exists()  # ethics not yet passed
    # The committee approves at 23:50 Beijing time on Friday 5 June (15:50 UTC): that Friday is the day passed.
    with time_machine.travel(datetime.datetime(2026, 6, 5, 23, 50, tzinfo=SH), tick=False):
        TrialSite.objects.filter(trial=trial).update(ethics_approved_on=timezone.localdate())
        trial.refresh_from_db()
        filings.on_lead_ethics_approval(trial=trial, amendment=False, approved_on=timezone.localdate(), key="d:1")
    obligation = FilingObligation.objects.get(trial=trial, kind=K.NEW_TECHNOLOGY)
    days = value("new_technology_filing_working_days", D(2026, 6, 5))
    assert obligation.basis_on == D(2026, 6, 5)
    day, counted = D(2026, 6, 5), 0
    while counted < days:  # no holiday in early June 2026: weekdays only
        day += datetime.timedelta(days=1)
        counted += day.weekday() < 5
    assert obligation.due_at == end_of(day)


def test_a_deadline_in_an_unpublished_year_is_provisional_and_recomputed(institution, people):
    with time_machine.travel(datetime.datetime(2026, 12, 30, 10, tzinfo=SH), tick=False):
        trial = TrialFactory(lead_institution=institution, status=S.APPROVED, reviews_passed=False)
        TrialSite.objects.filter(trial=trial).update(ethics_approved_on=D(2026, 12, 28))
        obligation = new_technology(trial, people["office"], D(2026, 12, 30))
    assert obligation.provisional and obligation.provisional_years == [2027]
    provisional_due = obligation.due_at
    assert filings.open_deadline_horizon() == timezone.localdate(provisional_due)
    schedule = HolidaySchedule.objects.create(
        year=2027, source="office", notice="国办发明电〔2026〕1号", published_on=D(2026, 12, 1)
    )
    schedule.days.create(date=D(2027, 1, 1), kind="holiday", name="元旦")
    schedule.days.create(date=D(2027, 1, 4), kind="holiday", name="元旦")
    assert filings.recompute_deadlines((2027,)) == 1
    obligation.refresh_from_db()
    assert not obligation.provisional and obligation.due_at == provisional_due + datetime.timedelta(days=1)


def test_answering_no_cancels_an_open_new_technology_filing(trial, people):
    with time_machine.travel(datetime.datetime(2026, 5, 6, 10, tzinfo=SH), tick=False):
        obligation = new_technology(trial, people["office"], D(2026, 5, 6))
        filings.new_technology_set(trial=trial, actor=people["office"], answer=False, reason="已有临床应用")
    obligation.refresh_from_db()
    assert obligation.status == FilingObligation.Status.CANCELLED


def test_no_new_technology_clock_before_the_order_was_in_force(trial, people):
    with time_machine.travel(datetime.datetime(2026, 4, 20, 10, tzinfo=SH), tick=False):
        filings.new_technology_set(trial=trial, actor=people["office"], answer=True, reason="基因编辑")
        review(trial, people["office"], RK.ACADEMIC, on=D(2026, 4, 20))
    assert not FilingObligation.objects.filter(trial=trial, kind=K.NEW_TECHNOLOGY).exists()


# --- work queues --------------------------------------------------------------------------------------------------


def test_work_queues_show_due_filings_overdue_first_to_office_and_pi(filed, people, django_assert_max_num_queries):
    annual = FilingObligation.objects.get(trial=filed, kind=K.ANNUAL)
    filings.on_lead_ethics_approval(trial=filed, amendment=True, approved_on=D(2026, 4, 1), key="decision:1")
    now = annual.remind_at + datetime.timedelta(days=1)
    for person in (people["office"], filed.pi):
        with django_assert_max_num_queries(20):
            queue = workqueue.work_queue(person, now=now)
        items = [item for item in queue.items if item.kind == "filing.due"]
        assert [item.overdue for item in items] == [True, False]
        assert filed.protocol_number in items[0].title
    assert not [item for item in workqueue.work_queue(people["ethics"], now=now).items if item.kind == "filing.due"]
