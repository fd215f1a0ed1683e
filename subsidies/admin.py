"""Subsidy claims in the research office's admin, and the programs they are made under (read-only policy data).

A claim is never edited as a form and its counts are never typed in: it is opened for a program and a year and
its lines come from the enrolment ledger. Each change (recompute, exclude or include a line, add a cost item,
submit, discard) is a button that opens a confirmation page and calls one service in ``subsidies.services``; a
refusal is shown on that page and changes nothing. The page, the Excel workbook and the cover letter all read
their figures from ``subsidies.exports.claim_figures``.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.db.models import OuterRef, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import KeyedSearchAdmin, ScopedAdmin, correlated_count
from cgtclinic.errors import DomainError
from cgtclinic.i18n import requested_language
from cgtclinic.models import Institution, PolicyParameter
from subsidies import exports, services
from subsidies.models import Claim, ClaimLine, ClaimPayment, ClaimStatusChange, EligibilityRule, SubsidyProgram
from trials.models import Trial

C = Claim.Status
ACTION_TEMPLATE = "admin/subsidies/claim/action.html"
# ``Claim.reference``: the year, a hyphen, the key.
CLAIM_REFERENCE = re.compile(r"(?P<year>\d{4})-(?P<pk>\d{1,12})")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _show_error(form: forms.Form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))


def _years(program: SubsidyProgram) -> str:
    return f"{program.year_from}–{program.year_to or ''}"


# --- programs -------------------------------------------------------------------------------------------------------


class EligibilityRuleInline(ReadOnlyInline):
    model = EligibilityRule
    fields = ["position", "kind", "parameters", "source_clause"]
    readonly_fields = fields
    verbose_name_plural = _("eligibility rules")

    @admin.display(description=_("parameters"))
    def parameters(self, rule):
        if not rule.params:
            return "—"
        return format_html_join(
            "; ",
            "{}: {}",
            (
                (key, ", ".join(map(str, value)) if isinstance(value, list) else value)
                for key, value in rule.params.items()
            ),
        )


@admin.register(SubsidyProgram)
class SubsidyProgramAdmin(ScopedAdmin):
    """Programs are policy data loaded from ``seeds/`` with their source clause; the admin shows them."""

    list_display = ["code", "name_zh", "name_en", "region", "amount_rule", "years", "selective", "source_clause"]
    list_filter = ["region", "amount_rule", "selective"]
    search_fields = ["code", "name_zh", "name_en", "source_clause"]
    list_select_related = ["region"]
    inlines = [EligibilityRuleInline]
    fieldsets = [
        (None, {"fields": ["code", "name_zh", "name_en", "region", "years", "amount_rule", "selective"]}),
        (_("Source"), {"fields": ["source_document", "source_clause", "source_quote"]}),
        (_("Amount"), {"fields": ["values_in_force", "policy_values", "project_cap_scope", "fixed_amount"]}),
    ]
    readonly_fields = [
        "project_cap_scope",
        "code",
        "name_zh",
        "name_en",
        "region",
        "years",
        "amount_rule",
        "selective",
        "source_document",
        "source_clause",
        "source_quote",
        "values_in_force",
        "policy_values",
        "fixed_amount",
    ]

    @admin.display(description=_("claim years"))
    def years(self, program):
        return _years(program)

    @admin.display(description=_("values in force today"))
    def values_in_force(self, program):
        try:
            rule = services.amount_rule(program, timezone.localdate())
        except DomainError as exc:
            return str(exc.message)
        labels = exports.rule_labels()
        rows = [
            (labels[key], f"{value.normalize():f}" if key == "percent" else exports.rmb(value))
            for key in exports.RULE_FIELDS
            if (value := getattr(rule, key)) is not None
        ]
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", rows)) if rows else "—"

    @admin.display(description=_("policy values and their sources"))
    def policy_values(self, program):
        codes = [
            code
            for code in (
                program.rate_parameter,
                program.percent_parameter,
                program.item_cap_parameter,
                program.project_cap_parameter,
                program.institution_year_cap_parameter,
            )
            if code
        ]
        if not codes:
            return "—"
        rows = (
            PolicyParameter.objects.filter(code__in=codes)
            .filter(Q(region_id=program.region_id) | Q(region__isnull=True))
            .select_related("region")
            .order_by("code", "effective_from")
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            gettext("Policy value"),
            gettext("Value"),
            gettext("In force"),
            gettext("Region"),
            gettext("Source"),
            format_html_join(
                "",
                "<tr><td>{} <code>{}</code></td><td>{} {}</td><td>{} – {}</td><td>{}</td><td>{} {}</td></tr>",
                (
                    (
                        row.name_en
                        if (translation.get_language() or "").startswith("en") and row.name_en
                        else row.name_zh,
                        row.code,
                        f"{row.value.normalize():f}",
                        row.get_unit_display(),
                        row.effective_from,
                        row.effective_to or "",
                        row.region or gettext("national"),
                        row.source_document,
                        row.source_clause,
                    )
                    for row in rows
                ),
            ),
        )

    @admin.display(description=_("fixed amount per project (RMB)"))
    def fixed_amount(self, program):
        if program.amount_rule != SubsidyProgram.AmountRule.FIXED_AMOUNT:
            return "—"
        if program.fixed_amount_rmb is None:
            return gettext("Not yet set by the regulator.")
        return gettext("%(amount)s, set by %(who)s on %(when)s") % {
            "amount": exports.rmb(program.fixed_amount_rmb),
            "who": program.fixed_amount_set_by,
            "when": timezone.localtime(program.fixed_amount_set_at).date() if program.fixed_amount_set_at else "—",
        }

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- forms for the claim's steps ------------------------------------------------------------------------------------


class ProgramChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, program):
        return f"{program.name} ({program.region}, {_years(program)})"


class ClaimOpenForm(forms.Form):
    institution = forms.ModelChoiceField(label=_("Hospital"), queryset=Institution.objects.none())
    program = ProgramChoiceField(label=_("Program"), queryset=SubsidyProgram.objects.none())
    year = forms.TypedChoiceField(
        label=_("Year"),
        coerce=int,
        help_text=_("A claim is made after the fact, for a year the program covers."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        today = timezone.localdate()
        programs = SubsidyProgram.objects.visible_to(user).filter(year_from__lte=today.year).select_related("region")
        if user.is_superuser:
            self.fields["institution"].queryset = Institution.objects.filter(is_active=True)
        else:
            del self.fields["institution"]
            programs = programs.filter(region_id=user.institution.region_id)
        self.fields["program"].queryset = programs
        covered = sorted(
            {
                year
                for program in programs
                for year in range(program.year_from, min(program.year_to or today.year, today.year) + 1)
            },
            reverse=True,
        )
        self.fields["year"].choices = [(year, str(year)) for year in covered]
        if today.year - 1 in covered:
            self.fields["year"].initial = today.year - 1


class ConfirmForm(forms.Form):
    """A step that needs nothing but the click."""


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


class CostItemForm(forms.Form):
    trial = forms.ModelChoiceField(label=_("Trial"), queryset=Trial.objects.none())
    item_reference = forms.CharField(label=_("Insurance policy number"), max_length=60)
    cost_rmb = forms.DecimalField(
        label=_("Premium (RMB)"), max_digits=14, decimal_places=2, help_text=_("The premium paid, to the fen.")
    )

    def __init__(self, *args, claim, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["trial"].queryset = (
            Trial.objects.visible_to(user)
            .filter(sites__institution_id=claim.institution_id)
            .exclude(status__in=services.NOT_CANDIDATE_STATUSES)
            .order_by("protocol_number")
            .distinct()
        )


# The steps the claim's page can run: (label, what the confirmation page says, the one service call it makes).
# Which of them are offered is ``services.available_steps``; the regulator's steps are taken over the API.
CLAIM_STEPS = {
    "recompute": (
        _("Recompute"),
        _(
            "The lines are read again from the enrolment ledger, with the policy values in force on the reference "
            "date. Exclusions and cost items are kept."
        ),
        lambda claim, actor: services.claim_recompute(claim=claim, actor=actor),
    ),
    "submit": (
        _("Submit to the regulator"),
        _(
            "Submitting computes the claim one last time and freezes it: the counts, amounts, explanations, evidence "
            "and the trials' documents (with their SHA-256) are recorded as they are now, and the regulator reviews "
            "exactly this snapshot. Later changes to the enrolment ledger do not change it, and the claim can no "
            "longer be edited."
        ),
        lambda claim, actor: services.claim_submit(claim=claim, actor=actor),
    ),
    "discard": (
        _("Discard the draft"),
        _(
            "The draft and its lines are deleted. Nothing of it was claimed; its patients stay available for a "
            "later claim."
        ),
        lambda claim, actor: services.claim_discard(claim=claim, actor=actor),
    ),
}


# --- claims ---------------------------------------------------------------------------------------------------------


class ClaimStatusChangeInline(ReadOnlyInline):
    model = ClaimStatusChange
    fields = ["at", "from_status", "to_status", "actor", "note"]
    readonly_fields = fields
    verbose_name_plural = _("status history")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class ClaimPaymentInline(ReadOnlyInline):
    model = ClaimPayment
    fields = ["paid_on", "amount", "reference", "balance_after", "recorded_by", "recorded_at"]
    readonly_fields = fields
    verbose_name_plural = _("payments")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recorded_by")


@admin.register(Claim)
class ClaimAdmin(KeyedSearchAdmin, ScopedAdmin):
    change_form_template = "admin/subsidies/claim/change_form.html"
    change_list_template = "admin/subsidies/claim/change_list.html"
    list_display = [
        "claim_reference",
        "institution",
        "program",
        "year",
        "status",
        "eligible_lines",
        "amount_claimed",
        "amount_approved",
        "amount_paid",
        "balance_owed",
        "submitted_at",
        "status_changed_at",
    ]
    list_filter = ["status", "year", "program", "opened_at"]
    search_fields = ["institution__name_zh", "program__code", "program__name_zh", "lines__trial__protocol_number"]
    keyed_search = {
        "institution": ("name_zh",),
        "program": ("code", "name_zh"),
        "lines__trial": ("protocol_number",),
    }
    list_select_related = ["institution", "program"]
    inlines = [ClaimPaymentInline, ClaimStatusChangeInline]
    fieldsets = [
        (None, {"fields": ["claim_reference", "institution", "program", "year", "status", "reference_date"]}),
        (
            _("Workflow"),
            {
                "fields": [
                    "opened_by",
                    "opened_at",
                    "submitted_by",
                    "submitted_at",
                    "decided_by",
                    "decided_at",
                    "status_changed_at",
                ]
            },
        ),
    ]
    readonly_fields = [
        "claim_reference",
        "institution",
        "program",
        "year",
        "status",
        "reference_date",
        "opened_by",
        "opened_at",
        "submitted_by",
        "submitted_at",
        "decided_by",
        "decided_at",
        "status_changed_at",
    ]

    @admin.display(description=_("claim"), ordering="id")
    def claim_reference(self, claim):
        return claim.reference

    def term_search(self, term):
        # A claim's reference as the list shows it, "2025-00123": its year and its key.
        found = CLAIM_REFERENCE.fullmatch(term)
        return Q(year=int(found["year"]), pk=int(found["pk"])) if found else None

    @admin.display(description=_("balance owed (RMB)"))
    def balance_owed(self, claim):
        return "—" if claim.balance is None else exports.rmb(claim.balance)

    @admin.display(description=_("eligible trials"), ordering="eligible_count")
    def eligible_lines(self, claim):
        return claim.eligible_count

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            # The frozen snapshot holds every line's evidence (megabytes for a busy claim); the list shows none of it.
            .defer("snapshot")
            .annotate(
                eligible_count=correlated_count(
                    ClaimLine.objects.filter(claim=OuterRef("pk"), status=ClaimLine.Status.ELIGIBLE)
                )
            )
        )

    def has_change_permission(self, request, obj=None):
        return False  # No direct edits: every change is a step that calls a service.

    def has_delete_permission(self, request, obj=None):
        return False  # A draft is discarded through its step; a submitted claim is never deleted.

    def may_act(self, request, claim) -> bool:
        """Whether to offer the draft's steps at all; the services decide whether each one is allowed."""
        return request.user.has_perm("subsidies.change_claim") and (
            Claim.objects.editable_by(request.user).filter(pk=claim.pk).exists()
        )

    def get_urls(self):
        def route(suffix, view, name):
            return path(f"<int:object_id>/{suffix}", self.admin_site.admin_view(view), name=f"subsidies_claim_{name}")

        own = [
            route("step/<slug:step>/", self.step_view, "step"),
            route("lines/<int:line_id>/exclude/", self.line_exclude_view, "line_exclude"),
            route("lines/<int:line_id>/include/", self.line_include_view, "line_include"),
            route("cost-items/add/", self.cost_item_view, "cost_item_add"),
            route("workbook/", self.workbook_view, "workbook"),
            route("cover-letter/", self.cover_letter_view, "cover_letter"),
        ]
        return own + super().get_urls()

    # Opening a claim replaces the model form: the office chooses the program and the year, the service does the rest.
    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ClaimOpenForm(request.POST if request.method == "POST" else None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                claim = services.claim_open(
                    actor=request.user,
                    program=data["program"],
                    year=data["year"],
                    institution=data.get("institution"),
                )
            except DomainError as exc:
                _show_error(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Claim %(claim)s is open with %(lines)s lines proposed from the enrolment ledger.")
                    % {"claim": claim.reference, "lines": claim.lines.count()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:subsidies_claim_change", args=[claim.pk]))
        label = gettext("Open a claim")
        return self._render(
            request,
            None,
            label,
            form,
            intro=gettext(
                "The eligible trials and their enrolled patients are proposed from the enrolment ledger, with the "
                "amounts computed from the program's policy values; trials that do not qualify are listed with the "
                "reason."
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        claim = self.get_queryset(request).filter(pk=object_id).first() if str(object_id).isdigit() else None
        if claim is not None and self.has_view_permission(request, claim):
            available = services.available_steps(claim, request.user) if self.may_act(request, claim) else []
            extra_context.update(
                figures=exports.claim_figures(claim),
                may_change_lines="change_lines" in available and request.user.has_perm("subsidies.change_claimline"),
                steps=[(step, CLAIM_STEPS[step][0]) for step in available if step in CLAIM_STEPS],
                percent_of_cost=claim.program.amount_rule == SubsidyProgram.AmountRule.PERCENT_OF_COST,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _claim(self, request, object_id, *, act: bool = False) -> Claim:
        if not self.has_view_permission(request):
            raise PermissionDenied
        claim = self.get_queryset(request).select_related("program__region", "institution").filter(pk=object_id).first()
        if claim is None:
            raise Http404
        if act and not self.may_act(request, claim):
            raise PermissionDenied
        return claim

    def _line(self, request, claim, line_id) -> ClaimLine:
        if not request.user.has_perm("subsidies.change_claimline"):
            raise PermissionDenied
        line = ClaimLine.objects.filter(pk=line_id, claim=claim).select_related("trial").first()
        if line is None:
            raise Http404
        return line

    def _done(self, request, claim, message):
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:subsidies_claim_change", args=[claim.pk]))

    def step_view(self, request, object_id, step):
        """Confirm one of the draft's steps and run its service."""
        if step not in CLAIM_STEPS:
            raise Http404
        claim = self._claim(request, object_id, act=True)
        label, intro, run = CLAIM_STEPS[step]
        if request.method != "POST" and step not in services.available_steps(claim, request.user):
            self.message_user(
                request,
                gettext("“%(step)s” is not a step you can take for claim %(claim)s while it is %(status)s.")
                % {"step": label, "claim": claim.reference, "status": claim.get_status_display()},
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:subsidies_claim_change", args=[claim.pk]))
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            reference = claim.reference
            try:
                run(claim, request.user)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                if step == "discard":
                    self.message_user(
                        request, gettext("The draft claim %(claim)s is discarded.") % {"claim": reference}
                    )
                    return HttpResponseRedirect(reverse("admin:subsidies_claim_changelist"))
                claim.refresh_from_db()
                return self._done(
                    request,
                    claim,
                    gettext("Claim %(claim)s: %(step)s done; it is now %(status)s.")
                    % {"claim": reference, "step": label, "status": claim.get_status_display()},
                )
        figures = exports.claim_figures(claim) if step == "submit" else None
        return self._render(request, claim, label, form, intro=intro, figures=figures)

    def line_exclude_view(self, request, object_id, line_id):
        claim = self._claim(request, object_id, act=True)
        line = self._line(request, claim, line_id)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.line_exclude(line=line, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request, claim, gettext("%(line)s is left out of the claim.") % {"line": line.trial.protocol_number}
                )
        intro = gettext(
            "%(line)s will not count in this claim; its patients stay available for a later claim. The reason is "
            "recorded with the line."
        ) % {"line": f"{line.trial.protocol_number} {line.trial.title_zh}"}
        return self._render(request, claim, gettext("Exclude a line"), form, intro=intro)

    def line_include_view(self, request, object_id, line_id):
        claim = self._claim(request, object_id, act=True)
        line = self._line(request, claim, line_id)
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.line_include(line=line, actor=request.user)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request,
                    claim,
                    gettext("%(line)s is back in the claim and checked again.") % {"line": line.trial.protocol_number},
                )
        intro = gettext("%(line)s is taken back into the claim and checked again like any other line.") % {
            "line": f"{line.trial.protocol_number} {line.trial.title_zh}"
        }
        return self._render(request, claim, gettext("Include the line again"), form, intro=intro)

    def cost_item_view(self, request, object_id):
        """For a percentage-of-cost program: a cost (an insurance premium) the subsidy pays part of."""
        claim = self._claim(request, object_id, act=True)
        form = CostItemForm(request.POST if request.method == "POST" else None, claim=claim, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                line = services.cost_item_add(claim=claim, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request,
                    claim,
                    gettext("Policy %(ref)s is added: %(status)s, %(amount)s RMB.")
                    % {
                        "ref": line.item_reference,
                        "status": line.get_status_display(),
                        "amount": exports.rmb(line.amount_computed),
                    },
                )
        intro = gettext(
            "The trial is checked against the program's rules like any other line; the amount follows the "
            "program's policy values."
        )
        return self._render(request, claim, gettext("Add an insurance premium"), form, intro=intro)

    def _export_language(self, request) -> str:
        try:
            return requested_language(request.GET, default=exports.DEFAULT_LANGUAGE)
        except DomainError as exc:
            raise BadRequest(str(exc.message)) from exc

    def workbook_view(self, request, object_id):
        claim = self._claim(request, object_id)
        language = self._export_language(request)
        response = HttpResponse(
            exports.claim_workbook(claim, language),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{exports.export_filename(claim, "workbook", language)}"'
        )
        return response

    def cover_letter_view(self, request, object_id):
        claim = self._claim(request, object_id)
        language = self._export_language(request)
        response = HttpResponse(exports.claim_cover_letter_pdf(claim, language), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="{exports.export_filename(claim, "cover_letter", language)}"'
        )
        return response

    def _render(self, request, claim, label, form, *, intro="", figures=None):
        if claim is None:
            object_url, object_label = reverse("admin:subsidies_claim_changelist"), ""
        else:
            object_url = reverse("admin:subsidies_claim_change", args=[claim.pk])
            object_label = claim.reference
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": claim,
            "title": f"{label}: {object_label}" if object_label else label,
            "step_label": label,
            "form": form,
            "object_url": object_url,
            "object_label": object_label,
            "intro": intro,
            "figures": figures,
        }
        return TemplateResponse(request, ACTION_TEMPLATE, context)
