"""IIT governance and research filings: the academic review and institutional approval (立项) of an
investigator-initiated trial, and the filings a trial owes with their deadlines (trials/filings.py holds the rules)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from simple_history.models import HistoricalRecords

from cgtclinic.models import DeadlineEffect


class TrialReview(models.Model):
    """One outcome of an IIT's academic (scientific) review or institutional approval, as the lead institution's
    research office recorded it. Rows are only added: the latest row of a kind is the trial's state for it."""

    class Kind(models.TextChoices):
        ACADEMIC = "academic", _("Academic (scientific) review")
        INSTITUTIONAL = "institutional", _("Institutional approval (立项)")

    class Outcome(models.TextChoices):
        PASSED = "passed", pgettext_lazy("review outcome", "Passed")
        NOT_PASSED = "not_passed", pgettext_lazy("review outcome", "Not passed")
        REVISE = "revise", _("Revise and resubmit")

    trial = models.ForeignKey("trials.Trial", on_delete=models.CASCADE, related_name="reviews", verbose_name=_("trial"))
    kind = models.CharField(_("review"), max_length=20, choices=Kind.choices)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices)
    decided_on = models.DateField(_("decided on"))
    comments = models.TextField(_("comments"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"))

    class Meta:
        ordering = ["trial_id", "kind", "recorded_at", "id"]
        verbose_name = _("IIT review")
        verbose_name_plural = _("IIT reviews")
        indexes = [models.Index(fields=["trial", "kind", "-recorded_at"], name="trial_review_latest")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_outcome_display()} ({self.decided_on})"


class FilingObligationQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Filings follow their trial."""
        from trials.models import Trial

        return self.filter(trial__in=Trial.objects.visible_to(user))

    def open(self):
        return self.filter(status=FilingObligation.Status.OPEN)


class FilingObligation(models.Model):
    """A filing a trial owes, due on a moment the system computed: the upload to the national medical-research
    filing system (医学研究登记备案信息系统) and its annual reports, change filings and completion summary, or the
    filing of biomedical new-technology clinical research with the health commission."""

    class Kind(models.TextChoices):
        INITIAL = "initial", _("Initial filing (upload to the national system)")
        ANNUAL = "annual", _("Annual progress report")
        CHANGE = "change", _("Change filing after an approved amendment")
        COMPLETION = "completion", _("Completion summary")
        NEW_TECHNOLOGY = "new_technology", _("New-technology clinical research filing (health commission)")

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("filing status", "Due")
        FILED = "filed", pgettext_lazy("filing status", "Filed")
        CANCELLED = "cancelled", pgettext_lazy("filing status", "No longer due")

    trial = models.ForeignKey(
        "trials.Trial", on_delete=models.CASCADE, related_name="filing_obligations", verbose_name=_("trial")
    )
    kind = models.CharField(_("filing"), max_length=20, choices=Kind.choices)
    # What the obligation arises from, so that the same event never opens it twice (e.g. "year:2", "decision:17").
    source_key = models.CharField(_("arises from"), max_length=60, editable=False)
    basis_on = models.DateField(_("counted from"))
    due_at = models.DateTimeField(_("due by"))
    remind_at = models.DateTimeField(_("reminder at"))
    # The deadline rests on a year whose holiday schedule is not yet published (working-day deadlines only).
    provisional = models.BooleanField(_("provisional"), default=False)
    provisional_years = models.JSONField(_("provisional years"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN)
    filed_on = models.DateField(_("filed on"), null=True, blank=True)
    filing_number = models.CharField(_("filing / receipt number"), max_length=100, blank=True)
    document = models.ForeignKey(
        "trials.DocumentVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("document filed"),
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    filed_at = models.DateTimeField(_("recorded at"), null=True, blank=True)
    late = models.BooleanField(_("filed late"), default=False)
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = FilingObligationQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("research filing")
        verbose_name_plural = _("research filings")
        constraints = [
            models.UniqueConstraint(fields=["trial", "kind", "source_key"], name="filing_obligation_once"),
            models.CheckConstraint(
                condition=Q(status="filed", filed_on__isnull=False) | ~Q(status="filed"),
                name="filing_obligation_filed_has_date",
            ),
        ]
        indexes = [
            # The sweep and the work queues read open rows by deadline.
            models.Index(fields=["due_at"], condition=Q(status="open"), name="filing_open_due"),
            models.Index(fields=["remind_at"], condition=Q(status="open"), name="filing_open_remind"),
            # The report counts a period's deadlines.
            models.Index(fields=["due_at", "trial", "status", "late"], name="filing_due_covering"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {timezone.localtime(self.due_at):%Y-%m-%d}"


class FilingEffect(DeadlineEffect):
    """A filing obligation's deadline effect that happened (reminder, escalation)."""

    obligation = models.ForeignKey(FilingObligation, on_delete=models.CASCADE, related_name="effects")

    class Meta:
        verbose_name = _("filing deadline effect")
        verbose_name_plural = _("filing deadline effects")
        constraints = [models.UniqueConstraint(fields=["obligation", "kind", "due_at"], name="filing_effect_once")]
