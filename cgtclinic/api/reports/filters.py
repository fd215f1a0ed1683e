"""A report's columns and the query parameters (filters, page) every report accepts."""

from dataclasses import dataclass

from django.core.validators import MaxValueValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

# JSON pages are for screens and scripts; CSV and Excel are exports and hold everything up to the maximum.
DEFAULT_PAGE_SIZE = 100
EXPORT_PAGE_SIZE = MAX_PAGE_SIZE = 20000
# PostgreSQL's integer: the largest id or page number a parameter may give.
INTEGER_MAX = 2**31 - 1


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
