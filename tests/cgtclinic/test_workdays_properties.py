"""Properties of working-day deadlines over the synced 2024–2026 schedules and the provisional 2027–2028."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgtclinic import workdays
from cgtclinic.workdays import Calendar, add_working_days, working_days_between, working_hours_between

BEIJING = ZoneInfo("Asia/Shanghai")
FIRST, LAST = datetime.datetime(2024, 1, 1), datetime.datetime(2028, 10, 31)

# The calendar is built once per test and only read, so sharing it across examples is safe.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

moments = st.datetimes(min_value=FIRST, max_value=LAST, timezones=st.sampled_from([BEIJING, datetime.UTC]))
periods = st.integers(min_value=1, max_value=30)


@pytest.fixture
def calendar(db):
    workdays.sync_from_package(years=[2024, 2025, 2026])
    return Calendar.load(FIRST.date(), datetime.date(2028, 12, 31))


def receipt_day(moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(BEIJING).date()


@PROPERTY
@given(moment=moments, n=periods)
def test_the_period_ends_after_a_working_day_with_exactly_n_working_days_since_receipt(calendar, moment, n):
    result = add_working_days(moment, n, calendar=calendar)

    assert calendar.is_working_day(result.last_day)
    assert working_days_between(receipt_day(moment), result.last_day, calendar=calendar) == n
    assert working_days_between(
        receipt_day(moment), result.last_day - datetime.timedelta(days=1), calendar=calendar
    ) == (n - 1)
    assert result.due_at == datetime.datetime.combine(
        result.last_day + datetime.timedelta(days=1), datetime.time(0), BEIJING
    )
    # From the start of the day after receipt to the deadline lie exactly n whole working days.
    next_day = datetime.datetime.combine(receipt_day(moment) + datetime.timedelta(days=1), datetime.time(0), BEIJING)
    assert working_hours_between(next_day, result.due_at, calendar=calendar) == datetime.timedelta(days=n)


@PROPERTY
@given(moment=moments, n=periods)
def test_provisional_exactly_when_the_period_reaches_a_year_without_schedule(calendar, moment, n):
    result = add_working_days(moment, n, calendar=calendar)

    first_counted = receipt_day(moment) + datetime.timedelta(days=1)
    examined_years = set(range(first_counted.year, result.last_day.year + 1))
    assert result.provisional == (result.last_day.year >= 2027)
    assert set(result.provisional_years) == {year for year in examined_years if year >= 2027}
    assert list(result.provisional_years) == sorted(result.provisional_years)


@PROPERTY
@given(moment=moments, n=periods)
def test_a_longer_period_ends_later(calendar, moment, n):
    shorter = add_working_days(moment, n, calendar=calendar)
    longer = add_working_days(moment, n + 1, calendar=calendar)
    assert shorter.due_at < longer.due_at


@PROPERTY
@given(first=moments, second=moments, n=periods, close=st.none() | st.times(min_value=datetime.time(8)))
def test_a_later_receipt_never_ends_earlier(calendar, first, second, n, close):
    earlier, later = sorted([first, second])
    assert (
        add_working_days(earlier, n, close_of_business=close, calendar=calendar).due_at
        <= add_working_days(later, n, close_of_business=close, calendar=calendar).due_at
    )


@PROPERTY
@given(moment=moments, n=periods)
def test_a_calendar_gives_what_the_database_gives(calendar, moment, n):
    assert add_working_days(moment, n, calendar=calendar) == add_working_days(moment, n)
