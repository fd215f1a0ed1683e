"""Authentication backend: passwords as usual, permissions from the role matrix in cgtclinic.roles."""

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
