"""Registry rows every app uses: regions, institutions, departments, sponsors, people, policy values."""

import ipaddress
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from knox.models import AbstractAuthToken, AuthTokenManager
from simple_history.models import HistoricalRecords

from cgtclinic.roles import ADMIN_ROLES, INSTITUTION_ROLES, REGION_ROLES, Role


class BilingualNameMixin(models.Model):
    """Chinese name is authoritative; the English one is shown when the interface is in English."""

    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        lang = translation.get_language() or "zh-hans"
        if lang.startswith("en") and self.name_en:
            return self.name_en
        return self.name_zh


class DeadlineEffect(models.Model):
    """A deadline effect that happened (reminder, escalation) for one deadline of one item. Each concrete table adds
    the item it belongs to and a unique key on (item, kind, due_at), which makes each effect happen once whatever
    the sweeps and redelivered tasks do."""

    class Kind(models.TextChoices):
        REMINDER = "reminder", _("Reminder")
        ESCALATION = "escalation", _("Escalation")

    kind = models.CharField(_("effect"), max_length=20, choices=Kind.choices)
    due_at = models.DateTimeField(_("for the deadline"))
    happened_at = models.DateTimeField(_("happened at"))

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {timezone.localtime(self.happened_at):%Y-%m-%d %H:%M}"


class PublicDirectoryQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Regions and sponsors are a public directory for every signed-in role."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self


class Region(BilingualNameMixin):
    """A provincial-level division (province or municipality) whose policies apply to its institutions."""

    code = models.SlugField(_("code"), max_length=20, unique=True)

    objects = PublicDirectoryQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")


class InstitutionQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The directory of hospitals is public to every signed-in role."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self

    def editable_by(self, user):
        if user.is_superuser:
            return self
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(pk=user.institution_id)
        return self.none()


class Institution(BilingualNameMixin):
    """A hospital or other medical institution that runs trials and hosts an ethics committee."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="institutions", verbose_name=_("region"))
    short_name = models.CharField(_("short name"), max_length=50, blank=True)
    credit_code = models.CharField(_("unified social credit code"), max_length=18, unique=True, null=True, blank=True)
    grade = models.CharField(_("hospital grade"), max_length=20, blank=True, help_text=_("e.g. 三级甲等"))
    is_active = models.BooleanField(_("active"), default=True)

    objects = InstitutionQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["region__code", "name_zh"]
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        constraints = [models.UniqueConstraint(fields=["region", "name_zh"], name="institution_unique_name_in_region")]


class DepartmentQuerySet(models.QuerySet):
    def visible_to(self, user):
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self

    def editable_by(self, user):
        if user.is_superuser:
            return self
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(institution_id=user.institution_id)
        return self.none()


class Department(BilingualNameMixin):
    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="departments", verbose_name=_("institution")
    )

    objects = DepartmentQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["institution_id", "name_zh"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        constraints = [models.UniqueConstraint(fields=["institution", "name_zh"], name="department_unique_name")]

    def __str__(self) -> str:
        return f"{self.institution} · {self.name}"


class Sponsor(BilingualNameMixin):
    """A trial sponsor (申办方), usually an enterprise; CGT enterprises in a region qualify for its subsidies."""

    class Kind(models.TextChoices):
        ENTERPRISE = "enterprise", _("Enterprise")
        INSTITUTION = "institution", _("Medical institution")
        UNIVERSITY = "university", _("University or research institute")
        OTHER = "other", _("Other")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.ENTERPRISE)
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="sponsors", verbose_name=_("registered in region")
    )
    credit_code = models.CharField(_("unified social credit code"), max_length=18, unique=True, null=True, blank=True)
    is_cgt_enterprise = models.BooleanField(_("CGT enterprise"), default=False)

    objects = PublicDirectoryQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["name_zh"]
        verbose_name = _("sponsor")
        verbose_name_plural = _("sponsors")
        constraints = [models.UniqueConstraint(fields=["name_zh"], name="sponsor_unique_name")]


class UserQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Office staff see the people of their own institution; regulators and PIs see nobody's record."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE):
            return self.filter(institution_id=user.institution_id)
        return self.filter(pk=user.pk)

    def office_of(self, institution_id: int, role: str):
        """The active people of an institution in one role (its research or ethics office, its PIs): who a
        deadline, a reminder or a decision about that institution's work reaches."""
        return self.filter(institution_id=institution_id, role=role, is_active=True)


class UserManager(BaseUserManager.from_queryset(UserQuerySet)):
    use_in_migrations = True

    def create_user(self, username, password=None, **fields):
        if not username:
            raise ValueError("username is required")
        user = self.model(username=self.model.normalize_username(username), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, username, password=None, **fields):
        fields.update(is_superuser=True, role=Role.SYSTEM_ADMIN)
        fields.setdefault("full_name", username)
        return self.create_user(username, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: a login when they have a password, otherwise a named PI or staff member on record."""

    username = models.CharField(_("username"), max_length=150, unique=True, validators=[UnicodeUsernameValidator()])
    full_name = models.CharField(_("full name"), max_length=100)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    professional_title = models.CharField(_("professional title"), max_length=50, blank=True)
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="people",
        verbose_name=_("institution"),
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="people",
        verbose_name=_("department"),
    )
    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="regulators",
        verbose_name=_("region"),
        help_text=_("Only for regulators: the region whose data they may read."),
    )
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        default=settings.LANGUAGE_CODE,
        help_text=_("The language of the messages this person receives."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()
    history = HistoricalRecords(excluded_fields=["password", "last_login"])

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["username"]
        verbose_name = _("person")
        verbose_name_plural = _("people")
        constraints = [
            models.CheckConstraint(
                condition=~Q(role__in=sorted(r.value for r in INSTITUTION_ROLES)) | Q(institution__isnull=False),
                name="user_institution_role_has_institution",
            ),
            models.CheckConstraint(
                condition=~Q(role__in=sorted(r.value for r in REGION_ROLES)) | Q(region__isnull=False),
                name="user_regulator_has_region",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.username

    @property
    def is_staff(self) -> bool:
        """Admin access follows the role, so it can never drift from it."""
        return self.is_active and (self.is_superuser or self.role in ADMIN_ROLES)

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name

    def clean(self):
        super().clean()
        errors = {}
        if self.role in INSTITUTION_ROLES and not self.institution_id:
            errors["institution"] = _("This role works for an institution: choose one.")
        if self.role in REGION_ROLES and not self.region_id:
            errors["region"] = _("A regulator must be assigned the region they oversee.")
        if self.department_id and self.department.institution_id != self.institution_id:
            errors["department"] = _("The department must belong to the person's institution.")
        if errors:
            raise ValidationError(errors)


class PolicyParameter(models.Model):
    """A number taken from a policy document, with the clause it comes from and the period it applies to."""

    class Unit(models.TextChoices):
        WORKING_DAYS = "working_days", _("working days")
        CALENDAR_DAYS = "calendar_days", pgettext_lazy("unit", "calendar days")
        HOURS = "hours", pgettext_lazy("unit", "hours")
        WEEKS = "weeks", _("weeks")
        MONTHS = "months", _("months")
        RMB = "rmb", _("RMB")
        PERCENT = "percent", _("percent")
        COUNT = "count", _("count")

    code = models.SlugField(_("code"), max_length=80)
    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="policy_parameters",
        verbose_name=_("region"),
        help_text=_("Empty for a national rule."),
    )
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200)
    value = models.DecimalField(_("value"), max_digits=18, decimal_places=4)
    unit = models.CharField(_("unit"), max_length=20, choices=Unit.choices)
    effective_from = models.DateField(_("effective from"))
    effective_to = models.DateField(_("effective to"), null=True, blank=True)
    source_document = models.CharField(_("source document"), max_length=200)
    source_clause = models.CharField(_("source clause"), max_length=200)
    source_quote = models.TextField(_("quoted text"), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["code", "region__code", "effective_from"]
        verbose_name = _("policy parameter")
        verbose_name_plural = _("policy parameters")
        # Two constraints rather than NULLS NOT DISTINCT, which SQLite (make run's default) does not support.
        constraints = [
            models.UniqueConstraint(
                fields=["code", "region", "effective_from"],
                condition=Q(region__isnull=False),
                name="policy_parameter_unique_period",
            ),
            models.UniqueConstraint(
                fields=["code", "effective_from"],
                condition=Q(region__isnull=True),
                name="policy_parameter_unique_national_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} = {self.value.normalize():f} {self.get_unit_display()}"

    @classmethod
    def value_for(cls, code: str, *, region: Region | None = None, on=None) -> Decimal:
        """The value in force on a date for a region (falling back to the national value)."""
        on = on or timezone.localdate()
        rows = (
            cls.objects.filter(code=code, effective_from__lte=on)
            .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
            .filter(Q(region=region) | Q(region__isnull=True))
            .order_by(models.F("region").asc(nulls_last=True), "-effective_from")
        )
        row = rows.first()
        if row is None:
            raise cls.DoesNotExist(f"No policy parameter {code!r} in force on {on} for {region}")
        return row.value


class PolicyTarget(models.Model):
    """A region's published goal, e.g. Beijing: at least 15 new clinical-trial approvals by 2026."""

    class Metric(models.TextChoices):
        NEW_TRIAL_APPROVALS = "new_trial_approvals", _("new clinical-trial approvals")
        NEW_CLINICAL_FILINGS = "new_clinical_filings", _("new clinical-research filings")

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="targets", verbose_name=_("region"))
    metric = models.CharField(_("metric"), max_length=40, choices=Metric.choices)
    target_value = models.PositiveIntegerField(_("target"))
    period_start = models.DateField(_("counted from"))
    deadline_year = models.PositiveSmallIntegerField(_("by the end of year"))
    source_document = models.CharField(_("source document"), max_length=200)
    source_clause = models.CharField(_("source clause"), max_length=200)
    source_quote = models.TextField(_("quoted text"), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["region__code", "deadline_year"]
        verbose_name = _("policy target")
        verbose_name_plural = _("policy targets")
        constraints = [
            models.UniqueConstraint(fields=["region", "metric", "deadline_year"], name="policy_target_unique")
        ]

    def __str__(self) -> str:
        return f"{self.region}: {self.get_metric_display()} ≥ {self.target_value} ({self.deadline_year})"


class NotificationQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Everyone reads only their own inbox."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(recipient_id=user.pk)

    def unread(self):
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    """An in-app message; e-mail and webhook copies are sent by the channels in cgtclinic.notifications."""

    recipient = models.ForeignKey(
        "cgtclinic.User", on_delete=models.CASCADE, related_name="notifications", verbose_name=_("recipient")
    )
    # What caused it, e.g. "continuing_review.upcoming"; with event_key it makes a notification happen once.
    topic = models.CharField(_("topic"), max_length=80)
    event_key = models.CharField(_("event key"), max_length=200)
    subject = models.CharField(_("subject"), max_length=200)
    body = models.TextField(_("message"))
    link = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            models.UniqueConstraint(fields=["recipient", "topic", "event_key"], name="notification_once_per_event")
        ]
        indexes = [
            models.Index(fields=["recipient", "created_at"]),
            models.Index(fields=["recipient"], condition=Q(read_at__isnull=True), name="notification_unread_idx"),
        ]

    def __str__(self) -> str:
        return self.subject


class NotificationWebhookQuerySet(models.QuerySet):
    def visible_to(self, user):
        """A hospital's research office manages its own robots; nobody else sees them (they hold access keys)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        if user.role == Role.RESEARCH_OFFICE:
            return self.filter(institution_id=user.institution_id)
        return self.none()

    def editable_by(self, user):
        return self.visible_to(user)

    def active(self):
        return self.filter(is_active=True)


class NotificationWebhook(models.Model):
    """A group-chat robot (WeCom, DingTalk) or JSON endpoint that receives copies of an institution's notifications."""

    class Kind(models.TextChoices):
        WECOM = "wecom", _("WeCom group robot")
        DINGTALK = "dingtalk", _("DingTalk group robot")
        GENERIC = "generic", _("Generic JSON webhook")

    # The query parameter that carries each robot's access key; an address without it cannot work.
    KEY_PARAMETER = {Kind.WECOM: "key", Kind.DINGTALK: "access_token"}
    TOPIC_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="notification_webhooks", verbose_name=_("institution")
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("e.g. Research office WeCom group"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    url = models.URLField(_("address"), max_length=500)
    secret = models.CharField(
        _("signing secret"),
        max_length=200,
        blank=True,
        help_text=_(
            "DingTalk: the robot's signing secret, if its security setting is signing. Generic: a key for the "
            "HMAC-SHA256 signature header. WeCom robots have none."
        ),
    )
    topics = models.CharField(
        _("topics"),
        max_length=300,
        blank=True,
        help_text=_("Comma-separated topics to forward, e.g. continuing_review; leave empty to forward every topic."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    objects = NotificationWebhookQuerySet.as_manager()
    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["institution_id", "name"]
        verbose_name = _("notification webhook")
        verbose_name_plural = _("notification webhooks")
        constraints = [models.UniqueConstraint(fields=["institution", "name"], name="webhook_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def topic_list(self) -> list[str]:
        return [topic.strip() for topic in self.topics.split(",") if topic.strip()]

    def forwards(self, topic: str) -> bool:
        """Whether a notification of this topic goes to this robot: a listed topic covers its sub-topics."""
        listed = self.topic_list
        return not listed or any(topic == t or topic.startswith(f"{t}.") for t in listed)

    def clean(self):
        super().clean()
        errors = {}
        url_error = self._url_error()
        if url_error:
            errors["url"] = url_error
        if self.kind == self.Kind.WECOM and self.secret:
            errors["secret"] = _("WeCom robots do not use a signing secret; leave it empty.")
        if any(not self.TOPIC_PATTERN.match(topic) for topic in self.topic_list):
            errors["topics"] = _("Topics are lower-case words joined by dots, e.g. continuing_review.upcoming.")
        else:
            self.topics = ",".join(self.topic_list)
        if errors:
            raise ValidationError(errors)

    def _url_error(self):
        """Why the address is refused, or None: https only, no credentials, never this server itself."""
        if not self.url:
            return None
        parts = urlsplit(self.url)
        if parts.scheme != "https":
            return _("Use an https:// address, so that notifications are not sent unencrypted.")
        if parts.username or parts.password:
            return _("The address must not contain a user name or password.")
        host = (parts.hostname or "").rstrip(".")
        if not host or host == "localhost" or host.endswith(".localhost"):
            return _("The address must name a host other than this server.")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast):
            return _("The address must name a host other than this server.")
        key = self.KEY_PARAMETER.get(self.kind)
        if key and not parse_qs(parts.query).get(key):
            return _("Copy the robot's full address, including the ?%(key)s=… part that carries its key.") % {
                "key": key
            }
        return None


class HolidaySchedule(models.Model):
    """One year of the State Council's holiday schedule (放假安排): its holidays and make-up working days (调休).

    A year is known to the working-day calendar once its schedule exists; deadlines reaching into a year
    without one are computed provisionally (see cgtclinic.workdays).
    """

    class Source(models.TextChoices):
        PACKAGE = "package", _("Imported from the chinese-calendar package")
        OFFICE = "office", _("Entered by the office")

    # The years the statutory-holiday rules and the lunar tables cover; the bounds catch mistyped years.
    year = models.PositiveSmallIntegerField(
        _("year"), unique=True, validators=[MinValueValidator(2000), MaxValueValidator(2099)]
    )
    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.OFFICE)
    notice = models.CharField(
        _("State Council notice"), max_length=100, blank=True, help_text=_("Its number, e.g. 国办发明电〔2025〕7号")
    )
    published_on = models.DateField(_("published on"), null=True, blank=True)
    entered_by = models.ForeignKey(
        "cgtclinic.User",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("entered by"),
    )

    objects = PublicDirectoryQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-year"]
        verbose_name = _("holiday schedule")
        verbose_name_plural = _("holiday schedules")

    def __str__(self) -> str:
        return str(self.year)


class CalendarDay(models.Model):
    """A day the schedule makes a holiday, or a Saturday or Sunday it makes a working day (调休上班)."""

    class Kind(models.TextChoices):
        HOLIDAY = "holiday", _("Holiday")
        WORKDAY = "workday", _("Make-up working day")

    schedule = models.ForeignKey(
        HolidaySchedule, on_delete=models.CASCADE, related_name="days", verbose_name=_("holiday schedule")
    )
    date = models.DateField(_("date"), unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    name = models.CharField(_("festival"), max_length=100, help_text=_("e.g. 春节, 国庆节"))

    objects = PublicDirectoryQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["date"]
        verbose_name = _("calendar day")
        verbose_name_plural = _("calendar days")

    def __str__(self) -> str:
        return f"{self.date} {self.name} ({self.get_kind_display()})"

    def clean(self):
        super().clean()
        errors = {}
        if self.date and self.kind == self.Kind.WORKDAY and self.date.weekday() < 5:
            errors["kind"] = _(
                "A make-up working day must be a Saturday or a Sunday; weekdays are working days anyway."
            )
        try:
            schedule = self.schedule
        except HolidaySchedule.DoesNotExist:
            schedule = None
        if (
            self.date
            and schedule is not None
            and schedule.year
            and not self.fits_schedule_year(self.date, schedule.year)
        ):
            errors["date"] = _(
                "The date must fall in the schedule's year, or in the December before or the January after it "
                "(a holiday that spans the turn of the year)."
            )
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def fits_schedule_year(date, year: int) -> bool:
        """A notice lists its own year's days, and sometimes the days around the turn of the year."""
        return (
            date.year == year
            or (date.year == year - 1 and date.month == 12)
            or (date.year == year + 1 and date.month == 1)
        )


class ReportRequest(models.Model):
    """One request for a regulator report: who asked for which report, in which format and with which filters,
    how it was answered and how long it took. Written by the report frame (cgtclinic.api.reports)."""

    user = models.ForeignKey(
        "cgtclinic.User", on_delete=models.PROTECT, related_name="report_requests", verbose_name=_("user")
    )
    report = models.SlugField(_("report"), max_length=60)
    format = models.CharField(_("format"), max_length=10)
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    rows = models.PositiveIntegerField(_("rows returned"), null=True, blank=True)
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("report request")
        verbose_name_plural = _("report requests")
        indexes = [
            models.Index(fields=["requested_at"], name="report_request_at_idx"),
            models.Index(fields=["user", "requested_at"], name="report_request_user_idx"),
            models.Index(fields=["report", "requested_at"], name="report_request_report_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.report} ({self.format}) {self.status_code}"


class Heartbeat(models.Model):
    """The last sign of life of a background process (the deadline worker, beat), for the readiness check.

    Beat sends the heartbeat task every half minute with the time it sent it; the deadline worker runs it and
    records both times, so one row tells whether beat schedules and whether the worker executes."""

    name = models.SlugField(_("process"), max_length=40, primary_key=True)
    at = models.DateTimeField(_("last seen at"))

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {timezone.localtime(self.at):%Y-%m-%d %H:%M:%S}"


class ApiTokenQuerySet(models.QuerySet):
    def valid(self, now=None):
        """Tokens that still authenticate: not past their expiry."""
        return self.filter(Q(expiry__isnull=True) | Q(expiry__gt=now or timezone.now()))


class ApiToken(AbstractAuthToken):
    """A REST API token (regulators read the reports with theirs). Only its SHA-512 digest and first characters are
    stored (django-rest-knox): the key is shown once, when it is issued, and cannot be read back. It expires, records
    when it was last used, and is revoked by deleting it."""

    label = models.CharField(_("purpose"), max_length=100, blank=True, help_text=_("e.g. the regulator's report tool"))
    created_by = models.ForeignKey(
        "cgtclinic.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("issued by"),
    )
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    objects = AuthTokenManager.from_queryset(ApiTokenQuerySet)()

    class Meta:
        ordering = ["-created"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.token_key}… ({self.user})"
