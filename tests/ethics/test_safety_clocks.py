"""Safety clocks: calendar days by the Civil Code's day rule (day 0 not counted, 24:00 Beijing of the last day),
holidays that do not move them, receipt late in the day, years without a holiday schedule, hours from the moment,
and the institution's own period."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from cgtclinic.models import HolidaySchedule
from cgtclinic.workdays import add_working_days
from ethics import safety
from ethics.models import SafetyClock, SafetyReportingSettings
from tests.ethics.safety_world import beijing, record_sae, record_susar, seeded

C = SafetyClock.Kind
pytestmark = pytest.mark.django_db


def at_midnight(day: datetime.date) -> datetime.datetime:
    return beijing(day.year, day.month, day.day, 0, 0)


def clock(event, kind) -> SafetyClock:
    return event.clocks.get(kind=kind)


def test_a_fatal_susar_across_national_day_is_not_extended_by_the_holiday(world):
    days = seeded("susar_fatal_expedited_calendar_days")
    day0 = datetime.date(2026, 9, 28)
    with time_machine.travel(beijing(2026, 10, 20, 9, 0)):
        event = record_susar(world, day0, beijing(2026, 10, 3, 10, 0), fatal=True)
    expedited = clock(event, C.SUSAR_EXPEDITED)
    # Day 0 is not counted; the period ends at 24:00 of day 0 + 7, through the holiday as through any day.
    assert expedited.due_at == at_midnight(day0 + datetime.timedelta(days=days + 1))
    assert timezone.localtime(expedited.due_at).date() < add_working_days(day0, days).last_day
    assert (expedited.met_at, expedited.late) == (event.received_at, False)


def test_a_susar_received_after_its_last_day_is_marked_late(world):
    days = seeded("susar_expedited_calendar_days")
    day0 = datetime.date(2026, 3, 2)
    last_day = day0 + datetime.timedelta(days=days)
    with time_machine.travel(beijing(2026, 4, 1)):
        on_time = record_susar(world, day0, beijing(last_day.year, last_day.month, last_day.day, 23, 59))
        late = record_susar(
            world, day0, at_midnight(last_day + datetime.timedelta(days=1)) + datetime.timedelta(minutes=1)
        )
    assert clock(on_time, C.SUSAR_EXPEDITED).late is False
    assert clock(late, C.SUSAR_EXPEDITED).late is True


@pytest.mark.parametrize("hour", [23, 7])
def test_a_receipt_late_or_early_in_the_beijing_day_counts_from_that_beijing_day(world, hour):
    days = seeded("susar_pi_review_calendar_days")
    received = beijing(2026, 3, 10, hour, 30)  # 07:30 Beijing is 23:30 UTC the day before
    with time_machine.travel(beijing(2026, 3, 11)):
        event = record_susar(world, datetime.date(2026, 3, 9), received)
    review = clock(event, C.PI_REVIEW)
    assert review.due_at == at_midnight(datetime.date(2026, 3, 10) + datetime.timedelta(days=days + 1))
    assert review.remind_at > review.started_at


def test_a_deadline_in_a_year_without_a_holiday_schedule_is_computed_and_not_provisional(world):
    assert not HolidaySchedule.objects.filter(year=2031).exists()
    days = seeded("susar_fatal_expedited_calendar_days")
    with time_machine.travel(beijing(2030, 12, 30, 12, 0)):
        event = record_susar(world, datetime.date(2030, 12, 29), beijing(2030, 12, 30, 11, 0), fatal=True)
    follow_up = clock(event, C.SUSAR_FOLLOW_UP)
    assert follow_up.due_at == at_midnight(
        datetime.date(2030, 12, 30) + datetime.timedelta(days=seeded("susar_fatal_follow_up_calendar_days") + 1)
    )
    expedited = clock(event, C.SUSAR_EXPEDITED)
    assert expedited.due_at == at_midnight(datetime.date(2030, 12, 29) + datetime.timedelta(days=days + 1))
    # Calendar days need no holiday schedule: nothing on the clock is provisional, and the escalation is due then.
    assert not hasattr(follow_up, "provisional")


def test_sae_clocks_run_in_hours_from_awareness(world):
    aware = beijing(2026, 5, 1, 22, 15)  # Labour Day: hours do not care
    with time_machine.travel(beijing(2026, 5, 1, 23, 0)):
        event = record_sae(world, aware)
    assert clock(event, C.SPONSOR_REPORT).due_at == aware + datetime.timedelta(hours=seeded("sae_sponsor_report_hours"))
    assert clock(event, C.EC_REPORT).due_at == aware + datetime.timedelta(hours=seeded("sae_ec_report_hours"))
    assert "第二十六条" in clock(event, C.SPONSOR_REPORT).period_source


def test_the_institution_sets_its_own_period_for_reports_to_its_committee(world):
    SafetyReportingSettings.objects.create(institution=world["hospital"], ec_report_hours=48)
    aware = beijing(2026, 6, 1, 9, 0)
    with time_machine.travel(beijing(2026, 6, 1, 10, 0)):
        event = record_sae(world, aware)
    ec = clock(event, C.EC_REPORT)
    assert (ec.due_at, ec.period) == (aware + datetime.timedelta(hours=48), 48)
    assert str(world["hospital"]) in ec.period_source


def test_calendar_day_deadline_is_the_civil_code_day_rule():
    assert safety.calendar_day_deadline(datetime.date(2026, 1, 31), 1) == beijing(2026, 2, 2, 0, 0)
    assert safety.calendar_day_deadline(beijing(2026, 12, 31, 23, 59), 0) == beijing(2027, 1, 1, 0, 0)
