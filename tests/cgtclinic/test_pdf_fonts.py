"""Issue 11: without a CJK font, make run succeeded, logged thousands of ".notdef" warnings and issued numbered,
hashed letters whose Chinese was empty boxes. Now the system check fails with the install command, and a PDF
that lacks glyphs is refused instead of stored."""

import logging
from pathlib import Path

import pytest

from cgtclinic.errors import DomainError
from cgtclinic.pdf import INSTALL_COMMAND, SAMPLE_HTML, render_pdf
from tests.test_settings_env import run_python

# A character in Unicode's private use area: no font on any machine draws it, so it stands for every character
# the installed fonts lack.
NO_GLYPH = "\ue000"


# Debian's DejaVu fonts (fonts-dejavu-core, which the test set-up installs): Latin, Greek, Cyrillic, no Chinese.
LATIN_FONTS = Path("/usr/share/fonts/truetype/dejavu")


@pytest.fixture
def fontless(tmp_path) -> dict[str, str]:
    """An environment whose fontconfig knows Latin fonts only, as on a server without a CJK font installed."""
    assert LATIN_FONTS.is_dir(), "install fonts-dejavu-core (make test does, as root)"
    config = tmp_path / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">'
        f"<fontconfig><dir>{LATIN_FONTS}</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>"
    )
    return {"FONTCONFIG_FILE": str(config), "DJANGO_SETTINGS_MODULE": "cgtclinic.settings"}


def test_rendering_with_the_fonts_installed_works():
    assert render_pdf(SAMPLE_HTML).startswith(b"%PDF")


def test_a_character_without_a_glyph_refuses_the_pdf_and_keeps_the_log_quiet(caplog):
    with caplog.at_level(logging.WARNING, logger="weasyprint"), pytest.raises(DomainError) as refused:
        render_pdf(f"<html><body>伦理 {NO_GLYPH * 50}</body></html>")
    assert refused.value.code == "font_missing"
    assert INSTALL_COMMAND in str(refused.value.message)
    assert not [record for record in caplog.records if ".notdef" in record.getMessage()]


def test_without_cjk_fonts_the_check_fails_with_the_install_command(fontless, tmp_path):
    result = run_python(
        "import sys; sys.argv = ['manage.py', 'check']\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)",
        fontless,
        tmp_path,
    )
    assert result.returncode != 0
    assert "cgtclinic.E001" in result.stderr
    assert INSTALL_COMMAND in result.stderr


def test_without_cjk_fonts_no_letter_is_rendered(fontless, tmp_path):
    result = run_python(
        "import django; django.setup()\n"
        "from cgtclinic.errors import DomainError\n"
        "from cgtclinic.pdf import SAMPLE_HTML, render_pdf\n"
        "try:\n    render_pdf(SAMPLE_HTML)\nexcept DomainError as exc:\n    print('refused', exc.code)\n"
        "else:\n    print('rendered')",
        fontless,
        tmp_path,
    )
    assert result.stdout.strip() == "refused font_missing", result.stderr
