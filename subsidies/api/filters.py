"""Query-string filters for programs and claims. They only narrow a queryset already scoped by visible_to."""

from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters

from subsidies.models import Claim, SubsidyProgram


def _covers_year(queryset, name, value):
    return queryset.filter(year_from__lte=value).filter(Q(year_to__isnull=True) | Q(year_to__gte=value))


class SubsidyProgramFilter(filters.FilterSet):
    region = filters.CharFilter(field_name="region__code", help_text=_("Region code."))
    amount_rule = filters.ChoiceFilter(choices=SubsidyProgram.AmountRule.choices)
    year = filters.NumberFilter(method=_covers_year, help_text=_("Programs that cover this claim year."))

    class Meta:
        model = SubsidyProgram
        fields = ("region", "amount_rule", "year")


class ClaimFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Claim.Status.choices, help_text=_("One or more statuses."))
    year = filters.NumberFilter(help_text=_("The year claimed for."))
    program = filters.NumberFilter(field_name="program_id", help_text=_("Program id."))
    program_code = filters.CharFilter(field_name="program__code", help_text=_("Program code."))
    institution = filters.NumberFilter(field_name="institution_id", help_text=_("Institution id."))
    region = filters.CharFilter(field_name="program__region__code", help_text=_("Code of the program's region."))

    class Meta:
        model = Claim
        fields = ("status", "year", "program", "program_code", "institution", "region")
