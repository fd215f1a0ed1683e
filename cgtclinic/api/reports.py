"""The frame every regulator report uses: scope, filters, formats, pagination, throttling, the request log.

A report is a ``ReportView`` subclass in an app's ``api/reports.py`` with a ``name`` (its URL slug under
/api/v1/reports/), its ``columns`` and ``summary_fields`` (stable snake_case names, documented in the OpenAPI
schema), a ``filter_serializer_class`` and a ``compute()`` that calls the app's selector in ``<app>/reports.py``.
Selectors aggregate in the database; a report never loads whole tables.

Who may read: regulators, for their own region (scoped through the models' ``visible_to``, for which a system
administrator asking for ``?region=`` is given a stand-in regulator of that region) and system administrators.
Every request is throttled (scope ``reports``) and leaves a ``cgtclinic.ReportRequest`` row.
"""

import csv
import datetime
import io
import json
import logging
import time
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import connection
from django.db.models import Count, Window
from django.http import Http404
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from cgtclinic.auth import ApiTokenAuthentication
from cgtclinic.models import Region, ReportRequest, User
from cgtclinic.roles import Role, may_read_reports
from cgtclinic.spreadsheets import MONEY_FORMAT, csv_text, write_only_cell

logger = logging.getLogger(__name__)

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("json", "csv", "xlsx")
# JSON pages are for screens and scripts; CSV and Excel are exports and hold everything up to the maximum.
DEFAULT_PAGE_SIZE = 100
EXPORT_PAGE_SIZE = MAX_PAGE_SIZE = 20000
# PostgreSQL's integer: the largest id or page number a parameter may give.
INTEGER_MAX = 2**31 - 1
# What the request log keeps of a query: enough to see what was asked, never unbounded.
LOG_MAX_PARAMETERS = 30
LOG_MAX_VALUE = 200


# --- who is asking -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportScope:
    """Whose data a request covers: ``viewer`` is the user the models' ``visible_to`` is asked about."""

    user: User
    viewer: User
    region: Region | None
    now: datetime.datetime

    @property
    def region_id(self) -> int | None:
        return self.region.pk if self.region else None


def regulator_of(region: Region) -> User:
    """An unsaved stand-in regulator: a system administrator reading one region sees what its regulators see."""
    return User(username="", role=Role.REGULATOR, region=region, is_active=True)


class ReportPermission(BasePermission):
    """Regulators (their region) and system administrators read reports; every other role is refused."""

    message = gettext_lazy("Reports are for regulators and system administrators.")

    def has_permission(self, request, view):
        return may_read_reports(request.user)


class ReportRateThrottle(ScopedRateThrottle):
    """Per user and scope, a fixed-window counter in the cache (Redis): one atomic increment per request.

    DRF's own throttle keeps the time of every request in the window and re-pickles that list on each request, so
    its cost grows with the rate; a counter costs the same at 60 a minute as at a million an hour. The rate is read
    from the settings at request time (so a changed rate applies at once)."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        try:
            count = self._count(f"{self.key}:{window}")
        except Exception:
            # The counter lives in Redis: while Redis is down, reports go on unthrottled rather than failing.
            logger.warning("report throttle unavailable (cache error); request allowed", exc_info=True)
            return True
        return count <= self.num_requests

    def _count(self, key: str) -> int:
        self.cache.add(key, 0, self.duration + 1)
        try:
            return self.cache.incr(key)
        except ValueError:  # the window's counter expired between add and incr
            self.cache.set(key, 1, self.duration + 1)
            return 1

    def wait(self):
        return max(0.0, self.window_ends - self.now)


# --- columns and filters ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One output field: its stable name, type, and a label people read (CSV and Excel headers stay ``name``)."""

    name: str
    kind: str  # string | integer | number | money | date | datetime | boolean
    label: str
    help: str = ""

    def serializer_field(self) -> serializers.Field:
        options = {"allow_null": True, "label": self.label, "help_text": self.help or None}
        if self.kind == "integer":
            return serializers.IntegerField(**options)
        if self.kind == "money":
            return serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=True, **options)
        if self.kind == "number":
            return serializers.FloatField(**options)
        if self.kind == "date":
            return serializers.DateField(**options)
        if self.kind == "datetime":
            return serializers.DateTimeField(**options)
        if self.kind == "boolean":
            return serializers.BooleanField(**options)
        return serializers.CharField(**options)


class ListParameter(serializers.ListField):
    """A query parameter given repeatedly (?status=a&status=b) or comma-separated (?status=a,b)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        values = [part.strip() for item in data for part in str(item).split(",") if part.strip()]
        return super().to_internal_value(values)


def choice_list(choices, help_text: str) -> ListParameter:
    return ListParameter(child=serializers.ChoiceField(choices=choices), required=False, help_text=help_text)


class ReportFilterSerializer(serializers.Serializer):
    """Query parameters every report accepts."""

    region = serializers.SlugField(
        required=False,
        help_text=gettext_lazy(
            "Region code. A system administrator reads one region with it (all regions without it); a regulator "
            "may give only their own region."
        ),
    )
    page = serializers.IntegerField(required=False, min_value=1, default=1, help_text=gettext_lazy("Page number."))
    page_size = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PAGE_SIZE,
        help_text=gettext_lazy("Rows per page: by default 100 in JSON, and 20000 (everything) in CSV and Excel."),
    )

    def get_fields(self):
        fields = super().get_fields()
        # Ids and page numbers fit the database's integer; a larger number is a 400, never an overflow.
        for field_ in fields.values():
            if isinstance(field_, serializers.IntegerField) and field_.max_value is None:
                field_.max_value = INTEGER_MAX
                field_.validators.append(
                    MaxValueValidator(
                        INTEGER_MAX, message=field_.error_messages["max_value"].format(max_value=INTEGER_MAX)
                    )
                )
        return fields

    def validate(self, attrs):
        for start, end in getattr(self, "date_ranges", ()):
            if attrs.get(start) and attrs.get(end) and attrs[start] > attrs[end]:
                raise ValidationError({end: _("The end of the period cannot come before its start.")})
        return attrs


# --- formats -----------------------------------------------------------------------------------------------------


CENT = Decimal("0.01")


def moneycsv_text(value) -> str | None:
    """An amount of RMB as the reports give it everywhere: a decimal string with two places, never a float."""
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP))


def typed(values: dict, columns) -> dict:
    """Values as their columns declare them: whole numbers as integers (a database SUM is a decimal), money as
    two-place strings."""
    for column in columns:
        value = values.get(column.name)
        if value is None or isinstance(value, bool):
            continue
        if column.kind == "integer":
            values[column.name] = int(value)
        elif column.kind == "money":
            values[column.name] = moneycsv_text(value)
    return values


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def _filename(data: dict, suffix: str) -> str:
    stamp = _local(data["computed_at"]).strftime("%Y%m%d-%H%M%S")
    region = data["filters"].get("region") or "all"
    return f"{data['report']}-{region}-{stamp}.{suffix}"


class ReportJSONRenderer(JSONRenderer):
    format = "json"


class ReportCSVRenderer(BaseRenderer):
    """The rows with a header of field names; every row states when it was computed (``computed_at``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        names = [column["name"] for column in data["columns"]]
        stamps = [csv_text(data["computed_at"]), csv_text(data["data_as_of"])]
        buffer = io.StringIO()
        # A byte-order mark, so that Excel reads the Chinese names as UTF-8.
        buffer.write("\ufeff")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([*names, "computed_at", "data_as_of"])
        for row in data["rows"]:
            writer.writerow([*(csv_text(row.get(name)) for name in names), *stamps])
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{_filename(data, "csv")}"'
        return buffer.getvalue().encode("utf-8")


class ReportXLSXRenderer(BaseRenderer):
    """An Excel workbook: the rows on the first sheet, the report's time, filters and summary on the second."""

    media_type = XLSX_MEDIA_TYPE
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        self._table(workbook.create_sheet(data["report"][:31]), data["columns"], data["rows"])
        # A list a report carries besides its rows (``ReportData.extra``) gets a sheet of its own.
        for key, value in data.items():
            if isinstance(value, dict) and {"columns", "rows"} <= value.keys():
                self._table(workbook.create_sheet(key[:31]), value["columns"], value["rows"])
        about = workbook.create_sheet("about")
        about.append(["report", write_only_cell(about, data["report"])])
        about.append(["title", write_only_cell(about, str(data["title"]))])
        about.append(["computed_at", csv_text(data["computed_at"])])
        about.append(["data_as_of", csv_text(data["data_as_of"])])
        for name, value in data["filters"].items():
            text = csv_text(value) if not isinstance(value, list) else ",".join(value)
            about.append([f"filter.{name}", write_only_cell(about, text)])
        view = (renderer_context or {}).get("view")
        summary_columns = {column.name: column for column in getattr(view, "summary_fields", ())}
        for name, value in data["summary"].items():
            column = summary_columns.get(name)
            kind = column.kind if column else None
            label = str(column.label) if column else name
            about.append([f"summary.{name}", self._value(about, value, kind), write_only_cell(about, label)])
        pagination = data["pagination"]
        about.append(["pagination.page", pagination["page"]])
        about.append(["pagination.count", pagination["count"]])
        buffer = io.BytesIO()
        workbook.save(buffer)
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="{_filename(data, "xlsx")}"'
        return buffer.getvalue()

    @classmethod
    def _table(cls, sheet, columns: list[dict], rows: list[dict]) -> None:
        """A header of the columns' labels in the reader's language, then the rows, money as numbers in RMB."""
        sheet.append([write_only_cell(sheet, str(column["label"])) for column in columns])
        for row in rows:
            sheet.append([cls._value(sheet, row.get(column["name"]), column["type"]) for column in columns])

    @staticmethod
    def _value(sheet, value, kind):
        if kind == "money" and value is not None:
            return write_only_cell(sheet, Decimal(str(value)), MONEY_FORMAT)
        return write_only_cell(sheet, value)


# --- the view ----------------------------------------------------------------------------------------------------


@dataclass
class ReportData:
    """What a report computes: its rows (an ordered QuerySet of dicts, a list, or a function of offset and limit
    returning one page), its summary, and how many rows there are in all (None: the frame counts them).

    ``columns``: the rows' columns when a filter chose other rows than the view's ``columns``. ``extra``: more
    top-level keys of the JSON body (documented in the view's ``extra_schema``); a value with ``columns`` and
    ``rows`` also becomes a sheet of the Excel workbook."""

    rows: object
    summary: dict
    count: int | None = None
    data_as_of: datetime.datetime | None = None
    extra: dict = field(default_factory=dict)
    columns: tuple | None = None


class ReportErrorSerializer(serializers.Serializer):
    """The body of a refused report request."""

    detail = serializers.CharField(help_text=gettext_lazy("What went wrong, in the user's language."))
    code = serializers.CharField(required=False, help_text=gettext_lazy("A stable code for the error."))


ERROR_DESCRIPTIONS = {
    400: gettext_lazy("A filter or the format was refused: messages per parameter."),
    401: gettext_lazy("Not signed in."),
    403: gettext_lazy("Not a regulator or system administrator, or a region other than the regulator's own."),
    429: gettext_lazy("Too many report requests; retry after the number of seconds in Retry-After."),
}


def _errors(*codes: int) -> dict:
    return {
        (code, "application/json"): OpenApiResponse(
            OpenApiTypes.OBJECT if code == 400 else ReportErrorSerializer, description=ERROR_DESCRIPTIONS[code]
        )
        for code in codes
    }


class ReportView(APIView, metaclass=ABCMeta):
    """GET a report as JSON (default), CSV or Excel (``?format=``). Subclasses set the class attributes below."""

    name: str = ""
    title = ""
    description = ""
    columns: tuple[Column, ...] = ()
    summary_fields: tuple[Column, ...] = ()
    filter_serializer_class = ReportFilterSerializer
    # A bare SQL string (psycopg named parameters, at least %(region_id)s) computing the aggregate the JSON report
    # returns for a regulator of that region, with the default filters: the benchmark's yardstick.
    bench_sql: str = ""
    # Serializer fields documenting the keys a report adds to the JSON body (``ReportData.extra``).
    extra_schema: dict = {}

    http_method_names = ["get", "head", "options"]
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [ReportPermission]
    throttle_classes = [ReportRateThrottle]
    throttle_scope = "reports"
    renderer_classes = [ReportJSONRenderer, ReportCSVRenderer, ReportXLSXRenderer]
    pagination_class = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            extend_schema_view(get=report_schema(cls))(cls)

    # The steps ----------------------------------------------------------------------------------------------------

    @abstractmethod
    def compute(self, scope: ReportScope, filters: dict) -> ReportData:
        """The report's figures for the viewer's scope and the validated filters: every report defines it."""

    def present(self, rows: list[dict], scope: ReportScope, filters: dict) -> list[dict]:
        """Finish the rows of one page (labels, shares, figures read for that page only)."""
        return rows

    def get(self, request, *args, **kwargs):
        started = timezone.localtime()
        filters = self._filters(request)
        scope = self._scope(request, filters, started)
        data = self.compute(scope, filters)
        page = filters["page"]
        page_size = filters.get("page_size") or (
            DEFAULT_PAGE_SIZE if request.accepted_renderer.format == "json" else EXPORT_PAGE_SIZE
        )
        offset = (page - 1) * page_size
        if callable(data.rows):
            page_rows = data.rows(offset, page_size)
            # Read after the page: a page function may compute the count and summary with it.
            count = data.count
        elif isinstance(data.rows, list):
            count = len(data.rows) if data.count is None else data.count
            page_rows = data.rows[offset : offset + page_size]
        elif data.count is not None:
            count = data.count
            page_rows = list(data.rows[offset : offset + page_size])
        else:
            # The number of rows comes with the page (COUNT(*) OVER ()), not from a second query.
            page_rows = list(data.rows.annotate(_rows_in_all=Window(Count("*")))[offset : offset + page_size])
            count = page_rows[0]["_rows_in_all"] if page_rows else (data.rows.count() if offset else 0)
            for row in page_rows:
                del row["_rows_in_all"]
        columns = data.columns or self.columns
        rows = [typed(row, columns) for row in self.present(page_rows, scope, filters)]
        summary = typed(dict(data.summary), self.summary_fields)
        self.rows_returned = len(rows)
        echo = {key: value for key, value in filters.items() if key not in ("page", "page_size")}
        echo["region"] = scope.region.code if scope.region else None
        return Response(
            {
                "report": self.name,
                "title": str(self.title),
                "computed_at": started,
                "data_as_of": data.data_as_of or started,
                "filters": echo,
                "columns": [{"name": c.name, "label": str(c.label), "type": c.kind} for c in columns],
                "rows": rows,
                "summary": summary,
                "pagination": {"page": page, "page_size": page_size, "count": count},
                **data.extra,
            }
        )

    def _filters(self, request) -> dict:
        for key, values in request.query_params.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise ValidationError({_printable(key): [_("A parameter may not contain a NUL character.")]})
        serializer = self.filter_serializer_class(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _scope(self, request, filters: dict, now) -> ReportScope:
        user = request.user
        code = filters.pop("region", None)
        if user.is_superuser:
            if not code:
                return ReportScope(user=user, viewer=user, region=None, now=now)
            region = Region.objects.filter(code=code).first()
            if region is None:
                raise ValidationError({"region": [_("There is no region with the code %(code)s.") % {"code": code}]})
            return ReportScope(user=user, viewer=regulator_of(region), region=region, now=now)
        region = user.region
        if code and code != region.code:
            raise PermissionDenied(_("You may read the reports of your own region only."))
        return ReportScope(user=user, viewer=user, region=region, now=now)

    # Formats, errors and the log ---------------------------------------------------------------------------------

    def perform_content_negotiation(self, request, force=False):
        try:
            return super().perform_content_negotiation(request, force)
        except Http404 as exc:
            raise ValidationError(
                {"format": [_("Choose one of the formats: %(formats)s.") % {"formats": ", ".join(FORMATS)}]}
            ) from exc

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # Refusals are always JSON, whatever format was asked for.
        self.request.accepted_renderer = ReportJSONRenderer()
        self.request.accepted_media_type = ReportJSONRenderer.media_type
        return response

    def dispatch(self, request, *args, **kwargs):
        clock = time.perf_counter()
        self.rows_returned = None
        response = super().dispatch(request, *args, **kwargs)
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        self._log(self.request, response, round((time.perf_counter() - clock) * 1000))
        return response

    def _log(self, request, response, duration_ms: int) -> None:
        """One ReportRequest row per request of a signed-in user (anonymous requests are refused before any work)."""
        user = getattr(request, "user", None)
        if not (user and user.is_authenticated):
            return
        renderer = getattr(request, "accepted_renderer", None)
        asked_format = _printable(request.GET.get("format") or getattr(renderer, "format", None) or "json")
        row = ReportRequest(
            user=user,
            report=self.name,
            format=asked_format[: ReportRequest._meta.get_field("format").max_length],
            filters=_logged_query(request.GET),
            status_code=response.status_code,
            duration_ms=duration_ms,
            rows=self.rows_returned,
        )
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            row.save()
            return
        # One statement in autocommit: a log row need not wait for the disk (set_config(..., true) lasts for this
        # statement's own transaction only), so a crash may lose the last few log rows, never other data.
        with connection.cursor() as cursor:
            cursor.execute(LOG_INSERT, {**vars(row), "filters": json.dumps(row.filters)})


def _printable(text: str, limit: int = LOG_MAX_VALUE) -> str:
    """Text as the log can store it: no NUL (PostgreSQL text refuses it), cut to a length."""
    text = str(text).replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _logged_query(query) -> dict:
    """The request's query parameters as the log keeps them: any input, bounded in size."""
    logged = {}
    for key in list(query)[:LOG_MAX_PARAMETERS]:
        values = [_printable(value) for value in query.getlist(key)[:LOG_MAX_PARAMETERS]]
        logged[_printable(key, 60)] = values[0] if len(values) == 1 else values
    return logged


LOG_INSERT = f"""
    WITH durability AS (SELECT set_config('synchronous_commit', 'off', true))
    INSERT INTO {ReportRequest._meta.db_table}
        ("user_id", "report", "format", "filters", "status_code", "duration_ms", "rows", "requested_at")
    SELECT %(user_id)s, %(report)s, %(format)s, %(filters)s::jsonb, %(status_code)s, %(duration_ms)s, %(rows)s,
           %(requested_at)s
    FROM durability
"""


def report_schema(view: type[ReportView]):
    """The OpenAPI description of a report, built from its columns and filters."""
    stem = "".join(part.capitalize() for part in view.name.replace("-", "_").split("_"))
    row = type(
        f"{stem}ReportRowSerializer", (serializers.Serializer,), {c.name: c.serializer_field() for c in view.columns}
    )
    summary = type(
        f"{stem}ReportSummarySerializer",
        (serializers.Serializer,),
        {c.name: c.serializer_field() for c in view.summary_fields},
    )
    envelope = type(
        f"{stem}ReportSerializer",
        (serializers.Serializer,),
        {
            "report": serializers.CharField(help_text=gettext_lazy("The report's name, as in its URL.")),
            "title": serializers.CharField(help_text=gettext_lazy("The report's title in the caller's language.")),
            "computed_at": serializers.DateTimeField(help_text=gettext_lazy("When this response was computed.")),
            "data_as_of": serializers.DateTimeField(
                help_text=gettext_lazy(
                    "The moment the figures reflect: computed_at for figures computed live, the refresh time for a "
                    "cached summary."
                )
            ),
            "filters": serializers.DictField(
                help_text=gettext_lazy("The filters applied, with defaults filled in, and the region (null: all).")
            ),
            "columns": ColumnSerializer(many=True),
            "rows": row(many=True),
            "summary": summary(),
            "pagination": PaginationSerializer(),
            **view.extra_schema,
        },
    )
    formats = OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=list(FORMATS),
        description=gettext_lazy("json (default), csv (UTF-8 with a byte-order mark) or xlsx (Excel)."),
    )
    return extend_schema(
        operation_id=f"reports_{view.name.replace('-', '_')}",
        summary=view.title,
        description=view.description,
        parameters=[view.filter_serializer_class, formats],
        responses={
            (200, "application/json"): envelope,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description=gettext_lazy("The rows as CSV.")),
            (200, XLSX_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY, description=gettext_lazy("The rows, filters and summary as an Excel workbook.")
            ),
            **_errors(400, 401, 403, 429),
        },
        tags=["reports"],
    )


class ColumnSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=gettext_lazy("Stable field name of the rows."))
    label = serializers.CharField(help_text=gettext_lazy("The column's title in the caller's language."))
    type = serializers.ChoiceField(
        choices=["string", "integer", "number", "money", "date", "datetime", "boolean"],
        help_text=gettext_lazy("The values' type."),
    )


class PaginationSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    count = serializers.IntegerField(help_text=gettext_lazy("Rows in the whole report, over all pages."))


# --- the registry ------------------------------------------------------------------------------------------------


def registered_reports() -> list[type[ReportView]]:
    """Every report the URL configuration serves, in URL order (the apps plug theirs in under /api/v1/reports/)."""
    found: list[type[ReportView]] = []

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                view_class = getattr(pattern.callback, "view_class", None)
                if isinstance(view_class, type) and issubclass(view_class, ReportView) and view_class not in found:
                    found.append(view_class)

    walk(get_resolver(getattr(settings, "ROOT_URLCONF", None)).url_patterns)
    return found


class ReportIndexEntrySerializer(serializers.Serializer):
    name = serializers.CharField(help_text=gettext_lazy("The report's name: its URL is /api/v1/reports/<name>/."))
    title = serializers.CharField(help_text=gettext_lazy("The report's title in the caller's language."))
    description = serializers.CharField()
    url = serializers.CharField(help_text=gettext_lazy("The report's address (JSON; ?format=csv or xlsx to export)."))
    formats = serializers.ListField(child=serializers.CharField())


class ReportIndexView(APIView):
    """GET /api/v1/reports/: the reports the caller may read, with their titles and addresses."""

    http_method_names = ["get", "head", "options"]
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [ReportPermission]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="reports_index",
        summary=gettext_lazy("List the regulator reports"),
        responses={200: ReportIndexEntrySerializer(many=True), **_errors(401, 403)},
        tags=["reports"],
    )
    def get(self, request):
        return Response(
            [
                {
                    "name": view.name,
                    "title": str(view.title),
                    "description": str(view.description),
                    "url": request.build_absolute_uri(f"{view.name}/"),
                    "formats": list(FORMATS),
                }
                for view in registered_reports()
            ]
        )


def report_path(view: type[ReportView]) -> Callable:
    """The URL pattern of a report: /api/v1/reports/<name>/ (to put in an app's report_urls.py)."""
    from django.urls import path

    return path(f"{view.name}/", view.as_view(), name=f"report-{view.name}")
