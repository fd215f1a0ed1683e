"""The zh-hans catalogue is complete and compiled: a message without a Chinese translation fails here."""

import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)
CATALOGUE = BASE / "locale" / "zh_Hans" / "LC_MESSAGES"
SOURCE_DIRS = ["cgtclinic", "trials", "ethics", "subsidies", "bench", "locale"]


def _untranslated(po: polib.POFile) -> list[str]:
    missing = []
    for entry in po:
        if entry.obsolete:
            continue
        texts = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        if "fuzzy" in entry.flags or not all(t.strip() for t in texts):
            missing.append(entry.msgid)
    return missing


@pytest.mark.skipif(
    shutil.which("xgettext") is None, reason="GNU gettext (xgettext) is needed: apt-get install gettext"
)
def test_every_message_in_the_source_has_a_chinese_translation(tmp_path):
    """Extract messages from a copy of the source with the committed catalogue; nothing may come out empty."""
    for name in SOURCE_DIRS:
        if (BASE / name).exists():
            shutil.copytree(BASE / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE / "manage.py", tmp_path / "manage.py")
    env = {
        "PATH": "/usr/bin:/bin",
        "CGT_DATA_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "cgtclinic.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale", "zh_Hans", "--no-obsolete", "--ignore", "var/*"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    extracted = polib.pofile(str(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    missing = _untranslated(extracted)
    assert not missing, "Messages without a Chinese translation (run `make messages` and translate):\n" + "\n".join(
        missing
    )
    committed = {e.msgid for e in polib.pofile(str(CATALOGUE / "django.po")) if not e.obsolete}
    stale = committed - {e.msgid for e in extracted}
    assert not stale, f"The catalogue has messages no longer in the source (run `make messages`): {sorted(stale)}"


def test_compiled_catalogue_matches_the_source_catalogue():
    po = polib.pofile(str(CATALOGUE / "django.po"))
    mo = polib.mofile(str(CATALOGUE / "django.mo"))
    expected = {(e.msgctxt, e.msgid): e.msgstr for e in po if e.translated() and not e.msgid_plural}
    compiled = {(e.msgctxt, e.msgid): e.msgstr for e in mo if not e.msgid_plural}
    assert compiled == expected, "django.mo is out of date: run `make messages`."


def test_chinese_is_the_default_and_english_complete(client):
    from django.utils import translation

    from trials.models import Trial

    assert settings.LANGUAGE_CODE == "zh-hans"
    with translation.override("zh-hans"):
        assert str(Trial._meta.verbose_name_plural) == "临床试验"
    with translation.override("en"):
        assert str(Trial._meta.verbose_name_plural) == "trials"
