"""Writes to the registry: who may record which person with which role, and a person's own language."""

import datetime

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import ApiToken, User
from cgtclinic.roles import INSTITUTION_ROLES, Role, may_read_reports


def check_person_fields(*, actor: User, person: User | None, data: dict) -> None:
    """A research office records people of its own institution, in institution roles only, never admins."""
    if actor.is_superuser:
        return
    if actor.role != Role.RESEARCH_OFFICE:
        raise DomainError(_("Only the research office may record people."), code="permission_denied")
    if person is not None and person.institution_id != actor.institution_id:
        raise DomainError(_("You can only edit people of your own institution."), code="permission_denied")
    role = data.get("role", person.role if person else None)
    if role not in INSTITUTION_ROLES:
        raise DomainError(
            _("A research office can record research-office, ethics-office staff and PIs only."), field="role"
        )
    institution = data.get("institution", person.institution if person else None)
    if institution is None or institution.pk != actor.institution_id:
        raise DomainError(_("You can only record people of your own institution."), field="institution")
    if data.get("is_superuser"):
        raise DomainError(_("Only a system administrator can grant administrator rights."), field="is_superuser")


def person_set_language(*, person: User, language: str) -> bool:
    """Remember the interface language a person chose, so their notifications (e-mail, in-app, chat) use it too.
    Returns whether it changed; an unknown language changes nothing."""
    if language not in dict(settings.LANGUAGES) or person.language == language:
        return False
    person.language = language
    person._history_user = person
    person.save(update_fields=["language"])
    return True


def check_api_token(*, actor: User, user: User) -> None:
    """A system administrator issues a report token, one per person, only to someone who may read the reports."""
    if not actor.is_superuser:
        raise DomainError(_("Only a system administrator issues API tokens."), code="permission_denied")
    if not user.is_active:
        raise DomainError(_("%(person)s is no longer active.") % {"person": user}, field="user")
    if not may_read_reports(user):
        raise DomainError(
            _(
                "%(person)s is %(role)s, a role that cannot read the reports, so no report token is issued. "
                "Report tokens are for regulators (they read their own region) and system administrators."
            )
            % {"person": user, "role": user.get_role_display()},
            code="cannot_read_reports",
            field="user",
        )
    if ApiToken.objects.valid().filter(user=user).exists():
        raise DomainError(
            _("%(person)s already has a token; revoke it before issuing a new one.") % {"person": user},
            code="token_exists",
            field="user",
        )


# The longest a token may be issued for; a shorter validity is the issuer's choice.
MAX_TOKEN_DAYS = 366


def api_token_issue(*, actor: User, user: User, valid_days: int = 365, label: str = "") -> tuple[ApiToken, str]:
    """Issue a report token: the stored row (digest, expiry) and the key, which the caller shows once and which
    cannot be read back."""
    if not isinstance(valid_days, int) or not 1 <= valid_days <= MAX_TOKEN_DAYS:
        raise DomainError(_("A token is valid for 1 to %(max)s days.") % {"max": MAX_TOKEN_DAYS}, field="valid_days")
    with transaction.atomic():
        # One person at a time: two administrators issuing at once cannot both pass the check.
        User.objects.select_for_update().filter(pk=user.pk).first()
        check_api_token(actor=actor, user=user)
        return ApiToken.objects.create(
            user=user,
            expiry=datetime.timedelta(days=valid_days),
            created_by=actor,
            label=label.strip()[:100],
        )
