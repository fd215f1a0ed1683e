"""Authentication backend: passwords as usual, permissions from the role matrix in cgtclinic.roles."""

import datetime
from hmac import compare_digest

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from cgtclinic.roles import ROLE_PERMISSIONS


class RoleBackend(ModelBackend):
    """Password authentication as usual; permissions come from the user's role, not from groups."""

    def get_user_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        return set(ROLE_PERMISSIONS.get(user_obj.role, frozenset()))

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def get_all_permissions(self, user_obj, obj=None):
        return self.get_user_permissions(user_obj, obj)


def client_ip(request) -> str:
    """The address a login attempt came from, for the lockout counted per address.

    Behind the deployment's reverse proxy (DJANGO_BEHIND_PROXY=1) every request comes from the proxy, which appends
    the client's address to X-Forwarded-For: the right-most entry is the one the proxy saw (entries to its left are
    whatever the client claimed). Otherwise the socket's address."""
    if settings.BEHIND_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")


# Last use is recorded at most this often per token, so authenticating stays one query on almost every request.
LAST_USED_PRECISION = datetime.timedelta(seconds=60)


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` against the hashed tokens (cgtclinic.ApiToken): one query for the token, its
    person and their region and institution; an expired token is refused (and kept, for the record), an inactive
    person too; the time of use is recorded once a minute at most."""

    keyword = "Token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Invalid token header: give “Token” and the key, separated by one space."))
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed(_("Invalid token.")) from exc
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        from cgtclinic.models import ApiToken

        digest = hash_token(key)
        now = timezone.now()
        for token in ApiToken.objects.filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH]).select_related(
            "user__region", "user__institution"
        ):
            if not compare_digest(digest, token.digest):
                continue
            if token.expiry is not None and token.expiry <= now:
                raise AuthenticationFailed(_("This token has expired; ask the system administrator for a new one."))
            if not token.user.is_active:
                raise AuthenticationFailed(_("User inactive or deleted."))
            if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
                ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
                token.last_used_at = now
            return token.user, token
        raise AuthenticationFailed(_("Invalid token."))

    def authenticate_header(self, request):
        return self.keyword
