import django.db.models.deletion
from django.db import migrations, models

# Frozen copy of the clock scope ethics.rollups checks: the report's trial, its site's institution and its region.
FILL = """
    UPDATE ethics_safetyclock SET trial_id = e.trial_id, site_institution_id = s.institution_id,
                                  region_id = i.region_id
    FROM ethics_safetyevent e, trials_trialsite s, cgtclinic_institution i
    WHERE e.id = ethics_safetyclock.event_id AND s.id = e.site_id AND i.id = s.institution_id
"""


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FILL)


def nullable(related):
    return models.ForeignKey(
        null=True, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to=related
    )


def required(related):
    return models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to=related)


SCOPE = (("trial", "trials.trial"), ("site_institution", "cgtclinic.institution"), ("region", "cgtclinic.region"))


class Migration(migrations.Migration):
    dependencies = [
        ("cgtclinic", "0010_parameter_units_calendar_days_hours"),
        ("ethics", "0010_safety_next_due"),
        ("trials", "0016_merge_reconsent_index_and_enrolment_rollups"),
    ]

    operations = [
        *(
            migrations.AddField(model_name="safetyclock", name=name, field=nullable(related))
            for name, related in SCOPE
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        *(
            migrations.AlterField(model_name="safetyclock", name=name, field=required(related))
            for name, related in SCOPE
        ),
        migrations.AddIndex(
            model_name="safetyclock",
            index=models.Index(
                condition=models.Q(("cancelled", False)),
                fields=["region", "site_institution", "kind", "elapsed_hours"],
                include=["met_at", "late", "due_at", "started_at", "trial"],
                name="safety_clock_by_institution",
            ),
        ),
        migrations.AddIndex(
            model_name="safetyclock",
            index=models.Index(
                condition=models.Q(("cancelled", False)),
                fields=["region", "trial", "kind", "elapsed_hours"],
                include=["met_at", "late", "due_at", "started_at", "site_institution"],
                name="safety_clock_by_trial",
            ),
        ),
    ]
