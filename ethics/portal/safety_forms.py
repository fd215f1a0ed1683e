"""Forms of the PI portal's safety pages: they parse input; ethics.safety decides what may be recorded."""

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from ethics.models import SafetyEvent
from ethics.portal.forms import DateInput
from trials.models import EnrolmentSubject, TrialSite


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class SafetyEventForm(forms.Form):
    """A new SAE or SUSAR (or a follow-up of one): the site, what happened and when the clock starts."""

    site = forms.ModelChoiceField(label=_("Site"), queryset=TrialSite.objects.none())
    kind = forms.ChoiceField(label=_("Kind of report"), choices=SafetyEvent.Kind.choices)
    subject = forms.ModelChoiceField(
        label=_("Subject code"),
        queryset=EnrolmentSubject.objects.none(),
        required=False,
        help_text=_("Optional. Never a name or an ID number."),
    )
    term = forms.CharField(label=_("Event term"), max_length=200)
    description = forms.CharField(
        label=_("Description"), widget=forms.Textarea(attrs={"rows": 4}), help_text=_("No patient identity.")
    )
    criteria = forms.MultipleChoiceField(
        label=_("Seriousness criteria"), choices=SafetyEvent.Criterion.choices, widget=forms.CheckboxSelectMultiple
    )
    expectedness = forms.ChoiceField(label=_("Expectedness"), choices=SafetyEvent.Expectedness.choices)
    causality = forms.ChoiceField(label=_("Causality"), choices=SafetyEvent.Causality.choices)
    outcome = forms.ChoiceField(label=pgettext_lazy("safety", "Outcome"), choices=SafetyEvent.Outcome.choices)
    onset_on = forms.DateField(label=_("Onset date"), required=False, widget=DateInput())
    aware_at = forms.DateTimeField(
        label=_("Investigator aware at (SAE)"),
        required=False,
        widget=DateTimeInput(),
        help_text=_("Beijing time. The SAE's clocks start here."),
    )
    sponsor_aware_on = forms.DateField(label=_("Sponsor aware on, day 0 (SUSAR)"), required=False, widget=DateInput())
    received_at = forms.DateTimeField(
        label=_("Received by the site at (SUSAR)"), required=False, widget=DateTimeInput()
    )
    sponsor_reference = forms.CharField(label=_("Sponsor's case number"), max_length=60, required=False)

    def __init__(self, *args, sites, follow_up_of: SafetyEvent | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites.select_related("trial", "institution")
        self.fields["site"].label_from_instance = lambda site: f"{site.trial.protocol_number} · {site.institution}"
        self.fields["subject"].queryset = EnrolmentSubject.objects.filter(site__in=sites).select_related("trial")
        self.fields["subject"].label_from_instance = lambda subject: f"{subject.trial.protocol_number} {subject.code}"
        if follow_up_of is not None:
            for name in ("site", "kind"):
                self.fields[name].disabled = True
            self.initial |= {
                "site": follow_up_of.site_id,
                "kind": follow_up_of.kind,
                "subject": follow_up_of.subject_id,
                "term": follow_up_of.term,
                "criteria": follow_up_of.criteria,
                "expectedness": follow_up_of.expectedness,
                "causality": follow_up_of.causality,
                "sponsor_aware_on": follow_up_of.sponsor_aware_on,
                "sponsor_reference": follow_up_of.sponsor_reference,
            }


class SafetyStepForm(forms.Form):
    """One step on a report: when it happened (default: now) and a note."""

    at = forms.DateTimeField(
        label=pgettext_lazy("safety", "When"),
        required=False,
        widget=DateTimeInput(),
        help_text=_("Beijing time; leave empty for now. Reports to a committee in the system take the filing time."),
    )
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
