"""Rollups the trials reports read: one row per site (``SiteRollup``) with its trial's and institution's report
columns and its start-up stage days already computed.

Why this shape (EXPLAIN ANALYZE on the national set, Shanghai: 26,099 trials with a site in the region; see
docs/benchmark.md for the numbers): the pipeline and start-up reports spent their time joining every site of the
region to its trial and institution, computing stage days row by row and counting distinct trials (a sort per group),
not in the aggregates themselves. A per-(trial, region) or per-group count table would answer the pipeline alone but
not its filters by registration day or institution, and not start-up's percentiles, which need the site values; one
narrow row per site answers all three reports with their filters, and its size follows the region's sites, not the
ledger. Distinct trials are counted from flags (one site per trial and region, one per trial), which stay right
when groups are summed across institutions and regions. The enrolment report's current counts stay in
``SiteEnrolment`` (the ledger's running totals), joined by site.

How it stays current: a site's row depends on its trial, its sibling sites (the flags) and its institution, so the
rows of a trial are recomputed from the raw rows, as one DELETE and one INSERT … SELECT, whenever a trial, a site or
an institution row is saved or deleted, in the writer's transaction (``connect()``, called from the app config, and
the ``update()`` of the trial and site querysets). Trial and site rows are written by the trials services and admin,
and also by the ethics app (a site's ethics approval is a queryset update), seeds and test factories: hooking the
model layer keeps every path current without each caller knowing about the rollup, and recomputing from raw rows is
idempotent, so nothing drifts. The enrolment write path does not touch this table. The scale generator, which
writes with COPY, calls ``cgtclinic.rollups.rebuild()`` afterwards.
"""

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _

from cgtclinic.models import Institution
from cgtclinic.reporting.sql import fetch_dicts, sql_days, sql_greatest
from cgtclinic.rollups import Rollup, register
from trials.models import SiteRollup, Trial, TrialSite

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
        f"JOIN cgtclinic_institution i ON i.id = s.institution_id WHERE {where}) b"
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


register(
    Rollup(
        name="trials.site",
        description=_("One row per site: its trial's and institution's report columns and its start-up stage days."),
        rebuild=rebuild,
        differences=differences,
    )
)
