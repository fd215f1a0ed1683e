from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrialsConfig(AppConfig):
    name = "trials"
    verbose_name = _("Trials")

    def ready(self):
        from cgtclinic import workqueue
        from trials import gate_selectors, selectors

        workqueue.register(selectors.work)
        workqueue.register(gate_selectors.work)
