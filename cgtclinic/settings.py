"""Settings for cgtclinic: one module, every deployment choice read from the environment.

With nothing set it runs locally on SQLite and Celery's filesystem broker (``make run``); set
``DATABASE_URL`` / ``REDIS_URL`` for PostgreSQL and Redis. The production checklist is in docs/deployment.md.
"""

import datetime
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

from cgtclinic.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CGT_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    """The key from the environment, else one generated once per data directory (never in git)."""
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# HTTPS hardening: on in production (docs/deployment.md checklist), off for local http://127.0.0.1 use and tests.
SECURE = env_bool("DJANGO_SECURE", False)
SECURE_SSL_REDIRECT = SECURE
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_HSTS_SECONDS = 31536000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "django_celery_beat",
    "axes",
    "cgtclinic",
    "trials",
    "ethics",
    "subsidies",
    # The benchmark's data generator (manage.py generate_scale_data); it writes every app's data.
    "bench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cgtclinic.urls"
WSGI_APPLICATION = "cgtclinic.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "cgtclinic" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cgtclinic.context_processors.unread_notifications",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DJANGO_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# make run's embedded SQLite is written by web, worker and beat at once. WAL lets readers go on while one writes; a
# write transaction takes its lock when it begins (IMMEDIATE), so two read-then-write transactions queue behind the
# busy timeout instead of failing with "database is locked" when both try to upgrade their read locks.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    # The covering indexes' INCLUDE columns (index-only scans of PostgreSQL's reports) are ignored by SQLite, which
    # still has the index's key: nothing for the person running make run to act on.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
# A read replica for the regulator reports: set, the reports read from it while they are computed (their request
# log, the throttle and everything else stay on the primary), so a regional deployment moves read load off the
# primary without code changes. See cgtclinic/db_router.py and cgtclinic/reporting/database.py.
replica_url = env_str("DATABASE_REPLICA_URL")
if replica_url:
    DATABASES["replica"] = dj_database_url.parse(
        replica_url, conn_max_age=DATABASES["default"]["CONN_MAX_AGE"], conn_health_checks=True
    )
# The alias the reports read while they are computed (tests point it at a mirror of the test database).
REPORTS_DATABASE = "replica" if replica_url else "default"
DATABASE_ROUTERS = ["cgtclinic.db_router.ReportsReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "cgtclinic.User"
# API tokens are stored hashed (django-rest-knox, SHA-512), in our own model with last-use and issuer; a key is
# "Token <key>" in the Authorization header as before, and expires a year after it is issued unless said otherwise.
KNOX_TOKEN_MODEL = "cgtclinic.ApiToken"
REST_KNOX = {
    "TOKEN_TTL": datetime.timedelta(days=365),
    "TOKEN_PREFIX": "cgt_",
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "cgtclinic.auth.RoleBackend"]
# Brute-force protection on both logins (admin and PI portal): after 5 wrong passwords for one account, or from one
# address, logins are refused for 30 minutes (each counted separately, so guessing many accounts from one address
# and one account from many addresses both stop); a success clears the account's count. A system administrator
# lifts a lockout in the admin (Axes → Access attempts: delete) or with manage.py axes_reset_username <name>.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = datetime.timedelta(minutes=30)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "cgtclinic/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "cgtclinic.auth.client_ip"
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_VERBOSE = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Documents are evidence for ethics review and subsidy claims; the limit is generous but bounded.
CGT_UPLOAD_MAX_BYTES = env_int("CGT_UPLOAD_MAX_MB", 50) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o640

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport, which needs no server.
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The worker logs through LOGGING below (text or JSON), like the web process, instead of Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# An unacknowledged task is redelivered after this long; deadlines are swept from the database,
# so Celery ETAs are only used for waits well below it. Read even without Redis so READ_NAMES is complete.
_visibility_timeout = env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility_timeout}
else:
    _queue_dir = DATA_DIR / "celery"
    for _sub in ("queue", "processed"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    # The host part is ignored; naming one keeps kombu from warning "No hostname was supplied" at every start.
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        # The exchange tables too, which kombu otherwise writes to ./control wherever the process was started.
        "control_folder": str(_queue_dir / "control"),
    }

# Deadline effects (reminders, escalations, their sweeps) and the heartbeat have a queue of their own, consumed by
# a worker of their own (Procfile, docker-compose), so PDF rendering, exports and webhook retries never delay them.
DEADLINE_QUEUE = "deadlines"
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    name: {"queue": DEADLINE_QUEUE}
    for name in (
        "cgtclinic.tasks.heartbeat",
        "ethics.tasks.recognition_remind",
        "ethics.tasks.recognition_escalate",
        "ethics.tasks.sweep_recognition_deadlines",
        "ethics.tasks.sweep_continuing_reviews",
        "ethics.tasks.remind_continuing_review",
        "ethics.tasks.recompute_recognition_deadlines",
        "ethics.tasks.safety_remind",
        "ethics.tasks.safety_escalate",
        "ethics.tasks.sweep_safety_clocks",
        "trials.tasks.filing_remind",
        "trials.tasks.filing_escalate",
        "trials.tasks.sweep_filing_deadlines",
        "trials.tasks.recompute_filing_deadlines",
        "trials.tasks.sweep_certificate_reminders",
    )
}
# The sweeps a deadline worker sends itself each time it (re)connects to the broker: after an outage the effects
# that fell due meanwhile happen at once, not at the next beat tick.
DEADLINE_SWEEPS = (
    "ethics.tasks.sweep_recognition_deadlines",
    "ethics.tasks.sweep_continuing_reviews",
    "ethics.tasks.sweep_safety_clocks",
    "trials.tasks.sweep_filing_deadlines",
    "trials.tasks.sweep_certificate_reminders",
)
# Beat writes each run's time to the database at once (the readiness check reads the heartbeat's).
CELERY_BEAT_SYNC_EVERY = 1

# Periodic sweeps, loaded into django-celery-beat's tables by its DatabaseScheduler (which names the "expires"
# option expire_seconds). Each run expires before the next is due, so a backlog after an outage runs once.
CELERY_BEAT_SCHEDULE = {
    "cgtclinic-heartbeat": {
        "task": "cgtclinic.tasks.heartbeat",
        "schedule": 30,
        "options": {"expire_seconds": 25},
    },
    # Recognition deadlines are hours to days away: a one-minute sweep keeps every effect within a minute.
    "ethics-sweep-recognition-deadlines": {
        "task": "ethics.tasks.sweep_recognition_deadlines",
        "schedule": 60,
        "options": {"expire_seconds": 50},
    },
    # Safety clocks run in hours (an SAE to the sponsor and the committee): swept every minute.
    "ethics-sweep-safety-clocks": {
        "task": "ethics.tasks.sweep_safety_clocks",
        "schedule": 60,
        "options": {"expire_seconds": 50},
    },
    # Research filings are days to months away; the minute sweep is their only timer beyond the ETA horizon.
    "trials-sweep-filing-deadlines": {
        "task": "trials.tasks.sweep_filing_deadlines",
        "schedule": 60,
        "options": {"expire_seconds": 50},
    },
    "ethics-sweep-continuing-reviews": {
        "task": "ethics.tasks.sweep_continuing_reviews",
        "schedule": 15 * 60,
        "options": {"expire_seconds": 10 * 60},
    },
    # GCP certificates expire on a date: a 15-minute sweep sends each reminder on its day.
    "trials-sweep-certificate-reminders": {
        "task": "trials.tasks.sweep_certificate_reminders",
        "schedule": 15 * 60,
        "options": {"expire_seconds": 10 * 60},
    },
}

# SMTP when a host is set; else each message is printed to the console and kept as an .eml file in
# $CGT_DATA_DIR/mail/ (cgtclinic/mail.py), where the demo reads it. All are read either way so READ_NAMES is complete.
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", True)
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "cgtclinic.mail.ConsoleAndFileEmailBackend"
EMAIL_FILE_PATH = DATA_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "cgtclinic <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cgtclinic.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cgtclinic.api.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "cgtclinic.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cgtclinic.api.exceptions.exception_handler",
    # Regulator reports (cgtclinic.api.reports) are throttled per user; the counts live in the cache (Redis).
    "DEFAULT_THROTTLE_RATES": {"reports": "60/minute"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "cgtclinic API",
    "DESCRIPTION": "Cell and gene therapy clinical-trial management: trials, sites, ethics, subsidies.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cgtclinic.api.schema.document_framework_errors",
    ],
    # Several models have a `kind` or `status` with different choices; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "TrialStatusEnum": "trials.models.Trial.Status",
        "TrialKindEnum": "trials.models.Trial.Kind",
        "DocumentKindEnum": "trials.models.TrialDocument.Kind",
        "SponsorKindEnum": "cgtclinic.models.Sponsor.Kind",
        "SiteRoleEnum": "trials.models.TrialSite.SiteRole",
        "EnrolmentEventEnum": "trials.models.EnrolmentEntry.Kind",
        "ClaimStatusEnum": "subsidies.models.Claim.Status",
        "ClaimLineStatusEnum": "subsidies.models.ClaimLine.Status",
        "AmountRuleEnum": "subsidies.models.SubsidyProgram.AmountRule",
        "EligibilityRuleKindEnum": "subsidies.models.EligibilityRule.Kind",
        "RecognitionStatusEnum": "ethics.models.RecognitionRequest.Status",
        "SubmissionKindEnum": "ethics.models.Submission.Kind",
        "TrialStepEnum": "trials.services.STEPS",
        "ClaimStepEnum": "subsidies.services.STEPS",
        "SafetyReportStatusEnum": "ethics.models.SafetyEvent.Status",
        "SafetyReportKindEnum": "ethics.models.SafetyEvent.Kind",
        "SafetyReportOutcomeEnum": "ethics.models.SafetyEvent.Outcome",
        "FilingKindEnum": "trials.models.FilingObligation.Kind",
        "FilingStatusEnum": "trials.models.FilingObligation.Status",
        "TrialReviewKindEnum": "trials.models.TrialReview.Kind",
        "TrialReviewOutcomeEnum": "trials.models.TrialReview.Outcome",
        "GateEnum": "trials.models.Gate",
        "GateOutcomeEnum": "trials.models.GateAnswer.Outcome",
        "DutyEnum": "trials.models.Duty",
    },
}

SIMPLE_HISTORY_HISTORY_ID_USE_UUID = False

# One line per record on stderr: "text" for people, "json" (one object per line: time, level, logger, message,
# plus any ``extra=`` fields and the traceback) for a log collector.
LOG_FORMAT = env_choice("DJANGO_LOG_FORMAT", "text", ("text", "json"))
LOG_LEVEL = env_choice("DJANGO_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "timestamp": "time",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "json_ensure_ascii": False,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # SQL queries stay out of the log even at DJANGO_LOG_LEVEL=DEBUG.
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # WeasyPrint logs every font and stylesheet step at INFO while rendering a letter.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # django-axes logs each login at INFO; lockouts are warnings, and every failure is kept in its tables.
        "axes": {"level": "WARNING"},
    },
}
