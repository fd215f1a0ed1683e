"""Ethics committees, their members, submissions and their review: routing, reviewers, meetings, decisions.

A submission moves through an explicit state machine (ethics.services); each step leaves a SubmissionEvent,
so turnaround can be measured from the timeline alone.
"""

import math

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from simple_history.models import HistoricalRecords

from cgtclinic.models import BilingualNameMixin, DeadlineEffect, Institution, PublicDirectoryQuerySet, Region
from cgtclinic.roles import Role
from trials.models import DocumentVersion, Trial, TrialSite


class CommitteeQuerySet(models.QuerySet):
    def visible_to(self, user):
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
            return self.filter(institution_id=user.institution_id)
        if user.role == Role.REGULATOR:
            return self.filter(institution__region_id=user.region_id)
        return self.none()

    def editable_by(self, user):
        if user.is_superuser:
            return self
        if user.is_active and user.role == Role.ETHICS_OFFICE:
            return self.filter(institution_id=user.institution_id)
        return self.none()


class EthicsCommittee(BilingualNameMixin):
    """An institution's ethics committee (伦理委员会) and its quorum rule."""

    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="ethics_committees", verbose_name=_("institution")
    )
    letter_prefix = models.CharField(
        _("letter number prefix"),
        max_length=30,
        help_text=_("Printed before the year and number on decision letters, e.g. 协和伦审"),
    )
    registration_number = models.CharField(_("registration number"), max_length=100, blank=True)
    # Whom a participating committee asks about a lead approval it is to recognise.
    contact_person = models.CharField(_("contact person"), max_length=100, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=40, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    address = models.CharField(_("office address"), max_length=300, blank=True)
    # Quorum: more than this fraction of current members present, with the required mix (NHC 2023 measures).
    quorum_fraction = models.DecimalField(
        _("quorum: more than this share of members"), max_digits=3, decimal_places=2, default=0.5
    )
    quorum_requires_non_medical = models.BooleanField(_("quorum needs a non-medical member"), default=True)
    quorum_requires_non_affiliated = models.BooleanField(_("quorum needs a non-affiliated member"), default=True)
    quorum_requires_both_genders = models.BooleanField(_("quorum needs members of both genders"), default=True)
    approval_validity_months = models.PositiveSmallIntegerField(_("approval valid for (months)"), default=12)
    continuing_review_months = models.PositiveSmallIntegerField(_("continuing review every (months)"), default=12)
    continuing_review_reminder_days = models.PositiveSmallIntegerField(
        _("remind this many days before continuing review is due"), default=30
    )
    is_active = models.BooleanField(_("active"), default=True)

    objects = CommitteeQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["institution_id", "name_zh"]
        verbose_name = _("ethics committee")
        verbose_name_plural = _("ethics committees")
        constraints = [models.UniqueConstraint(fields=["institution", "name_zh"], name="committee_unique_name")]

    def quorum_size(self, member_count: int) -> int:
        """The smallest attendance that is *more than* the quorum share of the members."""
        return math.floor(member_count * float(self.quorum_fraction)) + 1


class CommitteeMemberQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(committee__in=EthicsCommittee.objects.visible_to(user))

    def editable_by(self, user):
        return self.filter(committee__in=EthicsCommittee.objects.editable_by(user))

    def current(self):
        return self.filter(is_active=True)


class CommitteeMember(models.Model):
    class MemberRole(models.TextChoices):
        CHAIR = "chair", _("Chair")
        VICE_CHAIR = "vice_chair", _("Vice chair")
        MEMBER = "member", _("Member")
        SECRETARY = "secretary", _("Secretary")

    class Specialty(models.TextChoices):
        MEDICINE = "medicine", _("Medicine")
        PHARMACY = "pharmacy", _("Pharmacy")
        NURSING = "nursing", _("Nursing")
        ETHICS = "ethics", _("Ethics")
        LAW = "law", _("Law")
        COMMUNITY = "community", _("Lay / community representative")
        OTHER = "other", _("Other")

    class Gender(models.TextChoices):
        FEMALE = "female", _("Female")
        MALE = "male", _("Male")

    MEDICAL_SPECIALTIES = frozenset({Specialty.MEDICINE, Specialty.PHARMACY, Specialty.NURSING})

    committee = models.ForeignKey(
        EthicsCommittee, on_delete=models.CASCADE, related_name="members", verbose_name=_("committee")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="committee_memberships",
        verbose_name=_("account"),
        help_text=_("Only if the member signs in to record opinions."),
    )
    full_name = models.CharField(_("full name"), max_length=100)
    member_role = models.CharField(_("committee role"), max_length=20, choices=MemberRole.choices)
    specialty = models.CharField(_("specialty"), max_length=20, choices=Specialty.choices)
    gender = models.CharField(_("gender"), max_length=10, choices=Gender.choices)
    affiliation = models.CharField(_("affiliation"), max_length=200)
    is_affiliated = models.BooleanField(
        _("affiliated with the institution"), default=True, help_text=_("Untick for external (independent) members.")
    )
    term_start = models.DateField(_("term starts"))
    term_end = models.DateField(_("term ends"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    objects = CommitteeMemberQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["committee_id", "member_role", "full_name"]
        verbose_name = _("committee member")
        verbose_name_plural = _("committee members")
        indexes = [models.Index(fields=["committee", "member_role", "full_name"], name="committee_member_list")]

    def __str__(self) -> str:
        return f"{self.full_name}（{self.get_member_role_display()}）"

    @property
    def is_medical(self) -> bool:
        return self.specialty in self.MEDICAL_SPECIALTIES


class TrainingRecord(models.Model):
    member = models.ForeignKey(
        CommitteeMember, on_delete=models.CASCADE, related_name="training_records", verbose_name=_("member")
    )
    course = models.CharField(_("course"), max_length=200)
    provider = models.CharField(_("provider"), max_length=200, blank=True)
    completed_on = models.DateField(_("completed on"))
    hours = models.DecimalField(_("hours"), max_digits=5, decimal_places=1, null=True, blank=True)
    certificate_number = models.CharField(_("certificate number"), max_length=100, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["member_id", "-completed_on"]
        verbose_name = _("training record")
        verbose_name_plural = _("training records")

    def __str__(self) -> str:
        return f"{self.course} ({self.completed_on})"


def _keys(model, **lookups):
    """Primary keys of ``model`` rows matching ``lookups``, as a subquery PostgreSQL runs once and hashes."""
    return model.objects.filter(**lookups).order_by().values("pk")


class SubmissionQuerySet(models.QuerySet):
    def visible_to(self, user):
        """PIs see their own trials' submissions; ethics and research offices their institution's committee's
        and their institution's trials'; regulators see none (they get aggregates through reports)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        # A PI's few rows: the union of two index lookups, found first and then fetched by key (an OR, across the
        # join to trials or with a subquery, made PostgreSQL test every submission of the country).
        if user.role == Role.PI:
            led = Submission.objects.filter(trial__pi_id=user.pk).order_by().values("pk")
            own = Submission.objects.filter(submitted_by_id=user.pk).order_by().values("pk")
            return self.filter(pk__in=led.union(own))
        # An office's many: ORed indexed lookups on the submission's own columns (see trials.models.site_scope_q).
        if user.role == Role.ETHICS_OFFICE:
            return self.filter(committee__in=_keys(EthicsCommittee, institution_id=user.institution_id))
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(
                Q(committee__in=_keys(EthicsCommittee, institution_id=user.institution_id))
                | Q(trial__in=_keys(Trial, lead_institution_id=user.institution_id))
            )
        return self.none()


class Submission(models.Model):
    """One application to a committee: an initial review, an amendment, a report, or a response to its requests."""

    class Kind(models.TextChoices):
        INITIAL = "initial", _("Initial review")
        AMENDMENT = "amendment", _("Amendment")
        CONTINUING_REVIEW = "continuing_review", _("Continuing-review report")
        SAE = "sae", _("Serious adverse event report")
        DEVIATION = "deviation", _("Protocol-deviation report")
        SUSPENSION_TERMINATION = "suspension_termination", _("Suspension / termination report")
        FINAL_REPORT = "final_report", _("Final (closure) report")
        MODIFICATION_RESPONSE = "modification_response", _("Response to requested modifications")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        RETURNED = "returned", _("Returned as incomplete")
        ACCEPTED = "accepted", _("Accepted, awaiting routing")
        EXPEDITED_REVIEW = "expedited_review", _("In expedited review")
        AWAITING_MEETING = "awaiting_meeting", _("Awaiting meeting")
        DECIDED = "decided", _("Decided")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class ReviewType(models.TextChoices):
        FULL_BOARD = "full_board", _("Full-board (meeting) review")
        EXPEDITED = "expedited", _("Expedited review")

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="submissions", verbose_name=_("trial"))
    committee = models.ForeignKey(
        EthicsCommittee, on_delete=models.PROTECT, related_name="submissions", verbose_name=_("committee")
    )
    kind = models.CharField(_("kind"), max_length=30, choices=Kind.choices)
    responds_to = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="responses",
        verbose_name=_("responds to"),
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    reference = models.CharField(_("reference number"), max_length=40, blank=True)
    summary = models.TextField(_("summary"), blank=True)
    details = models.JSONField(_("report details"), default=dict, blank=True)
    declarations = models.JSONField(_("declarations"), default=dict, blank=True)
    documents = models.ManyToManyField(
        DocumentVersion, blank=True, related_name="submissions", verbose_name=_("documents")
    )
    review_type = models.CharField(_("review type"), max_length=20, choices=ReviewType.choices, blank=True)
    routing_reason = models.TextField(_("routing reason"), blank=True)
    missing_items = models.JSONField(_("missing items"), default=list, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="ethics_submissions",
        verbose_name=_("submitted by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    objects = SubmissionQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ethics submission")
        verbose_name_plural = _("ethics submissions")
        indexes = [
            models.Index(fields=["committee", "status"]),
            models.Index(fields=["trial", "kind"]),
            # The admin list's order: a page is read from the end of this index instead of sorting every row.
            models.Index(fields=["-created_at", "-id"], name="submission_latest"),
            models.Index(fields=["reference"], name="submission_reference"),
        ]

    def __str__(self) -> str:
        return f"{self.reference or '#' + str(self.pk)} {self.get_kind_display()} · {self.trial.protocol_number}"

    @property
    def root_kind(self) -> str:
        """A response to requested modifications takes the kind of what it responds to."""
        submission = self
        while submission.kind == self.Kind.MODIFICATION_RESPONSE and submission.responds_to_id:
            submission = submission.responds_to
        return submission.kind


class SubmissionEvent(models.Model):
    """The submission's timeline: every step, who took it and when."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        SUBMITTED = "submitted", _("Submitted")
        RETURNED = "returned", _("Returned as incomplete")
        ACCEPTED = "accepted", _("Accepted")
        ROUTED = "routed", _("Routed")
        REVIEWER_ASSIGNED = "reviewer_assigned", _("Reviewer assigned")
        OPINION_RECORDED = "opinion_recorded", _("Opinion recorded")
        SCHEDULED = "scheduled", _("Put on a meeting agenda")
        VOTED = "voted", _("Voted")
        DECIDED = "decided", _("Decided")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        LETTER_ISSUED = "letter_issued", _("Letter issued")
        DEFERRED = "deferred", _("Deferred to a later meeting")

    submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, related_name="events", verbose_name=_("submission")
    )
    kind = models.CharField(_("event"), max_length=30, choices=Kind.choices)
    from_status = models.CharField(_("from"), max_length=20, choices=Submission.Status.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=20, choices=Submission.Status.choices, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    at = models.DateTimeField(_("at"))
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["submission_id", "at", "id"]
        verbose_name = _("submission event")
        verbose_name_plural = _("submission events")
        indexes = [models.Index(fields=["kind", "at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @ {timezone.localtime(self.at):%Y-%m-%d %H:%M}"


class ReviewAssignment(models.Model):
    """A member asked to review a submission, and the opinion form they return."""

    class Opinion(models.TextChoices):
        APPROVE = "approve", pgettext_lazy("ethics decision", "Approve")
        APPROVE_AFTER_MODIFICATION = "approve_after_modification", _("Approve after modification")
        MODIFY_AND_RESUBMIT = "modify_and_resubmit", _("Modify and resubmit")
        DISAPPROVE = "disapprove", _("Disapprove")
        REFER_TO_MEETING = "refer_to_meeting", _("Refer to a full-board meeting")

    submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("submission")
    )
    member = models.ForeignKey(
        CommitteeMember, on_delete=models.PROTECT, related_name="assignments", verbose_name=_("reviewer")
    )
    assigned_at = models.DateTimeField(_("assigned at"))
    opinion = models.CharField(_("opinion"), max_length=30, choices=Opinion.choices, blank=True)
    risk_benefit_comment = models.TextField(_("risks and benefits"), blank=True)
    consent_comment = models.TextField(_("informed consent"), blank=True)
    other_comment = models.TextField(_("other comments"), blank=True)
    recorded_at = models.DateTimeField(_("opinion recorded at"), null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["submission_id", "assigned_at"]
        verbose_name = _("review assignment")
        verbose_name_plural = _("review assignments")
        constraints = [models.UniqueConstraint(fields=["submission", "member"], name="assignment_unique_reviewer")]

    def __str__(self) -> str:
        return f"{self.member.full_name} → {self.submission}"


class MeetingQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(committee__in=EthicsCommittee.objects.visible_to(user))

    def editable_by(self, user):
        return self.filter(committee__in=EthicsCommittee.objects.editable_by(user))


class Meeting(models.Model):
    """A full-board meeting: planned, then held (in session once attendance is recorded, agenda still open),
    then closed by the office; a meeting at which nothing was decided can be cancelled instead."""

    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        HELD = "held", _("In session")
        CLOSED = "closed", _("Closed")
        CANCELLED = "cancelled", _("Cancelled")

    committee = models.ForeignKey(
        EthicsCommittee, on_delete=models.PROTECT, related_name="meetings", verbose_name=_("committee")
    )
    scheduled_at = models.DateTimeField(_("scheduled at"))
    location = models.CharField(_("location"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PLANNED)
    quorum_met = models.BooleanField(_("quorum met"), null=True, editable=False)
    quorum_note = models.TextField(_("quorum check"), blank=True, editable=False)
    minutes = models.TextField(_("minutes"), blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True, editable=False)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True, editable=False)
    cancellation_reason = models.TextField(_("reason for cancelling"), blank=True, editable=False)

    objects = MeetingQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-scheduled_at"]
        verbose_name = _("meeting")
        verbose_name_plural = _("meetings")
        indexes = [models.Index(fields=["-scheduled_at"], name="meeting_latest")]

    def __str__(self) -> str:
        return f"{self.committee} {timezone.localtime(self.scheduled_at):%Y-%m-%d %H:%M}"


class AgendaItem(models.Model):
    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="agenda", verbose_name=_("meeting"))
    submission = models.ForeignKey(
        Submission, on_delete=models.PROTECT, related_name="agenda_items", verbose_name=_("submission")
    )
    position = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["meeting_id", "position", "id"]
        verbose_name = _("agenda item")
        verbose_name_plural = _("agenda items")
        constraints = [models.UniqueConstraint(fields=["meeting", "submission"], name="agenda_unique_submission")]

    def __str__(self) -> str:
        return str(self.submission)


class Attendance(models.Model):
    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="attendance", verbose_name=_("meeting"))
    member = models.ForeignKey(
        CommitteeMember, on_delete=models.PROTECT, related_name="attendance", verbose_name=_("member")
    )

    class Meta:
        verbose_name = _("attendance")
        verbose_name_plural = _("attendance")
        constraints = [models.UniqueConstraint(fields=["meeting", "member"], name="attendance_unique_member")]

    def __str__(self) -> str:
        return self.member.full_name


class ConflictOfInterest(models.Model):
    """A member's declared conflict on an agenda item: they are recused from its discussion and vote."""

    agenda_item = models.ForeignKey(
        AgendaItem, on_delete=models.CASCADE, related_name="conflicts", verbose_name=_("agenda item")
    )
    member = models.ForeignKey(
        CommitteeMember, on_delete=models.PROTECT, related_name="conflicts", verbose_name=_("member")
    )
    description = models.CharField(_("conflict declared"), max_length=300)

    class Meta:
        verbose_name = _("conflict of interest")
        verbose_name_plural = _("conflicts of interest")
        constraints = [models.UniqueConstraint(fields=["agenda_item", "member"], name="conflict_unique_member")]

    def __str__(self) -> str:
        return f"{self.member.full_name}: {self.description}"


class Vote(models.Model):
    agenda_item = models.ForeignKey(
        AgendaItem, on_delete=models.CASCADE, related_name="votes", verbose_name=_("agenda item")
    )
    member = models.ForeignKey(
        CommitteeMember, on_delete=models.PROTECT, related_name="votes", verbose_name=_("member")
    )
    choice = models.CharField(_("vote"), max_length=30, choices=ReviewAssignment.Opinion.choices[:4])

    class Meta:
        verbose_name = _("vote")
        verbose_name_plural = _("votes")
        constraints = [models.UniqueConstraint(fields=["agenda_item", "member"], name="vote_unique_member")]

    def __str__(self) -> str:
        return f"{self.member.full_name}: {self.get_choice_display()}"


class DecisionQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The decisions on the submissions the user may see. For the offices, the decision's own committee
        column (its submission's committee) is one of the ORed indexed lookups, so the list reads its date index
        instead of joining every submission of the country."""
        if user.is_authenticated and user.is_active and user.is_superuser:
            return self
        if user.is_authenticated and user.is_active:
            own_committee = Q(committee__in=_keys(EthicsCommittee, institution_id=user.institution_id))
            if user.role == Role.ETHICS_OFFICE:
                return self.filter(own_committee)
            if user.role == Role.RESEARCH_OFFICE:
                led = Submission.objects.filter(trial__in=_keys(Trial, lead_institution_id=user.institution_id))
                return self.filter(own_committee | Q(submission__in=led.order_by().values("pk")))
        return self.filter(submission__in=Submission.objects.visible_to(user))


class Decision(models.Model):
    """The committee's decision on a submission, with its letter (审查意见/批件)."""

    class Outcome(models.TextChoices):
        APPROVE = "approve", pgettext_lazy("ethics decision", "Approve")
        APPROVE_AFTER_MODIFICATION = "approve_after_modification", _("Approve after modification")
        MODIFY_AND_RESUBMIT = "modify_and_resubmit", _("Modify and resubmit")
        DISAPPROVE = "disapprove", _("Disapprove")
        SUSPEND = "suspend", _("Suspend the approved study")
        TERMINATE = "terminate", _("Terminate the approved study")

    submission = models.OneToOneField(
        Submission, on_delete=models.PROTECT, related_name="decision", verbose_name=_("submission")
    )
    # The submission's committee, kept here so letter numbers can be unique per committee and year.
    committee = models.ForeignKey(
        EthicsCommittee, on_delete=models.PROTECT, related_name="decisions", verbose_name=_("committee")
    )
    outcome = models.CharField(_("decision"), max_length=30, choices=Outcome.choices)
    decided_at = models.DateTimeField(_("decided at"))
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    meeting = models.ForeignKey(
        Meeting, on_delete=models.PROTECT, null=True, blank=True, related_name="decisions", verbose_name=_("meeting")
    )
    votes_for = models.PositiveSmallIntegerField(_("votes for"), null=True, blank=True)
    votes_against = models.PositiveSmallIntegerField(_("votes against"), null=True, blank=True)
    requested_modifications = models.TextField(_("requested modifications / reasons"), blank=True)
    valid_until = models.DateField(_("approval valid until"), null=True, blank=True)
    continuing_review_months = models.PositiveSmallIntegerField(
        _("continuing review every (months)"), null=True, blank=True
    )
    next_continuing_review_due = models.DateField(_("next continuing review due"), null=True, blank=True)
    letter_year = models.PositiveSmallIntegerField(_("letter year"), null=True, blank=True)
    letter_sequence = models.PositiveIntegerField(_("letter sequence"), null=True, blank=True)
    letter_number = models.CharField(_("letter number"), max_length=60, blank=True)
    letter_file = models.FileField(_("letter (PDF)"), upload_to="letters/%Y/", blank=True, max_length=300)
    letter_sha256 = models.CharField(_("letter SHA-256"), max_length=64, blank=True)

    objects = DecisionQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-decided_at"]
        verbose_name = _("decision")
        verbose_name_plural = _("decisions")
        constraints = [
            models.UniqueConstraint(
                fields=["committee", "letter_year", "letter_sequence"], name="decision_letter_number_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_continuing_review_due"],
                condition=Q(next_continuing_review_due__isnull=False),
                name="decision_cr_due_idx",
            ),
            models.Index(fields=["-decided_at"], name="decision_latest"),
            # The admin's search matches a letter number exactly.
            models.Index(fields=["letter_number"], name="decision_letter_number"),
        ]

    def __str__(self) -> str:
        return f"{self.letter_number or self.get_outcome_display()}"


class LetterCounter(models.Model):
    """The last letter number a committee issued in a year; locked while the next one is taken."""

    committee = models.ForeignKey(EthicsCommittee, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["committee", "year"], name="letter_counter_unique")]

    def __str__(self) -> str:
        return f"{self.committee_id}/{self.year}: {self.last_number}"


class ReferenceCounter(models.Model):
    """The last acceptance number (受理号) a committee gave in a year; locked while the next one is taken, so the
    numbers run 1, 2, 3 … per committee and year without gaps or repeats."""

    committee = models.ForeignKey(EthicsCommittee, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["committee", "year"], name="reference_counter_unique")]

    def __str__(self) -> str:
        return f"{self.committee_id}/{self.year}: {self.last_number}"


class ContinuingReviewReminder(models.Model):
    """One row per reminder sent for a continuing review that falls due: the unique key makes it exactly once."""

    class Stage(models.TextChoices):
        UPCOMING = "upcoming", _("Due soon")
        OVERDUE = "overdue", _("Overdue")

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="reminders")
    due_on = models.DateField(_("due on"))
    stage = models.CharField(_("stage"), max_length=20, choices=Stage.choices)
    sent_at = models.DateTimeField(_("sent at"))

    class Meta:
        verbose_name = _("continuing-review reminder")
        verbose_name_plural = _("continuing-review reminders")
        constraints = [models.UniqueConstraint(fields=["decision", "due_on", "stage"], name="cr_reminder_once")]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} {self.due_on}"


class Alliance(BilingualNameMixin):
    """An ethics mutual-recognition alliance (伦理审查结果互认联盟) with its own feedback deadline.

    The deadline and its source clause come from seeds (e.g. Guangdong: 3 working days, 003 task 15).
    """

    regions = models.ManyToManyField(
        "cgtclinic.Region",
        related_name="alliances",
        verbose_name=_("regions"),
        help_text=_("One region, or several for a cross-region alliance such as Beijing-Tianjin-Hebei."),
    )
    committees = models.ManyToManyField(
        EthicsCommittee, through="AllianceMembership", related_name="alliances", verbose_name=_("member committees")
    )
    feedback_working_days = models.PositiveSmallIntegerField(_("feedback deadline (working days)"))
    close_of_business = models.TimeField(
        _("close of business"),
        null=True,
        blank=True,
        help_text=_("If set, a deadline ends at this time of its last working day instead of at 24:00."),
    )
    reminder_time = models.TimeField(
        _("reminder time"),
        help_text=_("The time on the last working day at which the participating committee is reminded."),
    )
    coordinator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("coordinator"),
        help_text=_("Notified when a participating committee misses the deadline."),
    )
    source_document = models.CharField(_("source document"), max_length=200)
    source_clause = models.CharField(_("source clause"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)

    # Alliances are public among signed-in users: hospitals need to know who recognises whom.
    objects = PublicDirectoryQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["name_zh"]
        verbose_name = _("recognition alliance")
        verbose_name_plural = _("recognition alliances")
        constraints = [models.UniqueConstraint(fields=["name_zh"], name="alliance_unique_name")]


class AllianceMembership(models.Model):
    alliance = models.ForeignKey(Alliance, on_delete=models.CASCADE, related_name="memberships")
    committee = models.ForeignKey(EthicsCommittee, on_delete=models.CASCADE, related_name="alliance_memberships")
    joined_on = models.DateField(_("joined on"))

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("alliance membership")
        verbose_name_plural = _("alliance memberships")
        constraints = [models.UniqueConstraint(fields=["alliance", "committee"], name="alliance_membership_unique")]

    def __str__(self) -> str:
        return f"{self.committee} ∈ {self.alliance}"


class RecognitionRequestQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The participating and the lead institution's offices, the trial's PIs, the region's regulators."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
            return self.filter(
                Q(committee__in=_keys(EthicsCommittee, institution_id=user.institution_id))
                | Q(trial__in=_keys(Trial, lead_institution_id=user.institution_id))
            )
        if user.role == Role.PI:
            # The union of two index lookups, as for submissions.
            led = RecognitionRequest.objects.filter(trial__pi_id=user.pk).order_by().values("pk")
            run = RecognitionRequest.objects.filter(site__site_pi_id=user.pk).order_by().values("pk")
            return self.filter(pk__in=led.union(run))
        if user.role == Role.REGULATOR:
            return self.filter(committee__institution__region_id=user.region_id)
        return self.none()

    def open(self):
        return self.filter(status=RecognitionRequest.Status.OPEN)


class RecognitionRequest(models.Model):
    """A participating site's committee asked to recognise the lead site's ethics result, with its deadline."""

    class Status(models.TextChoices):
        OPEN = "open", _("Awaiting feedback")
        RECOGNISED = "recognised", _("Recognised")
        RECOGNISED_WITH_CONDITIONS = "recognised_with_conditions", _("Recognised with conditions")
        DECLINED = "declined", _("Declined: full local review")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        SUPERSEDED = "superseded", _("Superseded")

    alliance = models.ForeignKey(
        Alliance, on_delete=models.PROTECT, related_name="requests", verbose_name=_("alliance")
    )
    trial = models.ForeignKey(
        Trial, on_delete=models.PROTECT, related_name="recognition_requests", verbose_name=_("trial")
    )
    site = models.ForeignKey(
        "trials.TrialSite", on_delete=models.PROTECT, related_name="recognition_requests", verbose_name=_("site")
    )
    committee = models.ForeignKey(
        EthicsCommittee,
        on_delete=models.PROTECT,
        related_name="recognition_requests",
        verbose_name=_("participating committee"),
    )
    lead_decision = models.ForeignKey(
        Decision,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="recognition_requests",
        verbose_name=_("lead committee's decision"),
    )
    # When the lead's committee is not in the system, its office records the approval it received.
    external_lead_letter_number = models.CharField(_("lead letter number"), max_length=60, blank=True)
    external_lead_letter = models.ForeignKey(
        DocumentVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("lead approval letter"),
    )
    subject = models.CharField(_("what is to be recognised"), max_length=30, choices=Submission.Kind.choices)
    status = models.CharField(_("status"), max_length=30, choices=Status.choices, default=Status.OPEN)
    received_at = models.DateTimeField(_("received at"))
    due_at = models.DateTimeField(_("due at"))
    remind_at = models.DateTimeField(_("reminder at"))
    provisional = models.BooleanField(
        _("provisional deadline"),
        default=False,
        help_text=_("The deadline reaches a year whose holiday schedule is not yet published."),
    )
    provisional_years = models.JSONField(_("years without a schedule"), default=list, blank=True)
    responded_at = models.DateTimeField(_("responded at"), null=True, blank=True)
    responded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("responded by"),
    )
    response_note = models.TextField(_("conditions or reasons"), blank=True)
    late = models.BooleanField(_("answered late"), default=False)
    # Kept at response time so reports aggregate percentiles in the database.
    response_working_hours = models.DecimalField(
        _("response time (working hours)"), max_digits=8, decimal_places=2, null=True, blank=True
    )
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="supersedes",
        verbose_name=_("superseded by"),
    )
    local_review = models.ForeignKey(
        Submission,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("local review opened"),
    )
    local_icf = models.ForeignKey(
        DocumentVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("local consent-form version"),
        help_text=_("The participating site's informed-consent form, when recognised with conditions."),
    )

    objects = RecognitionRequestQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("recognition request")
        verbose_name_plural = _("recognition requests")
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="open"), name="recognition_open_due_idx"),
            models.Index(fields=["remind_at"], condition=Q(status="open"), name="recognition_open_remind_idx"),
            models.Index(fields=["alliance", "received_at"]),
            models.Index(fields=["committee", "received_at"]),
            models.Index(fields=["-received_at", "-id"], name="recognition_latest"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "subject", "lead_decision"],
                condition=Q(status="open"),
                name="recognition_one_open_per_site_and_decision",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trial.protocol_number} → {self.committee}"


class RecognitionEffect(DeadlineEffect):
    """A recognition request's deadline effect that happened (reminder, escalation)."""

    request = models.ForeignKey(RecognitionRequest, on_delete=models.CASCADE, related_name="effects")

    class Meta:
        verbose_name = _("deadline effect")
        verbose_name_plural = _("deadline effects")
        constraints = [models.UniqueConstraint(fields=["request", "kind", "due_at"], name="recognition_effect_once")]


# --- safety reporting (ethics.safety) ------------------------------------------------------------------------------


class SafetyReportingSettings(models.Model):
    """An institution's own safety-reporting periods; an empty value falls back to the seeded national default."""

    institution = models.OneToOneField(
        Institution, on_delete=models.CASCADE, related_name="safety_settings", verbose_name=_("institution")
    )
    ec_report_hours = models.PositiveSmallIntegerField(
        _("SAE report to the ethics committee (hours)"),
        null=True,
        blank=True,
        help_text=_("Hours from the investigator's awareness. Empty: the national default (policy parameter)."),
    )
    pi_review_days = models.PositiveSmallIntegerField(
        _("PI review of a SUSAR (calendar days)"),
        null=True,
        blank=True,
        help_text=_("Calendar days from the site's receipt. Empty: the national default (policy parameter)."),
    )
    committee_review_days = models.PositiveSmallIntegerField(
        _("committee review of a safety report (calendar days)"),
        null=True,
        blank=True,
        help_text=_("Calendar days from the report to the committee. Empty: the national default."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("safety-reporting settings")
        verbose_name_plural = _("safety-reporting settings")

    def __str__(self) -> str:
        return str(self.institution)


class SafetyEventQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The site's and the trial's PIs, the site institution's offices (and the lead's research office, and the
        ethics office of the committee it was reported to), the region's regulators (who read aggregates only: they
        have no view permission on the rows)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        # Each branch is an indexed lookup run once (a hashed subplan) on the report's own columns, so a list keeps
        # reading its order index; an OR across joins made PostgreSQL test every report of the country.
        if user.role == Role.PI:
            return self.filter(
                Q(site__in=_keys(TrialSite, site_pi_id=user.pk)) | Q(trial__in=_keys(Trial, pi_id=user.pk))
            )
        if user.role == Role.ETHICS_OFFICE:
            # The site's own, and those reported to its committee (the lead's, for a site without its own approval).
            return self.filter(
                Q(site__in=_keys(TrialSite, institution_id=user.institution_id))
                | Q(ec_submission__in=_keys(Submission, committee__institution_id=user.institution_id))
            )
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(
                Q(site__in=_keys(TrialSite, institution_id=user.institution_id))
                | Q(trial__in=_keys(Trial, lead_institution_id=user.institution_id))
            )
        if user.role == Role.REGULATOR:
            return self.filter(site__in=_keys(TrialSite, institution__region_id=user.region_id))
        return self.none()


class SafetyEvent(models.Model):
    """A serious adverse event (SAE) a site's investigator reports, or a SUSAR the sponsor sends to the site; a
    follow-up report is a row of its own pointing at the first report. No patient identity: at most a subject code.
    """

    class Kind(models.TextChoices):
        SAE = "sae", _("Serious adverse event (SAE)")
        SUSAR = "susar", _("Suspected unexpected serious adverse reaction (SUSAR)")

    class Status(models.TextChoices):
        RECORDED = "recorded", _("Recorded, not yet sent to the sponsor")
        SENT_TO_SPONSOR = "sent_to_sponsor", _("Sent to the sponsor")
        RECEIVED = "received", _("Received from the sponsor")
        PI_REVIEWED = "pi_reviewed", _("Reviewed by the PI")
        REPORTED_TO_EC = "reported_to_ec", _("Reported to the ethics committee")
        REVIEWED = "reviewed", _("Reviewed by the ethics committee")
        WITHDRAWN = "withdrawn", _("Withdrawn (entered in error)")

    class Criterion(models.TextChoices):
        DEATH = "death", _("Results in death")
        LIFE_THREATENING = "life_threatening", _("Life-threatening")
        HOSPITALISATION = "hospitalisation", _("Requires or prolongs hospitalisation")
        DISABILITY = "disability", _("Persistent or significant disability or incapacity")
        CONGENITAL_ANOMALY = "congenital_anomaly", _("Congenital anomaly or birth defect")
        OTHER_IMPORTANT = "other_important", _("Other important medical event")

    class Expectedness(models.TextChoices):
        EXPECTED = "expected", pgettext_lazy("safety", "Expected")
        UNEXPECTED = "unexpected", pgettext_lazy("safety", "Unexpected")

    class Causality(models.TextChoices):
        RELATED = "related", pgettext_lazy("safety", "Related")
        POSSIBLY_RELATED = "possibly_related", pgettext_lazy("safety", "Possibly related")
        UNLIKELY_RELATED = "unlikely_related", pgettext_lazy("safety", "Unlikely related")
        NOT_RELATED = "not_related", pgettext_lazy("safety", "Not related")
        NOT_ASSESSABLE = "not_assessable", pgettext_lazy("safety", "Cannot be assessed")

    class Outcome(models.TextChoices):
        ONGOING = "ongoing", pgettext_lazy("safety", "Not yet recovered")
        RECOVERING = "recovering", pgettext_lazy("safety", "Recovering")
        RECOVERED = "recovered", pgettext_lazy("safety", "Recovered")
        RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae", _("Recovered with sequelae")
        FATAL = "fatal", pgettext_lazy("safety", "Fatal")
        UNKNOWN = "unknown", pgettext_lazy("safety", "Unknown")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="safety_events", verbose_name=_("trial"))
    site = models.ForeignKey(
        "trials.TrialSite", on_delete=models.PROTECT, related_name="safety_events", verbose_name=_("site")
    )
    subject = models.ForeignKey(
        "trials.EnrolmentSubject",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="safety_events",
        verbose_name=_("subject code"),
    )
    follow_up_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="follow_ups",
        verbose_name=_("follow-up of"),
    )
    sequence = models.PositiveSmallIntegerField(_("report number"), default=0, help_text=_("0: the first report."))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    term = models.CharField(_("event term"), max_length=200, help_text=_("e.g. cytokine release syndrome, grade 4."))
    description = models.TextField(_("description"), help_text=_("No names, ID numbers or other patient identity."))
    criteria = models.JSONField(_("seriousness criteria"), default=list)
    expectedness = models.CharField(_("expectedness"), max_length=20, choices=Expectedness.choices)
    causality = models.CharField(_("causality"), max_length=20, choices=Causality.choices)
    outcome = models.CharField(
        pgettext_lazy("safety", "outcome"), max_length=30, choices=Outcome.choices, default=Outcome.ONGOING
    )
    onset_on = models.DateField(_("onset date"), null=True, blank=True)
    aware_at = models.DateTimeField(
        _("investigator aware at"), null=True, blank=True, help_text=_("SAE: when the investigator became aware.")
    )
    sponsor_aware_on = models.DateField(
        _("sponsor aware on (day 0)"), null=True, blank=True, help_text=_("SUSAR: the day the sponsor learned of it.")
    )
    received_at = models.DateTimeField(
        _("received by the site at"), null=True, blank=True, help_text=_("SUSAR: when the site received the report.")
    )
    sponsor_reference = models.CharField(_("sponsor's case number"), max_length=60, blank=True)
    sponsor_notified_at = models.DateTimeField(_("sent to the sponsor at"), null=True, blank=True)
    pi_reviewed_at = models.DateTimeField(_("PI reviewed at"), null=True, blank=True)
    pi_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("PI reviewed by"),
    )
    ec_reported_at = models.DateTimeField(_("reported to the ethics committee at"), null=True, blank=True)
    ec_submission = models.ForeignKey(
        "Submission",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="safety_events",
        verbose_name=_("ethics submission"),
    )
    committee_reviewed_at = models.DateTimeField(_("committee reviewed at"), null=True, blank=True)
    committee_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("committee reviewed by"),
    )
    committee_opinion = models.TextField(_("committee's opinion"), blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    # The earliest due moment of its open clocks (none when every clock is met or cancelled), kept by ethics.safety
    # whenever a clock opens, is met or is cancelled (ethics.rollups checks it): the lists order by it, overdue
    # first, reading an index instead of aggregating every report's clocks before the page is cut.
    next_due_at = models.DateTimeField(_("next deadline"), null=True, blank=True, editable=False)

    objects = SafetyEventQuerySet.as_manager()
    # The next deadline is derived from the clocks (which keep their own times), not an edit anyone made.
    history = HistoricalRecords(excluded_fields=["next_due_at"])

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("safety report")
        verbose_name_plural = _("safety reports")
        indexes = [
            models.Index(fields=["site", "created_at"]),
            models.Index(fields=["trial", "kind"]),
            models.Index(fields=["-created_at", "-id"], name="safety_event_latest"),
            # The lists' order: open reports soonest due first (NULLs, nothing open, sort last), then the newest.
            models.Index(fields=["next_due_at", "-created_at", "-id"], name="safety_event_next_due"),
            # The admin's search (with a trigram index on the term, PostgreSQL only: migration ethics 0012).
            models.Index(fields=["sponsor_reference"], name="safety_event_sponsor_ref"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="susar", sponsor_aware_on__isnull=False, received_at__isnull=False)
                | Q(kind="sae", aware_at__isnull=False),
                name="safety_event_has_its_start",
            ),
        ]

    def __str__(self) -> str:
        number = f" #{self.sequence}" if self.sequence else ""
        return f"{self.get_kind_display()}{number} · {self.trial.protocol_number} · {self.term}"

    @property
    def fatal_or_life_threatening(self) -> bool:
        return bool({self.Criterion.DEATH, self.Criterion.LIFE_THREATENING} & set(self.criteria))


class SafetyEventStep(models.Model):
    """The report's timeline: who took which step, when it happened and when it was recorded."""

    event = models.ForeignKey(SafetyEvent, on_delete=models.CASCADE, related_name="steps", verbose_name=_("report"))
    step = models.CharField(pgettext_lazy("safety", "step"), max_length=30)
    from_status = models.CharField(_("from"), max_length=20, choices=SafetyEvent.Status.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=20, choices=SafetyEvent.Status.choices, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    happened_at = models.DateTimeField(_("happened at"))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["event_id", "happened_at", "id"]
        verbose_name = _("safety report step")
        verbose_name_plural = _("safety report steps")

    def __str__(self) -> str:
        return f"{self.step} @ {timezone.localtime(self.happened_at):%Y-%m-%d %H:%M}"


class SafetyClockQuerySet(models.QuerySet):
    def open(self):
        return self.filter(met_at__isnull=True, cancelled=False)

    def visible_to(self, user):
        """The clocks of the safety reports ``user`` sees (``SafetyEvent.visible_to``). A regulator's are read by
        the region copied onto the clock, so the timeliness report is a range of its own indexes."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.REGULATOR:
            return self.filter(region_id=user.region_id)
        return self.filter(event__in=SafetyEvent.objects.visible_to(user).values("pk"))


class SafetyClock(models.Model):
    """One reporting deadline of a safety report: when it started, when it is due, when it was met (late or not).
    The due moment is a column (partial index on open clocks); the sweep and ETA tasks act on it."""

    class Kind(models.TextChoices):
        SPONSOR_REPORT = "sponsor_report", _("SAE: investigator to sponsor")
        EC_REPORT = "ec_report", _("SAE: investigator to ethics committee")
        SUSAR_EXPEDITED = "susar_expedited", _("SUSAR: sponsor's expedited report")
        SUSAR_FOLLOW_UP = "susar_follow_up", _("SUSAR: sponsor's follow-up information")
        PI_REVIEW = "pi_review", _("SUSAR: review by the site PI")
        COMMITTEE_REVIEW = "committee_review", _("Review by the ethics committee")

    event = models.ForeignKey(SafetyEvent, on_delete=models.CASCADE, related_name="clocks", verbose_name=_("report"))
    kind = models.CharField(pgettext_lazy("safety", "clock"), max_length=20, choices=Kind.choices)
    started_at = models.DateTimeField(_("started at"))
    due_at = models.DateTimeField(_("due at"))
    remind_at = models.DateTimeField(_("reminder at"))
    period = models.PositiveSmallIntegerField(pgettext_lazy("safety", "period"))
    unit = models.CharField(_("unit"), max_length=20)
    period_source = models.CharField(_("period from"), max_length=200, help_text=_("The rule or setting it came from."))
    met_at = models.DateTimeField(_("met at"), null=True, blank=True)
    late = models.BooleanField(_("late"), default=False)
    # Kept when the clock is met, so reports aggregate percentiles in the database.
    elapsed_hours = models.DecimalField(_("time taken (hours)"), max_digits=9, decimal_places=2, null=True, blank=True)
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True)
    cancelled = models.BooleanField(_("cancelled"), default=False, help_text=_("The report was withdrawn."))
    # The report's trial, its site's institution and that institution's region, copied when the clock starts
    # (ethics.rollups checks them): the timeliness report groups a region's clocks by institution or trial and
    # reads them in that order from the indexes below, with the time taken the medians sort by.
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="+", db_index=False)
    site_institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+", db_index=False)
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="+", db_index=False)

    objects = SafetyClockQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("safety reporting clock")
        verbose_name_plural = _("safety reporting clocks")
        indexes = [
            models.Index(
                fields=["due_at"], condition=Q(met_at__isnull=True, cancelled=False), name="safety_clock_open_due_idx"
            ),
            models.Index(
                fields=["remind_at"],
                condition=Q(met_at__isnull=True, cancelled=False),
                name="safety_clock_open_remind_idx",
            ),
            models.Index(fields=["kind", "started_at"]),
            models.Index(
                fields=["region", "site_institution", "kind", "elapsed_hours"],
                include=["met_at", "late", "due_at", "started_at", "trial"],
                condition=Q(cancelled=False),
                name="safety_clock_by_institution",
            ),
            models.Index(
                fields=["region", "trial", "kind", "elapsed_hours"],
                include=["met_at", "late", "due_at", "started_at", "site_institution"],
                condition=Q(cancelled=False),
                name="safety_clock_by_trial",
            ),
        ]
        constraints = [models.UniqueConstraint(fields=["event", "kind"], name="safety_clock_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {timezone.localtime(self.due_at):%Y-%m-%d %H:%M}"


class SafetyEffect(DeadlineEffect):
    """A safety clock's effect that happened (reminder, escalation)."""

    clock = models.ForeignKey(SafetyClock, on_delete=models.CASCADE, related_name="effects")

    class Meta:
        verbose_name = _("safety clock effect")
        verbose_name_plural = _("safety clock effects")
        constraints = [models.UniqueConstraint(fields=["clock", "kind", "due_at"], name="safety_effect_once")]


# --- rollups (ethics.rollups keeps them; the regulator reports read them) ----------------------------------------


class FactQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The facts of what a regulator (its region) or a system administrator (all) may count."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.REGULATOR:
            return self.filter(region_id=user.region_id)
        return self.none()

    def in_region(self, *, user, region_id: int | None):
        """The facts of a region's committees (every region for a system administrator without one)."""
        if region_id is None:
            return self if user.is_superuser and user.is_active else self.none()
        return self.filter(region_id=region_id)


class TurnaroundFact(models.Model):
    """A submission the turnaround report counts: decided (with its days from receipt to decision) or in review."""

    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, primary_key=True, related_name="+")
    # The committee's institution and its region (which scopes the report, copied so that a region's facts are one
    # index range, read in the order of the days the percentiles sort).
    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=30, choices=Submission.Status.choices)
    review_type = models.CharField(max_length=20, choices=Submission.ReviewType.choices)
    kind = models.CharField(max_length=30, choices=Submission.Kind.choices)
    decided_at = models.DateTimeField(null=True)
    days = models.FloatField(null=True)

    objects = FactQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["region", "review_type", "days", "status"], name="turnaround_fact_region"),
            models.Index(fields=["review_type", "days", "status"], name="turnaround_fact_days"),
            models.Index(fields=["institution", "decided_at"], name="turnaround_fact_institution"),
        ]

    def __str__(self) -> str:
        return f"{self.submission_id} {self.status}"


class RecognitionAnswerFact(models.Model):
    """An answered recognition request, as the timeliness report counts it (an answer is final)."""

    request = models.OneToOneField(RecognitionRequest, on_delete=models.CASCADE, primary_key=True, related_name="+")
    alliance = models.ForeignKey(Alliance, on_delete=models.CASCADE, related_name="+")
    # The participating committee's institution and its region (which scopes the report, copied as on
    # TurnaroundFact).
    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField()
    late = models.BooleanField()
    response_working_hours = models.DecimalField(max_digits=8, decimal_places=2, null=True)

    objects = FactQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["region", "alliance", "response_working_hours", "late"], name="recognition_fact_region"
            ),
            models.Index(fields=["alliance", "response_working_hours", "late"], name="recognition_fact_hours"),
            models.Index(fields=["institution", "received_at"], name="recognition_fact_institution"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {'late' if self.late else 'on time'}"
