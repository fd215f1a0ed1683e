"""Celery tasks of the trials app, thin over its services: research-filing timers (the database holds every due
date) and the GCP-certificate reminder sweep."""

from celery import shared_task


@shared_task
def filing_remind(obligation_id: int) -> bool:
    """ETA task at a filing's ``remind_at``; re-reads the row and acts only if still due and not yet done."""
    from trials import filings

    return filings.filing_remind(obligation_id)


@shared_task
def filing_escalate(obligation_id: int) -> bool:
    """ETA task at a filing's ``due_at``; re-reads the row and acts only if still open, due and not yet done."""
    from trials import filings

    return filings.filing_escalate(obligation_id)


@shared_task
def sweep_filing_deadlines() -> dict:
    """Beat, every minute: every filing reminder and escalation that is due and has not happened, whatever happened
    to the ETA messages. Enough on its own; safe to run twice or at once."""
    from trials import filings

    return filings.sweep()


@shared_task
def recompute_filing_deadlines(years: list[int]) -> int:
    """A holiday schedule was entered or changed: recompute open working-day filing deadlines touching those years."""
    from trials import filings

    return filings.recompute_deadlines(tuple(years))


@shared_task
def sweep_certificate_reminders() -> int:
    """Beat, every 15 minutes: send every GCP-certificate reminder that is due and not yet sent.

    Expiry dates are days away, so the sweep is enough on its own; running it twice, or twice at once, sends
    nothing twice (each reminder is a row under a unique key, written by the transaction that notifies).
    """
    from trials import qualifications

    return len(qualifications.send_certificate_reminders())
