from django.db import migrations

# TRUNCATE fires no row triggers, so the append-only rule of 0002 needs a statement trigger of its own. A session
# that must empty the ledger on purpose (the test suite's flush between tests, a restore into a scratch copy) says
# so with SET cgtclinic.allow_ledger_truncate = 'on'; nothing in the application does.
NO_TRUNCATE = [
    "CREATE FUNCTION trials_enrolmententry_no_truncate() RETURNS trigger AS $$ BEGIN "
    "IF current_setting('cgtclinic.allow_ledger_truncate', true) = 'on' THEN RETURN NULL; END IF; "
    "RAISE EXCEPTION 'the enrolment ledger is never truncated; add reversing entries'; "
    "END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER trials_enrolmententry_no_truncate BEFORE TRUNCATE ON trials_enrolmententry "
    "FOR EACH STATEMENT EXECUTE FUNCTION trials_enrolmententry_no_truncate()",
]
DROP = [
    "DROP TRIGGER IF EXISTS trials_enrolmententry_no_truncate ON trials_enrolmententry",
    "DROP FUNCTION IF EXISTS trials_enrolmententry_no_truncate()",
]


def _run(statements):
    def run(apps, schema_editor):
        # SQLite has no TRUNCATE: its DELETE trigger (0002) already covers every way to empty the table.
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("trials", "0003_report_indexes")]

    operations = [migrations.RunPython(_run(NO_TRUNCATE), _run(DROP), elidable=False)]
