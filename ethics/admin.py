"""The ethics office's admin: committees and members, the intake-to-decision workflow, meetings, and letters.

Submissions are never edited directly: each workflow step is a button on the submission's (or meeting's) page
that opens a confirmation form and calls one service. A refusal is shown on that form and changes nothing.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.db.models import OuterRef, Q
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cgtclinic.admin_base import KeyedSearchAdmin, ScopedAdmin, correlated_count, correlated_max
from cgtclinic.errors import DomainError
from cgtclinic.i18n import requested_language
from cgtclinic.models import Institution, User
from ethics import letters, recognition, services
from ethics.models import (
    AgendaItem,
    Alliance,
    AllianceMembership,
    CommitteeMember,
    Decision,
    EthicsCommittee,
    Meeting,
    RecognitionEffect,
    RecognitionRequest,
    ReviewAssignment,
    Submission,
    SubmissionEvent,
    TrainingRecord,
    Vote,
)
from trials.models import DocumentVersion, TrialDocument, TrialSite

S = Submission.Status
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

# --- committees and members ----------------------------------------------------------------------------------


class CommitteeMemberInline(admin.TabularInline):
    model = CommitteeMember
    fields = [
        "full_name",
        "member_role",
        "specialty",
        "gender",
        "affiliation",
        "is_affiliated",
        "term_start",
        "term_end",
        "is_active",
    ]
    extra = 0
    can_delete = False  # Past members keep their votes and reviews; untick "active" instead.
    show_change_link = True


@admin.register(EthicsCommittee)
class EthicsCommitteeAdmin(ScopedAdmin):
    list_display = ["name_zh", "institution", "letter_prefix", "registration_number", "current_members", "is_active"]
    list_filter = ["is_active", "institution__region"]
    search_fields = ["name_zh", "name_en", "institution__name_zh", "registration_number", "letter_prefix"]
    list_select_related = ["institution"]
    autocomplete_fields = ["institution"]
    inlines = [CommitteeMemberInline]
    fieldsets = [
        (None, {"fields": ["institution", "name_zh", "name_en", "registration_number", "letter_prefix", "is_active"]}),
        (_("Contact"), {"fields": ["contact_person", "contact_phone", "contact_email", "address"]}),
        (
            _("Quorum rule"),
            {
                "fields": [
                    "quorum_fraction",
                    "quorum_requires_non_medical",
                    "quorum_requires_non_affiliated",
                    "quorum_requires_both_genders",
                ]
            },
        ),
        (
            _("Approvals and continuing review"),
            {
                "fields": [
                    "approval_validity_months",
                    "continuing_review_months",
                    "continuing_review_reminder_days",
                ]
            },
        ),
    ]

    @admin.display(description=_("current members"), ordering="current_member_count")
    def current_members(self, committee):
        return committee.current_member_count

    def get_queryset(self, request):
        # An aggregate drops Meta.ordering; the autocomplete view needs a stable order.
        return (
            super()
            .get_queryset(request)
            .annotate(current_member_count=correlated_count(CommitteeMember.objects.filter(committee=OuterRef("pk"))))
            .order_by("institution_id", "name_zh")
        )

    def get_readonly_fields(self, request, obj=None):
        # A committee never moves to another institution: its letters and submissions stay where they were made.
        return ["institution"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "institution" and not request.user.is_superuser:
            kwargs["queryset"] = Institution.objects.filter(pk=request.user.institution_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TrainingRecordInline(admin.TabularInline):
    model = TrainingRecord
    fields = ["course", "provider", "completed_on", "hours", "certificate_number"]
    extra = 0


@admin.register(CommitteeMember)
class CommitteeMemberAdmin(ScopedAdmin):
    list_display = [
        "full_name",
        "committee",
        "member_role",
        "specialty",
        "gender",
        "affiliation",
        "is_affiliated",
        "term_start",
        "term_end",
        "is_active",
        "last_training",
    ]
    list_filter = ["member_role", "specialty", "gender", "is_affiliated", "is_active", "committee__institution__region"]
    search_fields = ["full_name", "affiliation", "committee__name_zh"]
    list_select_related = ["committee"]
    autocomplete_fields = ["committee", "user"]
    inlines = [TrainingRecordInline]

    @admin.display(description=_("latest training"))
    def last_training(self, member):
        return member.last_training_on

    def get_queryset(self, request):
        trainings = TrainingRecord.objects.filter(member=OuterRef("pk"))
        return super().get_queryset(request).annotate(last_training_on=correlated_max(trainings, "completed_on"))

    def get_readonly_fields(self, request, obj=None):
        return ["committee"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "committee":
            kwargs["queryset"] = EthicsCommittee.objects.editable_by(request.user)
        elif db_field.name == "user":
            kwargs["queryset"] = User.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- forms for the workflow steps --------------------------------------------------------------------------------


class ConfirmForm(forms.Form):
    """A step that needs nothing but the click."""


class ReturnForm(forms.Form):
    items = forms.CharField(
        label=_("Missing items"),
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("One item per line; the applicant sees this list."),
    )


class RouteForm(forms.Form):
    review_type = forms.ChoiceField(label=_("Review type"), choices=Submission.ReviewType.choices)
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


class NoteForm(forms.Form):
    note = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 3}), required=False)


class AssignForm(forms.Form):
    member = forms.ModelChoiceField(label=_("Reviewer"), queryset=CommitteeMember.objects.none())

    def __init__(self, *args, submission, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["member"].queryset = CommitteeMember.objects.filter(committee=submission.committee).current()


class OpinionForm(forms.Form):
    opinion = forms.ChoiceField(label=_("Opinion"), choices=ReviewAssignment.Opinion.choices)
    risk_benefit_comment = forms.CharField(
        label=_("Risks and benefits"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )
    consent_comment = forms.CharField(
        label=_("Informed consent"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )
    other_comment = forms.CharField(label=_("Other comments"), widget=forms.Textarea(attrs={"rows": 3}), required=False)


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Decision"), choices=Decision.Outcome.choices)
    requested_modifications = forms.CharField(
        label=_("Requested modifications or reasons"),
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        help_text=_("Printed on the decision letter. Required for every decision other than approval."),
    )


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# The workflow steps offered on a submission's page: (label, form, the one service call it makes).
SUBMISSION_STEPS = {
    "accept": (
        _("Accept (intake complete)"),
        ConfirmForm,
        lambda sub, actor, data: services.submission_accept(submission=sub, actor=actor),
    ),
    "return": (
        _("Return as incomplete"),
        ReturnForm,
        lambda sub, actor, data: services.submission_return_incomplete(
            submission=sub, actor=actor, items=_lines(data["items"])
        ),
    ),
    "route": (
        _("Route"),
        RouteForm,
        lambda sub, actor, data: services.submission_route(
            submission=sub, actor=actor, review_type=data["review_type"], reason=data["reason"]
        ),
    ),
    "refer": (
        _("Refer to a meeting"),
        ReasonForm,
        lambda sub, actor, data: services.submission_refer_to_meeting(
            submission=sub, actor=actor, reason=data["reason"]
        ),
    ),
    "acknowledge": (
        _("Acknowledge"),
        NoteForm,
        lambda sub, actor, data: services.submission_acknowledge(submission=sub, actor=actor, note=data["note"]),
    ),
    "assign": (
        _("Assign a reviewer"),
        AssignForm,
        lambda sub, actor, data: services.reviewer_assign(submission=sub, actor=actor, member=data["member"]),
    ),
    "decide": (
        _("Record the decision"),
        DecisionForm,
        lambda sub, actor, data: services.decision_record(
            submission=sub,
            actor=actor,
            outcome=data["outcome"],
            requested_modifications=data["requested_modifications"],
        ),
    ),
}


def _steps_for(submission: Submission, user: User) -> list[str]:
    """The buttons to show: the steps the services' transitions table allows this person now."""
    available = set(services.available_steps(submission, user))
    if available.intersection(services.ROUTE_STEPS.values()):
        available.add("route")  # one button; its form chooses full-board or expedited
    return [step for step in SUBMISSION_STEPS if step in available]


def _show_error(form: forms.Form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))


# --- submissions ---------------------------------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SubmissionEventInline(ReadOnlyInline):
    model = SubmissionEvent
    fields = ["at", "kind", "from_status", "to_status", "actor", "note"]
    readonly_fields = fields
    verbose_name_plural = _("timeline")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class ReviewAssignmentInline(ReadOnlyInline):
    model = ReviewAssignment
    fields = [
        "member",
        "assigned_at",
        "opinion",
        "risk_benefit_comment",
        "consent_comment",
        "other_comment",
        "recorded_at",
        "record_opinion",
    ]
    readonly_fields = fields
    verbose_name_plural = _("reviewers and their opinions")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "submission")

    @admin.display(description="")
    def record_opinion(self, assignment):
        if assignment.submission.status not in (S.EXPEDITED_REVIEW, S.AWAITING_MEETING):
            return ""
        url = reverse("admin:ethics_submission_opinion", args=[assignment.submission_id, assignment.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, gettext("Record opinion"))


@admin.register(Submission)
class SubmissionAdmin(KeyedSearchAdmin, ScopedAdmin):
    change_form_template = "admin/ethics/submission/change_form.html"
    list_display = ["reference", "trial", "kind", "status", "review_type", "submitted_at", "waiting_days"]
    list_filter = ["status", "kind", "review_type", "submitted_at", "committee__institution__region"]
    search_fields = ["reference", "trial__protocol_number", "trial__title_zh", "trial__pi__full_name"]
    search_help_text = _("A reference (exact), a protocol number, a trial title or the PI's name.")
    exact_search = ("reference",)
    keyed_search = {"trial": ("protocol_number", "title_zh", "pi__full_name__icontains")}
    list_select_related = ["trial", "committee"]
    inlines = [ReviewAssignmentInline, SubmissionEventInline]
    fieldsets = [
        (None, {"fields": ["reference", "trial", "committee", "kind", "responds_to", "status", "summary"]}),
        (_("Intake and routing"), {"fields": ["missing_items_list", "review_type", "routing_reason"]}),
        (_("Contents"), {"fields": ["document_list", "details_list", "declarations_list"]}),
        (_("Dates"), {"fields": ["created_at", "submitted_at", "decided_at", "waiting_days", "decision_link"]}),
    ]
    readonly_fields = [
        "reference",
        "trial",
        "committee",
        "kind",
        "responds_to",
        "status",
        "summary",
        "missing_items_list",
        "review_type",
        "routing_reason",
        "document_list",
        "details_list",
        "declarations_list",
        "created_at",
        "submitted_at",
        "decided_at",
        "waiting_days",
        "decision_link",
    ]

    @admin.display(description=_("days waiting"))
    def waiting_days(self, submission):
        """Days from submission to the decision (or to today while it is still open)."""
        if submission.submitted_at is None:
            return None
        end = submission.decided_at or timezone.now()
        return (end - submission.submitted_at).days

    @admin.display(description=_("missing items"))
    def missing_items_list(self, submission):
        if not submission.missing_items:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((i,) for i in submission.missing_items)))

    @admin.display(description=_("documents"))
    def document_list(self, submission):
        versions = submission.documents.select_related("document").order_by("document__kind", "document__title")
        if not versions:
            return "—"
        rows = (
            (
                reverse("admin:trials_documentversion_download", args=[v.pk]),
                v.document.title,
                v.document.get_kind_display(),
                v.version_label or v.number,
            )
            for v in versions
        )
        return format_html("<ul>{}</ul>", format_html_join("", '<li><a href="{}">{}</a> ({}, {})</li>', rows))

    @admin.display(description=_("report details"))
    def details_list(self, submission):
        return self._key_values(submission.details)

    @admin.display(description=_("declarations"))
    def declarations_list(self, submission):
        texts = {key: str(text) for key, text in services.DECLARATIONS.items()}
        items = (
            (gettext("Yes") if value is True else gettext("No"), texts.get(key, key))
            for key, value in submission.declarations.items()
        )
        return (
            format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", items))
            if submission.declarations
            else "—"
        )

    @admin.display(description=_("decision"))
    def decision_link(self, submission):
        decision = Decision.objects.filter(submission=submission).first()
        if decision is None:
            return "—"
        url = reverse("admin:ethics_decision_change", args=[decision.pk])
        return format_html('<a href="{}">{}</a>', url, str(decision))

    @staticmethod
    def _key_values(data):
        if not data:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", data.items()))

    def has_add_permission(self, request):
        return False  # Applicants file submissions through the PI portal.

    def has_change_permission(self, request, obj=None):
        return False  # No direct edits: every change is a workflow step.

    def has_delete_permission(self, request, obj=None):
        return False

    def may_act(self, request, submission) -> bool:
        """Whether to offer workflow steps at all; the services decide whether each one is allowed."""
        return request.user.has_perm("ethics.change_submission") and (
            self.get_queryset(request).filter(pk=submission.pk).exists()
        )

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/step/<slug:step>/",
                self.admin_site.admin_view(self.step_view),
                name="ethics_submission_step",
            ),
            path(
                "<path:object_id>/opinion/<int:assignment_id>/",
                self.admin_site.admin_view(self.opinion_view),
                name="ethics_submission_opinion",
            ),
        ]
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        submission = self.get_queryset(request).filter(pk=object_id).first()
        if submission is not None and self.may_act(request, submission):
            extra_context["steps"] = [
                (step, SUBMISSION_STEPS[step][0]) for step in _steps_for(submission, request.user)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def _submission_for_step(self, request, object_id) -> Submission:
        submission = self.get_queryset(request).filter(pk=object_id).first()
        if submission is None:
            raise Http404
        if not self.may_act(request, submission):
            raise PermissionDenied
        return submission

    def step_view(self, request, object_id, step):
        """Confirm one workflow step with the inputs it needs, and run its service."""
        if step not in SUBMISSION_STEPS:
            raise Http404
        submission = self._submission_for_step(request, object_id)
        label, form_class, run = SUBMISSION_STEPS[step]
        data = request.POST if request.method == "POST" else None
        kwargs = {"submission": submission} if form_class is AssignForm else {}
        initial = {"items": "\n".join(services.missing_items(submission))} if step == "return" else {}
        form = form_class(data, initial=initial, **kwargs)
        if request.method == "POST" and form.is_valid():
            try:
                run(submission, request.user, form.cleaned_data)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                submission.refresh_from_db()
                self.message_user(
                    request,
                    gettext("“%(submission)s”: %(step)s done; it is now %(status)s.")
                    % {"submission": submission.reference, "step": label, "status": submission.get_status_display()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:ethics_submission_change", args=[submission.pk]))
        return self._render_step(request, submission, label, form)

    def opinion_view(self, request, object_id, assignment_id):
        """A reviewer's opinion form, entered by the office for them."""
        submission = self._submission_for_step(request, object_id)
        assignment = ReviewAssignment.objects.filter(pk=assignment_id, submission=submission).first()
        if assignment is None:
            raise Http404
        initial = {
            name: getattr(assignment, name)
            for name in ("opinion", "risk_benefit_comment", "consent_comment", "other_comment")
        }
        form = OpinionForm(request.POST if request.method == "POST" else None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                services.opinion_record(assignment=assignment, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("The opinion of %(name)s is recorded.") % {"name": assignment.member.full_name},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:ethics_submission_change", args=[submission.pk]))
        label = gettext("Record the opinion of %(name)s") % {"name": assignment.member.full_name}
        return self._render_step(request, submission, label, form)

    def _render_step(self, request, submission, label, form):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": submission,
            "title": gettext("%(step)s: %(submission)s") % {"step": label, "submission": submission.reference},
            "step_label": label,
            "form": form,
            "object_url": reverse("admin:ethics_submission_change", args=[submission.pk]),
            "object_label": submission.reference or str(submission.pk),
            "intro": gettext("“%(submission)s” is currently %(status)s.")
            % {"submission": submission, "status": submission.get_status_display()},
        }
        return TemplateResponse(request, "admin/ethics/action.html", context)


# --- meetings -------------------------------------------------------------------------------------------------------


class MeetingForm(forms.ModelForm):
    class Meta:
        model = Meeting
        fields = ["committee", "scheduled_at", "location", "minutes"]


class AgendaForm(forms.Form):
    submission = forms.ModelChoiceField(label=_("Submission"), queryset=Submission.objects.none())

    def __init__(self, *args, meeting, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["submission"].queryset = Submission.objects.filter(
            committee=meeting.committee, status=S.AWAITING_MEETING
        ).select_related("trial")


class AttendanceForm(forms.Form):
    members = forms.ModelMultipleChoiceField(
        label=_("Members present"),
        queryset=CommitteeMember.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args, meeting, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["members"].queryset = CommitteeMember.objects.filter(committee=meeting.committee).current()


class ConflictForm(forms.Form):
    member = forms.ModelChoiceField(label=_("Member"), queryset=CommitteeMember.objects.none())
    description = forms.CharField(label=_("Conflict declared"), max_length=300)

    def __init__(self, *args, meeting, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["member"].queryset = CommitteeMember.objects.filter(committee=meeting.committee).current()


class VoteForm(forms.Form):
    """One select per member who may vote on the item; an empty choice means the member did not vote."""

    def __init__(self, *args, voters, current, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", gettext("— did not vote —")), *Vote._meta.get_field("choice").choices]
        self.voters = {}
        for member in voters:
            name = f"member_{member.pk}"
            self.voters[name] = member
            self.fields[name] = forms.ChoiceField(
                label=str(member), choices=choices, required=False, initial=current.get(member.pk, "")
            )

    def votes(self) -> dict:
        return {member: self.cleaned_data[name] for name, member in self.voters.items() if self.cleaned_data[name]}


@admin.register(Meeting)
class MeetingAdmin(ScopedAdmin):
    form = MeetingForm
    change_form_template = "admin/ethics/meeting/change_form.html"
    list_display = ["scheduled_at", "committee", "location", "status", "agenda_count", "quorum_met"]
    list_filter = ["status", "quorum_met", "scheduled_at", "committee__institution__region"]
    search_fields = ["location", "committee__name_zh", "agenda__submission__reference"]
    list_select_related = ["committee"]
    autocomplete_fields = ["committee"]

    @admin.display(description=_("agenda items"), ordering="agenda_size")
    def agenda_count(self, meeting):
        return meeting.agenda_size

    def get_queryset(self, request):
        agenda = AgendaItem.objects.filter(meeting=OuterRef("pk"))
        return super().get_queryset(request).annotate(agenda_size=correlated_count(agenda))

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["committee", "scheduled_at", "location"]
        fields = ["committee", "scheduled_at", "status", "quorum_met", "quorum_note", "location", "minutes"]
        if obj.closed_at:
            fields.append("closed_at")
        if obj.cancelled_at:
            fields += ["cancelled_at", "cancellation_reason"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "committee",
            "scheduled_at",
            "status",
            "quorum_met",
            "quorum_note",
            "closed_at",
            "cancelled_at",
            "cancellation_reason",
        ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "committee":
            kwargs["queryset"] = EthicsCommittee.objects.editable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            # Only the free-text location and minutes are edited here; the rest moves through the services.
            obj._history_user = request.user
            obj.save(update_fields=["location", "minutes"])
            return
        try:
            saved = services.meeting_schedule(
                committee=form.cleaned_data["committee"],
                actor=request.user,
                scheduled_at=form.cleaned_data["scheduled_at"],
                location=form.cleaned_data["location"],
            )
        except DomainError as exc:
            raise PermissionDenied(str(exc.message)) from exc
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def get_urls(self):
        def route(suffix, view, name):
            return path(f"<path:object_id>/{suffix}", self.admin_site.admin_view(view), name=f"ethics_meeting_{name}")

        own = [
            route("agenda/add/", self.agenda_add_view, "agenda_add"),
            route("attendance/", self.attendance_view, "attendance"),
            route("items/<int:item_id>/conflict/", self.conflict_view, "conflict"),
            route("items/<int:item_id>/votes/", self.votes_view, "votes"),
            route("items/<int:item_id>/decide/", self.decide_view, "decide"),
            route("close/", self.close_view, "close"),
            route("cancel/", self.cancel_view, "cancel"),
        ]
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        meeting = self.get_queryset(request).filter(pk=object_id).first()
        if meeting is not None:
            extra_context["agenda"] = self._agenda(meeting)
            extra_context["attendance"] = [a.member for a in meeting.attendance.select_related("member")]
            extra_context["may_act"] = self.has_change_permission(request, meeting)
            extra_context["meeting_steps"] = (
                services.meeting_available_steps(meeting, request.user) if extra_context["may_act"] else []
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _agenda(meeting):
        """Each item with its conflicts, votes and whether those present make a quorum for it after recusals."""
        rows = []
        items = meeting.agenda.select_related("submission__trial").prefetch_related(
            "conflicts__member", "votes__member"
        )
        for item in items:
            quorum = (
                services.quorum_check(meeting=meeting, agenda_item=item)
                if meeting.status in (Meeting.Status.HELD, Meeting.Status.CLOSED)
                else None
            )
            rows.append(
                {
                    "item": item,
                    "conflicts": list(item.conflicts.all()),
                    "votes": list(item.votes.all()),
                    "quorum": quorum,
                    "decided": item.submission.status == S.DECIDED,
                }
            )
        return rows

    def _meeting_for_action(self, request, object_id) -> Meeting:
        meeting = self.get_queryset(request).filter(pk=object_id).first()
        if meeting is None:
            raise Http404
        if not self.has_change_permission(request, meeting):
            raise PermissionDenied
        return meeting

    def _item(self, meeting, item_id) -> AgendaItem:
        item = meeting.agenda.select_related("submission").filter(pk=item_id).first()
        if item is None:
            raise Http404
        return item

    def _done(self, request, meeting, message):
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:ethics_meeting_change", args=[meeting.pk]))

    def agenda_add_view(self, request, object_id):
        meeting = self._meeting_for_action(request, object_id)
        form = AgendaForm(request.POST if request.method == "POST" else None, meeting=meeting)
        if request.method == "POST" and form.is_valid():
            try:
                services.meeting_add_submission(meeting=meeting, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request,
                    meeting,
                    gettext("“%(submission)s” is on the agenda.") % {"submission": form.cleaned_data["submission"]},
                )
        return self._render(request, meeting, gettext("Add to the agenda"), form)

    def attendance_view(self, request, object_id):
        meeting = self._meeting_for_action(request, object_id)
        present = list(meeting.attendance.values_list("member_id", flat=True))
        form = AttendanceForm(
            request.POST if request.method == "POST" else None, meeting=meeting, initial={"members": present}
        )
        if request.method == "POST" and form.is_valid():
            try:
                meeting = services.meeting_record_attendance(
                    meeting=meeting, actor=request.user, members=list(form.cleaned_data["members"])
                )
            except DomainError as exc:
                _show_error(form, exc)
            else:
                verdict = gettext("Quorum met.") if meeting.quorum_met else gettext("No quorum.")
                self.message_user(
                    request,
                    " ".join([gettext("Attendance recorded."), str(verdict), meeting.quorum_note]),
                    messages.SUCCESS if meeting.quorum_met else messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:ethics_meeting_change", args=[meeting.pk]))
        return self._render(request, meeting, gettext("Record attendance"), form)

    def conflict_view(self, request, object_id, item_id):
        meeting = self._meeting_for_action(request, object_id)
        item = self._item(meeting, item_id)
        form = ConflictForm(request.POST if request.method == "POST" else None, meeting=meeting)
        if request.method == "POST" and form.is_valid():
            try:
                services.conflict_declare(agenda_item=item, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request,
                    meeting,
                    gettext("%(name)s is recused from “%(submission)s”.")
                    % {"name": form.cleaned_data["member"].full_name, "submission": item.submission},
                )
        return self._render(request, meeting, gettext("Declare a conflict of interest"), form, item=item)

    def votes_view(self, request, object_id, item_id):
        meeting = self._meeting_for_action(request, object_id)
        item = self._item(meeting, item_id)
        recused = set(item.conflicts.values_list("member_id", flat=True))
        voters = [a.member for a in meeting.attendance.select_related("member") if a.member_id not in recused]
        current = dict(item.votes.values_list("member_id", "choice"))
        form = VoteForm(request.POST if request.method == "POST" else None, voters=voters, current=current)
        if request.method == "POST" and form.is_valid():
            try:
                services.vote_record(agenda_item=item, actor=request.user, votes=form.votes())
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request,
                    meeting,
                    gettext("The vote on “%(submission)s” is recorded.") % {"submission": item.submission},
                )
        quorum = (
            services.quorum_check(meeting=meeting, agenda_item=item) if meeting.status == Meeting.Status.HELD else None
        )
        return self._render(request, meeting, gettext("Record the vote"), form, item=item, quorum=quorum)

    def decide_view(self, request, object_id, item_id):
        meeting = self._meeting_for_action(request, object_id)
        item = self._item(meeting, item_id)
        form = DecisionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                decision = services.decision_record(
                    submission=item.submission, actor=request.user, meeting=meeting, **form.cleaned_data
                )
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(
                    request,
                    meeting,
                    gettext("“%(submission)s” is decided: %(outcome)s, letter %(letter)s.")
                    % {
                        "submission": item.submission,
                        "outcome": decision.get_outcome_display(),
                        "letter": decision.letter_number,
                    },
                )
        return self._render(request, meeting, gettext("Record the decision"), form, item=item)

    def close_view(self, request, object_id):
        meeting = self._meeting_for_action(request, object_id)
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        undecided = [
            str(item.submission)
            for item in meeting.agenda.select_related("submission__trial").filter(submission__status=S.AWAITING_MEETING)
        ]
        if request.method == "POST" and form.is_valid():
            try:
                services.meeting_close(meeting=meeting, actor=request.user)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(request, meeting, gettext("The meeting is closed."))
        intro = (
            gettext("Not decided, and deferred to a later meeting when you close: %(items)s")
            % {"items": "; ".join(undecided)}
            if undecided
            else gettext("Every item on the agenda is decided.")
        )
        return self._render(request, meeting, gettext("Close the meeting"), form, intro=intro)

    def cancel_view(self, request, object_id):
        meeting = self._meeting_for_action(request, object_id)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.meeting_cancel(meeting=meeting, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                _show_error(form, exc)
            else:
                return self._done(request, meeting, gettext("The meeting is cancelled."))
        intro = gettext("Items on its agenda stay awaiting a meeting and can go on another meeting's agenda.")
        return self._render(request, meeting, gettext("Cancel the meeting"), form, intro=intro)

    def _render(self, request, meeting, label, form, item=None, quorum=None, intro=""):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": meeting,
            "title": gettext("%(step)s: %(meeting)s") % {"step": label, "meeting": meeting},
            "step_label": label,
            "form": form,
            "object_url": reverse("admin:ethics_meeting_change", args=[meeting.pk]),
            "object_label": str(meeting),
            "intro": str(item.submission) if item else intro,
            "quorum": quorum,
        }
        return TemplateResponse(request, "admin/ethics/action.html", context)


# --- decisions ------------------------------------------------------------------------------------------------------


@admin.register(Decision)
class DecisionAdmin(KeyedSearchAdmin, ScopedAdmin):
    """Decisions are recorded through the workflow; here they are read, and their letters downloaded."""

    list_display = [
        "letter_number",
        "submission",
        "outcome",
        "decided_at",
        "valid_until",
        "next_continuing_review_due",
        "letter_links",
    ]
    list_filter = ["outcome", "decided_at", "committee__institution__region"]
    search_fields = ["letter_number", "letter_sha256", "submission__reference", "submission__trial__protocol_number"]
    exact_search = ("letter_number",)
    keyed_search = {"submission": ("reference__exact",), "submission__trial": ("protocol_number",)}
    list_select_related = ["submission__trial", "committee"]
    fields = [
        "letter_number",
        "letter_links",
        "letter_sha256",
        "submission",
        "committee",
        "outcome",
        "requested_modifications",
        "decided_at",
        "decided_by",
        "meeting",
        "votes_for",
        "votes_against",
        "valid_until",
        "continuing_review_months",
        "next_continuing_review_due",
    ]
    readonly_fields = fields

    def term_search(self, term):
        # A letter's fingerprint, pasted whole; any other term would never match one.
        return Q(letter_sha256=term.lower()) if SHA256_HEX.fullmatch(term) else None

    @admin.display(description=_("letter"))
    def letter_links(self, decision):
        if not decision.letter_file:
            return "—"
        url = reverse("admin:ethics_decision_letter", args=[decision.pk])
        return format_html(
            '<a href="{}">{}</a> · <a href="{}?language=en">{}</a>',
            url,
            gettext("Chinese (PDF)"),
            url,
            gettext("English"),
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        own = [
            path(
                "<int:decision_id>/letter/",
                self.admin_site.admin_view(self.letter_view),
                name="ethics_decision_letter",
            )
        ]
        return own + super().get_urls()

    def letter_view(self, request, decision_id):
        """The stored Chinese letter, or (``?language=en``) an English rendering made now and not kept."""
        decision = self.get_queryset(request).filter(pk=decision_id).first()
        if decision is None or not decision.letter_file or not self.has_view_permission(request, decision):
            raise Http404
        try:
            language = requested_language(request.GET, default=letters.AUTHORITATIVE_LANGUAGE)
        except DomainError as exc:
            raise BadRequest(str(exc.message)) from exc
        if language == letters.AUTHORITATIVE_LANGUAGE:
            return FileResponse(
                decision.letter_file.open("rb"),
                as_attachment=True,
                filename=letters.letter_filename(decision, language),
                content_type="application/pdf",
            )
        try:
            pdf = letters.render_decision_letter(decision, language)
        except DomainError as exc:
            raise Http404(str(exc.message)) from exc
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{letters.letter_filename(decision, language)}"'
        return response


# --- mutual recognition ------------------------------------------------------------------------------------------


class AllianceMembershipInline(admin.TabularInline):
    model = AllianceMembership
    fields = ["committee", "joined_on"]
    autocomplete_fields = ["committee"]
    extra = 0


@admin.register(Alliance)
class AllianceAdmin(ScopedAdmin):
    list_display = [
        "name_zh",
        "feedback_working_days",
        "close_of_business",
        "reminder_time",
        "coordinator",
        "is_active",
    ]
    list_filter = ["regions", "is_active"]
    search_fields = ["name_zh", "name_en"]
    filter_horizontal = ["regions"]
    autocomplete_fields = ["coordinator"]
    inlines = [AllianceMembershipInline]


class RecognitionEffectInline(ReadOnlyInline):
    model = RecognitionEffect
    fields = ["kind", "due_at", "happened_at"]
    readonly_fields = fields
    verbose_name_plural = _("deadline effects")


class RecognitionResponseForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("Feedback"),
        choices=[(s.value, s.label) for s in RecognitionRequest.Status if s.value in recognition.OUTCOMES],
    )
    note = forms.CharField(
        label=_("Conditions or reasons"),
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text=_("Required when recognising with conditions (e.g. local consent-form changes) or declining."),
    )
    local_icf_file = forms.FileField(
        label=_("Local consent form (upload)"),
        required=False,
        help_text=_("Only when recognising with conditions: kept as a new version of this site's consent form."),
    )
    local_icf_label = forms.CharField(
        label=_("Its version label"), max_length=50, required=False, help_text=_("As printed on the form, e.g. V1.1")
    )
    local_icf_version = forms.ModelChoiceField(
        label=_("… or an existing consent-form version"), queryset=DocumentVersion.objects.none(), required=False
    )

    def __init__(self, *args, recognition_request, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["local_icf_version"].queryset = DocumentVersion.objects.filter(
            document__trial_id=recognition_request.trial_id, document__kind=TrialDocument.Kind.ICF
        ).select_related("document")


class RecognitionWithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, recognition_request, **kwargs):
        super().__init__(*args, **kwargs)


@admin.register(RecognitionRequest)
class RecognitionRequestAdmin(KeyedSearchAdmin, ScopedAdmin):
    """Requests are never edited: the participating office answers, the lead office may withdraw. The page shows
    the participating office what it judges: the lead decision, its letter and the versions it covers."""

    change_form_template = "admin/ethics/recognitionrequest/change_form.html"
    change_list_template = "admin/ethics/recognitionrequest/change_list.html"
    list_display = [
        "trial",
        "committee",
        "alliance",
        "subject",
        "status",
        "received_at",
        "due_at",
        "provisional",
        "late",
        "escalated_at",
    ]
    list_filter = ["status", "alliance", "provisional", "late", "subject", "received_at"]
    search_fields = ["trial__protocol_number", "trial__title_zh", "committee__name_zh"]
    keyed_search = {"trial": ("protocol_number", "title_zh"), "committee": ("name_zh",)}
    list_select_related = ["trial", "committee", "alliance"]
    inlines = [RecognitionEffectInline]
    readonly_fields = [
        "alliance",
        "trial",
        "site",
        "committee",
        "lead_decision_number",
        "subject",
        "status",
        "received_at",
        "due_at",
        "remind_at",
        "deadline_basis",
        "responded_at",
        "responded_by",
        "response_note",
        "local_icf_link",
        "late",
        "response_working_hours",
        "escalated_at",
        "superseded_by",
        "local_review",
    ]
    fields = readonly_fields

    @admin.display(description=_("provisional deadline"))
    def deadline_basis(self, obj):
        # Only a provisional deadline needs explaining: it names the years whose schedule is awaited.
        if not obj.provisional:
            return gettext("No: every working day it counts is on a published holiday schedule.")
        years = ", ".join(str(year) for year in obj.provisional_years)
        return gettext(
            "Yes: it reaches %(years)s, whose holiday schedule is not yet published; it is recomputed when the "
            "schedule is entered."
        ) % {"years": years}

    # The lead's decision lives in another hospital's records: it is shown on this page and its letter served from
    # here, never by a link into the decisions list, which is scoped to one's own committee.
    @admin.display(description=_("lead committee's decision"))
    def lead_decision_number(self, obj):
        number = obj.lead_decision.letter_number if obj.lead_decision_id else obj.external_lead_letter_number
        if not number and obj.lead_decision_id:
            number = str(obj.lead_decision)
        if not number:
            return "—"
        if getattr(obj, "may_open_lead_result", False) and recognition.lead_letter(obj):
            return format_html(
                '<a href="{}">{}</a>', reverse("admin:ethics_recognition_lead_letter", args=[obj.pk]), number
            )
        return number

    @admin.display(description=_("local consent-form version"))
    def local_icf_link(self, obj):
        version = obj.local_icf
        if version is None:
            return "—"
        if not getattr(obj, "may_open_lead_result", False):
            return str(version)
        url = reverse("admin:ethics_recognition_document", args=[obj.pk, version.pk])
        return format_html('<a href="{}">{}</a>', url, version)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        own = [
            path("<int:pk>/respond/", self.admin_site.admin_view(self.respond_view), name="ethics_recognition_respond"),
            path(
                "<int:pk>/withdraw/", self.admin_site.admin_view(self.withdraw_view), name="ethics_recognition_withdraw"
            ),
            path(
                "<int:pk>/lead-letter/",
                self.admin_site.admin_view(self.lead_letter_view),
                name="ethics_recognition_lead_letter",
            ),
            path(
                "<int:pk>/documents/<int:version_id>/",
                self.admin_site.admin_view(self.document_view),
                name="ethics_recognition_document",
            ),
            path(
                "record-external/",
                self.admin_site.admin_view(self.record_external_view),
                name="ethics_recognition_record_external",
            ),
        ]
        return own + super().get_urls()

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # Read by the display methods above while this page renders.
            obj.may_open_lead_result = recognition.may_open_lead_result(request.user, obj)
        return obj

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        found = self.get_queryset(request).filter(pk=object_id).first()
        if found is not None:
            steps = recognition.available_steps(found, request.user)
            extra_context["can_respond"] = any(step in recognition.RESPONSE_STEPS for step in steps)
            extra_context["can_withdraw"] = recognition.WITHDRAW in steps
            if recognition.may_open_lead_result(request.user, found):
                result = recognition.lead_result(found)
                extra_context["lead_result"] = result
                extra_context["lead_documents"] = [
                    (version, reverse("admin:ethics_recognition_document", args=[found.pk, version.pk]))
                    for version in result["documents"]
                ]
        return super().change_view(request, object_id, form_url, extra_context)

    def _lead_result_request_or_404(self, request, pk):
        found = (
            recognition.requests_with_lead_result_visible_to(request.user)
            .select_related("lead_decision__committee", "external_lead_letter", "local_icf__document", "trial")
            .filter(pk=pk)
            .first()
        )
        if found is None:
            raise Http404
        return found

    def lead_letter_view(self, request, pk):
        """The lead's letter as stored (hash unchanged), for the offices that judge or issued it."""
        letter = recognition.lead_letter(self._lead_result_request_or_404(request, pk))
        if letter is None:
            raise Http404
        return _stored_file_response(letter["file"], letter["filename"], letter["content_type"])

    def document_view(self, request, pk, version_id):
        version = recognition.downloadable_version(self._lead_result_request_or_404(request, pk), version_id)
        if version is None:
            raise Http404
        return _stored_file_response(version.file, version.original_name, version.content_type)

    def _request_or_404(self, request, pk):
        found = self.get_queryset(request).filter(pk=pk).first()
        if found is None:
            raise Http404
        return found

    def _step(self, request, pk, form_class, label, run):
        recognition_request = self._request_or_404(request, pk)
        posted = request.method == "POST"
        form = form_class(
            request.POST if posted else None, request.FILES if posted else None, recognition_request=recognition_request
        )
        if posted and form.is_valid():
            try:
                run(recognition_request, form.cleaned_data)
            except DomainError as exc:
                _show_error(form, exc)
            else:
                self.message_user(request, gettext("Saved."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:ethics_recognitionrequest_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": recognition_request,
            "title": f"{label}: {recognition_request}",
            "step_label": label,
            "form": form,
            "multipart": True,
            "object_url": reverse("admin:ethics_recognitionrequest_change", args=[pk]),
            "object_label": str(recognition_request),
            "intro": gettext("Due by %(due)s.")
            % {"due": timezone.localtime(recognition_request.due_at).strftime("%Y-%m-%d %H:%M")},
        }
        return TemplateResponse(request, "admin/ethics/action.html", context)

    def respond_view(self, request, pk):
        return self._step(
            request,
            pk,
            RecognitionResponseForm,
            gettext("Give feedback"),
            lambda r, data: recognition.recognition_respond(
                request=r,
                actor=request.user,
                outcome=data["outcome"],
                note=data["note"],
                local_icf_file=data["local_icf_file"],
                local_icf_version=data["local_icf_version"],
                local_icf_label=data["local_icf_label"],
            ),
        )

    def record_external_view(self, request):
        """The participating office records an approval from a lead whose committee is not in the system."""
        return record_external_view(self, request)

    def withdraw_view(self, request, pk):
        return self._step(
            request,
            pk,
            RecognitionWithdrawForm,
            gettext("Withdraw"),
            lambda r, data: recognition.recognition_withdraw(request=r, actor=request.user, reason=data["reason"]),
        )


def _stored_file_response(stored, filename: str, content_type: str) -> FileResponse:
    try:
        handle = stored.open("rb")
    except FileNotFoundError as exc:
        raise Http404(gettext("The stored file is missing. Please tell the system administrator.")) from exc
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response


class ExternalApprovalForm(forms.Form):
    """A lead approval received from a lead site whose committee is not in the system."""

    site = forms.ModelChoiceField(label=_("Our participating site"), queryset=TrialSite.objects.none())
    alliance = forms.ModelChoiceField(label=_("Alliance"), queryset=Alliance.objects.filter(is_active=True))
    letter_number = forms.CharField(label=_("Lead committee's letter number"), max_length=60)
    letter = forms.FileField(label=_("Lead approval letter"), help_text=_("PDF, Word, Excel, JPEG or PNG."))
    received_at = forms.DateTimeField(
        label=_("Received at"), help_text=_("When our office received it; the deadline counts from this day.")
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = TrialSite.objects.filter(
            role=TrialSite.SiteRole.PARTICIPATING, institution_id=user.institution_id
        ).select_related("trial", "institution")


def record_external_view(model_admin, request):
    form = ExternalApprovalForm(
        request.POST if request.method == "POST" else None, request.FILES or None, user=request.user
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = recognition.request_record_external(
                actor=request.user,
                site=data["site"],
                alliance=data["alliance"],
                letter_number=data["letter_number"],
                letter_file=data["letter"],
                received_at=data["received_at"],
            )
        except DomainError as exc:
            _show_error(form, exc)
        else:
            model_admin.message_user(request, gettext("Saved."), messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:ethics_recognitionrequest_change", args=[created.pk]))
    label = gettext("Record an external lead approval")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": label,
        "step_label": label,
        "form": form,
        "multipart": True,
        "object_url": reverse("admin:ethics_recognitionrequest_changelist"),
        "object_label": str(model_admin.model._meta.verbose_name_plural),
    }
    return TemplateResponse(request, "admin/ethics/action.html", context)


from ethics import safety_admin  # noqa: E402, F401  (safety reports: their own module, registered here)
