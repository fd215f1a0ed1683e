from rest_framework.permissions import DjangoModelPermissions


class RolePermission(DjangoModelPermissions):
    """The role matrix in cgtclinic.roles decides per model and method; reading needs the view permission."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
