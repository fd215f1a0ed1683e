"""The frame every regulator report uses: scope, filters, formats, pagination, throttling, the request log.

A report is a ``ReportView`` subclass in an app's ``api/reports.py`` with a ``name`` (its URL slug under
/api/v1/reports/), its ``columns`` and ``summary_fields`` (stable snake_case names, documented in the OpenAPI
schema), a ``filter_serializer_class`` and a ``compute()`` that calls the app's selector in ``<app>/reports.py``.
Selectors aggregate in the database with the SQL helpers of ``cgtclinic.reporting`` (which know nothing of HTTP);
a report never loads whole tables. While a report computes, its reads go to the replica when one is configured
(``cgtclinic.reporting.database``), and its ``data_as_of`` says how current that data is.

Who may read: regulators, for their own region (scoped through the models' ``visible_to``, for which a system
administrator asking for ``?region=`` is given a stand-in regulator of that region) and system administrators.
Every request is throttled (scope ``reports``) and leaves a ``cgtclinic.ReportRequest`` row.

The modules, by concern: ``access`` (scope, permission, throttle), ``filters`` (columns and query parameters),
``renderers`` (JSON, CSV, Excel), ``views`` (the report view), ``log`` (the request log), ``schema`` (OpenAPI),
``registry`` (the reports served and their index).
"""

from cgtclinic.api.reports.access import ReportPermission, ReportRateThrottle, ReportScope, regulator_of
from cgtclinic.api.reports.filters import (
    DEFAULT_PAGE_SIZE,
    EXPORT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Column,
    ListParameter,
    ReportFilterSerializer,
    choice_list,
)
from cgtclinic.api.reports.registry import ReportIndexView, registered_reports, report_path
from cgtclinic.api.reports.renderers import (
    FORMATS,
    XLSX_MEDIA_TYPE,
    ReportCSVRenderer,
    ReportJSONRenderer,
    ReportXLSXRenderer,
)
from cgtclinic.api.reports.schema import ColumnSerializer, PaginationSerializer, report_schema
from cgtclinic.api.reports.views import ReportData, ReportView

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "EXPORT_PAGE_SIZE",
    "FORMATS",
    "MAX_PAGE_SIZE",
    "XLSX_MEDIA_TYPE",
    "Column",
    "ColumnSerializer",
    "ListParameter",
    "PaginationSerializer",
    "ReportCSVRenderer",
    "ReportData",
    "ReportFilterSerializer",
    "ReportIndexView",
    "ReportJSONRenderer",
    "ReportPermission",
    "ReportRateThrottle",
    "ReportScope",
    "ReportView",
    "ReportXLSXRenderer",
    "choice_list",
    "registered_reports",
    "regulator_of",
    "report_path",
    "report_schema",
]
