from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrialsConfig(AppConfig):
    name = "trials"
    verbose_name = _("Trials")

    def ready(self):
        from cgtclinic import workdays, workqueue
        from trials import gate_selectors, rollups, selectors

        rollups.connect()

        workqueue.register(selectors.work)
        workqueue.register(selectors.filing_work)
        workqueue.register(gate_selectors.work)

        def schedule_changed(years):
            # Listeners run after commit and must not block the admin: the work goes to a Celery task.
            from trials.tasks import recompute_filing_deadlines

            recompute_filing_deadlines.delay(list(years))

        def deadline_horizon():
            from trials.filings import open_deadline_horizon

            return open_deadline_horizon()

        workdays.register_schedule_listener(schedule_changed)
        workdays.register_deadline_horizon(deadline_horizon)
