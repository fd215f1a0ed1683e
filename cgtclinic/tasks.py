"""Celery tasks every app shares."""

import logging

from celery import shared_task

from cgtclinic.notifications import DeliveryDeferred, DeliveryFailed, channel_named

log = logging.getLogger(__name__)


@shared_task(
    autoretry_for=(DeliveryDeferred,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
    soft_time_limit=60,
    time_limit=90,
)
def deliver_notification(channel: str, target: str, payload: dict) -> None:
    """Send one delivery planned by ``notify()``: a temporary failure is retried with back-off (up to about
    17 minutes), a permanent one is logged. At least once: an answer lost to a timeout means a second copy."""
    try:
        channel_named(channel).deliver(target, payload)
    except DeliveryFailed as exc:
        log.warning("notification delivery failed", extra={"channel": channel, "target": target, "error": str(exc)})


@shared_task(ignore_result=True)
def heartbeat() -> None:
    """Beat, every half minute, on the deadline queue: the deadline worker is alive and beat is scheduling."""
    from cgtclinic import health

    health.record_worker_heartbeat()
