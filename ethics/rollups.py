"""Rollups of ethics review that the regulator reports read (``ethics.reports``) instead of the submissions and
recognition requests themselves.

- ``ethics.turnaround_facts`` (``TurnaroundFact``): one narrow row per submission the turnaround report counts: a
  decided one with its days from receipt to decision (computed once, as the report computed it), or one in
  review. Facts rather than per-committee or per-month sums because the report gives exact medians and 90th
  percentiles over any decision period, kind and institution: sums cannot give those, and the facts keep every
  figure the same. At national scale (332,000 submissions, 122,000 counted in Shanghai) the report read the wide
  submission rows through committee and institution and sorted them twice (EXPLAIN ANALYZE: about 300 ms of SQL for
  Shanghai, 700 ms on a loaded machine). A fact carries its region, and the index (region, review type, days)
  hands a region's facts to the aggregate already grouped and in the order the percentiles sort, so the report is
  one index-only range scan with no sort of its own (about 45 ms for Shanghai; a system administrator's report
  reads the (review type, days) index the same way over every region).
- ``ethics.recognition_answer_facts`` (``RecognitionAnswerFact``): one row per answered recognition request (received
  at, late, working hours, alliance, institution and region), indexed by (region, alliance, working hours) for the
  same reason. An answer is final, so a fact is written once, by the answer (``recognition_respond``). Open
  requests are not facts: whether one is overdue depends on the moment of the report, and a deadline may move while
  it is open; the report reads them from the open requests themselves (about 1,000 nationally, on the partial
  index of open requests), in the same statement.

- ``ethics.safety_next_due`` (``SafetyEvent.next_due_at``): each safety report's earliest open deadline, which the
  offices' and PIs' lists order by (overdue first). Aggregating every report's clocks before cutting a page of 50
  took seconds at national scale; the column and its index (next due, newest) make the page an index range.
  ``ethics.safety.refresh_next_due`` rewrites it, under the report's row lock, whenever a clock opens, is met or is
  cancelled.

- ``ethics.safety_clock_scope`` (``SafetyClock.trial``, ``site_institution``, ``region``): each clock carries its
  report's trial, site institution and region, set when the clock starts (``ethics.safety._open_clock``). The
  timeliness report groups a region's clocks by institution or trial; through the report and its site it read
  about 1.0 to 1.5 s of SQL for Shanghai at national scale, and now reads one range of the index (region,
  institution or trial, clock, time taken) in the order its groups and medians need.

Upkeep, in the transaction of the writer: the submission services end every status change in ``_move`` (under the
submission's row lock), which recomputes that submission's fact from its row (``refresh_turnaround_fact``:
delete, then insert what the row now says, or nothing); ``recognition_respond`` records the answer's fact under the
request's row lock (``refresh_recognition_fact``). Recomputing one row from its source is idempotent and cannot
drift. The region is copied from the committee's institution: an institution moved to another region (an admin
correction, not a workflow) is found by ``manage.py rebuild_rollups --check`` and mended by ``rebuild_rollups``.
"""

from django.db import connection
from django.utils.translation import gettext_lazy as _

from cgtclinic.rollups import Rollup, differences_from_source, register, replace_rows
from ethics.models import RecognitionAnswerFact, RecognitionRequest, SafetyEvent, Submission, TurnaroundFact

S = Submission.Status
R = RecognitionRequest.Status
IN_REVIEW = (S.EXPEDITED_REVIEW, S.AWAITING_MEETING)
ANSWERED = (R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED)


def _sql_list(values) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _days(end: str, start: str) -> str:
    """Fractional days between two timestamps, as ``cgtclinic.reporting.sql.DaysBetweenTimes`` computes them."""
    if connection.vendor == "sqlite":
        return f"(julianday({end}) - julianday({start}))"
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 86400.0)"


TURNAROUND_COLUMNS = (
    "submission_id",
    "institution_id",
    "region_id",
    "status",
    "review_type",
    "kind",
    "decided_at",
    "days",
)


def turnaround_source() -> str:
    return f"""
        SELECT s.id AS submission_id, c.institution_id, i.region_id, s.status, s.review_type, s.kind,
               CASE WHEN s.status = '{S.DECIDED}' THEN s.decided_at END AS decided_at,
               CASE WHEN s.status = '{S.DECIDED}' THEN {_days("s.decided_at", "s.submitted_at")} END AS days
        FROM ethics_submission s
        JOIN ethics_ethicscommittee c ON c.id = s.committee_id
        JOIN cgtclinic_institution i ON i.id = c.institution_id
        WHERE s.review_type <> ''
          AND ((s.status = '{S.DECIDED}' AND s.submitted_at IS NOT NULL) OR s.status IN ({_sql_list(IN_REVIEW)}))
          {{where}}
    """


RECOGNITION_COLUMNS = (
    "request_id",
    "alliance_id",
    "institution_id",
    "region_id",
    "received_at",
    "late",
    "response_working_hours",
)


def recognition_source() -> str:
    return f"""
        SELECT r.id AS request_id, r.alliance_id, c.institution_id, i.region_id, r.received_at, r.late,
               r.response_working_hours
        FROM ethics_recognitionrequest r
        JOIN ethics_ethicscommittee c ON c.id = r.committee_id
        JOIN cgtclinic_institution i ON i.id = c.institution_id
        WHERE r.status IN ({_sql_list(ANSWERED)}) {{where}}
    """


def refresh_turnaround_fact(submission_id: int) -> None:
    """The submission's turnaround fact as its row now says (none when the report does not count it)."""
    source = turnaround_source().format(where="AND s.id = %s")
    replace_rows(
        TurnaroundFact._meta.db_table, TURNAROUND_COLUMNS, source, key="submission_id = %s", params=[submission_id]
    )


def refresh_recognition_fact(request_id: int) -> None:
    """The request's answer fact as its row now says (none while it is unanswered)."""
    source = recognition_source().format(where="AND r.id = %s")
    replace_rows(
        RecognitionAnswerFact._meta.db_table, RECOGNITION_COLUMNS, source, key="request_id = %s", params=[request_id]
    )


def _register(name: str, model, columns, source) -> Rollup:
    table = model._meta.db_table
    return register(
        Rollup(
            name=name,
            description=(model.__doc__ or "").strip(),
            rebuild=lambda: replace_rows(table, columns, source().format(where="")),
            differences=lambda limit: differences_from_source(table, columns, source().format(where=""), limit),
        )
    )


_register("ethics.turnaround_facts", TurnaroundFact, TURNAROUND_COLUMNS, turnaround_source)
_register("ethics.recognition_answer_facts", RecognitionAnswerFact, RECOGNITION_COLUMNS, recognition_source)


NEXT_DUE_COLUMNS = ("event_id", "next_due_at")
NEXT_DUE_SOURCE = """
    SELECT e.id AS event_id,
           (SELECT MIN(c.due_at) FROM ethics_safetyclock c
            WHERE c.event_id = e.id AND c.met_at IS NULL AND NOT c.cancelled) AS next_due_at
    FROM ethics_safetyevent e
"""
NEXT_DUE_KEPT = "(SELECT id AS event_id, next_due_at FROM ethics_safetyevent) kept"


def rebuild_safety_next_due() -> int:
    """Write every safety report's next deadline where it differs from its open clocks'."""
    table = SafetyEvent._meta.db_table
    same = "IS" if connection.vendor == "sqlite" else "IS NOT DISTINCT FROM"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET next_due_at = c.next_due_at FROM ({NEXT_DUE_SOURCE}) c "
            f"WHERE c.event_id = {table}.id AND NOT ({table}.next_due_at {same} c.next_due_at)"
        )
        return cursor.rowcount


register(
    Rollup(
        name="ethics.safety_next_due",
        description=_("Each safety report's next deadline: the earliest due moment of its open clocks."),
        rebuild=rebuild_safety_next_due,
        differences=lambda limit: differences_from_source(NEXT_DUE_KEPT, NEXT_DUE_COLUMNS, NEXT_DUE_SOURCE, limit),
    )
)


CLOCK_SCOPE_COLUMNS = ("clock_id", "trial_id", "site_institution_id", "region_id")
CLOCK_SCOPE_SOURCE = """
    SELECT c.id AS clock_id, e.trial_id, s.institution_id AS site_institution_id, i.region_id
    FROM ethics_safetyclock c
    JOIN ethics_safetyevent e ON e.id = c.event_id
    JOIN trials_trialsite s ON s.id = e.site_id
    JOIN cgtclinic_institution i ON i.id = s.institution_id
"""
CLOCK_SCOPE_KEPT = "(SELECT id AS clock_id, trial_id, site_institution_id, region_id FROM ethics_safetyclock) kept"


def rebuild_safety_clock_scope() -> int:
    """Write every clock's trial, site institution and region where they differ from its report's."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE ethics_safetyclock SET trial_id = c.trial_id, site_institution_id = c.site_institution_id, "
            f"region_id = c.region_id FROM ({CLOCK_SCOPE_SOURCE}) c WHERE c.clock_id = ethics_safetyclock.id "
            f"AND NOT (ethics_safetyclock.trial_id = c.trial_id "
            f"AND ethics_safetyclock.site_institution_id = c.site_institution_id "
            f"AND ethics_safetyclock.region_id = c.region_id)"
        )
        return cursor.rowcount


register(
    Rollup(
        name="ethics.safety_clock_scope",
        description=_("Each safety clock's trial, site institution and region, as its report and site give them."),
        rebuild=rebuild_safety_clock_scope,
        differences=lambda limit: differences_from_source(
            CLOCK_SCOPE_KEPT, CLOCK_SCOPE_COLUMNS, CLOCK_SCOPE_SOURCE, limit
        ),
    )
)
