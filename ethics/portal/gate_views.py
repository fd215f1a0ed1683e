"""PI pages for the gates before a site starts: my GCP certificates, and per site its gates, delegation log and
the subjects due for re-consent. Each form calls one service of trials.gates / qualifications / consent."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic.errors import DomainError
from ethics.portal.forms import DateInput, add_domain_error
from ethics.portal.views import _page, _refusal_status, pi_required
from trials import consent, enrolment, gates, qualifications
from trials.models import Delegation, DocumentVersion, Duty, EnrolmentSubject, GcpCertificate, TrialSite


class CertificateForm(forms.Form):
    number = forms.CharField(label=gettext_lazy("Certificate number"), max_length=100)
    issuer = forms.CharField(label=gettext_lazy("Issued by"), max_length=200)
    issued_on = forms.DateField(label=gettext_lazy("Issue date"), widget=DateInput)
    expires_on = forms.DateField(label=gettext_lazy("Expiry date"), widget=DateInput)
    file = forms.FileField(label=gettext_lazy("Scan of the certificate (optional)"), required=False)


class DelegationForm(forms.Form):
    person = forms.ModelChoiceField(label=gettext_lazy("Person"), queryset=None)
    duties = forms.MultipleChoiceField(
        label=gettext_lazy("Duties"), choices=Duty.choices, widget=forms.CheckboxSelectMultiple
    )
    starts_on = forms.DateField(label=gettext_lazy("From"), widget=DateInput)
    ends_on = forms.DateField(label=gettext_lazy("Until (optional)"), widget=DateInput, required=False)

    def __init__(self, *args, site: TrialSite, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["person"].queryset = qualifications.delegation_candidates(site).order_by("full_name", "pk")


class DelegationEndForm(forms.Form):
    delegation = forms.IntegerField(widget=forms.HiddenInput)
    ends_on = forms.DateField(label=gettext_lazy("Ends on"), widget=DateInput)


class ReconsentForm(forms.Form):
    subject = forms.IntegerField(widget=forms.HiddenInput)
    icf_version = forms.IntegerField(widget=forms.HiddenInput)
    consented_on = forms.DateField(label=gettext_lazy("Re-consent date"), widget=DateInput)


@pi_required
def qualifications_page(request):
    """My GCP certificates (and the form to record one), and the sites I run with what they still need."""
    user = request.user
    form = CertificateForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                qualifications.certificate_record(actor=user, person=user, **form.cleaned_data)
            except DomainError as exc:
                add_domain_error(form, exc)
                status = _refusal_status(exc)
            else:
                messages.success(request, _("Your certificate is recorded."))
                return redirect("ethics_portal:qualifications")
    today = timezone.localdate()
    certificates = GcpCertificate.objects.visible_to(user).filter(person=user).order_by("-expires_on", "-pk")
    sites = TrialSite.objects.filter(site_pi=user).select_related("trial", "institution").order_by("trial_id")[:50]
    return _page(
        request,
        "ethics/portal/qualifications.html",
        {
            "form": form,
            "certificates": certificates,
            "valid": qualifications.valid_certificate(user, today),
            "sites": sites,
            "today": today,
        },
        status=status,
    )


@pi_required
def site_startup(request, pk: int):
    """A site's gates, its delegation log (kept by its PI) and the subjects due for re-consent."""
    user = request.user
    site = get_object_or_404(
        TrialSite.objects.visible_to(user).select_related("trial", "institution", "site_pi"), pk=pk
    )
    keeps_log = qualifications.may_keep_log(user, site)
    data = request.POST if request.method == "POST" else None
    action = request.POST.get("action") if data else None
    delegation_form = DelegationForm(data if action == "delegate" else None, site=site)
    end_form = DelegationEndForm(data if action == "end" else None)
    reconsent_form = ReconsentForm(data if action == "reconsent" else None)
    status = 200
    if data:
        status = 400
        try:
            if action == "delegate" and delegation_form.is_valid():
                qualifications.delegation_record(site=site, actor=user, **delegation_form.cleaned_data)
                messages.success(request, _("The delegation log is updated."))
                return redirect("ethics_portal:site_startup", site.pk)
            if action == "end" and end_form.is_valid():
                line = get_object_or_404(Delegation, pk=end_form.cleaned_data["delegation"], site=site)
                qualifications.delegation_end(delegation=line, actor=user, ends_on=end_form.cleaned_data["ends_on"])
                messages.success(request, _("The delegation log is updated."))
                return redirect("ethics_portal:site_startup", site.pk)
            if action == "reconsent" and reconsent_form.is_valid():
                subject = get_object_or_404(
                    EnrolmentSubject.objects.visible_to(user), pk=reconsent_form.cleaned_data["subject"], site=site
                )
                version = get_object_or_404(DocumentVersion, pk=reconsent_form.cleaned_data["icf_version"])
                consent.consent_record(
                    subject=subject,
                    actor=user,
                    icf_version=version,
                    consented_on=reconsent_form.cleaned_data["consented_on"],
                )
                messages.success(request, _("The re-consent of %(code)s is recorded.") % {"code": subject.code})
                return redirect("ethics_portal:site_startup", site.pk)
        except DomainError as exc:
            target = {"delegate": delegation_form, "end": end_form}.get(action, reconsent_form)
            add_domain_error(target, exc)
            status = _refusal_status(exc)
    lines = Delegation.objects.filter(site=site).select_related("person").order_by("person__full_name", "duty")
    return _page(
        request,
        "ethics/portal/site_startup.html",
        {
            "site": site,
            "trial": site.trial,
            "states": gates.gate_states(site.trial, [site]),
            "how_to": gates.HOW_TO_MEET,
            "pi_certificate": qualifications.valid_certificate(site.site_pi, timezone.localdate()),
            "keeps_log": keeps_log,
            "can_report": enrolment.may_report(user, site),
            "lines": lines,
            "forms": [delegation_form, end_form, reconsent_form],
            "delegation_form": delegation_form,
            "reconsent_due": consent.reconsent_due(TrialSite.objects.filter(pk=site.pk), limit=100),
            "today": timezone.localdate(),
        },
        status=status,
    )
