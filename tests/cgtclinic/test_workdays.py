"""Deadlines in Chinese working days: the 2026 holidays and their make-up days, receipt on any kind of day,
close of business, and years without a schedule."""

import datetime
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cgtclinic import workdays
from cgtclinic.models import CalendarDay, HolidaySchedule
from cgtclinic.workdays import (
    Calendar,
    add_working_days,
    is_working_day,
    working_days_between,
    working_hours_between,
)

BEIJING = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime.datetime:
    """A Beijing wall-clock moment, e.g. at("2026-02-12 10:00")."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


@pytest.fixture
def synced(db):
    return workdays.sync_from_package(years=[2024, 2025, 2026])


def test_the_synced_calendar_agrees_with_chinese_calendar_on_every_day(synced):
    calendar = Calendar.load(day("2024-01-01"), day("2026-12-31"))
    current, disagreements = day("2024-01-01"), []
    while current.year <= 2026:
        if calendar.is_working_day(current) != chinese_calendar.is_workday(current):
            disagreements.append(current)
        current += datetime.timedelta(days=1)
    assert disagreements == []


@pytest.mark.parametrize(
    ("date", "working"),
    [
        # Spring Festival 2026: 15–23 February off, Saturdays 14 and 28 February worked.
        ("2026-02-13", True),
        ("2026-02-14", True),
        ("2026-02-15", False),
        ("2026-02-16", False),
        ("2026-02-20", False),
        ("2026-02-23", False),
        ("2026-02-24", True),
        ("2026-02-28", True),
        ("2026-03-01", False),
        # Labour Day: 1–5 May off, Saturday 9 May worked.
        ("2026-05-01", False),
        ("2026-05-05", False),
        ("2026-05-06", True),
        ("2026-05-09", True),
        # Mid-Autumn 25–27 September; National Day 1–7 October; Sunday 20 September and Saturday 10 October worked.
        ("2026-09-20", True),
        ("2026-09-25", False),
        ("2026-10-01", False),
        ("2026-10-07", False),
        ("2026-10-08", True),
        ("2026-10-10", True),
        ("2026-10-11", False),
    ],
)
def test_2026_holidays_and_make_up_days(synced, date, working):
    assert is_working_day(day(date)) is working
    assert chinese_calendar.is_workday(day(date)) is working


@pytest.mark.parametrize(
    ("received", "n", "last_day"),
    [
        # Thursday before the Spring Festival: Friday, the make-up Saturday, then nine days off.
        ("2026-02-12 10:00", 3, "2026-02-24"),
        # Friday evening before the make-up Saturday: that Saturday counts.
        ("2026-02-13 20:00", 1, "2026-02-14"),
        # Received on the make-up Saturday itself: the day of receipt never counts.
        ("2026-02-14 15:00", 1, "2026-02-24"),
        # Received during the holiday.
        ("2026-02-18 09:00", 1, "2026-02-24"),
        ("2026-02-18 09:00", 3, "2026-02-26"),
        # Friday evening before the second make-up Saturday.
        ("2026-02-27 18:00", 1, "2026-02-28"),
        # An ordinary Friday evening: the weekend does not count.
        ("2026-03-06 21:00", 3, "2026-03-11"),
        # Labour Day: five days off, then the make-up Saturday 9 May is the fourth working day.
        ("2026-04-30 17:30", 3, "2026-05-08"),
        ("2026-04-30 17:30", 4, "2026-05-09"),
        # Mid-Autumn Festival on a Friday, before the make-up Sunday of National Day.
        ("2026-09-18 19:00", 1, "2026-09-20"),
        ("2026-09-24 11:00", 2, "2026-09-29"),
        # National Day: seven days off, then Thursday, Friday and the make-up Saturday.
        ("2026-09-30 16:00", 3, "2026-10-10"),
        ("2026-10-03 08:00", 1, "2026-10-08"),
    ],
)
def test_deadline_ends_at_midnight_after_the_nth_working_day(synced, received, n, last_day):
    result = add_working_days(at(received), n)

    assert result.last_day == day(last_day)
    assert result.due_at == datetime.datetime.combine(
        day(last_day) + datetime.timedelta(days=1), datetime.time(0), BEIJING
    )
    assert result.due_at.tzinfo == BEIJING
    assert not result.provisional
    assert result.provisional_years == ()


def test_receipt_day_is_the_beijing_date(synced):
    # 16:30 UTC on Friday is 00:30 on Saturday in Beijing: received on a Saturday, so Monday is day one.
    friday_utc = datetime.datetime(2026, 3, 6, 16, 30, tzinfo=datetime.UTC)
    assert add_working_days(friday_utc, 1).last_day == day("2026-03-09")
    # 15:30 UTC is still Friday 23:30 in Beijing.
    assert add_working_days(friday_utc - datetime.timedelta(hours=1), 1).last_day == day("2026-03-09")
    assert add_working_days(day("2026-03-06"), 1).last_day == day("2026-03-09")


def test_close_of_business_ends_the_period_on_the_last_day(synced):
    result = add_working_days(at("2026-04-30 17:30"), 3, close_of_business=datetime.time(17, 30))
    assert result.due_at == at("2026-05-08 17:30")
    assert result.last_day == day("2026-05-08")


def test_bad_arguments_are_refused(synced):
    with pytest.raises(ValueError, match="at least one working day"):
        add_working_days(at("2026-03-02 09:00"), 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_days(datetime.datetime(2026, 3, 2, 9), 3)
    with pytest.raises(ValueError, match="without a time zone"):
        add_working_days(at("2026-03-02 09:00"), 3, close_of_business=datetime.time(17, tzinfo=BEIJING))
    with pytest.raises(ValueError, match="before start"):
        working_days_between(day("2026-03-02"), day("2026-03-01"))


def test_a_deadline_reaching_into_a_year_without_schedule_is_provisional(synced):
    # Wednesday 30 December: Thursday 31st, then 1 January (statutory) and the weekend, then 4 and 5 January.
    result = add_working_days(at("2026-12-30 10:00"), 3)
    assert result.provisional
    assert result.provisional_years == (2027,)
    assert result.last_day == day("2027-01-05")


def test_a_deadline_ending_on_the_last_day_of_a_known_year_is_not_provisional(synced):
    result = add_working_days(at("2026-12-28 10:00"), 3)
    assert result.last_day == day("2026-12-31")
    assert result.due_at == at("2027-01-01 00:00")
    assert not result.provisional


@pytest.mark.parametrize(
    ("date", "working"),
    [
        ("2027-01-01", False),  # 元旦
        ("2027-02-05", False),  # 农历除夕, a holiday since the 2025 revision
        ("2027-02-08", False),  # 正月初三
        ("2027-02-09", True),
        ("2027-04-05", False),  # the 清明 solar term
        ("2027-05-03", True),  # only 1–2 May are statutory; the bridge days come with the schedule
        ("2027-06-09", False),  # 端午, 农历五月初五
        ("2027-09-15", False),  # 中秋, 农历八月十五
        ("2027-10-04", True),  # only 1–3 October are statutory
        ("2027-02-06", False),  # a Saturday
    ],
)
def test_a_year_without_schedule_uses_weekends_and_statutory_holidays(synced, date, working):
    assert is_working_day(day(date)) is working


def test_the_current_regulation_agrees_with_chinese_calendar_where_both_know(synced):
    """Every day the regulation makes a holiday is one in the State Council's 2025 and 2026 schedules."""
    for year in (2025, 2026):
        for holiday in workdays.statutory_holidays(year):
            assert not chinese_calendar.is_workday(holiday), holiday


def test_every_revision_of_the_regulation_cites_its_source():
    revisions = workdays.statutory_revisions()
    assert [r.effective_from.year for r in revisions] == [1999, 2008, 2014, 2025]
    current = revisions[-1]
    assert current.effective_to is None
    assert "国务院令" in current.source_document
    assert current.source_clause


def test_a_malformed_holiday_file_is_refused(tmp_path):
    path = tmp_path / "holidays.yaml"
    path.write_text(
        "- {source_document: a, source_clause: b, effective_from: 2020-01-01, effective_to: null,"
        "   holidays: [{name: 元旦, days: [{kind: solar, month: 1, day: 1}]}]}\n"
        "- {source_document: a, source_clause: b, effective_from: 2025-01-01, effective_to: null,"
        "   holidays: [{name: 元旦, days: [{kind: solar, month: 1, day: 1}]}]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ImproperlyConfigured, match="overlaps"):
        workdays.statutory_revisions(path)
    path.write_text(
        "- {source_document: a, source_clause: b, effective_from: 2020-01-01, effective_to: null,"
        "   holidays: [{name: 元旦, days: [{kind: gregorian, month: 1, day: 1}]}]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ImproperlyConfigured, match="unknown day"):
        workdays.statutory_revisions(path)


def test_a_day_no_source_covers_is_an_error_not_a_guess(db):
    with pytest.raises(workdays.CalendarUnavailable):
        is_working_day(day("1995-03-01"))


def test_working_days_between_counts_after_start_up_to_end(synced):
    assert working_days_between(day("2026-02-12"), day("2026-02-24")) == 3
    assert working_days_between(day("2026-02-12"), day("2026-02-12")) == 0
    assert working_days_between(at("2026-09-30 16:00"), at("2026-10-10 09:00")) == 3


def test_working_hours_count_only_working_days(synced):
    # Friday 18:00 to Monday 09:00: six hours on Friday and nine on Monday.
    assert working_hours_between(at("2026-03-06 18:00"), at("2026-03-09 09:00")) == datetime.timedelta(hours=15)
    # Across the Spring Festival: Friday evening, the make-up Saturday, nothing until Tuesday 24 February.
    assert working_hours_between(at("2026-02-13 20:00"), at("2026-02-24 10:00")) == datetime.timedelta(hours=38)
    assert working_hours_between(at("2026-02-16 08:00"), at("2026-02-16 12:00")) == datetime.timedelta(0)


def test_one_calendar_computes_any_number_of_deadlines_in_constant_queries(synced):
    receipts = [at("2026-01-05 09:00") + datetime.timedelta(hours=7 * i) for i in range(1000)]

    def queries_for(count: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            calendar = Calendar.load(receipts[0].date(), receipts[-1].date())
            for receipt in receipts[:count]:
                add_working_days(receipt, 3, calendar=calendar)
        return len(captured)

    assert queries_for(10) == queries_for(1000) == 2


def test_a_calendar_reads_further_years_once_when_a_deadline_reaches_them(synced):
    calendar = Calendar.load(day("2026-12-01"), day("2026-12-31"))
    with CaptureQueriesContext(connection) as captured:
        for offset in range(100):
            add_working_days(at("2026-12-20 09:00") + datetime.timedelta(hours=offset), 10, calendar=calendar)
    assert len(captured) == 1


def test_recorded_days_in_a_year_without_schedule_still_count(synced):
    """A notice may list the first days of the next year (a New Year holiday across the turn of the year)."""
    schedule = HolidaySchedule.objects.get(year=2026)
    CalendarDay.objects.create(schedule=schedule, date=day("2027-01-04"), kind=CalendarDay.Kind.HOLIDAY, name="元旦")
    result = add_working_days(at("2026-12-30 10:00"), 3)
    assert result.last_day == day("2027-01-06")
    assert result.provisional


def test_day_start_is_beijing_midnight_whatever_zone_is_active():
    """Deadlines and due times (work queue, safety clocks) start a day at 00:00 Beijing time, even while a request
    runs with another time zone active."""
    from django.utils import timezone

    from cgtclinic.workdays import CALENDAR_TZ, day_start

    with timezone.override("America/New_York"):
        start = day_start(datetime.date(2026, 10, 8))
    assert start == datetime.datetime(2026, 10, 8, 0, 0, tzinfo=CALENDAR_TZ)
    assert start.utcoffset() == datetime.timedelta(hours=8)
