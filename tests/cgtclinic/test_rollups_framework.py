import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from cgtclinic import rollups


def test_unknown_rollup_names_the_known_ones():
    # The message is translated (zh-hans by default); English is asserted.
    with translation.override("en"), pytest.raises(CommandError, match="Unknown rollup"):
        call_command("rebuild_rollups", "no-such-rollup")


def test_a_name_is_registered_once():
    rollup = rollups.Rollup("test-once", "", rebuild=lambda: 0, differences=lambda limit: [])
    rollups.register(rollup)
    try:
        rollups.register(rollup)  # the same object again is harmless
        with pytest.raises(ValueError):
            rollups.register(rollups.Rollup("test-once", "", rebuild=lambda: 0, differences=lambda limit: []))
    finally:
        rollups._REGISTRY.pop("test-once")


@pytest.mark.django_db
def test_check_fails_with_the_rows_that_differ(capsys):
    rollup = rollups.Rollup("test-drift", "", rebuild=lambda: 3, differences=lambda limit: ["site 7: 2 ≠ 3"])
    rollups.register(rollup)
    try:
        with pytest.raises(CommandError, match="rebuild_rollups"):
            call_command("rebuild_rollups", "test-drift", "--check")
        assert "site 7: 2 ≠ 3" in capsys.readouterr().out
        call_command("rebuild_rollups", "test-drift")
        assert "3" in capsys.readouterr().out
    finally:
        rollups._REGISTRY.pop("test-drift")
