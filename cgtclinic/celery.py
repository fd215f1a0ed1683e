import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cgtclinic.settings")

app = Celery("cgtclinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class SweepAfterReconnect(bootsteps.StartStopStep):
    """A worker consuming the deadline queue sends itself the deadline sweeps each time its consumer starts: at
    start-up and after every reconnection to the broker. Effects that fell due while the broker was down (and the
    ETA messages it lost) then happen within seconds of its return, without waiting for beat's next tick."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, consumer):
        from django.conf import settings

        queues = {queue.name for queue in consumer.task_consumer.queues} if consumer.task_consumer else set()
        if settings.DEADLINE_QUEUE not in queues:
            return
        for name in settings.DEADLINE_SWEEPS:
            consumer.app.send_task(name, queue=settings.DEADLINE_QUEUE, expires=50)


app.steps["consumer"].add(SweepAfterReconnect)
