"""DATABASE_REPLICA_URL adds the ``replica`` alias the reports read; without it there is one database. Settings are
read once per process, so each case runs in a subprocess with a clean environment."""

import json
import os
import subprocess
import sys

from django.conf import settings

SHOW = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "aliases": sorted(settings.DATABASES),
    "replica": {k: settings.DATABASES.get("replica", {}).get(k) for k in ("ENGINE", "HOST", "NAME", "USER")},
    "reports_database": settings.REPORTS_DATABASE,
    "routers": settings.DATABASE_ROUTERS,
}))
"""


def settings_with(env: dict[str, str], tmp_path) -> dict:
    clean = {"PATH": os.environ["PATH"], "CGT_DATA_DIR": str(tmp_path / "var"), **env}
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=settings.BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "cgtclinic.settings"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_replica_url_adds_the_alias_the_reports_read(tmp_path):
    shown = settings_with(
        {
            "DATABASE_URL": "postgres://cgt:pw@primary.internal:5432/cgtclinic",
            "DATABASE_REPLICA_URL": "postgres://reader:pw@replica.internal:5432/cgtclinic",
        },
        tmp_path,
    )
    assert shown["aliases"] == ["default", "replica"]
    assert shown["replica"] == {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "replica.internal",
        "NAME": "cgtclinic",
        "USER": "reader",
    }
    assert shown["reports_database"] == "replica"
    assert shown["routers"] == ["cgtclinic.db_router.ReportsReplicaRouter"]


def test_without_a_replica_url_the_reports_read_the_primary(tmp_path):
    for blank in ({}, {"DATABASE_REPLICA_URL": "  "}):
        shown = settings_with({"DATABASE_URL": "postgres://cgt:pw@primary.internal:5432/cgtclinic", **blank}, tmp_path)
        assert shown["aliases"] == ["default"]
        assert shown["reports_database"] == "default"
