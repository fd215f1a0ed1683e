"""The holiday schedule in the admin: a system administrator enters next year's, offices read it, missing
years are shown, and entering a year makes its deadlines final and tells the listening apps once."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from cgtclinic import workdays
from cgtclinic.models import CalendarDay, HolidaySchedule
from cgtclinic.workdays import CALENDAR_TZ, add_working_days

RECEIVED = datetime.datetime(2027, 2, 4, 10, tzinfo=CALENDAR_TZ)  # Thursday, the day before 农历除夕


@pytest.fixture
def synced(db):
    return workdays.sync_from_package(years=[2024, 2025, 2026])


@pytest.fixture
def heard():
    calls = []
    workdays.register_schedule_listener(calls.append)
    yield calls
    workdays.unregister_schedule_listener(calls.append)


def schedule_form(year: int, days: list[tuple[str, str, str]], **overrides) -> dict:
    """The add/change form of a year, with its days inline. These days are made up for the test."""
    data = {
        "year": str(year),
        "notice": "国办发明电〔2026〕9号",
        "published_on": "2026-11-20",
        "days-TOTAL_FORMS": str(len(days)),
        "days-INITIAL_FORMS": "0",
        "days-MIN_NUM_FORMS": "0",
        "days-MAX_NUM_FORMS": "1000",
    }
    for i, (date, kind, name) in enumerate(days):
        data.update({f"days-{i}-date": date, f"days-{i}-kind": kind, f"days-{i}-name": name})
    data.update(overrides)
    return data


SPRING_2027 = [(f"2027-02-{d:02d}", "holiday", "春节") for d in range(5, 13)] + [("2027-02-14", "workday", "春节")]


def test_entering_a_year_makes_its_deadlines_final_and_tells_the_listeners_once(
    client, synced, system_admin, heard, django_capture_on_commit_callbacks
):
    provisional = add_working_days(RECEIVED, 2)
    assert provisional.provisional and provisional.provisional_years == (2027,)
    assert provisional.last_day == datetime.date(2027, 2, 10)

    client.force_login(system_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:cgtclinic_holidayschedule_add"), schedule_form(2027, SPRING_2027))

    assert response.status_code == 302, response.content.decode()[:3000]
    schedule = HolidaySchedule.objects.get(year=2027)
    assert (schedule.source, schedule.entered_by) == (HolidaySchedule.Source.OFFICE, system_admin)
    assert schedule.days.count() == 9
    assert heard == [(2027,)]
    final = add_working_days(RECEIVED, 2)
    assert not final.provisional
    # 5–12 February off, Saturday 13th off, the make-up Sunday 14th and Monday 15th worked.
    assert final.last_day == datetime.date(2027, 2, 15)
    assert schedule.history.first().history_user == system_admin


def test_correcting_a_day_tells_the_listeners_and_makes_the_year_the_offices(
    client, synced, system_admin, heard, django_capture_on_commit_callbacks
):
    schedule = HolidaySchedule.objects.get(year=2026)
    labour_day = schedule.days.get(date="2026-05-05")
    days = list(schedule.days.order_by("date"))
    data = schedule_form(2026, [], **{"days-TOTAL_FORMS": str(len(days)), "days-INITIAL_FORMS": str(len(days))})
    for i, row in enumerate(days):
        data.update(
            {
                f"days-{i}-id": str(row.pk),
                f"days-{i}-schedule": str(schedule.pk),
                f"days-{i}-date": row.date.isoformat(),
                f"days-{i}-kind": row.kind,
                f"days-{i}-name": row.name,
            }
        )
        if row.pk == labour_day.pk:
            data[f"days-{i}-DELETE"] = "on"

    client.force_login(system_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:cgtclinic_holidayschedule_change", args=[schedule.pk]), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    schedule.refresh_from_db()
    assert schedule.source == HolidaySchedule.Source.OFFICE
    assert not schedule.days.filter(date="2026-05-05").exists()
    assert workdays.is_working_day(datetime.date(2026, 5, 5))
    assert heard == [(2026,)]


@pytest.mark.parametrize(
    ("days", "overrides", "message"),
    [
        ([("2027-02-08", "workday", "春节")], {}, "must be a Saturday or a Sunday"),
        ([("2025-06-10", "holiday", "端午节")], {}, "must fall in the schedule"),
        ([("2027-02-05", "holiday", "春节"), ("2027-02-05", "holiday", "春节")], {}, "Please correct the duplicate"),
        (SPRING_2027, {"notice": ""}, "This field is required"),
        (SPRING_2027, {"year": "20270"}, "Ensure this value is less than or equal to 2099"),
    ],
)
def test_bad_entries_are_refused_and_nothing_is_saved(
    client, synced, system_admin, heard, django_capture_on_commit_callbacks, days, overrides, message
):
    client.force_login(system_admin)
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel("2026-11-30", tick=False):
        response = client.post(
            reverse("admin:cgtclinic_holidayschedule_add"),
            {**schedule_form(2027, days), **overrides},
            headers={"accept-language": "en"},
        )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not HolidaySchedule.objects.filter(year__gte=2027).exists()
    assert heard == []


def test_a_holiday_on_a_weekend_is_fine(client, synced, system_admin):
    client.force_login(system_admin)
    response = client.post(
        reverse("admin:cgtclinic_holidayschedule_add"),
        schedule_form(2027, [("2027-02-06", "holiday", "春节"), ("2026-12-31", "holiday", "元旦")]),
    )
    assert response.status_code == 302, response.content.decode()[:3000]


def test_deleting_a_year_tells_the_listeners(client, synced, system_admin, heard, django_capture_on_commit_callbacks):
    schedule = HolidaySchedule.objects.get(year=2026)
    client.force_login(system_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:cgtclinic_holidayschedule_delete", args=[schedule.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert heard == [(2026,)]
    assert add_working_days(datetime.datetime(2026, 9, 30, tzinfo=CALENDAR_TZ), 3).provisional


@pytest.mark.parametrize("role", ["research_office", "ethics_office"])
def test_offices_read_the_calendar_but_do_not_change_it(client, synced, request, role):
    user = request.getfixturevalue(role)
    schedule = HolidaySchedule.objects.get(year=2026)
    client.force_login(user)

    assert client.get(reverse("admin:cgtclinic_holidayschedule_changelist")).status_code == 200
    page = client.get(reverse("admin:cgtclinic_holidayschedule_change", args=[schedule.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get(reverse("admin:cgtclinic_holidayschedule_history", args=[schedule.pk])).status_code == 200
    assert client.get(reverse("admin:cgtclinic_calendarday_changelist")).status_code == 200
    assert client.get(reverse("admin:cgtclinic_holidayschedule_add")).status_code == 403
    response = client.post(
        reverse("admin:cgtclinic_holidayschedule_change", args=[schedule.pk]), schedule_form(2026, [], notice="x")
    )
    assert response.status_code == 403
    assert HolidaySchedule.objects.get(year=2026).notice == ""


def test_the_admin_lists_the_years_open_deadlines_reach_without_a_schedule(client, synced, ethics_office):
    def reaches():
        return datetime.date(2028, 1, 5)

    workdays.register_deadline_horizon(reaches)
    try:
        client.force_login(ethics_office)
        with time_machine.travel(datetime.datetime(2026, 12, 1, 9, tzinfo=CALENDAR_TZ), tick=False):
            assert workdays.missing_years(2028) == [2027, 2028]
            page = client.get(reverse("admin:cgtclinic_holidayschedule_changelist"), headers={"accept-language": "en"})
    finally:
        workdays.unregister_deadline_horizon(reaches)

    content = page.content.decode()
    assert "No holiday schedule for 2027, 2028" in content


def test_no_warning_when_every_year_up_to_the_horizon_is_known(client, synced, ethics_office):
    client.force_login(ethics_office)
    with time_machine.travel(datetime.datetime(2026, 6, 1, 9, tzinfo=CALENDAR_TZ), tick=False):
        assert workdays.years_needing_schedule() == []
        page = client.get(reverse("admin:cgtclinic_holidayschedule_changelist"), headers={"accept-language": "en"})
    assert "No holiday schedule" not in page.content.decode()


def test_a_failing_listener_is_logged_and_the_others_still_hear(synced, heard, caplog):
    def broken(years):
        raise RuntimeError("boom")

    workdays.register_schedule_listener(broken)
    try:
        workdays.on_schedule_changed([2027, 2027, 2026])
    finally:
        workdays.unregister_schedule_listener(broken)

    assert heard == [(2026, 2027)]
    assert "listener" in caplog.text and "boom" in caplog.text


def test_listeners_hear_only_after_commit(synced, heard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        workdays.schedules_changed(years=[2026])
    assert heard == []
    callbacks[0]()
    assert heard == [(2026,)]


def test_days_are_listed_with_their_history(client, synced, system_admin):
    day = CalendarDay.objects.get(date="2026-02-14")
    client.force_login(system_admin)
    page = client.get(reverse("admin:cgtclinic_calendarday_changelist") + "?schedule__year=2026&kind=workday")
    assert page.status_code == 200
    assert "2026" in page.content.decode()
    assert client.get(reverse("admin:cgtclinic_calendarday_add")).status_code == 403
    assert client.get(reverse("admin:cgtclinic_calendarday_change", args=[day.pk])).status_code == 200


def test_deleting_a_day_from_the_list_tells_the_listeners(
    client, synced, system_admin, heard, django_capture_on_commit_callbacks
):
    day = CalendarDay.objects.get(date="2026-10-10")
    client.force_login(system_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:cgtclinic_calendarday_delete", args=[day.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert heard == [(2026,)]
    assert not workdays.is_working_day(datetime.date(2026, 10, 10))


@pytest.mark.parametrize("query", ["2026", "国办发明电", ""])
def test_a_system_administrator_finds_and_opens_the_years(client, synced, system_admin, query):
    client.force_login(system_admin)
    listing = client.get(reverse("admin:cgtclinic_holidayschedule_changelist"), {"q": query})
    assert listing.status_code == 200
    assert ("2026" in listing.content.decode()) is (query != "国办发明电")
    schedule = HolidaySchedule.objects.get(year=2026)
    change = client.get(reverse("admin:cgtclinic_holidayschedule_change", args=[schedule.pk]))
    assert change.status_code == 200
    assert b'name="_save"' in change.content
    assert client.get(reverse("admin:cgtclinic_holidayschedule_add")).status_code == 200
