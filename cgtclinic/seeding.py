"""Load the reviewed seed files in ``seeds/`` into the database.

``seeds/policy`` holds the policy values every deployment needs; ``seeds/demo`` a demo data set. Each set
loads in one transaction: every row is validated, and the first bad row stops the load with a message
naming the file and the row, leaving the database as it was. Rows are matched on their natural key; a row
that already holds the seeded values is not saved again, so a second run writes nothing (and adds no
history), while an edited value updates its row and simple-history records the change.

This module holds the machinery and the project's own tables (regions, policy values, institutions,
sponsors, people). Each app loads its own demo rows: a module ``<app>/seeds.py`` exposing
``load_demo(demo: DemoSeeds) -> None`` is found and called in ``INSTALLED_APPS`` order, after the project's
tables and inside the same transaction, so this module never imports an app. An app with policy rows of its
own (the ethics alliances) also exposes ``load_policy(policy: PolicySeeds) -> None``, called the same way at the
end of the policy set; that function is optional.
"""

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib import import_module
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.module_loading import module_has_submodule
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import Department, Institution, PolicyParameter, PolicyTarget, Region, Sponsor, User
from cgtclinic.roles import Role

SEEDS_DIR = settings.BASE_DIR / "seeds"
# Recorded as the history change reason of every row the loader writes.
CHANGE_REASON = "load_seeds"
# Seeded steps (status changes, ethics events) are stamped at this local time on their day, a minute apart.
STEP_TIME = time(9, 0)
STEP_ZONE = ZoneInfo("Asia/Shanghai")
# An app's demo loader: the function of this name in its module ``<app>/seeds.py``.
APP_SEEDS_MODULE = "seeds"
APP_LOADER = "load_demo"
# An app's optional policy loader, in the same module.
APP_POLICY_LOADER = "load_policy"

_MISSING = object()
# libyaml's safe loader when PyYAML was built with it (several times faster), the pure-Python one otherwise.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SeedError(DomainError):
    """A seed file cannot be loaded; the message names the file and the row."""

    def __init__(self, message):
        super().__init__(message, code="invalid_seed")


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class NewAccount:
    username: str
    role: str
    password: str
    # The hospital (short name) or, for a regulator, the region the account works for; blank for a system
    # administrator, who works for the whole installation.
    place: str = ""


def account_place(user: User) -> str:
    """Where a demo account works, as the credentials table shows it: the hospital's short name, else the
    regulator's region, else blank."""
    if user.institution is not None:
        return user.institution.short_name or user.institution.name_zh
    if user.region is not None:
        return user.region.name_zh
    return ""


@dataclass
class SeedReport:
    """What a load did, per model, plus the accounts it created (with their one-time passwords)."""

    tallies: dict[type[models.Model], Tally] = field(default_factory=dict)
    new_accounts: list[NewAccount] = field(default_factory=list)
    kept_accounts: list[str] = field(default_factory=list)
    kept_trials: list[str] = field(default_factory=list)
    not_in_seeds: list[str] = field(default_factory=list)

    def tally(self, model: type[models.Model]) -> Tally:
        return self.tallies.setdefault(model, Tally())

    @property
    def created(self) -> int:
        return sum(t.created for t in self.tallies.values())

    @property
    def updated(self) -> int:
        return sum(t.updated for t in self.tallies.values())

    def merge(self, other: "SeedReport") -> "SeedReport":
        for model, tally in other.tallies.items():
            mine = self.tally(model)
            mine.created += tally.created
            mine.updated += tally.updated
            mine.unchanged += tally.unchanged
        self.new_accounts += other.new_accounts
        self.kept_accounts += other.kept_accounts
        self.kept_trials += other.kept_trials
        self.not_in_seeds += other.not_in_seeds
        return self


@dataclass(frozen=True)
class Row:
    """One row of a seed file, able to say where it is when something about it is wrong."""

    file: Path
    number: int
    data: dict
    label: str = ""

    def error(self, problem) -> SeedError:
        where = _("%(file)s, row %(row)d") % {"file": self.file, "row": self.number}
        if self.label:
            where = f"{where} ({self.label})"
        return SeedError(f"{where}: {problem}")

    def part(self, name: str, data) -> "Row":
        """A nested entry (a department, a site, a history step), reported under its parent row."""
        if not isinstance(data, dict):
            raise self.error(_("“%(part)s” must be a mapping of field names to values.") % {"part": name})
        label = f"{self.label}, {name}" if self.label else name
        return Row(self.file, self.number, data, label)

    def parts(self, key: str, name: str) -> list["Row"]:
        """The entries of the nested list ``key``, each reported as ``name`` (which holds ``%(number)d``)."""
        entries = self.data.get(key) or []
        if not isinstance(entries, list):
            raise self.error(_("“%(field)s” must be a list.") % {"field": key})
        return [self.part(name % {"number": number}, entry) for number, entry in enumerate(entries, start=1)]


@dataclass
class DemoSeeds:
    """What an app's demo loader gets: the demo directory, the report to count into, and the project's rows
    loaded so far, by the handles the demo files use."""

    directory: Path
    report: SeedReport
    regions: "Regions"
    institutions: dict[str, Institution]
    sponsors: dict[str, Sponsor]
    people: dict[str, User]


@dataclass
class PolicySeeds:
    """What an app's policy loader gets: the policy directory, the report to count into, and the regions."""

    directory: Path
    report: SeedReport
    regions: "Regions"


# --- Reading ----------------------------------------------------------------------------------------------


def read_rows(path: Path, *, required: set[str], optional: set[str], key: tuple[str, ...], label: str) -> list[Row]:
    """The rows of a YAML list file, each checked for unknown and missing fields and a unique natural key."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except FileNotFoundError as exc:
        raise SeedError(_("%(file)s does not exist.") % {"file": path}) from exc
    except yaml.YAMLError as exc:
        raise SeedError(_("%(file)s is not valid YAML: %(error)s") % {"file": path, "error": exc}) from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise SeedError(_("%(file)s must be a list of rows.") % {"file": path})
    rows, seen = [], {}
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise Row(path, number, {}).error(_("A row must be a mapping of field names to values."))
        row = Row(path, number, item, f"{label}: {item.get(label)}" if item.get(label) is not None else "")
        check_keys(row, required=required, optional=optional)
        natural_key = tuple(_hashable(item.get(name)) for name in key)
        if natural_key in seen:
            raise row.error(
                _("The same %(key)s as row %(other)d; each row must have its own.")
                % {"key": ", ".join(key), "other": seen[natural_key]}
            )
        seen[natural_key] = number
        rows.append(row)
    return rows


def check_keys(row: Row, *, required: set[str], optional: set[str]) -> None:
    odd = [name for name in row.data if not isinstance(name, str)]
    if odd:
        raise row.error(
            _("Field name %(name)s is not text; YAML reads a bare on/off/yes/no as true/false.") % {"name": odd[0]}
        )
    unknown = set(row.data) - required - optional
    if unknown:
        raise row.error(
            _("Unknown field(s): %(unknown)s. Allowed: %(allowed)s.")
            % {"unknown": ", ".join(sorted(unknown)), "allowed": ", ".join(sorted(required | optional))}
        )
    missing = required - set(row.data)
    if missing:
        raise row.error(_("Missing field(s): %(missing)s.") % {"missing": ", ".join(sorted(missing))})


def _hashable(value):
    return value if isinstance(value, str | int | float | date | None) else repr(value)


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}" if name != "__all__" else " ".join(map(str, messages))
            for name, messages in exc.message_dict.items()
        )
    return " ".join(str(m) for m in exc.messages)


def field_value(row: Row, model: type[models.Model], name: str, raw=_MISSING):
    """A YAML value converted to what the model field holds; a missing one becomes the field's default."""
    model_field = model._meta.get_field(name)
    if raw is _MISSING:
        raw = row.data.get(name, _MISSING)
    if raw is _MISSING:
        return model_field.get_default()
    if raw is None:
        return "" if isinstance(model_field, models.CharField | models.TextField) and not model_field.null else None
    if isinstance(model_field, models.CharField | models.TextField) and not isinstance(raw, str):
        raise row.error(_("“%(field)s” must be text: put %(value)s in quotes.") % {"field": name, "value": raw})
    try:
        return model_field.to_python(raw)
    except ValidationError as exc:
        raise row.error(f"{name}: {_messages(exc)}") from exc


def field_values(row: Row, model: type[models.Model], names) -> dict[str, Any]:
    return {name: field_value(row, model, name) for name in names}


def parse_date(row: Row, name: str) -> date:
    raw = row.data.get(name)
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise row.error(_("“%(field)s” must be a date like 2025-03-31.") % {"field": name}) from exc


def step_moment(day: date, position: int) -> datetime:
    """When a seeded step dated ``day`` happened: at STEP_TIME Beijing time, a minute later per position."""
    return timezone.make_aware(datetime.combine(day, STEP_TIME), STEP_ZONE) + timedelta(minutes=position)


# --- Writing ----------------------------------------------------------------------------------------------


def _current(obj: models.Model, name: str):
    model_field = obj._meta.get_field(name)
    return getattr(obj, model_field.attname)


def _comparable(value):
    return value.pk if isinstance(value, models.Model) else value


def sync(
    report: SeedReport,
    row: Row,
    model: type[models.Model],
    obj: models.Model | None,
    values: dict[str, Any],
    *,
    actor: User | None = None,
    exclude: tuple[str, ...] = (),
    on_create=None,
) -> models.Model:
    """Create the row, or update the fields that differ; save nothing when nothing differs."""
    if obj is None:
        obj = model(**values)
        if on_create:
            on_create(obj)
        outcome = "created"
    else:
        changed = [name for name, value in values.items() if _current(obj, name) != _comparable(value)]
        if not changed:
            report.tally(model).unchanged += 1
            return obj
        for name in changed:
            setattr(obj, name, values[name])
        outcome = "updated"
    try:
        obj.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        raise row.error(_messages(exc)) from exc
    obj._change_reason = CHANGE_REASON
    obj._history_user = actor
    obj.save()
    setattr(report.tally(model), outcome, getattr(report.tally(model), outcome) + 1)
    return obj


def upsert(report, row, model, lookup: dict, values: dict, **kwargs) -> models.Model:
    existing = model._default_manager.filter(**lookup).first()
    return sync(report, row, model, existing, {**lookup, **values}, **kwargs)


def refused(row: Row, exc: DomainError) -> SeedError:
    """A service's refusal, reported against the row that asked for it."""
    problem = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return row.error(problem)


def check_with(row: Row, check, **kwargs) -> None:
    """Run a service's validation of a row, reporting its refusal against the row."""
    try:
        check(**kwargs)
    except DomainError as exc:
        raise refused(row, exc) from exc


@contextmanager
def seed_clock(moment: datetime) -> Iterator[None]:
    """Run the block as if it were ``moment``.

    The services take no date: they stamp their rows and timeline events with ``timezone.now()``. A demo history
    dated in the past is replayed through them by moving the clock they read, so every row they write (and the
    letters they render) carries the seeded date. Only the demo loader uses this, in one thread.
    """
    real_now = timezone.now
    timezone.now = lambda: moment
    try:
        yield
    finally:
        timezone.now = real_now


def demo_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (ASCII), for demo uploads; a real PDF that any reader opens."""
    safe = text.encode("ascii", "replace").decode("ascii")
    safe = safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = f"BT /F1 14 Tf 72 770 Td ({safe}) Tj ET".encode("ascii")
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(bodies) + 1, xref_at)
    return bytes(pdf)


class Regions:
    """Region codes to rows, read once per load."""

    def __init__(self):
        self._by_code = None

    def get(self, row: Row, name: str, *, required: bool = True) -> Region | None:
        code = row.data.get(name)
        if code is None and not required:
            return None
        if self._by_code is None:
            self._by_code = {r.code: r for r in Region.objects.all()}
        region = self._by_code.get(code)
        if region is None:
            raise row.error(
                _("Unknown region “%(code)s”; the regions are listed in policy/regions.yaml.") % {"code": code}
            )
        return region


def ref(row: Row, name: str, refs: dict, source: str, *, required: bool = True):
    """The row that a handle in ``row[name]`` stands for, among ``refs`` (defined in the file ``source``)."""
    handle = row.data.get(name)
    if handle is None and not required:
        return None
    if not isinstance(handle, str | int) or handle not in refs:
        raise row.error(
            _("“%(field)s”: unknown “%(ref)s”; use one defined in %(source)s.")
            % {"field": name, "ref": handle, "source": source}
        )
    return refs[handle]


def department_of(row: Row, institution: Institution, name) -> Department | None:
    if name is None:
        return None
    department = Department.objects.filter(institution=institution, name_zh=name).first()
    if department is None:
        raise row.error(
            _("“%(department)s” is not a department of %(institution)s in institutions.yaml.")
            % {"department": name, "institution": institution.name_zh}
        )
    return department


# --- Policy -----------------------------------------------------------------------------------------------

PARAMETER_FIELDS = (
    "name_zh",
    "name_en",
    "value",
    "unit",
    "effective_to",
    "source_document",
    "source_clause",
    "source_quote",
)
TARGET_FIELDS = ("target_value", "period_start", "source_document", "source_clause", "source_quote")


def load_policy(directory: Path) -> SeedReport:
    """Load regions, policy parameters and policy targets from a policy seed directory, all or nothing."""
    report = SeedReport()
    with transaction.atomic():
        _load_regions(directory / "regions.yaml", report)
        regions = Regions()
        _load_parameters(directory / "parameters.yaml", report, regions)
        _load_targets(directory / "targets.yaml", report, regions)
        policy = PolicySeeds(directory, report, regions)
        for loader in policy_loaders():
            loader(policy)
    return report


def _load_regions(path: Path, report: SeedReport) -> None:
    rows = read_rows(path, required={"code", "name_zh"}, optional={"name_en"}, key=("code",), label="code")
    for row in rows:
        upsert(
            report,
            row,
            Region,
            {"code": field_value(row, Region, "code")},
            field_values(row, Region, ("name_zh", "name_en")),
        )


def _load_parameters(path: Path, report: SeedReport, regions: Regions) -> None:
    rows = read_rows(
        path,
        required={"code", "region", "value", "unit", "effective_from", "name_zh", "name_en"}
        | {"source_document", "source_clause"},
        optional={"effective_to", "source_quote"},
        key=("code", "region", "effective_from"),
        label="code",
    )
    periods: dict[tuple, list[tuple[date, date | None, Row]]] = {}
    seeded = set()
    for row in rows:
        region = regions.get(row, "region", required=False)
        lookup = {
            "code": field_value(row, PolicyParameter, "code"),
            "region": region,
            "effective_from": field_value(row, PolicyParameter, "effective_from"),
        }
        values = field_values(row, PolicyParameter, PARAMETER_FIELDS)
        if values["effective_to"] and values["effective_to"] < lookup["effective_from"]:
            raise row.error(_("effective_to is earlier than effective_from."))
        periods.setdefault((lookup["code"], region), []).append((lookup["effective_from"], values["effective_to"], row))
        upsert(report, row, PolicyParameter, lookup, values)
        seeded.add((lookup["code"], region.pk if region else None, lookup["effective_from"]))
    for spans in periods.values():
        spans.sort(key=lambda span: span[0])
        for (_start, end, _row), (next_start, _end, next_row) in pairwise(spans):
            if end is None or end >= next_start:
                raise next_row.error(
                    _("Its period overlaps the previous one for the same code and region; end that one first.")
                )
    for stale in PolicyParameter.objects.select_related("region"):
        if (stale.code, stale.region_id, stale.effective_from) not in seeded:
            report.not_in_seeds.append(f"{stale} ({stale.region or _('national')}, {stale.effective_from})")


def _load_targets(path: Path, report: SeedReport, regions: Regions) -> None:
    rows = read_rows(
        path,
        required={"region", "metric", "deadline_year", "target_value", "period_start"}
        | {"source_document", "source_clause"},
        optional={"source_quote"},
        key=("region", "metric", "deadline_year"),
        label="region",
    )
    seeded = set()
    for row in rows:
        lookup = {
            "region": regions.get(row, "region"),
            "metric": field_value(row, PolicyTarget, "metric"),
            "deadline_year": field_value(row, PolicyTarget, "deadline_year"),
        }
        upsert(report, row, PolicyTarget, lookup, field_values(row, PolicyTarget, TARGET_FIELDS))
        seeded.add((lookup["region"].pk, lookup["metric"], lookup["deadline_year"]))
    for stale in PolicyTarget.objects.select_related("region"):
        if (stale.region_id, stale.metric, stale.deadline_year) not in seeded:
            report.not_in_seeds.append(str(stale))


# --- Demo -------------------------------------------------------------------------------------------------


def _app_loaders(function: str, argument: str, *, required: bool) -> list[Callable]:
    """The function ``function`` of each installed app's ``<app>/seeds.py``, in INSTALLED_APPS order, so an
    app's rows load after those of the apps it builds on."""
    loaders = []
    for config in apps.get_app_configs():
        if config.name == "cgtclinic" or not module_has_submodule(config.module, APP_SEEDS_MODULE):
            continue
        module = import_module(f"{config.name}.{APP_SEEDS_MODULE}")
        loader = getattr(module, function, None)
        if loader is None and not required:
            continue
        if not callable(loader):
            raise SeedError(
                _("%(module)s must define a function %(function)s(%(argument)s).")
                % {"module": module.__name__, "function": function, "argument": argument}
            )
        loaders.append(loader)
    return loaders


def demo_loaders() -> list[Callable[[DemoSeeds], None]]:
    """Each installed app's demo loader (``<app>/seeds.py``, function ``load_demo``), in INSTALLED_APPS order."""
    return _app_loaders(APP_LOADER, "demo", required=True)


def policy_loaders() -> list[Callable[[PolicySeeds], None]]:
    """The policy loaders (function ``load_policy``) of the apps whose ``seeds.py`` has one, in INSTALLED_APPS
    order; they run at the end of the policy set, after the regions and policy values they read."""
    return _app_loaders(APP_POLICY_LOADER, "policy", required=False)


def load_demo(directory: Path) -> SeedReport:
    """Load the demo hospitals, sponsors and people, then each app's demo rows, all or nothing. Needs the policy
    regions (and the policy values the apps' rows read)."""
    report = SeedReport()
    regions = Regions()
    with transaction.atomic():
        institutions = _load_institutions(directory / "institutions.yaml", report, regions)
        sponsors = _load_sponsors(directory / "sponsors.yaml", report, regions)
        people = _load_people(directory / "people.yaml", report, regions, institutions)
        demo = DemoSeeds(directory, report, regions, institutions, sponsors, people)
        for loader in demo_loaders():
            loader(demo)
    return report


def _load_institutions(path: Path, report: SeedReport, regions: Regions) -> dict[str, Institution]:
    rows = read_rows(
        path,
        required={"ref", "region", "name_zh"},
        optional={"name_en", "short_name", "credit_code", "grade", "is_active", "departments"},
        key=("ref",),
        label="ref",
    )
    names = set()
    institutions = {}
    for row in rows:
        region = regions.get(row, "region")
        name = field_value(row, Institution, "name_zh")
        if (region.pk, name) in names:
            raise row.error(_("Another row has the same region and Chinese name."))
        names.add((region.pk, name))
        values = field_values(row, Institution, ("name_en", "short_name", "credit_code", "grade", "is_active"))
        institution = upsert(report, row, Institution, {"region": region, "name_zh": name}, values)
        institutions[row.data["ref"]] = institution
        departments = row.data.get("departments") or []
        if not isinstance(departments, list):
            raise row.error(_("“departments” must be a list."))
        seen = set()
        for position, entry in enumerate(departments, start=1):
            part = row.part(_("department %(number)d") % {"number": position}, entry)
            check_keys(part, required={"name_zh"}, optional={"name_en"})
            dept_name = field_value(part, Department, "name_zh")
            if dept_name in seen:
                raise part.error(_("This department is listed twice."))
            seen.add(dept_name)
            upsert(
                report,
                part,
                Department,
                {"institution": institution, "name_zh": dept_name},
                field_values(part, Department, ("name_en",)),
            )
    return institutions


def _load_sponsors(path: Path, report: SeedReport, regions: Regions) -> dict[str, Sponsor]:
    rows = read_rows(
        path,
        required={"ref", "name_zh", "region"},
        optional={"name_en", "kind", "credit_code", "is_cgt_enterprise"},
        key=("ref",),
        label="ref",
    )
    names = set()
    sponsors = {}
    for row in rows:
        name = field_value(row, Sponsor, "name_zh")
        if name in names:
            raise row.error(_("Another row has the same Chinese name."))
        names.add(name)
        values = {
            "region": regions.get(row, "region"),
            **field_values(row, Sponsor, ("name_en", "kind", "credit_code", "is_cgt_enterprise")),
        }
        sponsors[row.data["ref"]] = upsert(report, row, Sponsor, {"name_zh": name}, values)
    return sponsors


def _new_password(report: SeedReport, user: User) -> None:
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    report.new_accounts.append(NewAccount(user.username, str(Role(user.role).label), password, account_place(user)))


def _load_people(path: Path, report: SeedReport, regions: Regions, institutions: dict) -> dict[str, User]:
    rows = read_rows(
        path,
        required={"username", "full_name", "role"},
        optional={"institution", "department", "region", "professional_title", "email", "phone", "demo_account"},
        key=("username",),
        label="username",
    )
    people = {}
    for row in rows:
        username = field_value(row, User, "username")
        institution = ref(row, "institution", institutions, "institutions.yaml", required=False)
        department = None
        if row.data.get("department") is not None:
            if institution is None:
                raise row.error(_("A department needs an institution."))
            department = department_of(row, institution, row.data["department"])
        role = field_value(row, User, "role")
        values = {
            "institution": institution,
            "department": department,
            "region": regions.get(row, "region", required=False),
            "is_superuser": role == Role.SYSTEM_ADMIN,
            "role": role,
            **field_values(row, User, ("full_name", "professional_title", "email", "phone")),
        }
        demo_account = row.data.get("demo_account", False)
        if not isinstance(demo_account, bool):
            raise row.error(_("“demo_account” must be true or false."))
        existing = User.objects.filter(username=username).first()

        def on_create(user, demo_account=demo_account):
            if demo_account:
                _new_password(report, user)
            else:
                user.set_unusable_password()

        user = sync(
            report,
            row,
            User,
            existing,
            {"username": username, **values},
            exclude=("password",),
            on_create=on_create,
        )
        if existing is not None and demo_account:
            if existing.has_usable_password():
                report.kept_accounts.append(username)
            else:
                # A person on record who has just become a demo login.
                _new_password(report, user)
                user.save(update_fields=["password"])
        people[username] = user
    return people


# --- Entry point ------------------------------------------------------------------------------------------


def load_seeds(root: Path = SEEDS_DIR, *, demo: bool = False) -> SeedReport:
    """Load ``root/policy`` and, with ``demo``, ``root/demo``; each set in its own transaction."""
    root = Path(root)
    report = load_policy(root / "policy")
    if demo:
        report.merge(load_demo(root / "demo"))
    return report
