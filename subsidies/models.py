"""Subsidy programs (as data from seeds/), their eligibility and amount rules, and hospitals' claims."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from cgtclinic.models import Institution, Region
from cgtclinic.roles import Role
from trials.models import Trial, TrialSite

MONEY = {"max_digits": 14, "decimal_places": 2}


class ProgramQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Programs are public policy: research offices (who claim) see them all; a regulator sees its region's."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.REGULATOR:
            return self.filter(region_id=user.region_id)
        if user.role == Role.RESEARCH_OFFICE:
            return self
        return self.none()


class SubsidyProgram(models.Model):
    """A post-hoc subsidy a region pays hospitals, e.g. Shanghai's 50,000 RMB per enrolled gene-therapy patient.

    The amounts are not stored here: the amount rule names the policy parameters (seeds/policy/parameters.yaml)
    that hold them, read for the region on the claim's reference date.
    """

    class ProjectCapScope(models.TextChoices):
        PROJECT = "project", _("per project, over all hospitals")
        PROJECT_PER_HOSPITAL = "project_per_hospital", _("per project and hospital")

    class AmountRule(models.TextChoices):
        PER_PATIENT = "per_patient", _("Per enrolled patient, with caps")
        PERCENT_OF_COST = "percent_of_cost", _("Percentage of a cost, with a cap per item")
        FIXED_AMOUNT = "fixed_amount", _("Fixed amount per project, set by the regulator")

    code = models.SlugField(_("code"), max_length=60, unique=True)
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="subsidy_programs", verbose_name=_("region")
    )
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    source_document = models.CharField(_("source document"), max_length=200)
    source_clause = models.CharField(_("source clause"), max_length=200)
    source_quote = models.TextField(_("quoted text"), blank=True)
    year_from = models.PositiveSmallIntegerField(_("first claim year"))
    year_to = models.PositiveSmallIntegerField(
        _("last claim year"), null=True, blank=True, help_text=_("Empty while the program has no announced end.")
    )
    amount_rule = models.CharField(_("amount rule"), max_length=20, choices=AmountRule.choices)
    # Codes of PolicyParameter rows; which ones a rule needs is checked in clean().
    rate_parameter = models.CharField(_("amount per patient (policy value)"), max_length=60, blank=True)
    percent_parameter = models.CharField(_("percentage (policy value)"), max_length=60, blank=True)
    item_cap_parameter = models.CharField(_("cap per item (policy value)"), max_length=60, blank=True)
    project_cap_parameter = models.CharField(_("cap per project (policy value)"), max_length=60, blank=True)
    project_cap_scope = models.CharField(
        _("the project cap counts"),
        max_length=30,
        choices=ProjectCapScope.choices,
        default=ProjectCapScope.PROJECT,
        help_text=_(
            "What the cap per project covers, as the program's text says: the project's awards at every hospital "
            "(the default reading of 每个项目资助总额), or each hospital's awards for it separately."
        ),
    )
    institution_year_cap_parameter = models.CharField(
        _("cap per institution per year (policy value)"), max_length=60, blank=True
    )
    fixed_amount_rmb = models.DecimalField(
        _("fixed amount per project (RMB)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Set by the region's regulator for a fixed-amount program."),
        **MONEY,
    )
    fixed_amount_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    fixed_amount_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    selective = models.BooleanField(
        _("awarded selectively"),
        default=False,
        help_text=_("The regulator chooses among eligible claims (择优) and may reduce or reject them."),
    )

    objects = ProgramQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["region__code", "code"]
        verbose_name = _("subsidy program")
        verbose_name_plural = _("subsidy programs")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        lang = translation.get_language() or "zh-hans"
        return self.name_en if lang.startswith("en") and self.name_en else self.name_zh

    REQUIRED_PARAMETERS = {
        AmountRule.PER_PATIENT: ("rate_parameter",),
        AmountRule.PERCENT_OF_COST: ("percent_parameter",),
        AmountRule.FIXED_AMOUNT: (),
    }

    def clean(self):
        missing = [f for f in self.REQUIRED_PARAMETERS.get(self.amount_rule, ()) if not getattr(self, f)]
        if missing:
            raise ValidationError({f: _("This amount rule needs this policy value.") for f in missing})
        if self.year_to is not None and self.year_to < self.year_from:
            raise ValidationError({"year_to": _("The last year cannot come before the first.")})

    def applies_to(self, year: int) -> bool:
        return self.year_from <= year and (self.year_to is None or year <= self.year_to)


class EligibilityRule(models.Model):
    """One condition a trial must meet for a program; its parameters are data (seeds/policy/subsidy_programs.yaml)."""

    class Kind(models.TextChoices):
        THERAPY_CATEGORY = "therapy_category", _("Therapy category")
        TRIAL_KIND = "trial_kind", _("Kind of trial and sponsor")
        RESEARCH_COMPLETED = "research_completed", _("Research completed before the claim")
        ETHICS_APPROVAL = "ethics_approval", _("Valid ethics approval at the site")
        STARTUP_WITHIN_TARGET = "startup_within_target", _("Site start-up within the monitoring target")

    program = models.ForeignKey(
        SubsidyProgram, on_delete=models.CASCADE, related_name="eligibility_rules", verbose_name=_("program")
    )
    kind = models.CharField(_("rule"), max_length=30, choices=Kind.choices)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    source_clause = models.CharField(_("source clause"), max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(_("order"), default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["program_id", "position", "id"]
        verbose_name = _("eligibility rule")
        verbose_name_plural = _("eligibility rules")
        constraints = [models.UniqueConstraint(fields=["program", "kind"], name="eligibility_rule_one_per_kind")]

    def __str__(self) -> str:
        return self.get_kind_display()

    def clean(self):
        from subsidies.eligibility import check_params

        problems = check_params(self.kind, self.params)
        if problems:
            raise ValidationError({"params": problems})


class ClaimQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The hospital's own claims for its research office; submitted claims of the region for its regulators."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(institution_id=user.institution_id)
        if user.role == Role.REGULATOR:
            return self.filter(program__region_id=user.region_id).exclude(status=Claim.Status.DRAFT)
        return self.none()

    def editable_by(self, user):
        if user.is_superuser:
            return self
        if user.is_active and user.role == Role.RESEARCH_OFFICE:
            return self.filter(institution_id=user.institution_id)
        return self.none()


class Claim(models.Model):
    """A hospital's claim under one program for one year, computed from the enrolment ledger."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        UNDER_REVIEW = "under_review", _("Under regulator review")
        APPROVED = "approved", _("Approved")
        PARTIALLY_APPROVED = "partially_approved", _("Partially approved")
        REJECTED = "rejected", _("Rejected")
        PARTIALLY_PAID = "partially_paid", _("Partly paid")
        PAID = "paid", _("Paid")

    # Claims still being worked on: one at a time per hospital and program, so two can never count a patient twice.
    OPEN_STATUSES = (Status.DRAFT, Status.SUBMITTED, Status.UNDER_REVIEW)
    # Claims whose patients and amounts count as claimed (a rejected or draft claim releases them).
    COUNTING_STATUSES = (
        Status.SUBMITTED,
        Status.UNDER_REVIEW,
        Status.APPROVED,
        Status.PARTIALLY_APPROVED,
        Status.PARTIALLY_PAID,
        Status.PAID,
    )
    # Decided claims with money still owed: the regulator records payments until the balance is nil.
    PAYABLE_STATUSES = (Status.APPROVED, Status.PARTIALLY_APPROVED, Status.PARTIALLY_PAID)

    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="subsidy_claims", verbose_name=_("institution")
    )
    program = models.ForeignKey(
        SubsidyProgram, on_delete=models.PROTECT, related_name="claims", verbose_name=_("program")
    )
    year = models.PositiveSmallIntegerField(_("year"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    reference_date = models.DateField(
        _("reference date"), help_text=_("The day policy values and eligibility are read for.")
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("opened by")
    )
    opened_at = models.DateTimeField(_("opened at"))
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("submitted by"),
    )
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    # What the regulator reviews: counts, amounts, explanations and evidence as they were on submission.
    snapshot = models.JSONField(_("frozen snapshot"), null=True, blank=True, editable=False)
    amount_claimed = models.DecimalField(_("amount claimed (RMB)"), default=Decimal("0.00"), **MONEY)
    amount_approved = models.DecimalField(_("amount approved (RMB)"), null=True, blank=True, **MONEY)
    # The sum of the claim's payments (ClaimPayment rows), and the day and reference of the last one.
    amount_paid = models.DecimalField(_("amount paid (RMB)"), null=True, blank=True, **MONEY)
    paid_on = models.DateField(_("paid on"), null=True, blank=True)
    payment_reference = models.CharField(_("payment reference"), max_length=100, blank=True)
    decision_note = models.TextField(_("regulator's note"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("status changed at"), null=True, blank=True)

    objects = ClaimQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-year", "-opened_at", "-id"]
        verbose_name = _("subsidy claim")
        verbose_name_plural = _("subsidy claims")
        constraints = [
            models.UniqueConstraint(
                fields=["institution", "program"],
                condition=Q(status__in=["draft", "submitted", "under_review"]),
                name="claim_one_open_per_institution_program",
            )
        ]
        indexes = [
            models.Index(fields=["program", "year", "status"], name="claim_program_year_status"),
            models.Index(fields=["-year", "-opened_at", "-id"], name="claim_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.institution}"

    @property
    def reference(self) -> str:
        # Short enough to quote on the phone; the program is always shown beside it.
        return f"{self.year}-{self.pk:05d}" if self.pk else ""

    @property
    def balance(self) -> Decimal | None:
        """What is approved and not yet paid; None before the decision and for a rejected claim."""
        if self.amount_approved is None or self.status == self.Status.REJECTED:
            return None
        return self.amount_approved - (self.amount_paid or Decimal("0.00"))


class ClaimLine(models.Model):
    """One trial (or, for a percentage program, one cost item) on a claim, with how its amount was reached."""

    class Status(models.TextChoices):
        ELIGIBLE = "eligible", _("Eligible")
        INELIGIBLE = "ineligible", _("Not eligible")
        EXCLUDED = "excluded", _("Excluded by the hospital")

    claim = models.ForeignKey(Claim, on_delete=models.CASCADE, related_name="lines", verbose_name=_("claim"))
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="claim_lines", verbose_name=_("trial"))
    site = models.ForeignKey(
        TrialSite, on_delete=models.PROTECT, related_name="claim_lines", verbose_name=_("trial site")
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    # [{"rule": kind, "zh-hans": text, "en": text}] for an ineligible line: the reasons in both interface languages.
    ineligible_reasons = models.JSONField(_("why not eligible"), default=list, blank=True)
    enrolled_total = models.PositiveIntegerField(_("enrolled (ledger)"), default=0)
    previously_claimed = models.PositiveIntegerField(_("already claimed in earlier claims"), default=0)
    patients_claimed = models.PositiveIntegerField(_("patients in this claim"), default=0)
    previously_awarded = models.DecimalField(_("already awarded for the project (RMB)"), default=0, **MONEY)
    item_reference = models.CharField(
        _("item reference"), max_length=60, blank=True, help_text=_("For a cost item: the insurance policy number.")
    )
    cost_rmb = models.DecimalField(_("cost (RMB)"), null=True, blank=True, **MONEY)
    amount_computed = models.DecimalField(_("amount computed (RMB)"), default=Decimal("0.00"), **MONEY)
    # [{"code": step, ...numbers}]: rendered in the reader's language by subsidies.rules.describe_step.
    explanation = models.JSONField(_("how the amount was computed"), default=list, blank=True)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    excluded_reason = models.TextField(_("reason for exclusion"), blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    excluded_at = models.DateTimeField(null=True, blank=True)
    approved_amount = models.DecimalField(_("amount approved (RMB)"), null=True, blank=True, **MONEY)
    regulator_note = models.TextField(_("regulator's reason"), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["claim_id", "id"]
        verbose_name = _("claim line")
        verbose_name_plural = _("claim lines")
        constraints = [
            models.UniqueConstraint(fields=["claim", "trial", "item_reference"], name="claim_line_unique_trial_item"),
            models.CheckConstraint(condition=Q(amount_computed__gte=0), name="claim_line_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.protocol_number}{' ' + self.item_reference if self.item_reference else ''}"

    @property
    def counts(self) -> bool:
        """Whether the line adds to the claim's amount."""
        return self.status == self.Status.ELIGIBLE


class ClaimStatusChange(models.Model):
    claim = models.ForeignKey(Claim, on_delete=models.CASCADE, related_name="status_changes", verbose_name=_("claim"))
    from_status = models.CharField(_("from"), max_length=20, choices=Claim.Status.choices)
    to_status = models.CharField(_("to"), max_length=20, choices=Claim.Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    at = models.DateTimeField(_("at"))
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["claim_id", "at", "id"]
        verbose_name = _("claim status change")
        verbose_name_plural = _("claim status changes")

    def __str__(self) -> str:
        return f"{self.get_from_status_display()} → {self.get_to_status_display()}"


class ClaimPayment(models.Model):
    """One payment the regulator records against a decided claim; a claim may be paid in several instalments."""

    claim = models.ForeignKey(Claim, on_delete=models.PROTECT, related_name="payments", verbose_name=_("claim"))
    amount = models.DecimalField(_("amount paid (RMB)"), validators=[MinValueValidator(Decimal("0.01"))], **MONEY)
    paid_on = models.DateField(_("paid on"))
    reference = models.CharField(_("payment reference"), max_length=100, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"))
    balance_after = models.DecimalField(_("balance after (RMB)"), **MONEY)

    class Meta:
        ordering = ["claim_id", "paid_on", "id"]
        verbose_name = _("claim payment")
        verbose_name_plural = _("claim payments")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="claim_payment_amount_positive"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="claim_payment_balance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.paid_on} {self.amount}"


# --- rollups (subsidies.rollups keeps them; the regulator reports read them) -------------------------------------


class ClaimRollupQuerySet(models.QuerySet):
    def visible_to(self, user):
        """As ``Claim.visible_to`` for the submitted claims a rollup counts (it never counts drafts)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(claiming_institution_id=user.institution_id)
        if user.role == Role.REGULATOR:
            return self.filter(program__region_id=user.region_id)
        return self.none()


class ClaimYearTotal(models.Model):
    """Submitted claims of one program, hospital, claim year and status: how many, and their amounts."""

    program = models.ForeignKey(SubsidyProgram, on_delete=models.CASCADE, related_name="+")
    claiming_institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=Claim.Status.choices)
    # Named apart from the report's columns, which are sums of these.
    claim_count = models.PositiveIntegerField()
    claimed_rmb = models.DecimalField(**MONEY)
    approved_rmb = models.DecimalField(**MONEY)
    paid_rmb = models.DecimalField(**MONEY)
    # Approved and not yet paid (claims still payable), and what the claims take from the yearly cap.
    owed_rmb = models.DecimalField(**MONEY)
    counted_rmb = models.DecimalField(**MONEY)

    objects = ClaimRollupQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["program", "claiming_institution", "year", "status"], name="claim_year_total_key"
            )
        ]
        indexes = [models.Index(fields=["claiming_institution", "program"], name="claim_year_total_institution")]

    def __str__(self) -> str:
        return f"{self.program_id} {self.claiming_institution_id} {self.year} {self.status}"


class ProjectClaimTotal(models.Model):
    """The eligible lines of one hospital's counting claims under one program for one trial (project)."""

    program = models.ForeignKey(SubsidyProgram, on_delete=models.CASCADE, related_name="+")
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="+")
    claiming_institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    claim_count = models.PositiveIntegerField()
    patient_count = models.PositiveIntegerField()
    counted_rmb = models.DecimalField(**MONEY)

    objects = ClaimRollupQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "trial", "claiming_institution"], name="project_claim_total_key")
        ]
        indexes = [
            models.Index(fields=["claiming_institution", "program"], name="project_total_institution"),
        ]

    def __str__(self) -> str:
        return f"{self.program_id} {self.trial_id} {self.claiming_institution_id}"
