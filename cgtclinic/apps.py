from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CgtclinicConfig(AppConfig):
    name = "cgtclinic"
    verbose_name = _("Institutions and people")

    def ready(self):
        from cgtclinic import checks  # noqa: F401  (registers the system checks)
        from cgtclinic.api import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
