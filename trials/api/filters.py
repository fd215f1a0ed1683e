"""Query-string filters for the trial registry API. They only narrow a queryset already scoped by visible_to."""

from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters

from cgtclinic.models import Institution, Sponsor
from trials import enrolment
from trials.models import DocumentVersion, EnrolmentEntry, Trial, TrialDocument, TrialSite


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


class EnrolmentEntryFilter(filters.FilterSet):
    site = filters.NumberFilter(field_name="site_id", help_text=_("Trial site id."))
    trial = filters.NumberFilter(field_name="trial_id", help_text=_("Trial id."))
    institution = filters.NumberFilter(field_name="site__institution_id", help_text=_("Institution id of the site."))
    kind = filters.MultipleChoiceFilter(choices=EnrolmentEntry.Kind.choices, help_text=_("One or more events."))
    occurred = filters.DateFromToRangeFilter(
        field_name="occurred_on", help_text=_("Events on or after / on or before these dates.")
    )
    is_correction = filters.BooleanFilter(
        field_name="reverses", lookup_expr="isnull", exclude=True, help_text=_("true: corrections only.")
    )
    subject_code = filters.CharFilter(field_name="subject__code", help_text=_("One pseudonymous subject code."))

    class Meta:
        model = EnrolmentEntry
        fields = ("site", "trial", "institution", "kind", "occurred", "is_correction", "subject_code")


def _matching(rule):
    """A boolean filter for a site rule: true keeps the sites it matches, false the others."""

    def apply(queryset, name, value):
        matching = TrialSite.objects.filter(rule()).values("pk")
        return queryset.filter(pk__in=matching) if value else queryset.exclude(pk__in=matching)

    return apply


class SiteEnrolmentFilter(filters.FilterSet):
    trial = filters.NumberFilter(field_name="trial_id", help_text=_("Trial id."))
    institution = filters.ModelChoiceFilter(queryset=Institution.objects.all(), help_text=_("Institution id."))
    region = filters.CharFilter(field_name="institution__region__code", help_text=_("Code of the site's region."))
    trial_status = filters.MultipleChoiceFilter(
        field_name="trial__status", choices=Trial.Status.choices, help_text=_("One or more trial statuses.")
    )
    over_target = filters.BooleanFilter(
        method=_matching(enrolment.over_target_sites_q),
        help_text=_("true: sites with more enrolled than their target."),
    )
    stalled = filters.BooleanFilter(
        method=_matching(enrolment.stalled_sites_q),
        help_text=_("true: initiated sites of active trials below target with no recent enrolment."),
    )

    class Meta:
        model = TrialSite
        fields = ("trial", "institution", "region", "trial_status", "over_target", "stalled")


class TrialEnrolmentFilter(filters.FilterSet):
    """Narrows the sites summed per trial."""

    trial = filters.NumberFilter(field_name="trial_id", help_text=_("Trial id."))
    region = filters.CharFilter(field_name="institution__region__code", help_text=_("Only sites in this region."))
    trial_status = filters.MultipleChoiceFilter(
        field_name="trial__status", choices=Trial.Status.choices, help_text=_("One or more trial statuses.")
    )

    class Meta:
        model = TrialSite
        fields = ("trial", "region", "trial_status")
