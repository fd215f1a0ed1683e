from django.db import migrations

# django-rest-knox's own migrations create its AuthToken table even though the model is swapped for
# cgtclinic.ApiToken (KNOX_TOKEN_MODEL). Unused, it only holds a foreign key to the people table, which stops a
# flush (TRUNCATE) of that table; it goes.


class Migration(migrations.Migration):
    dependencies = [
        ("cgtclinic", "0008_api_token"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunSQL("DROP TABLE IF EXISTS knox_authtoken", migrations.RunSQL.noop)]
