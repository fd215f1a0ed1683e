"""Continuing-review reminders: when they are sent, to whom, exactly once however often and however
concurrently the sweep runs, and only for the current due date."""

import datetime
import threading
import time
import zoneinfo

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cgtclinic.celery import app as celery_app
from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics import services
from ethics.models import ContinuingReviewReminder, Decision, Submission
from ethics.reminders import continuing_review_due_decisions, send_continuing_review_reminders
from ethics.tasks import remind_continuing_review, sweep_continuing_reviews
from tests.cgtclinic.helpers import flush_broker
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import DecisionFactory, SubmissionFactory
from tests.factories.trials import TrialFactory

Stage = ContinuingReviewReminder.Stage
SHANGHAI = zoneinfo.ZoneInfo(settings.TIME_ZONE)
DUE = datetime.date(2026, 6, 30)


def at(day: datetime.date, hour: int = 9) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour), tzinfo=SHANGHAI)


def approved(trial, committee, due=DUE) -> Decision:
    submission = SubmissionFactory(trial=trial, committee=committee, status=Submission.Status.DECIDED)
    return DecisionFactory(
        submission=submission,
        next_continuing_review_due=due,
        letter_number=f"{committee.letter_prefix}〔2025〕{submission.pk:03d}号",
    )


def sweep_on(day: datetime.date):
    with time_machine.travel(at(day), tick=False):
        return send_continuing_review_reminders()


def reminders(decision):
    return sorted(decision.reminders.values_list("due_on", "stage"))


@pytest.fixture
def days(committee):
    return committee.continuing_review_reminder_days


@pytest.fixture
def decision(trial, committee):
    return approved(trial, committee)


@pytest.fixture
def recipients(trial, office, research_office):
    return {trial.pi, office, research_office}


@pytest.mark.django_db
def test_nothing_before_the_window(decision, days):
    assert sweep_on(DUE - datetime.timedelta(days=days + 1)) == []
    assert sweep_on(DUE - datetime.timedelta(days=days + 1)) == []
    assert reminders(decision) == []
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_one_upcoming_reminder_on_entering_the_window_however_often_swept(decision, days, recipients):
    first_day = DUE - datetime.timedelta(days=days)
    assert sweep_on(first_day) == [(decision, Stage.UPCOMING)]
    assert sweep_on(first_day) == []
    assert sweep_on(first_day + datetime.timedelta(days=10)) == []
    assert sweep_on(DUE) == []
    assert reminders(decision) == [(DUE, Stage.UPCOMING)]
    notifications = Notification.objects.filter(topic="continuing_review.upcoming")
    assert {n.recipient for n in notifications} == recipients
    assert notifications.count() == len(recipients)


@pytest.mark.django_db
def test_due_date_itself_is_upcoming_and_the_day_after_overdue_once(decision, recipients):
    assert sweep_on(DUE) == [(decision, Stage.UPCOMING)]
    assert sweep_on(DUE + datetime.timedelta(days=1)) == [(decision, Stage.OVERDUE)]
    assert sweep_on(DUE + datetime.timedelta(days=1)) == []
    assert sweep_on(DUE + datetime.timedelta(days=40)) == []
    assert reminders(decision) == [(DUE, Stage.OVERDUE), (DUE, Stage.UPCOMING)]
    assert Notification.objects.filter(topic="continuing_review.overdue").count() == len(recipients)


@pytest.mark.django_db
def test_a_sweep_that_first_runs_after_the_due_date_sends_only_the_overdue_reminder(decision):
    assert sweep_on(DUE + datetime.timedelta(days=3)) == [(decision, Stage.OVERDUE)]
    assert reminders(decision) == [(DUE, Stage.OVERDUE)]


@pytest.mark.django_db
def test_the_window_is_each_committees_own(trial, committee, days):
    committee.continuing_review_reminder_days = days // 2
    committee.save()
    decision = approved(trial, committee)
    assert sweep_on(DUE - datetime.timedelta(days=days)) == []
    assert sweep_on(DUE - datetime.timedelta(days=days // 2)) == [(decision, Stage.UPCOMING)]


@pytest.mark.django_db
def test_recipients_are_the_pi_the_committees_office_and_the_lead_research_office(decision, trial, recipients):
    second_officer = UserFactory(role=Role.ETHICS_OFFICE, institution=trial.lead_institution)
    elsewhere = InstitutionFactory()
    not_told = [
        UserFactory(role=Role.ETHICS_OFFICE, institution=elsewhere),
        UserFactory(role=Role.RESEARCH_OFFICE, institution=elsewhere),
        UserFactory(role=Role.RESEARCH_OFFICE, institution=trial.lead_institution, is_active=False),
        UserFactory(role=Role.PI, institution=trial.lead_institution),
    ]
    sweep_on(DUE)
    told = {n.recipient for n in Notification.objects.all()}
    assert told == {*recipients, second_officer}
    assert not told & set(not_told)


@pytest.mark.django_db
def test_the_message_names_the_study_the_date_and_the_letter(decision, trial, research_office):
    sweep_on(DUE)
    notification = Notification.objects.get(recipient=research_office)
    assert notification.event_key == f"decision:{decision.pk}:{DUE.isoformat()}"
    assert DUE.isoformat() in notification.subject and trial.protocol_number in notification.subject
    assert trial.title_zh in notification.body and decision.letter_number in notification.body
    assert decision.committee.name_zh in notification.body


@pytest.mark.django_db
def test_a_moved_due_date_gets_reminders_for_the_new_date_only(decision, days):
    sweep_on(DUE)
    new_due = DUE + datetime.timedelta(days=365)
    Decision.objects.filter(pk=decision.pk).update(next_continuing_review_due=new_due)
    assert sweep_on(DUE + datetime.timedelta(days=1)) == []  # the old date is never reported overdue
    assert sweep_on(new_due - datetime.timedelta(days=days)) == [(decision, Stage.UPCOMING)]
    assert reminders(decision) == [(DUE, Stage.UPCOMING), (new_due, Stage.UPCOMING)]


@pytest.mark.django_db
def test_decisions_without_a_due_date_are_never_reminded(trial, committee):
    approved(trial, committee, due=None)
    assert sweep_on(DUE + datetime.timedelta(days=400)) == []


# --- a new approval, through the ethics services -------------------------------------------------------------


def _decide_expedited(submission, office, committee) -> Decision:
    assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
    services.opinion_record(assignment=assignment, actor=office, opinion="approve")
    return services.decision_record(submission=submission, actor=office, outcome=Decision.Outcome.APPROVE)


@pytest.mark.django_db
def test_a_continuing_review_approval_moves_the_date_and_the_old_one_stops(routed, office, committee, days):
    with time_machine.travel(at(datetime.date(2026, 1, 15)), tick=False):
        first = _decide_expedited(routed("expedited"), office, committee)
    old_due = first.next_continuing_review_due
    assert sweep_on(old_due - datetime.timedelta(days=days)) == [(first, Stage.UPCOMING)]

    with time_machine.travel(at(old_due - datetime.timedelta(days=days - 2)), tick=False):
        trial = first.submission.trial
        report = services.submission_create(
            actor=trial.pi,
            trial=trial,
            kind=Submission.Kind.CONTINUING_REVIEW,
            summary="年度跟踪审查报告",
            details={"enrolled_to_date": "12", "safety_summary": "无新的安全性风险", "progress": "按计划入组"},
        )
        services.submission_submit(submission=report, actor=trial.pi)
        services.submission_accept(submission=report, actor=office)
        services.submission_route(submission=report, actor=office, review_type="expedited", reason="无新风险")
        second = _decide_expedited(report, office, committee)
    first.refresh_from_db()
    assert first.next_continuing_review_due is None
    new_due = second.next_continuing_review_due
    assert new_due > old_due

    assert sweep_on(old_due + datetime.timedelta(days=1)) == []
    assert sweep_on(new_due - datetime.timedelta(days=days + 1)) == []
    assert sweep_on(new_due - datetime.timedelta(days=days)) == [(second, Stage.UPCOMING)]
    assert reminders(first) == [(old_due, Stage.UPCOMING)]
    assert reminders(second) == [(new_due, Stage.UPCOMING)]


# --- concurrency ------------------------------------------------------------------------------------------------


@pytest.fixture
def empty_broker():
    """Transactional tests commit, so notify() queues real e-mail tasks; they are dropped afterwards."""
    yield
    if settings.REDIS_URL:
        flush_broker()


def _in_thread(target, results, key):
    def run():
        try:
            results[key] = target()
        except Exception as exc:  # surfaced by the assertions below
            results[key] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_in_overlapping_transactions_remind_once(empty_broker, trial, committee, recipients):
    decision = approved(trial, committee, due=timezone.localdate() + datetime.timedelta(days=1))
    inserted, release = threading.Event(), threading.Event()
    results = {}

    def first():
        with transaction.atomic():
            sent = send_continuing_review_reminders()
            inserted.set()
            release.wait(10)  # holds its uncommitted reminder row while the second sweep runs
        return sent

    def second():
        inserted.wait(10)
        return send_continuing_review_reminders()

    threads = [_in_thread(first, results, "first"), _in_thread(second, results, "second")]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:

            def second_is_waiting_on_the_row_lock():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                return cursor.fetchone()[0] == 1

            deadline = time.monotonic() + 10
            while not second_is_waiting_on_the_row_lock():
                assert time.monotonic() < deadline, "the second sweep never reached the reminder insert"
                time.sleep(0.02)
    release.set()
    for thread in threads:
        thread.join(20)

    assert results["first"] == [(decision, Stage.UPCOMING)]
    assert results["second"] == []
    assert decision.reminders.count() == 1
    assert Notification.objects.count() == len(recipients)


@pytest.mark.django_db(transaction=True)
def test_sweeps_started_at_the_same_moment_remind_once(empty_broker, trial, committee, recipients):
    decision = approved(trial, committee, due=timezone.localdate())
    barrier = threading.Barrier(3)
    results = {}

    def sweep():
        barrier.wait(10)
        return send_continuing_review_reminders()

    threads = [_in_thread(sweep, results, n) for n in range(3)]
    for thread in threads:
        thread.join(20)
    assert sorted(len(sent) for sent in results.values()) == [0, 0, 1]
    assert reminders(decision) == [(timezone.localdate(), Stage.UPCOMING)]
    assert Notification.objects.count() == len(recipients)


# --- the query -------------------------------------------------------------------------------------------------


def _in_window(committee, count):
    return [approved(TrialFactory(lead_institution=committee.institution), committee) for _ in range(count)]


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 6])
def test_selection_is_two_queries_whatever_the_number_of_decisions(committee, count, django_assert_num_queries, days):
    _in_window(committee, count)
    today = DUE - datetime.timedelta(days=days)
    with django_assert_num_queries(2):
        due = continuing_review_due_decisions(today)
        recipients = {(d.committee.institution_id, d.submission.trial.pi.pk) for d, _stage in due}
    assert len(due) == len(recipients) == count


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 6])
def test_a_sweep_with_nothing_new_costs_the_same_at_any_size(committee, count, django_assert_num_queries):
    _in_window(committee, count)
    sweep_on(DUE)
    with django_assert_num_queries(2):
        assert sweep_on(DUE) == []


@pytest.mark.django_db
@pytest.mark.skipif(settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="PostgreSQL")
def test_the_selection_can_use_the_partial_index_on_the_due_date(decision):
    with CaptureQueriesContext(connection) as queries:
        continuing_review_due_decisions(DUE)
    [select] = [q["sql"] for q in queries.captured_queries if 'FROM "ethics_decision"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {select}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "decision_cr_due_idx" in plan, plan


# --- tasks and the beat schedule -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_tasks_apply_the_same_rule(trial, committee):
    first, second = (
        approved(trial, committee),
        approved(TrialFactory(lead_institution=trial.lead_institution), committee),
    )
    with time_machine.travel(at(DUE), tick=False):
        assert remind_continuing_review(first.pk) == 1
        assert remind_continuing_review(first.pk) == 0
        assert sweep_continuing_reviews() == 1
        assert sweep_continuing_reviews() == 0
    assert reminders(first) == reminders(second) == [(DUE, Stage.UPCOMING)]


# The scheduler commits and closes connections itself, as beat does, so it needs a test that really commits.
@pytest.mark.django_db(transaction=True)
def test_beat_runs_the_sweep_every_15_minutes_and_each_run_expires_before_the_next():
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    DatabaseScheduler(app=celery_app)
    task = PeriodicTask.objects.get(task="ethics.tasks.sweep_continuing_reviews")
    interval = datetime.timedelta(**{task.interval.period: task.interval.every})
    assert interval == datetime.timedelta(minutes=15)
    assert 0 < task.expire_seconds < interval.total_seconds()
    assert task.task in celery_app.tasks
