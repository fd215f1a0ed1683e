"""Authentication backend: passwords as usual, permissions from the role matrix in cgtclinic.roles."""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

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
