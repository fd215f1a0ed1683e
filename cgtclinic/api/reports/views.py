"""The report view: validate the filters, scope the request, compute on the reports' database, page, render, log."""

import datetime
import time
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field

from django.db.models import Count, Window
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_view
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from cgtclinic.api.reports.access import ReportPermission, ReportRateThrottle, ReportScope, regulator_of
from cgtclinic.api.reports.filters import (
    DEFAULT_PAGE_SIZE,
    EXPORT_PAGE_SIZE,
    Column,
    ReportFilterSerializer,
)
from cgtclinic.api.reports.log import _printable, log_request
from cgtclinic.api.reports.renderers import (
    FORMATS,
    ReportCSVRenderer,
    ReportJSONRenderer,
    ReportXLSXRenderer,
    typed,
)
from cgtclinic.api.reports.schema import report_schema
from cgtclinic.auth import ApiTokenAuthentication
from cgtclinic.models import Region
from cgtclinic.reporting.database import data_as_of, reading_reports


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
        with reading_reports():
            # Read before the figures: they reflect at least everything committed up to this moment.
            as_of = data_as_of(started)
            scope = self._scope(request, filters, started)
            data = self.compute(scope, filters)
            page = filters["page"]
            page_size = filters.get("page_size") or (
                DEFAULT_PAGE_SIZE if request.accepted_renderer.format == "json" else EXPORT_PAGE_SIZE
            )
            page_rows, count = self._page(data, (page - 1) * page_size, page_size)
            rows = list(self.present(page_rows, scope, filters))
        columns = data.columns or self.columns
        if request.accepted_renderer.format == "json":
            rows = [typed(row, columns) for row in rows]
        # The export renderers convert each value by its column themselves, in the same pass that writes it.
        summary = typed(dict(data.summary), self.summary_fields)
        self.rows_returned = len(rows)
        echo = {key: value for key, value in filters.items() if key not in ("page", "page_size")}
        echo["region"] = scope.region.code if scope.region else None
        return Response(
            {
                "report": self.name,
                "title": str(self.title),
                "computed_at": started,
                # A report read from a table refreshed earlier (ReportData.data_as_of) is as old as that table.
                "data_as_of": min(data.data_as_of, as_of) if data.data_as_of else as_of,
                "filters": echo,
                "columns": [{"name": c.name, "label": str(c.label), "type": c.kind} for c in columns],
                "rows": rows,
                "summary": summary,
                "pagination": {"page": page, "page_size": page_size, "count": count},
                **data.extra,
            }
        )

    @staticmethod
    def _page(data: ReportData, offset: int, limit: int) -> tuple[list[dict], int]:
        """One page of the rows and the number of rows in all."""
        if callable(data.rows):
            page_rows = data.rows(offset, limit)
            # Read after the page: a page function may compute the count and summary with it.
            return page_rows, data.count
        if isinstance(data.rows, list):
            count = len(data.rows) if data.count is None else data.count
            return data.rows[offset : offset + limit], count
        if data.count is not None:
            return list(data.rows[offset : offset + limit]), data.count
        # The number of rows comes with the page (COUNT(*) OVER ()), not from a second query.
        page_rows = list(data.rows.annotate(_rows_in_all=Window(Count("*")))[offset : offset + limit])
        count = page_rows[0]["_rows_in_all"] if page_rows else (data.rows.count() if offset else 0)
        for row in page_rows:
            del row["_rows_in_all"]
        return page_rows, count

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
        try:
            # The whole file is rendered here, before anything is sent: an export is complete or answers 500, never
            # a truncated file that looks whole.
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        except Exception:
            self._log(response, clock, status_code=500)
            raise
        self._log(response, clock)
        return response

    def _log(self, response, clock: float, status_code: int | None = None) -> None:
        # After the report, outside its reads: the log row is written on the primary.
        log_request(
            self.request,
            response,
            report=self.name,
            rows=self.rows_returned,
            duration_ms=round((time.perf_counter() - clock) * 1000),
            status_code=status_code,
        )
