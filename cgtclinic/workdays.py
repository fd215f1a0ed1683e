"""The Chinese working-day calendar and deadlines counted in working days.

A day is a working day unless it is a Saturday, a Sunday or a holiday, and a Saturday or Sunday is one
when the State Council's schedule for its year makes it a make-up working day (调休上班). Schedules live in
the database (HolidaySchedule, CalendarDay), imported by ``manage.py sync_calendar`` or entered in the
admin. For a year without a schedule the statutory holidays of 《全国年节及纪念日放假办法》
(seeds/policy/statutory_holidays.yaml) stand in, and every result that relied on them says so
(``provisional``), so that it is recomputed when the schedule arrives (``register_schedule_listener``).

Periods are counted as the Civil Code (arts. 201, 203) counts them: the day of receipt is not counted, and
the period ends at 24:00 of its last day (Beijing time), or at the close of business where one is set.
"""

import datetime
import functools
import importlib.metadata
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import yaml
from chinese_calendar.constants import Holiday
from chinese_calendar.constants import holidays as package_holidays
from chinese_calendar.constants import workdays as package_workdays
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from lunardate import LunarDate
from simple_history.utils import bulk_create_with_history

from cgtclinic.errors import DomainError
from cgtclinic.models import CalendarDay, HolidaySchedule, User

log = logging.getLogger(__name__)

# The statutory calendar is Beijing time wherever the server runs.
CALENDAR_TZ = ZoneInfo("Asia/Shanghai")
STATUTORY_HOLIDAYS_FILE = settings.BASE_DIR / "seeds" / "policy" / "statutory_holidays.yaml"
SYNC_CHANGE_REASON = "sync_calendar"
ONE_DAY = datetime.timedelta(days=1)


def day_start(day: datetime.date) -> datetime.datetime:
    """A date as the first moment of that day in Beijing, the calendar's time zone (whatever zone is active)."""
    return datetime.datetime.combine(day, datetime.time(0), CALENDAR_TZ)


# chinese-calendar names festivals in English; the schedule records them as the notices do.
_PACKAGE_NAMES = {
    Holiday.tomb_sweeping_day.value: "清明节",
    Holiday.dragon_boat_festival.value: "端午节",
    Holiday.mid_autumn_festival.value: "中秋节",
}


class CalendarUnavailable(ValueError):
    """A day outside every source the calendar has: no schedule and no statutory rule covers it."""


# --- Statutory holidays (the fallback for years without a schedule) ----------------------------------


@dataclass(frozen=True)
class StatutoryRevision:
    """One revision of the national holiday regulation and the holidays it fixes."""

    source_document: str
    source_clause: str
    effective_from: datetime.date
    effective_to: datetime.date | None
    holidays: tuple[tuple[str, tuple[dict, ...]], ...]

    def in_force_on(self, day: datetime.date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def days_in(self, year: int) -> dict[datetime.date, str]:
        """The holidays this revision fixes in a Gregorian year (whether or not it is in force then)."""
        found: dict[datetime.date, str] = {}
        for name, specs in self.holidays:
            for spec in specs:
                for day in _spec_dates(spec, year):
                    if day.year == year:
                        found[day] = name
        return found


# The years chinese-calendar's solar-term tables cover (a limit of the library, not of policy).
SOLAR_TERM_YEARS = range(1900, 2101)


def _spec_dates(spec: dict, year: int) -> list[datetime.date]:
    kind = spec["kind"]
    try:
        if kind == "solar":
            return [datetime.date(year, spec["month"], spec["day"])]
        # The lunar festivals (months 1, 5 and 8, and the eve before month 1) of lunar year Y fall in
        # Gregorian year Y.
        if kind == "lunar":
            return [LunarDate(year, spec["month"], spec["day"]).to_solar_date()]
        if kind == "lunar_new_years_eve":
            return [LunarDate(year, 1, 1).to_solar_date() - ONE_DAY]
        if year not in SOLAR_TERM_YEARS:
            raise ValueError(
                f"chinese-calendar computes solar terms for {SOLAR_TERM_YEARS.start}–{SOLAR_TERM_YEARS.stop - 1}"
            )
        terms = chinese_calendar.get_solar_terms(datetime.date(year, 1, 1), datetime.date(year, 12, 31))
        return [day for day, term in terms if term == spec["term"]]
    except ValueError as exc:
        raise CalendarUnavailable(
            _("The statutory holidays of %(year)s cannot be computed: %(error)s") % {"year": year, "error": exc}
        ) from exc


_SPEC_FIELDS = {
    "solar": {"month", "day"},
    "lunar": {"month", "day"},
    "lunar_new_years_eve": set(),
    "solar_term": {"term"},
}


def _parse_revisions(data, path: Path) -> tuple[StatutoryRevision, ...]:
    def bad(where: str, problem: str):
        return ImproperlyConfigured(f"{path.name}, {where}: {problem}")

    if not isinstance(data, list) or not data:
        raise bad("top level", "expected a list of revisions")
    revisions = []
    for number, row in enumerate(data, start=1):
        where = f"revision {number}"
        required = {"source_document", "source_clause", "effective_from", "effective_to", "holidays"}
        if not isinstance(row, dict) or set(row) != required:
            raise bad(where, f"expected exactly the keys {sorted(required)}")
        start, end = row["effective_from"], row["effective_to"]
        if not isinstance(start, datetime.date) or not (end is None or isinstance(end, datetime.date)):
            raise bad(where, "effective_from and effective_to must be dates (effective_to may be null)")
        if end is not None and end < start:
            raise bad(where, "effective_to is before effective_from")
        holidays = []
        for holiday in row["holidays"] or []:
            if not isinstance(holiday, dict) or set(holiday) != {"name", "days"} or not holiday["days"]:
                raise bad(where, f"each holiday needs a name and a list of days: {holiday!r}")
            for spec in holiday["days"]:
                kind = spec.get("kind") if isinstance(spec, dict) else None
                if kind not in _SPEC_FIELDS or set(spec) - {"kind"} != _SPEC_FIELDS[kind]:
                    raise bad(where, f"{holiday['name']}: unknown day {spec!r}")
            holidays.append((str(holiday["name"]), tuple(holiday["days"])))
        revisions.append(StatutoryRevision(row["source_document"], row["source_clause"], start, end, tuple(holidays)))
    revisions.sort(key=lambda r: r.effective_from)
    for earlier, later in itertools.pairwise(revisions):
        if earlier.effective_to is None or earlier.effective_to >= later.effective_from:
            raise bad(f"revision in force from {later.effective_from}", "its period overlaps the one before")
    return tuple(revisions)


@functools.cache
def statutory_revisions(path: Path = STATUTORY_HOLIDAYS_FILE) -> tuple[StatutoryRevision, ...]:
    """The revisions of the holiday regulation, read once per process from the seeds file."""
    return _parse_revisions(yaml.safe_load(path.read_text(encoding="utf-8")), path)


@functools.cache
def statutory_holidays(year: int) -> dict[datetime.date, str]:
    """The statutory holidays of a year as the regulation in force on each day fixes them."""
    first, last = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    revisions = [
        r
        for r in statutory_revisions()
        if r.effective_from <= last and (r.effective_to is None or r.effective_to >= first)
    ]
    if not any(r.in_force_on(first) for r in revisions):
        raise CalendarUnavailable(
            _("No holiday regulation in %(file)s covers all of %(year)s.")
            % {"file": STATUTORY_HOLIDAYS_FILE.name, "year": year}
        )
    found: dict[datetime.date, str] = {}
    for revision in revisions:
        found.update({day: name for day, name in revision.days_in(year).items() if revision.in_force_on(day)})
    return found


# --- The calendar -------------------------------------------------------------------------------------


class Calendar:
    """Working days as the database records them, read once per span of years and then held in memory.

    Build one per batch (``Calendar.load(start, end)``) and pass it to every call: computing thousands of
    deadlines then costs two queries, plus one for each further year a deadline reaches into. It is a
    snapshot; build a new one after a schedule changes.
    """

    def __init__(self):
        self._known_years: frozenset[int] | None = None
        self._loaded_years: set[int] = set()
        self._days: dict[datetime.date, bool] = {}

    @classmethod
    def load(cls, start: datetime.date, end: datetime.date) -> "Calendar":
        calendar = cls()
        calendar._load_years(range(start.year, end.year + 1))
        return calendar

    def _load_years(self, years: Iterable[int]) -> None:
        if self._known_years is None:
            self._known_years = frozenset(HolidaySchedule.objects.values_list("year", flat=True))
        missing = sorted(set(years) - self._loaded_years)
        if not missing:
            return
        rows = CalendarDay.objects.filter(
            date__gte=datetime.date(missing[0], 1, 1), date__lte=datetime.date(missing[-1], 12, 31)
        ).values_list("date", "kind")
        for day, kind in rows:
            if day.year in missing:
                self._days[day] = kind == CalendarDay.Kind.WORKDAY
        self._loaded_years.update(missing)

    def is_known(self, year: int) -> bool:
        """Whether the State Council's schedule for the year is recorded."""
        if self._known_years is None:
            self._load_years(())
        return year in self._known_years

    def is_working_day(self, day: datetime.date) -> bool:
        if day.year not in self._loaded_years:
            self._load_years([day.year])
        recorded = self._days.get(day)
        if recorded is not None:
            return recorded
        if day.weekday() >= 5:
            return False
        return self.is_known(day.year) or day not in statutory_holidays(day.year)


@dataclass(frozen=True)
class WorkingDayResult:
    """When a period of working days ends, and whether that rests on a year without a schedule."""

    due_at: datetime.datetime
    last_day: datetime.date
    provisional: bool = False
    provisional_years: tuple[int, ...] = field(default=())


def _local_date(moment: datetime.date | datetime.datetime) -> datetime.date:
    if isinstance(moment, datetime.datetime):
        if timezone.is_naive(moment):
            raise ValueError("moment must be a timezone-aware datetime (or a date)")
        return moment.astimezone(CALENDAR_TZ).date()
    return moment


def is_working_day(day: datetime.date, calendar: Calendar | None = None) -> bool:
    """Whether people work on this day in China (provisionally, for a year without a schedule)."""
    calendar = calendar or Calendar.load(day, day)
    return calendar.is_working_day(day)


def add_working_days(
    moment: datetime.date | datetime.datetime,
    n: int,
    *,
    close_of_business: datetime.time | None = None,
    calendar: Calendar | None = None,
) -> WorkingDayResult:
    """The end of a period of ``n`` working days that starts with receipt at ``moment``.

    The day of receipt is not counted, whatever kind of day it is; the period ends at 24:00 (Beijing time)
    of the n-th working day after it, or on that day at ``close_of_business`` when given.
    """
    if n < 1:
        raise ValueError(f"a period is at least one working day, not {n}")
    if close_of_business is not None and close_of_business.tzinfo is not None:
        raise ValueError("close_of_business is a local time of day, without a time zone")
    receipt = _local_date(moment)
    # Five working days a week and at most a nine-day holiday: twice n plus a month always suffices.
    calendar = calendar or Calendar.load(receipt, receipt + datetime.timedelta(days=2 * n + 31))
    day, counted, unknown = receipt, 0, set()
    while counted < n:
        day += ONE_DAY
        if not calendar.is_known(day.year):
            unknown.add(day.year)
        counted += calendar.is_working_day(day)
    if close_of_business is None:
        due_at = datetime.datetime.combine(day + ONE_DAY, datetime.time(0), tzinfo=CALENDAR_TZ)
    else:
        due_at = datetime.datetime.combine(day, close_of_business, tzinfo=CALENDAR_TZ)
    return WorkingDayResult(
        due_at=due_at, last_day=day, provisional=bool(unknown), provisional_years=tuple(sorted(unknown))
    )


def working_days_between(
    start: datetime.date | datetime.datetime,
    end: datetime.date | datetime.datetime,
    *,
    calendar: Calendar | None = None,
) -> int:
    """The working days after ``start``'s day up to and including ``end``'s day (Beijing dates)."""
    first, last = _local_date(start), _local_date(end)
    if last < first:
        raise ValueError("end is before start")
    calendar = calendar or Calendar.load(first, last)
    count, day = 0, first + ONE_DAY
    while day <= last:
        count += calendar.is_working_day(day)
        day += ONE_DAY
    return count


def working_hours_between(
    start: datetime.datetime, end: datetime.datetime, *, calendar: Calendar | None = None
) -> datetime.timedelta:
    """The part of [start, end) that falls on working days (whole Beijing days), for response-time reports."""
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValueError("start and end must be timezone-aware")
    if end < start:
        raise ValueError("end is before start")
    first, last = _local_date(start), _local_date(end)
    calendar = calendar or Calendar.load(first, last)
    total, day = datetime.timedelta(0), first
    while day <= last:
        if calendar.is_working_day(day):
            day_start = datetime.datetime.combine(day, datetime.time(0), tzinfo=CALENDAR_TZ)
            overlap = min(end, day_start + ONE_DAY) - max(start, day_start)
            total += max(overlap, datetime.timedelta(0))
        day += ONE_DAY
    return total


# --- Which years are missing --------------------------------------------------------------------------

_deadline_horizons: list[Callable[[], datetime.date | None]] = []


def register_deadline_horizon(func: Callable[[], datetime.date | None]) -> Callable:
    """Let an app say how far its open deadlines reach (the latest date, or None), so missing years show."""
    if func not in _deadline_horizons:
        _deadline_horizons.append(func)
    return func


def unregister_deadline_horizon(func: Callable) -> None:
    if func in _deadline_horizons:
        _deadline_horizons.remove(func)


def missing_years(until: int | datetime.date) -> list[int]:
    """The years from this year to ``until`` that have no schedule, so deadlines in them are provisional."""
    last = until.year if isinstance(until, datetime.date) else until
    known = set(HolidaySchedule.objects.filter(year__lte=last).values_list("year", flat=True))
    return [year for year in range(timezone.localdate().year, last + 1) if year not in known]


def years_needing_schedule() -> list[int]:
    """The missing years from this year to the latest year an open deadline of any app reaches."""
    reaches = [horizon() for horizon in _deadline_horizons]
    return missing_years(max([timezone.localdate(), *(day for day in reaches if day is not None)]))


# --- Telling the apps a schedule changed --------------------------------------------------------------

_schedule_listeners: list[Callable[[tuple[int, ...]], None]] = []


def register_schedule_listener(func: Callable[[tuple[int, ...]], None]) -> Callable:
    """Call ``func(years)`` after a transaction that created, changed or deleted those years' schedules.

    Register in an AppConfig.ready(). A listener recomputes what it derived from those years (provisional
    deadlines, timers); it should be quick and hand long work to a Celery task.
    """
    if func not in _schedule_listeners:
        _schedule_listeners.append(func)
    return func


def unregister_schedule_listener(func: Callable) -> None:
    if func in _schedule_listeners:
        _schedule_listeners.remove(func)


def on_schedule_changed(years: Iterable[int]) -> None:
    """Tell every listener; one that fails is logged and does not keep the others from hearing."""
    years = tuple(sorted(set(years)))
    for listener in list(_schedule_listeners):
        try:
            listener(years)
        except Exception:
            log.exception("Holiday schedule listener %r failed for years %s", listener, years)


def _schedule_changed(years: Iterable[int]) -> None:
    years = tuple(sorted(set(years)))
    if years:
        transaction.on_commit(partial(on_schedule_changed, years))


# --- Writes -------------------------------------------------------------------------------------------


def schedule_entered(*, schedule: HolidaySchedule, actor: User) -> None:
    """The office entered or corrected a year's schedule: it is the office's now, and listeners hear of it."""
    if schedule.source != HolidaySchedule.Source.OFFICE or schedule.entered_by_id != actor.pk:
        schedule.source = HolidaySchedule.Source.OFFICE
        schedule.entered_by = actor
        schedule._history_user = actor
        schedule.save(update_fields=["source", "entered_by"])
    _schedule_changed([schedule.year])


def schedules_changed(*, years: Iterable[int]) -> None:
    """Schedules or days of these years were deleted: listeners hear of it once the deletion is committed.

    A deleted year is unknown again, so the deadlines reaching into it become provisional.
    """
    _schedule_changed(years)


def package_years() -> range:
    """The years chinese-calendar knows."""
    known = [*package_holidays, *package_workdays]
    return range(min(known).year, max(known).year + 1)


def package_days(year: int) -> dict[datetime.date, tuple[str, str]]:
    """chinese-calendar's holidays and make-up working days of a year: date → (kind, name)."""
    days = {}
    for kind, table in ((CalendarDay.Kind.HOLIDAY, package_holidays), (CalendarDay.Kind.WORKDAY, package_workdays)):
        for day, english in table.items():
            if day.year == year:
                days[day] = (kind.value, _PACKAGE_NAMES.get(english) or Holiday(english).chinese)
    return days


@dataclass
class SyncReport:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    kept_office: list[int] = field(default_factory=list)
    # Dates an office-entered neighbouring year already lists (a holiday across the turn of the year).
    kept_days: list[datetime.date] = field(default_factory=list)

    @property
    def changed(self) -> list[int]:
        return sorted(self.created + self.updated)


@transaction.atomic
def sync_from_package(*, years: Iterable[int] | None = None, force: bool = False) -> SyncReport:
    """Import the years chinese-calendar knows; safe to run again, and never over the office's entries
    unless ``force``. Listeners hear of the years that changed once the import is committed."""
    available = package_years()
    years = sorted(set(available if years is None else years))
    unknown = [year for year in years if year not in available]
    if unknown:
        raise DomainError(
            _(
                "chinese-calendar %(version)s knows %(first)d–%(last)d only, not %(years)s. Enter the State "
                "Council's schedule for those years in the admin."
            )
            % {
                "version": _package_version(),
                "first": available.start,
                "last": available.stop - 1,
                "years": ", ".join(map(str, unknown)),
            },
            field="years",
        )
    report = SyncReport()
    schedules = {s.year: s for s in HolidaySchedule.objects.select_for_update().filter(year__in=years).order_by("pk")}
    for year in years:
        schedule = schedules.get(year)
        if schedule is not None and schedule.source == HolidaySchedule.Source.OFFICE and not force:
            report.kept_office.append(year)
            continue
        if schedule is None:
            schedule = HolidaySchedule(year=year, source=HolidaySchedule.Source.PACKAGE)
            _save(schedule)
            report.created.append(year)
            _sync_days(schedule, report)
            continue
        changed = _sync_days(schedule, report)
        if schedule.source != HolidaySchedule.Source.PACKAGE:
            schedule.source = HolidaySchedule.Source.PACKAGE
            schedule.entered_by = None
            _save(schedule)
            changed = True
        (report.updated if changed else report.unchanged).append(year)
    _schedule_changed(report.changed)
    return report


def _sync_days(schedule: HolidaySchedule, report: SyncReport) -> bool:
    wanted = package_days(schedule.year)
    existing = {
        day.date: day
        for day in CalendarDay.objects.select_related("schedule").filter(
            date__gte=datetime.date(schedule.year, 1, 1), date__lte=datetime.date(schedule.year, 12, 31)
        )
    }
    changed, new_rows = False, []
    for row in [row for date, row in existing.items() if date not in wanted and row.schedule_id == schedule.pk]:
        row._change_reason = SYNC_CHANGE_REASON
        row.delete()
        changed = True
    for date, (kind, name) in sorted(wanted.items()):
        row = existing.get(date)
        if row is not None and row.schedule_id != schedule.pk:
            if row.schedule.source == HolidaySchedule.Source.OFFICE:
                report.kept_days.append(date)
                continue
            row.schedule = schedule
        elif row is None:
            new_rows.append(CalendarDay(schedule=schedule, date=date, kind=kind, name=name))
            continue
        elif (row.kind, row.name) == (kind, name):
            continue
        row.kind, row.name = kind, name
        _save(row)
        changed = True
    if new_rows:
        # Their dates were all looked up above, so only the rows' own rules need checking.
        for row in new_rows:
            _validate(row, validate_unique=False)
        bulk_create_with_history(new_rows, CalendarDay, default_change_reason=SYNC_CHANGE_REASON)
        changed = True
    return changed


def _save(obj) -> None:
    _validate(obj)
    obj._change_reason = SYNC_CHANGE_REASON
    obj.save()


def _validate(obj, *, validate_unique: bool = True) -> None:
    try:
        obj.full_clean(validate_unique=validate_unique)
    except ValidationError as exc:
        # The package's own data breaking our rules is a bug to fix here, not something to import.
        raise DomainError(
            _("chinese-calendar's data for %(obj)s was refused: %(error)s") % {"obj": obj, "error": exc}
        ) from exc


def _package_version() -> str:
    return importlib.metadata.version("chinesecalendar")
