"""Rollups of subsidy claims that the regulator reports read (``subsidies.reports``) instead of every claim and line.

- ``subsidies.claim_year_totals`` (``ClaimYearTotal``): per program, hospital, claim year and status, the submitted
  claims and their amounts (claimed, approved, paid, owed, taken from the yearly cap). The claims report sums these
  rows per program, hospital and year, its status filter choosing rows, so its figures are the same sums as over
  the claims; it reads no claim row.
- ``subsidies.project_claim_totals`` (``ProjectClaimTotal``): per program, trial and hospital, the eligible lines of
  the hospital's counting claims (claims, patients, RMB taken). The project report sums the hospitals of a project
  when the program caps the whole project and reads the row as it is when it caps each hospital, so a program whose
  cap scope changes needs no rebuild. At national scale (2,000 hospitals, 20,000 claims) the report grouped every
  eligible line of the region's counting claims (a three-way join and two distinct counts per request); it now
  groups far fewer narrow rows found by program.

The per-hospital grain is also the unit of upkeep: a claim belongs to one program and one hospital, and a write
to a claim recomputes that pair's rows from its claims and lines (``refresh_claim_totals``), in the transaction
that writes the claim, after the claim's status, amounts and lines are final. Recomputing rather than adding
deltas cannot drift; a pair has a handful of claims (one open at a time), so it costs a few index lookups. Two
writers of claims of the same pair (a decision on last year's claim while this year's is submitted) hold
different claim locks, so on PostgreSQL the pair is also locked (a transaction-scoped advisory lock taken after
the claim's row lock) and the second recomputes after the first has committed.
"""

from cgtclinic.rollups import Rollup, differences_from_source, lock_key, register, replace_rows
from subsidies.models import Claim, ClaimYearTotal, ProjectClaimTotal

C = Claim.Status


def _sql_list(values) -> str:
    return ", ".join(f"'{value}'" for value in values)


COUNTING = _sql_list(Claim.COUNTING_STATUSES)
PAYABLE = _sql_list(Claim.PAYABLE_STATUSES)

YEAR_COLUMNS = (
    "program_id",
    "claiming_institution_id",
    "year",
    "status",
    "claim_count",
    "claimed_rmb",
    "approved_rmb",
    "paid_rmb",
    "owed_rmb",
    "counted_rmb",
)
YEAR_SOURCE = f"""
    SELECT c.program_id, c.institution_id AS claiming_institution_id, c.year, c.status, COUNT(*) AS claim_count,
           COALESCE(SUM(c.amount_claimed), 0) AS claimed_rmb,
           COALESCE(SUM(c.amount_approved), 0) AS approved_rmb,
           COALESCE(SUM(c.amount_paid), 0) AS paid_rmb,
           COALESCE(SUM(CASE WHEN c.status IN ({PAYABLE})
                             THEN c.amount_approved - COALESCE(c.amount_paid, 0) ELSE 0 END), 0) AS owed_rmb,
           COALESCE(SUM(CASE WHEN c.status IN ({COUNTING})
                             THEN COALESCE(c.amount_approved, c.amount_claimed) ELSE 0 END), 0) AS counted_rmb
    FROM subsidies_claim c
    WHERE c.status <> '{C.DRAFT}' {{where}}
    GROUP BY c.program_id, c.institution_id, c.year, c.status
"""

PROJECT_COLUMNS = ("program_id", "trial_id", "claiming_institution_id", "claim_count", "patient_count", "counted_rmb")
PROJECT_SOURCE = f"""
    SELECT c.program_id, l.trial_id, c.institution_id AS claiming_institution_id,
           COUNT(DISTINCT l.claim_id) AS claim_count, COALESCE(SUM(l.patients_claimed), 0) AS patient_count,
           COALESCE(SUM(COALESCE(l.approved_amount, l.amount_computed)), 0) AS counted_rmb
    FROM subsidies_claimline l
    JOIN subsidies_claim c ON c.id = l.claim_id
    WHERE l.status = 'eligible' AND c.status IN ({COUNTING}) {{where}}
    GROUP BY c.program_id, l.trial_id, c.institution_id
"""

TABLES = (
    (ClaimYearTotal._meta.db_table, YEAR_COLUMNS, YEAR_SOURCE),
    (ProjectClaimTotal._meta.db_table, PROJECT_COLUMNS, PROJECT_SOURCE),
)


def refresh_claim_totals(claim: Claim) -> None:
    """Recompute the rollup rows of the claim's program and hospital from their claims and lines (call it in the
    transaction that changed the claim, holding the claim's lock)."""
    pair = [claim.program_id, claim.institution_id]
    lock_key(f"subsidies.claim_totals:{pair[0]}:{pair[1]}")
    for table, columns, source in TABLES:
        source = source.format(where="AND c.program_id = %s AND c.institution_id = %s")
        replace_rows(table, columns, source, key="program_id = %s AND claiming_institution_id = %s", params=pair)


def _register(name: str, model, table: str, columns, source: str) -> Rollup:
    return register(
        Rollup(
            name=name,
            description=(model.__doc__ or "").strip(),
            rebuild=lambda: replace_rows(table, columns, source.format(where="")),
            differences=lambda limit: differences_from_source(table, columns, source.format(where=""), limit),
        )
    )


_register("subsidies.claim_year_totals", ClaimYearTotal, *TABLES[0])
_register("subsidies.project_claim_totals", ProjectClaimTotal, *TABLES[1])
