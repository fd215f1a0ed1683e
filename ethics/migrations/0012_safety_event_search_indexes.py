from django.db import migrations, models

# The admin searches a safety report's term in part (icontains: UPPER(term) LIKE UPPER('%…%')). On PostgreSQL a
# trigram index answers that without reading every report (pg_trgm extracts trigrams from Chinese text too); the
# database user needs the right to create the extension, or a DBA creates it first (docs/deployment.md). SQLite,
# make run's default, has no such index and scans its few rows.
CREATE = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS safety_event_term_trgm ON ethics_safetyevent USING gin (UPPER(term) gin_trgm_ops)",
)
DROP = ("DROP INDEX IF EXISTS safety_event_term_trgm",)


def run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("ethics", "0011_safety_clock_scope")]

    operations = [
        migrations.AddIndex(
            model_name="safetyevent",
            index=models.Index(fields=["sponsor_reference"], name="safety_event_sponsor_ref"),
        ),
        migrations.RunPython(run(CREATE), run(DROP)),
    ]
