"""Roles and what each may do, in one place.

A user has exactly one role. What a role may do to a *kind* of row is the matrix below (read by Django's
permission checks, so the admin and the API agree); *which* rows a user sees is decided by each model's
``visible_to(user)`` queryset method.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    RESEARCH_OFFICE = "research_office", _("Research office staff")
    ETHICS_OFFICE = "ethics_office", _("Ethics office staff")
    PI = "pi", _("Principal investigator")
    REGULATOR = "regulator", _("Regulator")
    SYSTEM_ADMIN = "system_admin", _("System administrator")


# Roles bound to one institution, and the one bound to a region.
INSTITUTION_ROLES = frozenset({Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE, Role.PI})
REGION_ROLES = frozenset({Role.REGULATOR})
# Roles that work in the Django admin.
ADMIN_ROLES = frozenset({Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE, Role.SYSTEM_ADMIN})
# Roles that read the regulator reports (their region's); system administrators, being superusers, read them too.
REPORT_ROLES = frozenset({Role.REGULATOR})


def may_read_reports(user) -> bool:
    """Whether a person may read the regulator reports: the one rule the reports' permission and token issuing use."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.role in REPORT_ROLES)
    )


def report_readers_q() -> models.Q:
    """``may_read_reports`` as a filter on people."""
    return models.Q(is_active=True) & (models.Q(is_superuser=True) | models.Q(role__in=REPORT_ROLES))


def _perms(app_model: str, *actions: str) -> set[str]:
    app, model = app_model.split(".")
    return {f"{app}.{action}_{model}" for action in actions}


VIEW = ("view",)
EDIT = ("view", "add", "change")

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.RESEARCH_OFFICE: frozenset(
        _perms("cgtclinic.region", *VIEW)
        | _perms("cgtclinic.institution", "view", "change")
        | _perms("cgtclinic.department", *EDIT, "delete")
        | _perms("cgtclinic.sponsor", *EDIT)
        | _perms("cgtclinic.user", *EDIT)
        | _perms("cgtclinic.policyparameter", *VIEW)
        | _perms("cgtclinic.policytarget", *VIEW)
        | _perms("cgtclinic.holidayschedule", *VIEW)
        | _perms("cgtclinic.calendarday", *VIEW)
        | _perms("cgtclinic.notificationwebhook", *EDIT, "delete")
        | _perms("trials.trial", *EDIT)
        | _perms("trials.trialstatuschange", *VIEW)
        # IIT reviews and filings change only through their steps (admin buttons, API actions).
        | _perms("trials.trialreview", *VIEW)
        | _perms("trials.filingobligation", *VIEW)
        | _perms("trials.trialsite", *EDIT, "delete")
        | _perms("trials.trialdocument", *EDIT)
        | _perms("trials.documentversion", "view", "add")
        # Enrolment is reported (added) and corrected by new entries, never changed.
        | _perms("trials.enrolmententry", "view", "add")
        | _perms("trials.enrolmentsubject", *VIEW)
        | _perms("trials.siteenrolment", *VIEW)
        # Gates, certificates, delegation logs and consents change only through their services.
        | _perms("trials.gaterule", *VIEW)
        | _perms("trials.gateanswer", *EDIT)
        | _perms("trials.gcpcertificate", "view", "add")
        | _perms("trials.delegation", *EDIT)
        | _perms("trials.subjectconsent", "view", "add")
        # Its hospital's subsidy claims; the programs are policy data.
        | _perms("subsidies.subsidyprogram", *VIEW)
        | _perms("subsidies.eligibilityrule", *VIEW)
        | _perms("subsidies.claim", *EDIT, "delete")
        | _perms("subsidies.claimline", "view", "change")
        | _perms("subsidies.claimstatuschange", *VIEW)
        | _perms("subsidies.claimpayment", *VIEW)
        # Its institution's committee and the reviews of its trials, read-only.
        | _perms("ethics.ethicscommittee", *VIEW)
        | _perms("ethics.committeemember", *VIEW)
        | _perms("ethics.submission", *VIEW)
        | _perms("ethics.submissionevent", *VIEW)
        | _perms("ethics.reviewassignment", *VIEW)
        | _perms("ethics.decision", *VIEW)
        | _perms("ethics.alliance", *VIEW)
        | _perms("ethics.recognitionrequest", *VIEW)
        # Safety reports of its sites: it receives SUSARs and may record them; steps go through the services.
        | _perms("ethics.safetyevent", "view", "change")
        | _perms("ethics.safetyclock", *VIEW)
        | _perms("ethics.safetyeventstep", *VIEW)
        | _perms("ethics.safetyreportingsettings", *VIEW)
    ),
    Role.ETHICS_OFFICE: frozenset(
        _perms("cgtclinic.region", *VIEW)
        | _perms("cgtclinic.institution", *VIEW)
        | _perms("cgtclinic.department", *VIEW)
        | _perms("cgtclinic.sponsor", *VIEW)
        | _perms("cgtclinic.user", *VIEW)
        | _perms("cgtclinic.policyparameter", *VIEW)
        | _perms("cgtclinic.policytarget", *VIEW)
        # The working-day calendar is one for every hospital: offices read it, a system administrator keeps it.
        | _perms("cgtclinic.holidayschedule", *VIEW)
        | _perms("cgtclinic.calendarday", *VIEW)
        | _perms("trials.trial", *VIEW)
        | _perms("trials.trialstatuschange", *VIEW)
        | _perms("trials.trialreview", *VIEW)
        | _perms("trials.filingobligation", *VIEW)
        | _perms("trials.trialsite", *VIEW)
        | _perms("trials.trialdocument", *VIEW)
        | _perms("trials.documentversion", *VIEW)
        | _perms("trials.enrolmententry", *VIEW)
        | _perms("trials.enrolmentsubject", *VIEW)
        | _perms("trials.siteenrolment", *VIEW)
        | _perms("trials.gaterule", *VIEW)
        | _perms("trials.gateanswer", *VIEW)
        | _perms("trials.gcpcertificate", "view", "add")
        | _perms("trials.delegation", *VIEW)
        # Its own committee: membership, training, meetings. Submissions change only through workflow steps,
        # which "change_submission" unlocks in the admin (the services check everything else).
        | _perms("ethics.ethicscommittee", *EDIT)
        | _perms("ethics.committeemember", *EDIT)
        | _perms("ethics.trainingrecord", *EDIT, "delete")
        | _perms("ethics.submission", "view", "change")
        | _perms("ethics.submissionevent", *VIEW)
        | _perms("ethics.reviewassignment", *VIEW)
        | _perms("ethics.meeting", *EDIT)
        | _perms("ethics.decision", *VIEW)
        | _perms("ethics.alliance", *VIEW)
        | _perms("ethics.recognitionrequest", *VIEW)
        # Safety reports to its committee (the review is a step), and its institution's reporting periods.
        | _perms("ethics.safetyevent", "view", "change")
        | _perms("ethics.safetyclock", *VIEW)
        | _perms("ethics.safetyeventstep", *VIEW)
        | _perms("ethics.safetyreportingsettings", *EDIT)
    ),
    # A PI drafts their own projects (the services allow it only for their trials while in draft).
    Role.PI: frozenset(
        _perms("trials.trial", *EDIT)
        | _perms("trials.filingobligation", *VIEW)
        | _perms("trials.trialsite", *EDIT)
        | _perms("trials.trialdocument", "view", "add")
        | _perms("trials.documentversion", "view", "add")
        | _perms("trials.enrolmententry", "view", "add")
        | _perms("trials.enrolmentsubject", *VIEW)
        | _perms("trials.siteenrolment", *VIEW)
        # Reports SAEs and records SUSARs of their sites (the services check which).
        | _perms("ethics.safetyevent", "view", "add")
        | _perms("trials.gateanswer", *VIEW)
        | _perms("trials.gcpcertificate", "view", "add")
        | _perms("trials.delegation", *EDIT)
        | _perms("trials.subjectconsent", "view", "add")
    ),
    # Read-only over REST, except the review steps on claims (POST actions the services check).
    Role.REGULATOR: frozenset(
        _perms("trials.trial", *VIEW)
        | _perms("trials.trialsite", *VIEW)
        | _perms("trials.siteenrolment", *VIEW)
        | _perms("cgtclinic.policytarget", *VIEW)
        | _perms("subsidies.subsidyprogram", *VIEW)
        | _perms("subsidies.claim", *VIEW)
        | _perms("subsidies.claimline", *VIEW)
        | _perms("subsidies.claimpayment", *VIEW)
    ),
    # System administrators are superusers; Django grants them everything before asking this backend.
    Role.SYSTEM_ADMIN: frozenset(),
}
