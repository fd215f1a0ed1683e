"""The form that records a filing, shared by the admin's page and the PI's portal page."""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cgtclinic.errors import DomainError
from trials import filings
from trials.models import FilingObligation


def run_service(form, call):
    """Call one service for a valid form; a refusal becomes the form's error (None returned)."""
    try:
        return call()
    except DomainError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))
        return None


class FilingForm(forms.Form):
    """Recording a filing: the admin's page and the PI's portal page use this one form."""

    filed_on = forms.DateField(label=_("Filed on"), initial=timezone.localdate)
    filing_number = forms.CharField(label=_("Filing / receipt number"), max_length=100, required=False)
    document = forms.FileField(label=_("Document filed"), required=False)
    note = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def record(self, *, obligation: FilingObligation, actor):
        """Validate and record through trials.filings.filing_record; the recorded obligation, or None."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        return run_service(
            self,
            lambda: filings.filing_record(
                obligation=obligation,
                actor=actor,
                filed_on=data["filed_on"],
                filing_number=data["filing_number"],
                document_file=data["document"],
                note=data["note"],
            ),
        )
