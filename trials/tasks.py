"""Celery tasks of the trials app: the GCP-certificate reminder sweep."""

from celery import shared_task


@shared_task
def sweep_certificate_reminders() -> int:
    """Beat, every 15 minutes: send every GCP-certificate reminder that is due and not yet sent.

    Expiry dates are days away, so the sweep is enough on its own; running it twice, or twice at once, sends
    nothing twice (each reminder is a row under a unique key, written by the transaction that notifies).
    """
    from trials import qualifications

    return len(qualifications.send_certificate_reminders())
