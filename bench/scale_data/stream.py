"""Rows streamed to PostgreSQL with COPY a batch at a time, and progress on stderr.

A table never holds more than one batch of rows: at national scale the ledger alone is five million rows, which as
Python lists took gigabytes. Every table is written in the one transaction of the run, in whatever order its rows are
made, so a row may name one written later. Foreign keys are checked once everything is written (``Writer.finish``):
as a superuser, with the row-by-row key triggers off while loading (``session_replication_role = replica``; the
project has no INSERT triggers) and one anti-join per key at the end, which at national scale takes seconds where the
deferred triggers took six minutes; otherwise by the deferred triggers themselves.
"""

import json
import sys
import time

from django.core.management.base import CommandError
from django.db import models
from django.utils.translation import gettext as _

BATCH_ROWS = 5000
# A claim's frozen snapshot holds every line's per-patient evidence: a batch of those is flushed by size.
BATCH_JSON_CHARS = 4_000_000


class Table:
    """One model's rows in its column order; ``add`` buffers a row and COPYs the buffer when it is full."""

    def __init__(self, writer: "Writer", model, start_id: int = 1):
        meta = model._meta
        fields = list(meta.concrete_fields)
        self.writer = writer
        self.model = model
        self.name = meta.db_table
        self.columns = [f.column for f in fields]
        self.index = {}
        for i, f in enumerate(fields):
            self.index[f.name] = i
            self.index[f.attname] = i
        self.json = {i for i, f in enumerate(fields) if isinstance(f, models.JSONField)}
        self.defaults = []
        for i, f in enumerate(fields):
            value = None if f.primary_key or f.null else f.get_default()
            if i in self.json and value is not None:
                value = json.dumps(value, ensure_ascii=False)
            self.defaults.append(value)
        self.pk = self.index[meta.pk.attname]
        self.pk_column = meta.pk.column
        self.auto_pk = isinstance(meta.pk, models.AutoField | models.BigAutoField)
        self.next_id = start_id
        self.rows: list[list] = []
        self.json_chars = 0
        self.written = 0

    def alloc(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def add(self, **values) -> int:
        row = self.defaults.copy()
        index, json_columns = self.index, self.json
        for key, value in values.items():
            i = index[key]
            if i in json_columns and value is not None:
                value = json.dumps(value, ensure_ascii=False)
                self.json_chars += len(value)
            row[i] = value
        if self.auto_pk and row[self.pk] is None:
            row[self.pk] = self.alloc()
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS or self.json_chars >= BATCH_JSON_CHARS:
            self.flush()
        return row[self.pk]

    def flush(self) -> None:
        if not self.rows:
            return
        columns = ", ".join(f'"{c}"' for c in self.columns)
        with self.writer.cursor.copy(f'COPY "{self.name}" ({columns}) FROM STDIN') as copy:
            for row in self.rows:
                copy.write_row(row)
        self.written += len(self.rows)
        self.rows.clear()
        self.json_chars = 0


class Writer:
    """The tables of one run on one cursor (inside the caller's transaction)."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.tables: dict[type, Table] = {}
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
        self.keys_checked_at_end = cursor.fetchone()[0]
        if self.keys_checked_at_end:
            cursor.execute("SET LOCAL session_replication_role = replica")

    def table(self, model) -> Table:
        if model not in self.tables:
            start = 1
            if isinstance(model._meta.pk, models.AutoField | models.BigAutoField):
                start = (model.objects.aggregate(top=models.Max("pk"))["top"] or 0) + 1
            self.tables[model] = Table(self, model, start)
        return self.tables[model]

    def finish(self, out) -> int:
        """Write what is buffered, move the id sequences past the rows written, check the foreign keys and
        ANALYZE; returns the number of rows written."""
        total = 0
        cursor = self.cursor
        for table in self.tables.values():
            table.flush()
            if not table.written:
                continue
            total += table.written
            out.write(f"  {table.name:<36} {table.written:>10,} rows")
            if table.auto_pk:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', %s), %s)",
                    [table.pk_column, table.next_id - 1],
                )
        began = time.monotonic()
        if self.keys_checked_at_end:
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
            self.check_foreign_keys()
        else:
            # The foreign keys are deferred: check them all now, then defer them again for whoever goes on.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        out.write(f"  {'foreign keys checked':<36} {total:>10,} rows  {time.monotonic() - began:6.1f} s")
        began = time.monotonic()
        for table in self.tables.values():
            if table.written:
                cursor.execute(f'ANALYZE "{table.name}"')
        out.write(f"  {'ANALYZE':<36} {'':>10}       {time.monotonic() - began:6.1f} s")
        return total

    def check_foreign_keys(self) -> None:
        """Every foreign key of every table written points at a row (what the key triggers would have checked)."""
        for table in self.tables.values():
            if not table.written:
                continue
            for field in table.model._meta.concrete_fields:
                if not field.is_relation or not field.many_to_one:
                    continue
                target = field.target_field
                self.cursor.execute(
                    f'SELECT c."{field.column}" FROM "{table.name}" c WHERE c."{field.column}" IS NOT NULL AND NOT '
                    f'EXISTS (SELECT 1 FROM "{target.model._meta.db_table}" p WHERE p."{target.column}" = '
                    f'c."{field.column}") LIMIT 1'
                )
                dangling = self.cursor.fetchone()
                if dangling is not None:
                    raise CommandError(
                        _("Generated rows of %(table)s point at a missing row (%(column)s = %(value)s).")
                        % {"table": table.name, "column": field.column, "value": dangling[0]}
                    )


class Progress:
    """Where a phase is: items done of the total, the rate and the time left, on stderr every ``every`` seconds."""

    def __init__(self, stream=None, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.every = every
        self.label, self.unit, self.total, self.done = "", "", 0, 0
        self.started = self.shown = time.monotonic()

    def start(self, label: str, total: int, unit: str) -> None:
        self.label, self.unit, self.total, self.done = label, unit, total, 0
        self.started = self.shown = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.shown >= self.every:
            self.shown = now
            self.show(now)

    def show(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = f", ETA {(self.total - self.done) / rate:,.0f} s" if rate and self.total >= self.done else ""
        self.stream.write(
            f"  … {self.label}: {self.done:,}/{self.total:,} {self.unit}{share}, {rate:,.0f}/s{left}, "
            f"{elapsed:,.0f} s\n"
        )
        self.stream.flush()
