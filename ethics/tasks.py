"""Ethics timers: thin Celery tasks over ethics.reminders; the database holds every due date."""

from celery import shared_task

from ethics import reminders


@shared_task
def sweep_continuing_reviews() -> int:
    """Beat, every 15 minutes: send every continuing-review reminder that is due and not yet sent.

    This sweep is enough on its own: due dates are days away, so no task waits with an ETA, and a run lost with
    the broker is made good by the next one. Running it twice, or twice at once, sends nothing twice.
    """
    return len(reminders.send_continuing_review_reminders())


@shared_task
def remind_continuing_review(decision_id: int) -> int:
    """Send what is due now for one decision, e.g. by hand after its recipients were corrected.

    Nothing enqueues this with an ETA, and nothing needs to: the beat sweep reaches every decision within 15
    minutes. It is as idempotent as the sweep, whose rule it applies to one row.
    """
    return len(reminders.send_continuing_review_reminders(decision_ids=[decision_id]))


@shared_task
def recognition_remind(request_id: int) -> bool:
    """ETA task at a request's ``remind_at``; re-reads the row and acts only if still due and not yet done."""
    from ethics import recognition

    return recognition.recognition_remind(request_id)


@shared_task
def recognition_escalate(request_id: int) -> bool:
    """ETA task at a request's ``due_at``; re-reads the row and acts only if still open, due and not yet done."""
    from ethics import recognition

    return recognition.recognition_escalate(request_id)


@shared_task
def sweep_recognition_deadlines() -> dict:
    """Beat, every minute: every reminder and escalation that is due and has not happened, whatever happened to
    the ETA messages (Redis flushed, worker killed). Enough on its own; safe to run twice or at once."""
    from ethics import recognition

    return recognition.sweep()


@shared_task
def recompute_recognition_deadlines(years: list[int]) -> int:
    """A holiday schedule was entered or changed: recompute open deadlines touching those years."""
    from ethics import recognition

    return recognition.recompute_deadlines(tuple(years))


@shared_task
def safety_remind(clock_id: int) -> bool:
    """ETA task at a safety clock's ``remind_at``; re-reads the row and acts only if still due and not yet done."""
    from ethics import safety

    return safety.safety_remind(clock_id)


@shared_task
def safety_escalate(clock_id: int) -> bool:
    """ETA task at a safety clock's ``due_at``; re-reads the row and acts only if still open and not yet done."""
    from ethics import safety

    return safety.safety_escalate(clock_id)


@shared_task
def sweep_safety_clocks() -> dict:
    """Beat, every minute: every safety-reporting reminder and escalation that is due and has not happened,
    whatever happened to the ETA messages. Enough on its own; safe to run twice or at once."""
    from ethics import safety

    return safety.sweep()
