"""Writes to the registry: who may record which person with which role, and a person's own language."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from cgtclinic.errors import DomainError
from cgtclinic.models import User
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
    if Token.objects.filter(user=user).exists():
        raise DomainError(
            _("%(person)s already has a token; revoke it before issuing a new one.") % {"person": user},
            code="token_exists",
            field="user",
        )


def api_token_issue(*, actor: User, user: User) -> Token:
    """Issue a report token; its key is shown once, by the caller."""
    check_api_token(actor=actor, user=user)
    try:
        with transaction.atomic():
            return Token.objects.create(user=user)
    except IntegrityError as exc:  # issued by someone else a moment ago
        raise DomainError(
            _("%(person)s already has a token; revoke it before issuing a new one.") % {"person": user},
            code="token_exists",
            field="user",
        ) from exc
