"""Rollups the trials reports read: one row per site (``SiteRollup``) with its trial's and institution's report
columns and its start-up stage days already computed.

Why this shape (EXPLAIN ANALYZE on the national set, Shanghai: 26,099 trials with a site in the region; see
docs/benchmark.md for the numbers): the pipeline and start-up reports spent their time joining every site of the
region to its trial and institution, computing stage days row by row and counting distinct trials (a sort per group),
not in the aggregates themselves. A per-(trial, region) or per-group count table would answer the pipeline alone but
not its filters by registration day or institution, and not start-up's percentiles, which need the site values; one
narrow row per site answers all three reports with their filters, and its size follows the region's sites, not the
ledger. Distinct trials are counted from flags (one site per trial and region, one per trial), which stay right
when groups are summed across institutions and regions. The row also holds the site's current enrolment counts (a
copy of its ``SiteEnrolment`` row): joining every site of the country to its counts cost the enrolment summary about
170 ms, a scan of the rollup alone costs a fraction of it.

How it stays current: a site's row depends on its trial, its sibling sites (the flags) and its institution, so the
rows of a trial are recomputed from the raw rows, as one DELETE and one INSERT … SELECT, whenever a trial, a site or
an institution row is saved or deleted, in the writer's transaction (``connect()``, called from the app config, and
the ``update()`` of the trial and site querysets). Trial and site rows are written by the trials services and admin,
and also by the ethics app (a site's ethics approval is a queryset update), seeds and test factories: hooking the
model layer keeps every path current without each caller knowing about the rollup, and recomputing from raw rows is
idempotent, so nothing drifts. The enrolment write path updates the counts of its own site's row only
(``update_site_counts``), never the trial's rows. The scale generator, which writes with COPY, calls
``cgtclinic.rollups.rebuild()`` afterwards.

The ledger's rollups, kept by the enrolment services (``trials.enrolment``) in the transaction that adds an entry:

- ``trials.site_enrolment`` (``SiteEnrolment``): each site's net counts per event and latest standing enrolment,
  which the write path checks a new entry against (reading a busy site's whole ledger under its lock was most of a
  write's cost at national scale) and the reports read as the current counts.
- ``trials.site_month`` (``SiteEnrolmentMonth``): per site and calendar month of the event date. The enrolment
  report over a period reads the whole months in it here and only the days of the partial months at its edges from
  the ledger (the period filter is by day, so the figures stay those of the ledger). A per-site-day table would need
  no edges but would hold about as many rows as the ledger (most sites report on few days of a month); a month
  holds several entries of a site, and the edges are at most two months of the ledger's date index.
- ``trials.subject_state`` (``EnrolmentSubject.state`` and ``last_event_on``): each subject's current state and
  latest standing entry, which the admin's subject list filters and shows without reading the ledger.
"""

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _

from cgtclinic.models import Institution
from cgtclinic.reporting.sql import fetch_dicts, sql_days, sql_greatest
from cgtclinic.rollups import Rollup, differences_from_source, register, replace_rows
from trials.models import (
    EnrolmentEntry,
    EnrolmentSubject,
    SiteEnrolment,
    SiteEnrolmentMonth,
    SiteRollup,
    SubjectState,
    Trial,
    TrialSite,
)

S = Trial.Status
# Trials that stopped: a site not yet started is not waiting in any stage.
STOPPED_STATUSES = (S.ENROLMENT_CLOSED, S.COMPLETED, S.TERMINATED, S.WITHDRAWN, S.DRAFT)
STAGES = ("ethics", "contract", "initiation", "first_patient")
# The milestone each stage ends with.
STAGE_ENDS = ("ethics_approved_on", "contract_signed_on", "site_initiated_on", "first_patient_in_on")
# Fields whose change changes a row; saves of other fields (a site's PI, a trial's documents) skip the refresh.
TRIAL_FIELDS = {"protocol_number", "status", "kind", "therapy_category", "created_at", "target_enrolment"}
SITE_FIELDS = {"trial", "trial_id", "institution", "institution_id", "role", "site_target", *TrialSite.MILESTONES}
INSTITUTION_FIELDS = {"name_zh", "region", "region_id"}

# The advisory lock class under which a trial's rows are recomputed (with the trial id as the second key).
REFRESH_LOCK = 7_311

COLUMNS = [field.column for field in SiteRollup._meta.concrete_fields]
# The ledger's event kinds, which are also the count columns of SiteEnrolment, SiteRollup and SiteEnrolmentMonth.
COUNT_FIELDS = tuple(EnrolmentEntry.Kind.values)


def _rows_sql(where: str) -> str:
    """SELECT of the rollup's columns, in ``COLUMNS`` order, for the sites ``s`` matching ``where``."""
    starts = ["s.submission_received_on"]
    for end in STAGE_ENDS[:-1]:
        starts.append(f"COALESCE(s.{end}, {starts[-1]})")
    stopped = ", ".join(f"'{status}'" for status in STOPPED_STATUSES)
    raw = {
        "site_id": "s.id",
        "trial_id": "s.trial_id",
        "institution_id": "s.institution_id",
        "region_id": "i.region_id",
        "protocol_number": "t.protocol_number",
        "institution_name": "i.name_zh",
        "trial_status": "t.status",
        "trial_kind": "t.kind",
        "therapy_category": "t.therapy_category",
        "trial_created_at": "t.created_at",
        "trial_target": "t.target_enrolment",
        "role": "s.role",
        "site_target": "s.site_target",
        **{name: f"s.{name}" for name in TrialSite.MILESTONES},
        "startup_days": sql_days("s.site_initiated_on", "s.submission_received_on"),
        "days_to_first_patient": sql_days("s.first_patient_in_on", "s.submission_received_on"),
        **{
            f"{stage}_days": sql_days(f"s.{end}", start)
            for stage, end, start in zip(STAGES, STAGE_ENDS, starts, strict=True)
        },
        "stage_started_on": starts[-1],
        "waiting": f"(t.status NOT IN ({stopped}) AND s.first_patient_in_on IS NULL)",
        **{kind: f"COALESCE(e.{kind}, 0)" for kind in COUNT_FIELDS},
        "last_enrolled_on": "e.last_enrolled_on",
    }
    flags = {
        "first_in_region": "(ROW_NUMBER() OVER (PARTITION BY s.trial_id, i.region_id ORDER BY s.id) = 1)",
        "first_in_trial": "(ROW_NUMBER() OVER (PARTITION BY s.trial_id ORDER BY s.id) = 1)",
    }
    # Derived from the raw columns above, in an outer SELECT over them.
    longest = sql_greatest(*(f"COALESCE(b.{stage}_days, -1)" for stage in STAGES))
    derived = {
        "current_stage": """CASE WHEN NOT b.waiting THEN NULL
                                 WHEN b.site_initiated_on IS NOT NULL THEN 'first_patient'
                                 WHEN b.contract_signed_on IS NOT NULL THEN 'initiation'
                                 WHEN b.ethics_approved_on IS NOT NULL THEN 'contract'
                                 ELSE 'ethics' END""",
        "longest_done_days": longest,
        "slowest_done_stage": f"CASE WHEN {longest} < 0 THEN NULL "
        + " ".join(f"WHEN b.{stage}_days = {longest} THEN '{stage}'" for stage in STAGES)
        + " END",
    }
    outer = {**{name: f"b.{name}" for name in [*raw, *flags]}, **derived}
    assert sorted(outer) == sorted(COLUMNS), "the SELECT must list the rollup's columns"
    inner = ", ".join(f"{sql} AS {name}" for name, sql in {**raw, **flags}.items())
    return (
        f"SELECT {', '.join(f'{outer[name]} AS {name}' for name in COLUMNS)} FROM (SELECT {inner} "
        "FROM trials_trialsite s JOIN trials_trial t ON t.id = s.trial_id "
        f"JOIN cgtclinic_institution i ON i.id = s.institution_id "
        f"LEFT JOIN trials_siteenrolment e ON e.site_id = s.id WHERE {where}) b"
    )


def _execute(sql: str, params=()) -> int:
    # Rollup writes go to the primary database, in the writer's transaction (the reporting helpers may read a replica).
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def refresh_trials(trial_ids: Iterable[int]) -> None:
    """Recompute the rows of these trials' sites from the raw rows (idempotent)."""
    ids = sorted({int(pk) for pk in trial_ids if pk is not None})
    if not ids:
        return
    table = SiteRollup._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One refresher per trial at a time, in trial order: two writers of one trial's sites (each seeing the
            # raw rows as of its own statement) would otherwise insert the same site twice or leave stale flags.
            _execute(
                "SELECT pg_advisory_xact_lock(%s, id) FROM (SELECT unnest(%s::int[]) AS id ORDER BY 1) trials",
                [REFRESH_LOCK, ids],
            )
        _execute(f"DELETE FROM {table} WHERE trial_id IN ({marks})", ids)
        _execute(f"INSERT INTO {table} ({', '.join(COLUMNS)}) {_rows_sql(f's.trial_id IN ({marks})')}", ids)


def refresh_institution(institution_id: int) -> None:
    """An institution's name or region changed: the rows of every trial with a site there."""
    refresh_trials(TrialSite.objects.filter(institution_id=institution_id).values_list("trial_id", flat=True))


def rebuild() -> int:
    table = SiteRollup._meta.db_table
    _execute(f"DELETE FROM {table}")
    return _execute(f"INSERT INTO {table} ({', '.join(COLUMNS)}) {_rows_sql('TRUE')}")


def differences(limit: int) -> list[str]:
    """Sites whose row differs from a recomputation (missing, extra or with other values)."""
    table = SiteRollup._meta.db_table
    columns = ", ".join(COLUMNS)
    expected = _rows_sql("TRUE")
    found = []
    for label, first, second in (
        (_("stale or missing"), expected, f"SELECT {columns} FROM {table}"),
        (_("not in the raw data"), f"SELECT {columns} FROM {table}", expected),
    ):
        rows = fetch_dicts(
            f"SELECT * FROM ({first} EXCEPT SELECT * FROM ({second}) b) d ORDER BY site_id LIMIT %s", [limit]
        )
        found += [f"site {row['site_id']}: {label}" for row in rows]
    return found[:limit]


def update_site_counts(site_id: int, trial_id: int, counts: dict[str, int], last_enrolled_on) -> None:
    """Copy a site's new counts (its ``SiteEnrolment`` row) into its rollup row, in the enrolment writer's
    transaction. Under the trial's refresh lock in shared mode (writers of other sites of the trial go on; a
    recompute of the trial's rows, which takes it exclusively, waits for this transaction or runs before it), taken
    after the writer's row locks: a recompute never inserts the row from counts older than the writer's."""
    if connection.vendor == "postgresql":
        _execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [REFRESH_LOCK, trial_id])
    assignments = ", ".join(f"{kind} = %s" for kind in COUNT_FIELDS)
    _execute(
        f"UPDATE {SiteRollup._meta.db_table} SET {assignments}, last_enrolled_on = %s WHERE site_id = %s",
        [*(counts[kind] for kind in COUNT_FIELDS), last_enrolled_on, site_id],
    )


# --- the ledger's rollups: a site's running totals, a site's months, a subject's state ------------------------------
#
# Each is moved by the enrolment services (``trials.enrolment``) in the transaction that adds an entry, under the
# site's row lock, so they hold exactly what the ledger holds; below, their recomputation from the ledger for
# ``rebuild`` and ``differences``. An entry counts for its kind, negatively when it is a correction; an entry
# "stands" when it is not a correction and nothing reverses it.

SIGNED = "CASE WHEN e.reverses_id IS NULL THEN e.count ELSE -e.count END"
STANDING = "(e.reverses_id IS NULL AND r.id IS NULL)"
STANDING_JOIN = "LEFT JOIN trials_enrolmententry r ON r.reverses_id = e.id"
NET_SUMS = ", ".join(f"SUM(CASE WHEN e.kind = '{kind}' THEN {SIGNED} ELSE 0 END) AS {kind}" for kind in COUNT_FIELDS)

SITE_COUNT_COLUMNS = ("site_id", "trial_id", *COUNT_FIELDS, "last_enrolled_on")
SITE_COUNTS_SOURCE = f"""
    SELECT e.site_id, MIN(e.trial_id) AS trial_id, {NET_SUMS},
           MAX(CASE WHEN e.kind = '{EnrolmentEntry.Kind.ENROLLED}' AND {STANDING} THEN e.occurred_on END)
               AS last_enrolled_on, CURRENT_TIMESTAMP AS updated_at
    FROM trials_enrolmententry e {STANDING_JOIN}
    GROUP BY e.site_id
"""

MONTH_COLUMNS = ("site_id", "trial_id", "month", *COUNT_FIELDS, "last_enrolled_on")


def _month_source() -> str:
    month = (
        "date(e.occurred_on, 'start of month')"
        if connection.vendor == "sqlite"
        else "CAST(DATE_TRUNC('month', CAST(e.occurred_on AS timestamp)) AS date)"
    )
    # The latest enrolment day of the month, corrections included: what the ledger's grouped MAX gives a report.
    return f"""
        SELECT e.site_id, MIN(e.trial_id) AS trial_id, {month} AS month, {NET_SUMS},
               MAX(CASE WHEN e.kind = '{EnrolmentEntry.Kind.ENROLLED}' THEN e.occurred_on END) AS last_enrolled_on
        FROM trials_enrolmententry e
        GROUP BY e.site_id, {month}
    """


def add_to_month(entry: EnrolmentEntry) -> None:
    """Add a new ledger entry to its site's month (the row is created with the month's first entry)."""
    table = SiteEnrolmentMonth._meta.db_table
    counts = [entry.signed_count if kind == entry.kind else 0 for kind in COUNT_FIELDS]
    enrolled_on = entry.occurred_on if entry.kind == EnrolmentEntry.Kind.ENROLLED else None
    added = ", ".join(f"{kind} = {table}.{kind} + excluded.{kind}" for kind in COUNT_FIELDS)
    # MAX of two values on SQLite, GREATEST on PostgreSQL; both sides non-null whenever either is.
    latest = "MAX" if connection.vendor == "sqlite" else "GREATEST"
    last = (
        f"{latest}(COALESCE({table}.last_enrolled_on, excluded.last_enrolled_on), "
        f"COALESCE(excluded.last_enrolled_on, {table}.last_enrolled_on))"
    )
    _execute(
        f"INSERT INTO {table} ({', '.join(MONTH_COLUMNS)}) VALUES ({', '.join(['%s'] * len(MONTH_COLUMNS))}) "
        f"ON CONFLICT (site_id, month) DO UPDATE SET {added}, last_enrolled_on = {last}",
        [entry.site_id, entry.trial_id, entry.occurred_on.replace(day=1), *counts, enrolled_on],
    )


SUBJECT_COLUMNS = ("subject_id", "state", "last_event_on")
# The latest stage the subject's net counts reach (``trials.enrolment.subject_state``'s order), or none.
SUBJECT_PRECEDENCE = (
    (EnrolmentEntry.Kind.COMPLETED, SubjectState.COMPLETED),
    (EnrolmentEntry.Kind.WITHDRAWN, SubjectState.WITHDRAWN),
    (EnrolmentEntry.Kind.ENROLLED, SubjectState.ON_STUDY),
    (EnrolmentEntry.Kind.SCREEN_FAILED, SubjectState.SCREEN_FAILED),
    (EnrolmentEntry.Kind.SCREENED, SubjectState.SCREENED),
)
_STATE_CASE = (
    "CASE "
    + " ".join(
        f"WHEN SUM(CASE WHEN e.kind = '{kind}' THEN {SIGNED} ELSE 0 END) > 0 THEN '{state}'"
        for kind, state in SUBJECT_PRECEDENCE
    )
    + f" ELSE '{SubjectState.NONE}' END"
)
SUBJECT_SOURCE = f"""
    SELECT s.id AS subject_id, {_STATE_CASE} AS state, MAX(CASE WHEN {STANDING} THEN e.occurred_on END) AS last_event_on
    FROM trials_enrolmentsubject s
    LEFT JOIN trials_enrolmententry e ON e.subject_id = s.id {STANDING_JOIN}
    GROUP BY s.id
"""
SUBJECT_KEPT = "(SELECT id AS subject_id, state, last_event_on FROM trials_enrolmentsubject) kept"


def rebuild_site_enrolment() -> int:
    return replace_rows(SiteEnrolment._meta.db_table, (*SITE_COUNT_COLUMNS, "updated_at"), SITE_COUNTS_SOURCE)


def rebuild_months() -> int:
    return replace_rows(SiteEnrolmentMonth._meta.db_table, MONTH_COLUMNS, _month_source())


def rebuild_subject_states() -> int:
    """Write every subject's state and latest standing day where they differ from the ledger's."""
    table = EnrolmentSubject._meta.db_table
    same = "IS" if connection.vendor == "sqlite" else "IS NOT DISTINCT FROM"
    return _execute(
        f"UPDATE {table} SET state = c.state, last_event_on = c.last_event_on FROM ({SUBJECT_SOURCE}) c "
        f"WHERE c.subject_id = {table}.id "
        f"AND NOT ({table}.state = c.state AND {table}.last_event_on {same} c.last_event_on)"
    )


def _saved(fields: set[str]):
    def receiver(sender, instance, update_fields=None, raw=False, **kwargs):
        if raw or (update_fields is not None and not fields & set(update_fields)):
            return
        if sender is Trial:
            refresh_trials([instance.pk])
        elif sender is TrialSite:
            refresh_trials([instance.trial_id])
        else:
            refresh_institution(instance.pk)

    return receiver


def _site_deleted(sender, instance, **kwargs):
    # The deleted site's row went with it (CASCADE); its siblings' flags may move to another site.
    refresh_trials([instance.trial_id])


def connect() -> None:
    """Keep the rollup current on every save and delete of what it copies (called once, from the app config)."""
    # The receivers are closures: held strongly, or they would be collected at once.
    post_save.connect(_saved(TRIAL_FIELDS), sender=Trial, weak=False, dispatch_uid="trials.rollups.trial")
    post_save.connect(_saved(SITE_FIELDS), sender=TrialSite, weak=False, dispatch_uid="trials.rollups.site")
    post_save.connect(
        _saved(INSTITUTION_FIELDS), sender=Institution, weak=False, dispatch_uid="trials.rollups.institution"
    )
    post_delete.connect(_site_deleted, sender=TrialSite, dispatch_uid="trials.rollups.site_deleted")


# The sites' running totals come first: the per-site rollup copies them.
register(
    Rollup(
        name="trials.site_enrolment",
        description=_("One row per site with ledger entries: its net counts per event and its latest enrolment."),
        rebuild=rebuild_site_enrolment,
        differences=lambda limit: differences_from_source(
            SiteEnrolment._meta.db_table, SITE_COUNT_COLUMNS, SITE_COUNTS_SOURCE, limit
        ),
    )
)
register(
    Rollup(
        name="trials.site",
        description=_("One row per site: its trial's and institution's report columns and its start-up stage days."),
        rebuild=rebuild,
        differences=differences,
    )
)
register(
    Rollup(
        name="trials.site_month",
        description=_("One row per site and calendar month with ledger entries: the month's net counts per event."),
        rebuild=rebuild_months,
        differences=lambda limit: differences_from_source(
            SiteEnrolmentMonth._meta.db_table, MONTH_COLUMNS, _month_source(), limit
        ),
    )
)
register(
    Rollup(
        name="trials.subject_state",
        description=_("Each subject code's current state and latest standing entry, as its ledger entries give them."),
        rebuild=rebuild_subject_states,
        differences=lambda limit: differences_from_source(SUBJECT_KEPT, SUBJECT_COLUMNS, SUBJECT_SOURCE, limit),
    )
)
