"""The OpenAPI description of the reports: the JSON envelope, rows and summary from a report's columns, errors."""

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from cgtclinic.api.reports.renderers import FORMATS, XLSX_MEDIA_TYPE

if TYPE_CHECKING:
    from cgtclinic.api.reports.views import ReportView


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


def error_responses(*codes: int) -> dict:
    return {
        (code, "application/json"): OpenApiResponse(
            OpenApiTypes.OBJECT if code == 400 else ReportErrorSerializer, description=ERROR_DESCRIPTIONS[code]
        )
        for code in codes
    }


def report_schema(view: "type[ReportView]"):
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
            "computed_at": serializers.DateTimeField(
                help_text=gettext_lazy("When this response was computed (ISO 8601, Asia/Shanghai).")
            ),
            "data_as_of": serializers.DateTimeField(
                help_text=gettext_lazy(
                    "The moment the figures reflect, read before them (ISO 8601, Asia/Shanghai): computed_at when "
                    "the report reads the primary database; when it reads a replica, the commit time of the last "
                    "transaction the replica replayed, so a lagging replica shows as an earlier time. CSV repeats it "
                    "in a column of every row, Excel on the sheet about."
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
            **error_responses(400, 401, 403, 429),
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
