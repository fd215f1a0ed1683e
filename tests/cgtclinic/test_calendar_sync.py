"""manage.py sync_calendar: imports what chinese-calendar knows, again without effect, never over the office."""

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from cgtclinic import workdays
from cgtclinic.models import CalendarDay, HolidaySchedule
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory


@pytest.fixture
def heard():
    """The years each schedule-change notification carried, as a listener registered by an app would see them."""
    calls = []
    workdays.register_schedule_listener(calls.append)
    yield calls
    workdays.unregister_schedule_listener(calls.append)


def sync(*args) -> str:
    out = StringIO()
    with translation.override("en"):
        call_command("sync_calendar", *args, stdout=out)
    return out.getvalue()


def history_rows() -> int:
    return HolidaySchedule.history.count() + CalendarDay.history.count()


@pytest.mark.django_db
def test_sync_imports_every_year_the_package_knows(django_capture_on_commit_callbacks, heard):
    with django_capture_on_commit_callbacks(execute=True):
        output = sync()

    years = list(workdays.package_years())
    assert years[0] == 2004 and years[-1] >= 2026
    assert list(HolidaySchedule.objects.order_by("year").values_list("year", flat=True)) == years
    assert set(HolidaySchedule.objects.values_list("source", flat=True)) == {HolidaySchedule.Source.PACKAGE}
    spring = CalendarDay.objects.filter(date__range=("2026-02-14", "2026-02-28")).values_list("date", "kind", "name")
    assert sorted(spring) == sorted(
        [(datetime.date(2026, 2, 14), "workday", "春节")]
        + [(datetime.date(2026, 2, d), "holiday", "春节") for d in range(15, 24)]
        + [(datetime.date(2026, 2, 28), "workday", "春节")]
    )
    assert CalendarDay.objects.get(date="2026-04-05").name == "清明节"
    assert heard == [tuple(years)]
    assert output.splitlines()[0] == f"Created: {', '.join(map(str, years))}."


@pytest.mark.django_db
def test_a_second_sync_changes_nothing_and_tells_nobody(django_capture_on_commit_callbacks, heard):
    sync("--years", "2025", "2026")
    rows, history = CalendarDay.objects.count(), history_rows()
    heard.clear()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = workdays.sync_from_package(years=[2025, 2026])

    assert report.unchanged == [2025, 2026]
    assert report.changed == []
    assert (CalendarDay.objects.count(), history_rows()) == (rows, history)
    assert callbacks == []
    assert heard == []


@pytest.mark.django_db
def test_sync_restores_a_year_that_drifted_from_the_package(django_capture_on_commit_callbacks, heard):
    workdays.sync_from_package(years=[2026])
    CalendarDay.objects.filter(date="2026-10-10").delete()
    CalendarDay.objects.filter(date="2026-05-05").update(name="改错了")
    heard.clear()

    with django_capture_on_commit_callbacks(execute=True):
        report = workdays.sync_from_package(years=[2026])

    assert report.updated == [2026]
    assert CalendarDay.objects.get(date="2026-10-10").kind == CalendarDay.Kind.WORKDAY
    assert CalendarDay.objects.get(date="2026-05-05").name == "劳动节"
    assert CalendarDay.objects.get(date="2026-05-05").history.first().history_change_reason == "sync_calendar"
    assert heard == [(2026,)]


@pytest.mark.django_db
def test_sync_keeps_the_office_entry_unless_forced(django_capture_on_commit_callbacks, heard):
    office = UserFactory(role=Role.SYSTEM_ADMIN)
    schedule = HolidaySchedule.objects.create(
        year=2026, source=HolidaySchedule.Source.OFFICE, notice="国办发明电〔2025〕7号", entered_by=office
    )
    CalendarDay.objects.create(schedule=schedule, date="2026-01-01", kind=CalendarDay.Kind.HOLIDAY, name="元旦")

    with django_capture_on_commit_callbacks(execute=True):
        output = sync("--years", "2025", "2026")

    assert "Entered by the office, left as they are (use --force to replace them): 2026." in output.splitlines()
    assert list(schedule.days.values_list("date", flat=True)) == [datetime.date(2026, 1, 1)]
    assert HolidaySchedule.objects.get(year=2026).source == HolidaySchedule.Source.OFFICE
    assert heard == [(2025,)]

    with django_capture_on_commit_callbacks(execute=True):
        sync("--years", "2026", "--force")

    schedule.refresh_from_db()
    assert schedule.source == HolidaySchedule.Source.PACKAGE
    assert schedule.entered_by is None
    assert schedule.notice == "国办发明电〔2025〕7号"
    assert set(schedule.days.values_list("date", flat=True)) == set(workdays.package_days(2026))
    assert heard == [(2025,), (2026,)]


@pytest.mark.django_db
def test_a_year_the_package_does_not_know_is_refused_and_nothing_is_written():
    with pytest.raises(CommandError, match="not 2027"):
        sync("--years", "2026", "2027")
    assert not HolidaySchedule.objects.exists()


@pytest.mark.django_db
def test_sync_names_the_years_still_missing(time_machine):
    time_machine.move_to(datetime.datetime(2027, 3, 1, 9, tzinfo=workdays.CALENDAR_TZ))
    output = sync("--years", "2026")
    assert output.splitlines()[-1].startswith("No holiday schedule yet for 2027:")
