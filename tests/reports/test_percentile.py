"""The percentile every report uses: PostgreSQL's PERCENTILE_CONT, and the same interpolation on SQLite."""

import sqlite3

from cgtclinic.reporting.sql import _SQLitePercentile, percentile


def test_python_percentile_matches_postgresql_interpolation():
    values = [1, 2, 3, 4, 10]
    assert percentile(values, 0.5) == 3
    assert percentile([7], 0.9) == 7
    assert percentile([], 0.5) is None
    # PERCENTILE_CONT(0.9) over 1,2,3,4,10: position 0.9 * 4 = 3.6 → 4 + 0.6 * (10 - 4) = 7.6
    assert abs(percentile(values, 0.9) - 7.6) < 1e-9


def test_sqlite_aggregate_ignores_nulls_like_postgresql():
    db = sqlite3.connect(":memory:")
    db.create_aggregate("percentile_cont", 2, _SQLitePercentile)
    db.execute("CREATE TABLE t (v REAL)")
    db.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (None,), (3,), (4,), (10,)])
    (median,) = db.execute("SELECT percentile_cont(v, 0.5) FROM t").fetchone()
    assert median == 3
