"""Forms of the PI portal. They parse and check input; every rule about what may be filed lives in the services."""

import datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from cgtclinic.errors import DomainError
from cgtclinic.models import Department, Institution, User
from ethics.models import Submission
from ethics.portal import lookups
from ethics.portal.lookups import DirectoryChoiceField
from ethics.services import DECLARATIONS, REPORT_FIELDS
from trials import consent
from trials.models import DocumentVersion, EnrolmentEntry, Trial, TrialDocument, TrialSite
from trials.uploads import ALLOWED_TYPES, check_upload

K = Submission.Kind

# The reports a PI files from the portal (responses to modifications have their own page). An SAE is reported on
# the safety pages (ethics/safety.py), whose clocks file the SAE submission to the committee; an SAE draft saved
# here before those pages existed is still edited and submitted on the report page.
REPORT_KINDS = (
    K.AMENDMENT,
    K.CONTINUING_REVIEW,
    K.DEVIATION,
    K.SUSPENSION_TERMINATION,
    K.FINAL_REPORT,
)
FILE_ACCEPT = ",".join(f".{ext}" for ext in sorted(ALLOWED_TYPES))


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class SuspensionAction:
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    CHOICES = ((SUSPENDED, _("Suspended")), (TERMINATED, _("Terminated")))


# How each report detail is asked for: (input type, label). Unknown keys become text areas labelled from the
# service's own description, so a detail added there still appears here.
DETAIL_INPUTS = {
    "changes": ("text", _("Changes made")),
    "reason": ("text", _("Reason")),
    "enrolled_to_date": ("number", _("Number of subjects enrolled to date")),
    "safety_summary": ("text", _("Safety summary since the last review")),
    "progress": ("text", _("Progress of the study")),
    "event_date": ("date", _("Date of the event")),
    "description": ("text", _("Description")),
    "causality": ("text", _("Assessed relation to the intervention")),
    "outcome": ("text", _("Outcome of the event")),
    "occurred_on": ("date", _("Date of the deviation")),
    "corrective_action": ("text", _("Corrective and preventive action")),
    "action": ("choice", _("Is the study suspended or terminated?")),
    "subject_follow_up": ("text", _("Arrangements for enrolled subjects")),
    "enrolled_total": ("number", _("Total number of subjects enrolled")),
    "completed_on": ("date", _("Completion date")),
    "results_summary": ("text", _("Summary of results")),
    "response": ("text", _("Point-by-point response to the requested modifications")),
}


def add_domain_error(form: forms.BaseForm, exc: DomainError) -> None:
    """Show a service's refusal on the form, next to the field it names when the form has that field."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, str(exc.message))


def _checked_file(uploaded):
    """Run the upload checks the service will run, so a bad file is refused before it is saved; the refusal names
    the file, since a page may carry several."""
    if uploaded:
        try:
            check_upload(uploaded)
        except DomainError as exc:
            raise ValidationError(
                _("“%(name)s” was refused: %(reason)s") % {"name": uploaded.name, "reason": exc.message},
                code=exc.code,
            ) from exc
    return uploaded


class FileInput(forms.ClearableFileInput):
    def __init__(self, attrs=None):
        super().__init__({"accept": FILE_ACCEPT, **(attrs or {})})


class TrialDetailsForm(forms.ModelForm):
    """Step 1: the trial's master record, as far as the PI drafts it."""

    class Meta:
        model = Trial
        fields = (
            "title_zh",
            "title_en",
            "protocol_number",
            "kind",
            "therapy_category",
            "phase",
            "sponsor",
            "department",
            "target_enrolment",
            "nmpa_approval_number",
            "chictr_id",
            "nct_id",
            "hgr_status",
            "hgr_approval_number",
        )

    def __init__(self, *args, pi, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = Department.objects.filter(institution_id=pi.institution_id)
        # Thousands of sponsors nationally: chosen by typing, not from a drop-down of every one.
        sponsor = self.fields["sponsor"]
        self.fields["sponsor"] = DirectoryChoiceField(
            lookups.directory_queryset("sponsors", pi),
            directory="sponsors",
            required=sponsor.required,
            label=sponsor.label,
        )
        self.fields["target_enrolment"].widget.attrs.update(min=1, inputmode="numeric")


class SiteAddForm(forms.Form):
    """Step 2: a participating institution, with its own target (never a copy of the trial's)."""

    institution = DirectoryChoiceField(
        label=_("Participating institution"), queryset=Institution.objects.none(), directory="institutions"
    )
    site_target = forms.IntegerField(
        label=_("Target enrolment at this site"),
        min_value=0,
        widget=forms.NumberInput(attrs={"min": 0, "inputmode": "numeric"}),
    )

    def __init__(self, *args, trial: Trial, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = lookups.directory_queryset("institutions", user).exclude(
            trial_sites__trial=trial
        )


class SiteTargetsForm(forms.Form):
    """Step 2: the target of every site of the trial, one input each."""

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.sites = list(sites)
        for site in self.sites:
            self.fields[f"target_{site.pk}"] = forms.IntegerField(
                label=_("Target enrolment at %(institution)s") % {"institution": site.institution},
                min_value=0,
                initial=site.site_target,
                widget=forms.NumberInput(attrs={"min": 0, "inputmode": "numeric"}),
            )

    def rows(self):
        return [(site, self[f"target_{site.pk}"]) for site in self.sites]

    def changed_targets(self) -> list[tuple]:
        """(site, new target) for each site whose target the applicant changed."""
        return [
            (site, self.cleaned_data[f"target_{site.pk}"])
            for site in self.sites
            if self.cleaned_data[f"target_{site.pk}"] != site.site_target
        ]


class SitePIForm(forms.Form):
    """Step 2: a participating site's PI, chosen among the PI accounts of the site's institution (names only) or
    put on record by name when they have no account."""

    site_pi = forms.TypedChoiceField(label=_("Site PI on record"), coerce=int, required=False, empty_value=None)
    full_name = forms.CharField(label=_("Name of a site PI not on record"), max_length=100, required=False)
    professional_title = forms.CharField(label=_("Professional title"), max_length=50, required=False)
    phone = forms.CharField(
        label=_("Phone"), max_length=30, required=False, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )
    email = forms.EmailField(label=_("E-mail"), required=False)

    def __init__(self, *args, site: TrialSite, candidates: list[User], **kwargs):
        super().__init__(*args, **kwargs)
        self.site = site
        self.candidates = {person.pk: person for person in candidates}
        if candidates:
            self.fields["site_pi"].choices = [
                ("", _("Not on record yet (enter below)")),
                *((person.pk, person.full_name) for person in candidates),
            ]
        else:
            del self.fields["site_pi"]

    def clean_site_pi(self):
        chosen = self.cleaned_data.get("site_pi")
        return self.candidates[chosen] if chosen is not None else None

    def clean(self):
        cleaned = super().clean()
        chosen, name = cleaned.get("site_pi"), cleaned.get("full_name", "").strip()
        if self.errors:
            return cleaned
        if chosen and name:
            self.add_error(None, _("Choose a person from the list or enter a name, not both."))
        elif not chosen and not name:
            self.add_error(
                "full_name",
                _("Choose the site PI from the list or enter their name.")
                if "site_pi" in self.fields
                else _("Enter the name of the site PI."),
            )
        return cleaned

    def person_data(self) -> dict:
        """The keyword arguments of ``site_set_pi``."""
        chosen = self.cleaned_data.get("site_pi")
        if chosen is not None:
            return {"person": chosen}
        return {
            "full_name": self.cleaned_data["full_name"],
            "professional_title": self.cleaned_data["professional_title"],
            "phone": self.cleaned_data["phone"],
            "email": self.cleaned_data["email"],
        }


class DocumentSlotForm(forms.Form):
    """Step 3: one required kind of document. The same title adds a version; a new title adds another document."""

    title = forms.CharField(label=_("Title"), max_length=200, required=False)
    file = forms.FileField(label=_("File"), required=False, widget=FileInput)
    version_label = forms.CharField(
        label=_("Version as printed on the document"), max_length=50, required=False, help_text=_("e.g. V2.0")
    )
    version_date = forms.DateField(label=_("Version date"), required=False, widget=DateInput)

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.kind_label = TrialDocument.Kind(kind).label

    def clean_file(self):
        return _checked_file(self.cleaned_data.get("file"))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("file") and not cleaned.get("title", "").strip():
            self.add_error("title", _("Please give “%(name)s” a title.") % {"name": cleaned["file"].name})
        return cleaned


class DeclarationsForm(forms.Form):
    """Step 4: the summary of the application and the applicant's declarations."""

    summary = forms.CharField(
        label=_("Summary of the application"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("The aims, design and the main risks and benefits, in a few paragraphs."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, text in DECLARATIONS.items():
            self.fields[f"declare_{key}"] = forms.BooleanField(label=text, required=False)

    def declarations(self) -> dict:
        return {key: bool(self.cleaned_data.get(f"declare_{key}")) for key in DECLARATIONS}

    @staticmethod
    def initial_for(submission: Submission) -> dict:
        initial = {"summary": submission.summary}
        initial.update({f"declare_{key}": submission.declarations.get(key) is True for key in DECLARATIONS})
        return initial


class ReportForm(forms.Form):
    """A report or response: its summary and the details the committee needs for its kind. Nothing is required
    here, so a draft can be saved half-done; submitting lists whatever is still missing."""

    summary = forms.CharField(label=_("Summary"), required=False, widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        for key, description in REPORT_FIELDS.get(kind, {}).items():
            input_type, label = DETAIL_INPUTS.get(key, ("text", capfirst(description)))
            if input_type == "date":
                field = forms.DateField(label=label, required=False, widget=DateInput)
            elif input_type == "number":
                field = forms.IntegerField(
                    label=label, required=False, min_value=0, widget=forms.NumberInput(attrs={"min": 0})
                )
            elif input_type == "choice":
                field = forms.ChoiceField(
                    label=label, required=False, choices=SuspensionAction.CHOICES, widget=forms.RadioSelect
                )
            else:
                field = forms.CharField(label=label, required=False, widget=forms.Textarea(attrs={"rows": 4}))
            self.fields[f"detail_{key}"] = field

    @property
    def detail_fields(self):
        return [self[name] for name in self.fields if name.startswith("detail_")]

    def details(self) -> dict:
        """The details as stored on the submission: dates as ISO strings, and no key for an empty answer."""
        details = {}
        for name, value in self.cleaned_data.items():
            if not name.startswith("detail_") or value in (None, ""):
                continue
            if isinstance(value, datetime.date):
                value = value.isoformat()
            elif isinstance(value, str):
                value = value.strip()
            details[name.removeprefix("detail_")] = value
        return details

    @staticmethod
    def initial_for(submission: Submission) -> dict:
        initial = {"summary": submission.summary}
        initial.update({f"detail_{key}": value for key, value in submission.details.items()})
        return initial


class DocumentUploadForm(forms.Form):
    """A new version of one of the trial's documents, or a first version of a new document."""

    document = forms.ModelChoiceField(
        label=_("Document"),
        queryset=TrialDocument.objects.none(),
        required=False,
        empty_label=_("A new document (give its kind and title)"),
    )
    kind = forms.ChoiceField(
        label=_("Kind of new document"),
        choices=[("", "---------"), *TrialDocument.Kind.choices],
        required=False,
    )
    title = forms.CharField(label=_("Title of new document"), max_length=200, required=False)
    file = forms.FileField(label=_("File"), required=False, widget=FileInput)
    version_label = forms.CharField(label=_("Version as printed on the document"), max_length=50, required=False)
    note = forms.CharField(label=_("What changed"), max_length=300, required=False)

    def __init__(self, *args, trial: Trial, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["document"].queryset = TrialDocument.objects.visible_to(user).filter(trial=trial)

    def clean_file(self):
        return _checked_file(self.cleaned_data.get("file"))

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if not cleaned.get("file"):
            self.add_error("file", _("Choose the file to upload."))
        elif not cleaned.get("document"):
            if not cleaned.get("kind"):
                self.add_error("kind", _("Choose the kind of the new document."))
            if not cleaned.get("title", "").strip():
                self.add_error("title", _("Please give the document a title."))
        return cleaned

    def upload_target(self) -> tuple[str, str]:
        """The (kind, title) the new version is stored under."""
        document = self.cleaned_data.get("document")
        if document is not None:
            return document.kind, document.title
        return self.cleaned_data["kind"], self.cleaned_data["title"].strip()


DocumentUploadFormSet = forms.formset_factory(DocumentUploadForm, extra=3, max_num=10)


class EnrolmentReportForm(forms.Form):
    """One enrolment event at a site. Whether it may be recorded (approval, trial status, counts, subject code)
    is the ledger service's decision."""

    kind = forms.ChoiceField(label=_("Event"), choices=[("", "---------"), *EnrolmentEntry.Kind.choices])
    occurred_on = forms.DateField(label=_("Date of the event"), widget=DateInput)
    count = forms.IntegerField(
        label=_("Number of subjects"),
        min_value=1,
        initial=1,
        widget=forms.NumberInput(attrs={"min": 1, "inputmode": "numeric"}),
    )
    subject_code = forms.CharField(
        label=_("Subject code (optional)"),
        max_length=30,
        required=False,
        help_text=_(
            "A pseudonymous code such as RK-001, for one subject (the number is then 1). Never a name, an ID-card "
            "number or a phone number."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )
    note = forms.CharField(label=_("Note (optional)"), max_length=300, required=False)
    icf_version = forms.ModelChoiceField(
        label=_("ICF version signed"),
        queryset=DocumentVersion.objects.none(),
        required=False,
        help_text=_("For the enrolment of a named subject: the approved informed-consent form version they signed."),
    )
    consented_on = forms.DateField(label=_("Consent date"), widget=DateInput, required=False)

    def __init__(self, *args, trial_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if trial_id is not None:
            self.fields["icf_version"].queryset = consent.approved_icf_versions(trial_id)


class EnrolmentReversalForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the correction"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Kept in the ledger with the correcting entry, e.g. “entered twice” or “wrong date”."),
    )
