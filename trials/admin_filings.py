"""Admin for IIT governance and research filings: the pages behind the trial page's review, new-technology and
filing buttons, and the research-filings list. Every write calls one service in trials.filings."""

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import ScopedAdmin
from trials import filings
from trials.filing_forms import FilingForm, run_service
from trials.models import FilingObligation, TrialReview


class ReviewForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), choices=TrialReview.Outcome.choices)
    decided_on = forms.DateField(label=_("Decided on"), initial=timezone.localdate)
    comments = forms.CharField(label=_("Comments"), widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, outcomes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["outcome"].choices = [(v, label) for v, label in TrialReview.Outcome.choices if v in outcomes]


class NewTechnologyForm(forms.Form):
    answer = forms.TypedChoiceField(
        label=_("Biomedical new-technology clinical research?"),
        choices=[("yes", _("Yes")), ("no", _("No"))],
        coerce=lambda value: value == "yes",
    )
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


class TrialReviewInline(admin.TabularInline):
    model = TrialReview
    fields = ["kind", "outcome", "decided_on", "comments", "recorded_by", "recorded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("academic review and institutional approval")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recorded_by")


class GovernanceAdminMixin:
    """The trial admin's pages for reviews, the new-technology answer and filings (mixed into TrialAdmin)."""

    def governance_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/review/<slug:kind>/", view(self.review_view), name="trials_trial_review"),
            path("<path:object_id>/new-technology/", view(self.new_technology_view), name="trials_trial_newtech"),
            path("<path:object_id>/filing/<int:filing_id>/", view(self.filing_view), name="trials_trial_filing"),
        ]

    def governance_context(self, request, trial) -> dict:
        return {"governance": filings.governance(trial, request.user)}

    def _trial(self, request, object_id):
        trial = self.get_queryset(request).filter(pk=object_id).first()
        if trial is None:
            raise Http404
        return trial

    def _page(self, request, trial, title, form):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "step_label": title,
            "object_url": reverse("admin:trials_trial_change", args=[trial.pk]),
            "object_label": trial.protocol_number,
            "form": form,
            "multipart": True,
        }
        return TemplateResponse(request, "admin/cgt_action.html", context)

    def _done(self, request, trial, message):
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:trials_trial_change", args=[trial.pk]) + "#filings")

    def review_view(self, request, object_id, kind):
        if kind not in TrialReview.Kind.values:
            raise Http404
        trial = self._trial(request, object_id)
        outcomes = filings.available_review_steps(trial, request.user)[kind]
        label = TrialReview.Kind(kind).label
        if not outcomes:
            self.message_user(
                request,
                gettext("The %(review)s cannot be recorded for %(trial)s now.")
                % {"review": label, "trial": trial.protocol_number},
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:trials_trial_change", args=[trial.pk]))
        form = ReviewForm(request.POST or None, outcomes=outcomes)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            done = run_service(
                form,
                lambda: filings.review_record(
                    trial=trial,
                    actor=request.user,
                    kind=kind,
                    outcome=data["outcome"],
                    decided_on=data["decided_on"],
                    comments=data["comments"],
                ),
            )
            if done:
                return self._done(
                    request,
                    trial,
                    gettext("%(review)s recorded: %(outcome)s.")
                    % {"review": label, "outcome": done.get_outcome_display()},
                )
        return self._page(request, trial, f"{label}: {trial.protocol_number}", form)

    def new_technology_view(self, request, object_id):
        trial = self._trial(request, object_id)
        if not filings.may_record_review(request.user, trial):
            self.message_user(
                request, gettext("Only the lead institution's research office answers this question."), messages.WARNING
            )
            return HttpResponseRedirect(reverse("admin:trials_trial_change", args=[trial.pk]))
        initial = {"answer": "yes" if trial.is_new_technology else "no", "reason": trial.new_technology_reason}
        form = NewTechnologyForm(request.POST or None, initial=initial if trial.is_new_technology is not None else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            done = run_service(
                form,
                lambda: filings.new_technology_set(
                    trial=trial, actor=request.user, answer=data["answer"], reason=data["reason"]
                ),
            )
            if done:
                return self._done(request, trial, gettext("The new-technology answer is recorded."))
        title = gettext("Biomedical new-technology clinical research: %(trial)s") % {"trial": trial.protocol_number}
        return self._page(request, trial, title, form)

    def filing_view(self, request, object_id, filing_id):
        trial = self._trial(request, object_id)
        obligation = FilingObligation.objects.filter(trial=trial, pk=filing_id).first()
        if obligation is None:
            raise Http404
        form = FilingForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.record(obligation=obligation, actor=request.user):
            return self._done(request, trial, gettext("The filing is recorded."))
        title = gettext("Record filing: %(filing)s (%(trial)s)") % {
            "filing": obligation.get_kind_display(),
            "trial": trial.protocol_number,
        }
        return self._page(request, trial, title, form)


@admin.register(FilingObligation)
class FilingObligationAdmin(ScopedAdmin):
    """Every filing a visible trial owes, overdue and due first; recorded from the trial's page."""

    list_display = ["trial", "kind", "basis_on", "due_at", "provisional", "status", "filed_on", "late", "escalated_at"]
    list_filter = ["status", "kind", "late", "provisional", "trial__lead_institution__region"]
    search_fields = ["trial__protocol_number", "trial__title_zh", "filing_number"]
    list_select_related = ["trial"]
    autocomplete_fields = ["trial"]
    ordering = ["status", "due_at"]
    readonly_fields = [field.name for field in FilingObligation._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
