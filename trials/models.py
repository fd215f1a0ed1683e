"""Trials, their sites with start-up milestones, and versioned trial documents."""

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from simple_history.models import HistoricalRecords

from cgtclinic.models import Department, Institution, Sponsor, User
from cgtclinic.roles import Role


class RollupRefreshingQuerySet(models.QuerySet):
    """An update in bulk keeps the report rollup current too (a save does through ``trials.rollups``); the ethics
    app records a site's approval so."""

    # The column naming each row's trial, and the name of the set in ``trials.rollups`` of fields the rollup copies.
    trial_column = "pk"
    rollup_fields = "TRIAL_FIELDS"

    def update(self, **kwargs):
        from trials import rollups

        with transaction.atomic():
            copied = getattr(rollups, self.rollup_fields) & set(kwargs)
            ids = list(self.values_list(self.trial_column, flat=True)) if copied else []
            updated = super().update(**kwargs)
            rollups.refresh_trials(ids)
        return updated


class TrialQuerySet(RollupRefreshingQuerySet):
    def visible_to(self, user):
        """The trials a user may see: the one place this rule lives."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        sites = TrialSite.objects.filter(trial=OuterRef("pk"))
        # Each branch is an indexed lookup run once (a hashed subplan), ORed as a filter on the list's own order:
        # an OR across a join, or an EXISTS per row, would make PostgreSQL test every trial of the country.
        if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
            hosted = TrialSite.objects.filter(institution_id=user.institution_id).order_by().values("trial_id")
            return self.filter(Q(lead_institution_id=user.institution_id) | Q(pk__in=hosted))
        if user.role == Role.PI:
            # A PI sees the trials they lead, the sites they run, and the sites whose delegation log names them.
            run = TrialSite.objects.filter(site_pi_id=user.pk).order_by().values("trial_id")
            delegated = Delegation.objects.filter(person_id=user.pk).order_by().values("site__trial_id")
            return self.filter(Q(pi_id=user.pk) | Q(pk__in=run) | Q(pk__in=delegated))
        if user.role == Role.REGULATOR:
            return self.filter(
                Q(lead_institution__region_id=user.region_id)
                | Exists(sites.filter(institution__region_id=user.region_id))
            )
        return self.none()

    def editable_by(self, user):
        """Trials whose master record a user may change: the lead institution's research office."""
        if user.is_superuser:
            return self
        if user.is_active and user.role == Role.RESEARCH_OFFICE:
            return self.filter(lead_institution_id=user.institution_id)
        return self.none()


class Trial(models.Model):
    class Kind(models.TextChoices):
        IIT = "iit", _("Investigator-initiated trial (IIT)")
        REGISTRATION = "registration", _("Industry-sponsored registration trial")
        OTHER = "other", _("Other clinical research")

    class TherapyCategory(models.TextChoices):
        # Cells whose genes were modified ex vivo (a CAR or TCR brought in by a vector or by editing): gene therapy
        # as well as cell therapy, so a program says whether it counts them (seeds/policy/subsidy_programs.yaml).
        GENE_MODIFIED_CELL = "gene_modified_cell", _("Gene-modified cell therapy (CAR-T, TCR-T)")
        IMMUNE_CELL = "immune_cell", _("Other immune-cell therapy (not gene-modified)")
        STEM_CELL = "stem_cell", _("Stem-cell therapy")
        VIRAL_VECTOR_GENE = "viral_vector_gene", _("Gene therapy with viral vector")
        GENE_EDITING = "gene_editing", _("Gene editing")
        NUCLEIC_ACID = "nucleic_acid", _("Nucleic-acid / mRNA therapy")
        OTHER = "other", _("Other")

    class Phase(models.TextChoices):
        EARLY = "early", _("Early / exploratory")
        PHASE_1 = "1", _("Phase I")
        PHASE_1_2 = "1_2", _("Phase I/II")
        PHASE_2 = "2", _("Phase II")
        PHASE_2_3 = "2_3", _("Phase II/III")
        PHASE_3 = "3", _("Phase III")
        PHASE_4 = "4", _("Phase IV")
        NOT_APPLICABLE = "na", _("Not applicable")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        UNDER_REVIEW = "under_review", _("Under review")
        APPROVED = "approved", _("Approved")
        ACTIVE = "active", _("Active")
        ENROLMENT_CLOSED = "enrolment_closed", _("Enrolment closed")
        COMPLETED = "completed", _("Completed")
        SUSPENDED = "suspended", _("Suspended")
        TERMINATED = "terminated", _("Terminated")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class HGRStatus(models.TextChoices):
        NOT_REQUIRED = "not_required", _("Not required")
        NOT_APPLIED = "not_applied", _("Required, not yet applied")
        APPLIED = "applied", _("Applied, pending")
        APPROVED = "approved", _("Approved")
        FILED = "filed", _("Filed (international cooperation filing)")
        REJECTED = "rejected", _("Rejected")

    title_zh = models.CharField(_("title (Chinese)"), max_length=300)
    title_en = models.CharField(_("title (English)"), max_length=300, blank=True)
    protocol_number = models.CharField(_("protocol number"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    therapy_category = models.CharField(_("therapy category"), max_length=30, choices=TherapyCategory.choices)
    phase = models.CharField(_("phase"), max_length=10, choices=Phase.choices)
    sponsor = models.ForeignKey(
        Sponsor,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="trials",
        verbose_name=_("sponsor"),
        help_text=_("The sponsoring enterprise; may be empty for an investigator-initiated trial."),
    )
    lead_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="led_trials", verbose_name=_("lead institution")
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="trials",
        verbose_name=_("department"),
    )
    pi = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="trials_as_pi",
        verbose_name=_("principal investigator"),
    )
    target_enrolment = models.PositiveIntegerField(_("target enrolment"))
    nmpa_approval_number = models.CharField(_("NMPA approval / implied licence number"), max_length=100, blank=True)
    # The day of the NMPA approval letter (批件), or the day implied permission took effect (默示许可): what the
    # regions' "new clinical-trial approvals" targets count.
    nmpa_approved_on = models.DateField(_("NMPA approval / implied permission date"), null=True, blank=True)
    filing_number = models.CharField(_("national medical-research filing number"), max_length=100, blank=True)
    filed_on = models.DateField(_("national medical-research filing date"), null=True, blank=True)
    # Biomedical new-technology clinical research (State Council Order No. 818): the research office's answer,
    # with its reason; empty until answered. Written only by trials.filings.new_technology_set.
    is_new_technology = models.BooleanField(
        _("biomedical new-technology clinical research"), null=True, blank=True, editable=False
    )
    new_technology_reason = models.TextField(_("reason for the new-technology answer"), blank=True, editable=False)
    new_technology_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
        verbose_name=_("new-technology answer by"),
    )
    new_technology_set_at = models.DateTimeField(_("new-technology answer at"), null=True, blank=True, editable=False)
    chictr_id = models.CharField(
        _("ChiCTR id"),
        max_length=20,
        blank=True,
        validators=[RegexValidator(r"^ChiCTR\d{10}$", _("A ChiCTR id looks like ChiCTR2400012345."))],
    )
    nct_id = models.CharField(
        _("ClinicalTrials.gov id"),
        max_length=11,
        blank=True,
        validators=[RegexValidator(r"^NCT\d{8}$", _("A ClinicalTrials.gov id looks like NCT01234567."))],
    )
    hgr_status = models.CharField(
        _("human genetic resources approval"), max_length=20, choices=HGRStatus.choices, default=HGRStatus.NOT_APPLIED
    )
    hgr_approval_number = models.CharField(_("HGR approval number"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    status_changed_at = models.DateTimeField(_("status changed at"), null=True, blank=True)
    # Where a suspension came from, so resuming returns there.
    status_before_suspension = models.CharField(max_length=20, choices=Status.choices, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        editable=False,
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = TrialQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("trial")
        verbose_name_plural = _("trials")
        constraints = [
            models.UniqueConstraint(
                fields=["lead_institution", "protocol_number"], name="trial_unique_protocol_per_lead"
            )
        ]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["kind", "therapy_category"]),
            models.Index(fields=["-created_at", "-id"], name="trial_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.protocol_number} {self.title}"

    @property
    def title(self) -> str:
        lang = translation.get_language() or "zh-hans"
        if lang.startswith("en") and self.title_en:
            return self.title_en
        return self.title_zh


class TrialStatusChange(models.Model):
    """One row per lifecycle step: who moved the trial, from what, to what, when, and why."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="status_changes", verbose_name=_("trial"))
    from_status = models.CharField(_("from"), max_length=20, choices=Trial.Status.choices)
    to_status = models.CharField(_("to"), max_length=20, choices=Trial.Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    at = models.DateTimeField(_("at"))
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        ordering = ["trial_id", "at", "id"]
        verbose_name = _("trial status change")
        verbose_name_plural = _("trial status changes")

    def __str__(self) -> str:
        return f"{self.get_from_status_display()} → {self.get_to_status_display()}"


def site_scope_q(user, *, site: str, trial: str) -> Q:
    """The sites a signed-in, active, non-superuser ``user`` may see, as a filter on any table that carries a
    site and its trial (``site``/``trial`` name those columns: ``"pk"``/``"trial"`` on TrialSite itself).

    Each branch is an indexed lookup run once (a hashed subplan) ORed on the table's own columns, so a list keeps
    reading its own order index; an OR across a join would make PostgreSQL test every site of the country."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
        own = TrialSite.objects.filter(institution_id=user.institution_id).order_by().values("pk")
        led = Trial.objects.filter(lead_institution_id=user.institution_id).order_by().values("pk")
        return Q(**{f"{site}__in": own}) | Q(**{f"{trial}__in": led})
    if user.role == Role.PI:
        run = TrialSite.objects.filter(site_pi_id=user.pk).order_by().values("pk")
        led = Trial.objects.filter(pi_id=user.pk).order_by().values("pk")
        delegated = Delegation.objects.filter(person_id=user.pk).order_by().values("site_id")
        return Q(**{f"{site}__in": run}) | Q(**{f"{trial}__in": led}) | Q(**{f"{site}__in": delegated})
    if user.role == Role.REGULATOR:
        return Q(**{f"{site}__in": TrialSite.objects.filter(institution__region_id=user.region_id).values("pk")})
    return Q(pk__in=[])


class TrialSiteQuerySet(RollupRefreshingQuerySet):
    trial_column = "trial_id"
    rollup_fields = "SITE_FIELDS"

    def visible_to(self, user):
        """Sites a user may see: own institution's, all sites of trials it leads, a PI's, a region's."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(site_scope_q(user, site="pk", trial="trial"))

    def editable_by(self, user):
        """The lead's research office manages every site; a participating office manages its own."""
        if user.is_superuser:
            return self
        if user.is_active and user.role == Role.RESEARCH_OFFICE:
            return self.filter(
                Q(institution_id=user.institution_id) | Q(trial__lead_institution_id=user.institution_id)
            )
        return self.none()


class TrialSite(models.Model):
    """A trial at one institution, with the dates that measure how long start-up took."""

    class SiteRole(models.TextChoices):
        LEAD = "lead", _("Lead site")
        PARTICIPATING = "participating", _("Participating site")

    # Start-up milestones in the order they happen; the services check that order.
    MILESTONES = (
        "submission_received_on",
        "ethics_approved_on",
        "contract_signed_on",
        "site_initiated_on",
        "first_patient_in_on",
    )

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="sites", verbose_name=_("trial"))
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="trial_sites", verbose_name=_("institution")
    )
    role = models.CharField(_("site role"), max_length=20, choices=SiteRole.choices)
    site_pi = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sites_as_pi",
        verbose_name=_("site PI"),
    )
    site_target = models.PositiveIntegerField(_("site target enrolment"), default=0)
    submission_received_on = models.DateField(_("submission received"), null=True, blank=True)
    ethics_approved_on = models.DateField(_("ethics approved"), null=True, blank=True)
    contract_signed_on = models.DateField(_("contract signed"), null=True, blank=True)
    site_initiated_on = models.DateField(_("site initiated"), null=True, blank=True)
    first_patient_in_on = models.DateField(_("first patient in"), null=True, blank=True)
    # Written by the ethics app when the site's committee approves (or the site recognises the lead's approval)
    # and after each continuing review; empty for an approval recorded by hand, whose validity then follows
    # the national continuing-review interval (see trials.enrolment.ethics_valid_until).
    ethics_valid_until = models.DateField(_("ethics approval valid until"), null=True, blank=True)

    objects = TrialSiteQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial_id", "role", "id"]
        verbose_name = _("trial site")
        verbose_name_plural = _("trial sites")
        constraints = [
            models.UniqueConstraint(fields=["trial", "institution"], name="trial_site_unique_institution"),
            models.UniqueConstraint(fields=["trial"], condition=Q(role="lead"), name="trial_site_one_lead"),
        ]
        # The admin lists' order: a page is read from this index instead of sorting every site.
        indexes = [models.Index(fields=["trial", "role", "id"], name="trial_site_list")]

    def __str__(self) -> str:
        return f"{self.trial.protocol_number} @ {self.institution}"

    @property
    def startup_days(self) -> int | None:
        """Calendar days from submission received to site initiation (Beijing's start-up measure)."""
        if self.submission_received_on and self.site_initiated_on:
            return (self.site_initiated_on - self.submission_received_on).days
        return None

    @property
    def days_to_first_patient(self) -> int | None:
        if self.submission_received_on and self.first_patient_in_on:
            return (self.first_patient_in_on - self.submission_received_on).days
        return None


class TrialDocumentQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Documents follow their trial, except for regulators: CVs and consent forms hold personal data."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.REGULATOR:
            return self.none()
        return self.filter(trial__in=Trial.objects.visible_to(user))


class TrialDocument(models.Model):
    class Kind(models.TextChoices):
        PROTOCOL = "protocol", _("Protocol")
        ICF = "icf", _("Informed-consent form")
        IB = "ib", _("Investigator's brochure")
        CV = "cv", _("Investigator CV")
        INSURANCE = "insurance", _("Insurance certificate")
        OTHER = "other", _("Other")

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="documents", verbose_name=_("trial"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    title = models.CharField(_("title"), max_length=200)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = TrialDocumentQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial_id", "kind", "title"]
        verbose_name = _("trial document")
        verbose_name_plural = _("trial documents")
        constraints = [models.UniqueConstraint(fields=["trial", "kind", "title"], name="trial_document_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"

    @property
    def current_version(self):
        return self.versions.order_by("-number").first()


def _version_upload_to(instance, filename: str) -> str:
    # A fresh name per upload: a stored file is never overwritten, whatever the user called it.
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"documents/{instance.document.trial_id}/{instance.sha256[:2]}/{uuid.uuid4().hex}.{suffix}"


class DocumentVersionQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(document__in=TrialDocument.objects.visible_to(user))


class DocumentVersion(models.Model):
    """An uploaded file. Versions are only ever added; earlier ones stay available."""

    document = models.ForeignKey(
        TrialDocument, on_delete=models.PROTECT, related_name="versions", verbose_name=_("document")
    )
    number = models.PositiveIntegerField(_("version"))
    version_label = models.CharField(
        _("version label"), max_length=50, blank=True, help_text=_("As printed on the document, e.g. V2.0")
    )
    version_date = models.DateField(_("version date"), null=True, blank=True)
    file = models.FileField(_("file"), upload_to=_version_upload_to, max_length=300)
    original_name = models.CharField(_("original file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    note = models.CharField(_("change note"), max_length=300, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

    objects = DocumentVersionQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["document_id", "number"]
        verbose_name = _("document version")
        verbose_name_plural = _("document versions")
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="document_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.document} v{self.number}"


# --- Enrolment ledger ----------------------------------------------------------------------------------------------


class EnrolmentEntryQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Entries follow their site: whoever may see a site sees its enrolment ledger."""
        return self.filter(site_scope_q(user, site="site", trial="trial"))


class EnrolmentSubjectQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Subject codes follow their site, like the ledger entries that name them; regulators see none."""
        if user.is_authenticated and user.role == Role.REGULATOR and not user.is_superuser:
            return self.none()
        return self.filter(site_scope_q(user, site="site", trial="trial"))


class SubjectState(models.TextChoices):
    """Where a subject code stands, derived from the ledger entries that name it."""

    SCREENED = "screened", _("Screened")
    SCREEN_FAILED = "screen_failed", _("Screen failure")
    ON_STUDY = "on_study", _("On study")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    COMPLETED = "completed", _("Completed")
    NONE = "none", _("No current entry (all reversed)")


class EnrolmentSubject(models.Model):
    """A pseudonymous subject code a site uses to list its subjects: never a name or an ID number.

    One row per (trial, code), created the first time a site reports the code and never deleted. Whether the
    subject is currently screened, enrolled or finished follows from the ledger entries that name it; ``state`` and
    ``last_event_on`` keep that result, written by the enrolment services in the transaction that writes the entry
    (``trials.enrolment``), so lists filter and show it without reading the ledger (``manage.py rebuild_rollups
    --check`` compares them with the ledger).
    """

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="subjects", verbose_name=_("trial"))
    site = models.ForeignKey(TrialSite, on_delete=models.PROTECT, related_name="subjects", verbose_name=_("trial site"))
    code = models.CharField(
        _("subject code"),
        max_length=30,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$",
                _("A subject code uses letters, digits, dots, hyphens and underscores only, e.g. RK-001."),
            )
        ],
        help_text=_("A pseudonymous code such as RK-001. Never a name, an ID-card number or a phone number."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # The latest stage the subject's net entries reach, and the day of their latest entry still standing (neither a
    # correction nor reversed); kept by the enrolment services.
    state = models.CharField(_("current state"), max_length=20, choices=SubjectState.choices, default=SubjectState.NONE)
    last_event_on = models.DateField(_("latest standing entry"), null=True, blank=True)

    objects = EnrolmentSubjectQuerySet.as_manager()

    class Meta:
        ordering = ["trial_id", "code"]
        verbose_name = _("subject code")
        verbose_name_plural = _("subject codes")
        constraints = [models.UniqueConstraint(fields=["trial", "code"], name="enrolment_subject_unique_code")]
        indexes = [
            # Codes are searched across trials (a site's code lists, the admin search).
            models.Index(fields=["code"], name="enrolment_subject_code"),
            # The admin's state filter in the list's own order (trial, code): a page is read from the index.
            models.Index(fields=["state", "trial", "code"], name="enrolment_subject_state"),
        ]

    def __str__(self) -> str:
        return self.code


class SubjectConsent(models.Model):
    """A subject's signature on one version of the informed-consent form: at enrolment, then at each re-consent.

    The ICF version is the approved document version the subject signed; a new approved ICF version lists the
    subjects whose latest consent is on an earlier version for re-consent (trials/consent.py).
    """

    subject = models.ForeignKey(
        EnrolmentSubject, on_delete=models.PROTECT, related_name="consents", verbose_name=_("subject code")
    )
    icf_version = models.ForeignKey(
        DocumentVersion, on_delete=models.PROTECT, related_name="consents", verbose_name=_("ICF version")
    )
    consented_on = models.DateField(_("consent date"))
    is_reconsent = models.BooleanField(_("re-consent"), default=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"))
    note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta:
        ordering = ["subject_id", "consented_on", "id"]
        verbose_name = _("subject consent")
        verbose_name_plural = _("subject consents")
        constraints = [
            models.UniqueConstraint(fields=["subject", "icf_version"], name="subject_consent_unique_version")
        ]
        indexes = [
            # The admin's "re-consent" filter: the few re-consents in list order, not a scan of every consent.
            models.Index(
                fields=["subject", "consented_on", "id"], condition=Q(is_reconsent=True), name="subject_reconsent_list"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} · {self.icf_version} · {self.consented_on}"


class EnrolmentEntry(models.Model):
    """One line of a site's enrolment ledger. Rows are only ever added: a correction is a new entry that
    reverses an earlier one (with a reason), so every count can be traced to who reported it and when."""

    class Kind(models.TextChoices):
        SCREENED = "screened", _("Screened")
        ENROLLED = "enrolled", _("Enrolled")
        SCREEN_FAILED = "screen_failed", _("Screen failure")
        # The same English words name trial statuses; the context keeps the Chinese apart (退出, not 撤回).
        WITHDRAWN = "withdrawn", pgettext_lazy("enrolment event", "Withdrawn")
        COMPLETED = "completed", pgettext_lazy("enrolment event", "Completed")

    site = models.ForeignKey(
        TrialSite, on_delete=models.PROTECT, related_name="enrolment_entries", verbose_name=_("trial site")
    )
    # The trial is the site's; kept on the row for per-trial sums and indexes without a join.
    trial = models.ForeignKey(
        Trial, on_delete=models.PROTECT, related_name="enrolment_entries", verbose_name=_("trial"), editable=False
    )
    kind = models.CharField(_("event"), max_length=20, choices=Kind.choices)
    occurred_on = models.DateField(_("date"))
    count = models.PositiveIntegerField(_("number of subjects"))
    subject = models.ForeignKey(
        EnrolmentSubject,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="entries",
        verbose_name=_("subject code"),
    )
    # A correction points at the entry it cancels; its count then subtracts. An entry is reversed at most once.
    reverses = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversed_by",
        verbose_name=_("reverses entry"),
    )
    reason = models.TextField(_("reason for the correction"), blank=True)
    note = models.CharField(_("note"), max_length=300, blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("reported by")
    )
    reported_at = models.DateTimeField(_("reported at"))

    objects = EnrolmentEntryQuerySet.as_manager()

    class Meta:
        ordering = ["site_id", "occurred_on", "id"]
        verbose_name = _("enrolment entry")
        verbose_name_plural = _("enrolment entries")
        constraints = [
            models.CheckConstraint(condition=Q(count__gte=1), name="enrolment_entry_count_positive"),
            models.CheckConstraint(
                condition=Q(reverses__isnull=True) | ~Q(reason=""), name="enrolment_entry_correction_has_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["trial", "kind", "occurred_on"], name="enrolment_trial_kind_date"),
            models.Index(fields=["site", "kind", "occurred_on"], name="enrolment_site_kind_date"),
            # Reports sum a period's events over many sites: found by date and read from the index alone (plain key
            # columns rather than INCLUDE, which SQLite, make run's default, does not have).
            models.Index(fields=["occurred_on", "site", "kind", "count", "reverses"], name="enrolment_date_covering"),
            # The ledger lists newest first: a page is read from the end of this index.
            models.Index(fields=["-reported_at", "-id"], name="enrolment_reported_latest"),
            models.Index(fields=["site", "-reported_at", "-id"], name="enrolment_site_latest"),
        ]

    def __str__(self) -> str:
        sign = "−" if self.reverses_id else ""
        return f"{self.occurred_on} {self.get_kind_display()} {sign}{self.count}"

    @property
    def signed_count(self) -> int:
        return -self.count if self.reverses_id else self.count

    @property
    def is_correction(self) -> bool:
        return self.reverses_id is not None


class SiteEnrolmentQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(site_scope_q(user, site="site", trial="trial"))


class LedgerCounts(models.Model):
    """Net subjects per ledger event kind: a site's running totals, one of its months, its report rollup row."""

    screened = models.IntegerField(_("screened"), default=0)
    enrolled = models.IntegerField(_("enrolled"), default=0)
    screen_failed = models.IntegerField(_("screen failures"), default=0)
    withdrawn = models.IntegerField(_("withdrawn"), default=0)
    completed = models.IntegerField(_("completed"), default=0)

    class Meta:
        abstract = True


class SiteEnrolment(LedgerCounts):
    """Current counts for a site, kept in step with the ledger in the same transaction (a cache: the ledger
    is the truth, and ``trials.enrolment.rebuild_site_counts`` recomputes these from it)."""

    site = models.OneToOneField(
        TrialSite, on_delete=models.CASCADE, primary_key=True, related_name="enrolment", verbose_name=_("trial site")
    )
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="site_enrolments", editable=False)
    last_enrolled_on = models.DateField(_("last enrolment on"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = SiteEnrolmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("site enrolment")
        verbose_name_plural = _("site enrolment")

    def __str__(self) -> str:
        return f"{self.site}: {self.enrolled}"

    @property
    def on_study(self) -> int:
        """Enrolled subjects who have neither withdrawn nor completed."""
        return self.enrolled - self.withdrawn - self.completed


class SiteEnrolmentMonth(LedgerCounts):
    """A site's ledger summed per calendar month of the event date (a rollup kept by ``trials.enrolment`` in the
    writing transaction, checked and rebuilt by ``trials.rollups``): net counts per event (corrections subtract) and
    the latest day of an enrolment entry, corrections included, as the ledger's own aggregate gives it. A row exists
    for every month in which the site has an entry, even when its net counts are zero."""

    site = models.ForeignKey(TrialSite, on_delete=models.CASCADE, related_name="+", verbose_name=_("trial site"))
    # The site's trial, as on the ledger rows: reports sum per trial without a join.
    trial_id = models.IntegerField(_("trial id"))
    month = models.DateField(_("month"))
    last_enrolled_on = models.DateField(_("last enrolment on"), null=True)

    class Meta:
        verbose_name = _("site enrolment per month")
        verbose_name_plural = _("site enrolment per month")
        constraints = [models.UniqueConstraint(fields=["site", "month"], name="site_enrolment_month_unique")]
        # Reports read a period's months over the region's sites (joined by site).
        indexes = [models.Index(fields=["month", "site"], name="site_enrolment_month_period")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.month:%Y-%m}"


# --- Gates before a trial or site may start and enrol -------------------------------------------------------------


class Gate(models.TextChoices):
    """An approval a trial or site needs before it starts, where the seeded rules say it applies."""

    HGR = "hgr", _("Human genetic resources approval or filing")
    BIOSAFETY = "biosafety", _("Institutional biosafety review")


class GateRule(models.Model):
    """Seeded (seeds/policy/gates.yaml): a gate applies to trials of a kind and therapy category; blank means any."""

    gate = models.CharField(_("gate"), max_length=20, choices=Gate.choices)
    trial_kind = models.CharField(_("trial kind"), max_length=20, choices=Trial.Kind.choices, blank=True)
    therapy_category = models.CharField(
        _("therapy category"), max_length=30, choices=Trial.TherapyCategory.choices, blank=True
    )
    source_document = models.CharField(_("source document"), max_length=300)
    source_clause = models.CharField(_("source clause"), max_length=300, blank=True)
    source_quote = models.TextField(_("source quote"), blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["gate", "trial_kind", "therapy_category"]
        verbose_name = _("gate rule")
        verbose_name_plural = _("gate rules")
        constraints = [
            models.UniqueConstraint(fields=["gate", "trial_kind", "therapy_category"], name="gate_rule_unique")
        ]

    def __str__(self) -> str:
        kind = self.get_trial_kind_display() if self.trial_kind else _("any kind")
        category = self.get_therapy_category_display() if self.therapy_category else _("any therapy")
        return f"{self.get_gate_display()}: {kind} · {category}"


class GateAnswerQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Answers follow their trial."""
        return self.filter(trial__in=Trial.objects.visible_to(user))


def _gate_upload_to(instance, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"gates/{instance.trial_id}/{uuid.uuid4().hex}.{suffix}"


class GateAnswer(models.Model):
    """The current answer to one gate for a trial (trial-wide gates) or for one of its sites (site gates):
    met (with the approval or filing number and date), not applicable (with the reason), or pending.
    Changed in place; the history keeps every earlier answer with who gave it."""

    class Outcome(models.TextChoices):
        MET = "met", _("Met")
        NOT_APPLICABLE = "not_applicable", _("Not applicable")
        PENDING = "pending", _("Pending")

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="gate_answers", verbose_name=_("trial"))
    site = models.ForeignKey(
        TrialSite,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="gate_answers",
        verbose_name=_("trial site"),
    )
    gate = models.CharField(_("gate"), max_length=20, choices=Gate.choices)
    outcome = models.CharField(_("answer"), max_length=20, choices=Outcome.choices)
    reference_number = models.CharField(_("approval or filing number"), max_length=100, blank=True)
    met_on = models.DateField(_("approved or filed on"), null=True, blank=True)
    document = models.FileField(_("document"), upload_to=_gate_upload_to, blank=True, max_length=300)
    reason = models.TextField(_("reason"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"))

    objects = GateAnswerQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial_id", "gate", "site_id"]
        verbose_name = _("gate answer")
        verbose_name_plural = _("gate answers")
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "gate"], condition=Q(site__isnull=True), name="gate_answer_unique_trial"
            ),
            models.UniqueConstraint(
                fields=["trial", "gate", "site"], condition=Q(site__isnull=False), name="gate_answer_unique_site"
            ),
            models.CheckConstraint(
                condition=~Q(outcome="met") | (~Q(reference_number="") & Q(met_on__isnull=False)),
                name="gate_answer_met_has_number_and_date",
            ),
            models.CheckConstraint(
                condition=~Q(outcome="not_applicable") | ~Q(reason=""), name="gate_answer_not_applicable_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_gate_display()}: {self.get_outcome_display()}"


# --- Investigator qualifications -----------------------------------------------------------------------------------


class GcpCertificateQuerySet(models.QuerySet):
    def visible_to(self, user):
        """A person sees their own certificates; an institution's offices those of its staff; regulators none."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
            # The staff are found first (the OR stays in the small people table), then their certificates by the
            # person index; an OR across the join tested every certificate of the country.
            staff = User.objects.filter(Q(institution_id=user.institution_id) | Q(pk=user.pk)).order_by().values("pk")
            return self.filter(person__in=staff)
        if user.role == Role.PI:
            return self.filter(person_id=user.pk)
        return self.none()


def _certificate_upload_to(instance, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"certificates/{instance.person_id}/{uuid.uuid4().hex}.{suffix}"


class GcpCertificate(models.Model):
    """A GCP training certificate (GCP培训证书) a person holds: valid from its issue date to its expiry date."""

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="gcp_certificates",
        verbose_name=_("person"),
    )
    number = models.CharField(_("certificate number"), max_length=100)
    issuer = models.CharField(_("issued by"), max_length=200)
    issued_on = models.DateField(_("issue date"))
    expires_on = models.DateField(_("expiry date"))
    file = models.FileField(_("file"), upload_to=_certificate_upload_to, blank=True, max_length=300)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"))

    objects = GcpCertificateQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["person_id", "-expires_on", "-id"]
        verbose_name = _("GCP training certificate")
        verbose_name_plural = _("GCP training certificates")
        constraints = [
            models.UniqueConstraint(fields=["person", "issuer", "number"], name="gcp_certificate_unique_number"),
            models.CheckConstraint(condition=Q(expires_on__gt=F("issued_on")), name="gcp_certificate_expires_after"),
        ]
        indexes = [models.Index(fields=["expires_on"], name="gcp_certificate_expiry")]

    def __str__(self) -> str:
        return f"{self.number} ({self.issued_on} – {self.expires_on})"


class CertificateReminder(models.Model):
    """A reminder sent about a certificate: one row per certificate and stage, so each is sent exactly once."""

    class Stage(models.TextChoices):
        BEFORE_EXPIRY = "before_expiry", _("Expires soon")
        EXPIRED = "expired", _("Expired")

    certificate = models.ForeignKey(
        GcpCertificate, on_delete=models.CASCADE, related_name="reminders", verbose_name=_("certificate")
    )
    stage = models.CharField(_("stage"), max_length=20, choices=Stage.choices)
    sent_at = models.DateTimeField(_("sent at"))

    class Meta:
        ordering = ["certificate_id", "sent_at"]
        verbose_name = _("certificate reminder")
        verbose_name_plural = _("certificate reminders")
        constraints = [models.UniqueConstraint(fields=["certificate", "stage"], name="certificate_reminder_once")]

    def __str__(self) -> str:
        return f"{self.certificate} · {self.get_stage_display()}"


class Duty(models.TextChoices):
    """What the site PI delegates to study staff on the delegation log (授权分工表)."""

    CONSENT = "consent", _("Obtain informed consent")
    ENROL = "enrol", _("Screen and enrol subjects")
    REPORT = "report", _("Report enrolment")
    SAFETY = "safety", _("Record and report adverse events")
    PRODUCT = "product", _("Handle the investigational product")
    DATA = "data", _("Record trial data")


class DelegationQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The delegation log follows its site; regulators see none (it names staff)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.REGULATOR:
            return self.none()
        if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
            # The office's sites as the union of two index lookups: testing every site's scope in a subquery read
            # all the sites of the country.
            own = TrialSite.objects.filter(institution_id=user.institution_id).order_by().values("pk")
            led = TrialSite.objects.filter(trial__lead_institution_id=user.institution_id).order_by().values("pk")
            return self.filter(site__in=own.union(led))
        return self.filter(site__in=TrialSite.objects.visible_to(user))


class Delegation(models.Model):
    """One line of a site's delegation log: a person may perform a duty from a day, until a day (or open)."""

    site = models.ForeignKey(
        TrialSite, on_delete=models.CASCADE, related_name="delegations", verbose_name=_("trial site")
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations", verbose_name=_("person")
    )
    duty = models.CharField(_("duty"), max_length=20, choices=Duty.choices)
    starts_on = models.DateField(_("from"))
    ends_on = models.DateField(_("until"), null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"))

    objects = DelegationQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["site_id", "person_id", "duty", "starts_on"]
        verbose_name = _("delegation")
        verbose_name_plural = _("delegation log")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=F("starts_on")), name="delegation_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["site", "person", "duty"], name="delegation_lookup")]

    def __str__(self) -> str:
        until = self.ends_on.isoformat() if self.ends_on else "…"
        return f"{self.person} · {self.get_duty_display()} · {self.starts_on} – {until}"


# IIT governance and research filings live in their own module; imported here so Django registers them.
from trials.filing_models import FilingEffect, FilingObligation, TrialReview  # noqa: E402, F401

# --- Rollups the regulator reports read (trials/rollups.py keeps them) ---------------------------------------------


class SiteRollupQuerySet(models.QuerySet):
    def visible_to(self, user):
        """A site's row follows its site; a regulator's region is a plain column here (no join to institutions)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.REGULATOR:
            return self.filter(region_id=user.region_id)
        return self.filter(site__in=TrialSite.objects.visible_to(user))


class SiteRollup(LedgerCounts):
    """One row per site with what the pipeline, start-up and enrolment reports read of its trial, institution and
    milestones, the stage days already computed: a copy of raw rows, recomputed per trial whenever a trial, site or
    institution row changes (``trials.rollups``), so a report scans one narrow table of the region without joins.

    ``first_in_region`` marks one site per (trial, region) and ``first_in_trial`` one per trial, so counting
    flagged rows counts distinct trials in a region or across all of them without ``COUNT(DISTINCT …)``."""

    # No constraint in the database (Django still deletes the row with its site): inserting a row must not wait on a
    # sibling site that an enrolment report holds locked. Plain ids below for the same reason.
    site = models.OneToOneField(
        TrialSite,
        on_delete=models.CASCADE,
        primary_key=True,
        db_constraint=False,
        related_name="rollup",
        verbose_name=_("trial site"),
    )
    trial_id = models.IntegerField(_("trial id"))
    institution_id = models.IntegerField(_("institution id"))
    region_id = models.IntegerField(_("region id"))
    protocol_number = models.CharField(_("protocol number"), max_length=100)
    institution_name = models.CharField(_("institution"), max_length=200)
    trial_status = models.CharField(_("trial status"), max_length=20)
    trial_kind = models.CharField(_("kind"), max_length=20)
    therapy_category = models.CharField(_("therapy category"), max_length=40)
    trial_created_at = models.DateTimeField(_("trial registered at"))
    trial_target = models.IntegerField(_("trial's overall target"))
    role = models.CharField(_("site role"), max_length=20)
    site_target = models.IntegerField(_("site target enrolment"))
    submission_received_on = models.DateField(_("submission received"), null=True)
    ethics_approved_on = models.DateField(_("ethics approved"), null=True)
    contract_signed_on = models.DateField(_("contract signed"), null=True)
    site_initiated_on = models.DateField(_("site initiated"), null=True)
    first_patient_in_on = models.DateField(_("first patient in"), null=True)
    startup_days = models.IntegerField(_("start-up days"), null=True)
    days_to_first_patient = models.IntegerField(_("days to first patient"), null=True)
    # Days of each stage that ended, charged from the latest milestone recorded before it.
    ethics_days = models.IntegerField(_("ethics stage (days)"), null=True)
    contract_days = models.IntegerField(_("contract stage (days)"), null=True)
    initiation_days = models.IntegerField(_("initiation stage (days)"), null=True)
    first_patient_days = models.IntegerField(_("first-patient stage (days)"), null=True)
    # Where the stage under way began (its days run until the day the report is read).
    stage_started_on = models.DateField(_("current stage began"), null=True)
    waiting = models.BooleanField(_("still starting up"))
    # The stage under way (null unless waiting), and the longest stage that ended (ties: the earlier) with its days
    # (-1 when none): with the days the stage under way has run, they name the slowest stage without a pass per stage.
    current_stage = models.CharField(_("current stage"), max_length=20, null=True)
    longest_done_days = models.IntegerField(_("longest stage that ended (days)"))
    slowest_done_stage = models.CharField(_("longest stage that ended"), max_length=20, null=True)
    first_in_region = models.BooleanField(_("first site of the trial in the region"))
    first_in_trial = models.BooleanField(_("first site of the trial"))
    # With the counts of LedgerCounts: the site's current totals (its ``SiteEnrolment`` row, zero before the first
    # report), copied here so the enrolment report sums them with the row instead of joining every site of the
    # region to its counts. The enrolment services update them with the counts, in the same transaction.
    last_enrolled_on = models.DateField(_("last enrolment on"), null=True)

    objects = SiteRollupQuerySet.as_manager()

    class Meta:
        verbose_name = _("site rollup")
        verbose_name_plural = _("site rollups")
        indexes = [
            # The start-up report's page order within a region.
            models.Index(fields=["region_id", "institution_name", "protocol_number", "site"], name="siterollup_page"),
            # The same for a system administrator across all regions: a page reads its rows, not the whole country.
            models.Index(fields=["institution_name", "protocol_number", "site"], name="siterollup_page_all_regions"),
            # The enrolment report's rows per trial, grouped in this order: a page stops after its trials.
            models.Index(fields=["region_id", "protocol_number", "trial_id"], name="siterollup_region_trial_order"),
            models.Index(fields=["protocol_number", "trial_id"], name="siterollup_trial_order"),
            models.Index(fields=["trial_id"], name="siterollup_trial"),
            models.Index(fields=["institution_id"], name="siterollup_institution"),
        ]

    def __str__(self) -> str:
        return f"{self.protocol_number} @ {self.institution_name}"
