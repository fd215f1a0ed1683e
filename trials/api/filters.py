"""Query-string filters for the trial registry API. They only narrow a queryset already scoped by visible_to."""

from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters

from cgtclinic.models import Institution, Sponsor
from trials.models import DocumentVersion, Trial, TrialDocument, TrialSite


class TrialFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Trial.Status.choices, help_text=_("One or more statuses."))
    kind = filters.MultipleChoiceFilter(choices=Trial.Kind.choices, help_text=_("One or more kinds."))
    therapy_category = filters.MultipleChoiceFilter(
        choices=Trial.TherapyCategory.choices, help_text=_("One or more therapy categories.")
    )
    phase = filters.MultipleChoiceFilter(choices=Trial.Phase.choices, help_text=_("One or more phases."))
    lead_institution = filters.ModelChoiceFilter(queryset=Institution.objects.all(), help_text=_("Institution id."))
    sponsor = filters.ModelChoiceFilter(queryset=Sponsor.objects.all(), help_text=_("Sponsor id."))
    region = filters.CharFilter(
        field_name="lead_institution__region__code", help_text=_("Code of the lead institution's region.")
    )
    created = filters.DateFromToRangeFilter(
        field_name="created_at", help_text=_("Recorded on or after / on or before these dates.")
    )

    class Meta:
        model = Trial
        fields = (
            "status",
            "kind",
            "therapy_category",
            "phase",
            "lead_institution",
            "sponsor",
            "region",
            "created",
        )


def _has_milestone(queryset, name, value):
    return queryset.filter(**{f"{name}__isnull": not value})


def _milestone_filter(milestone: str) -> filters.BooleanFilter:
    return filters.BooleanFilter(
        field_name=milestone,
        method=_has_milestone,
        help_text=_("true: sites where this milestone date is recorded; false: sites where it is not."),
    )


class TrialSiteFilter(filters.FilterSet):
    trial = filters.NumberFilter(field_name="trial_id", help_text=_("Trial id."))
    institution = filters.ModelChoiceFilter(queryset=Institution.objects.all(), help_text=_("Institution id."))
    role = filters.ChoiceFilter(choices=TrialSite.SiteRole.choices)
    region = filters.CharFilter(field_name="institution__region__code", help_text=_("Code of the site's region."))
    trial_status = filters.MultipleChoiceFilter(
        field_name="trial__status", choices=Trial.Status.choices, help_text=_("One or more trial statuses.")
    )
    has_submission_received = _milestone_filter("submission_received_on")
    has_ethics_approved = _milestone_filter("ethics_approved_on")
    has_contract_signed = _milestone_filter("contract_signed_on")
    has_site_initiated = _milestone_filter("site_initiated_on")
    has_first_patient_in = _milestone_filter("first_patient_in_on")

    class Meta:
        model = TrialSite
        fields = (
            "trial",
            "institution",
            "role",
            "region",
            "trial_status",
            "has_submission_received",
            "has_ethics_approved",
            "has_contract_signed",
            "has_site_initiated",
            "has_first_patient_in",
        )


class DocumentVersionFilter(filters.FilterSet):
    trial = filters.NumberFilter(field_name="document__trial_id", help_text=_("Trial id."))
    document = filters.NumberFilter(field_name="document_id", help_text=_("Document id: all versions of it."))
    kind = filters.ChoiceFilter(field_name="document__kind", choices=TrialDocument.Kind.choices)

    class Meta:
        model = DocumentVersion
        fields = ("trial", "document", "kind")


class InstitutionFilter(filters.FilterSet):
    region = filters.CharFilter(field_name="region__code", help_text=_("Region code."))

    class Meta:
        model = Institution
        fields = ("region", "is_active")


class SponsorFilter(filters.FilterSet):
    region = filters.CharFilter(field_name="region__code", help_text=_("Region code."))

    class Meta:
        model = Sponsor
        fields = ("region", "kind", "is_cgt_enterprise")
