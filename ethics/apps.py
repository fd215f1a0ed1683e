from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EthicsConfig(AppConfig):
    name = "ethics"
    verbose_name = _("Ethics review")

    def ready(self):
        from cgtclinic import workdays

        def schedule_changed(years):
            # Listeners run after commit and must not block the admin: the work goes to a Celery task.
            from ethics.tasks import recompute_recognition_deadlines

            recompute_recognition_deadlines.delay(list(years))

        def deadline_horizon():
            from ethics.recognition import open_deadline_horizon

            return open_deadline_horizon()

        workdays.register_schedule_listener(schedule_changed)
        workdays.register_deadline_horizon(deadline_horizon)

        from cgtclinic import workqueue
        from ethics import selectors

        workqueue.register(selectors.work)
        workqueue.register(selectors.safety_work)
