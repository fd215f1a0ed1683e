"""PDF documents (decision letters, claim cover letters) rendered with WeasyPrint, never issued without their glyphs.

Without a CJK font WeasyPrint still writes a PDF: every Chinese character becomes an empty box (``.notdef``),
with a warning per character in the log. A letter like that is worse than none, since it is numbered, hashed
and sent. ``render_pdf`` collects those warnings for its own rendering and refuses the PDF instead.
"""

import logging
import threading

from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError

FONT_PACKAGE = "fonts-noto-cjk"
INSTALL_COMMAND = f"apt-get install {FONT_PACKAGE}"
# A sample of what letters print: if these render, the installed fonts cover the letters' Chinese.
SAMPLE_HTML = (
    "<html lang=\"zh-hans\"><body style=\"font-family: 'Noto Sans CJK SC', 'Noto Serif CJK SC', sans-serif\">"
    "伦理审查批件 受理号 临床试验 补贴申请 〔2026〕 Ethics letter</body></html>"
)


class _MissingGlyphs(logging.Filter):
    """Takes WeasyPrint's ".notdef glyph rendered" warnings of one thread's rendering out of the log and keeps the
    characters they name."""

    def __init__(self, thread: int):
        super().__init__()
        self.thread = thread
        self.characters: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or ".notdef" not in str(record.msg):
            return True
        if len(self.characters) < 20:
            self.characters.extend(str(arg) for arg in record.args or ())
        else:
            self.characters.append("")
        return False


def render_pdf(html: str) -> bytes:
    """The HTML as PDF bytes; a DomainError (``font_missing``) naming the fix when a character has no glyph."""
    from weasyprint import HTML  # Loaded on first use: it pulls in Pango, which nothing else needs.

    logger = logging.getLogger("weasyprint")
    missing = _MissingGlyphs(threading.get_ident())
    logger.addFilter(missing)
    try:
        pdf = HTML(string=html).write_pdf()
    finally:
        logger.removeFilter(missing)
    if missing.characters:
        sample = "".join(character for character in missing.characters[:10])
        raise DomainError(
            _(
                "The PDF was not made: the fonts on this server have no glyphs for %(count)s characters (%(sample)s). "
                "Ask the operator to install a CJK font (%(command)s) and try again."
            )
            % {"count": len(missing.characters), "sample": sample, "command": INSTALL_COMMAND},
            code="font_missing",
        )
    return pdf


def cjk_font_problem() -> str | None:
    """Why letters cannot be printed on this machine (no WeasyPrint, no CJK font), or None when they can."""
    try:
        render_pdf(SAMPLE_HTML)
    except DomainError as exc:
        return str(exc.message)
    except (ImportError, OSError) as exc:  # WeasyPrint or its Pango libraries are missing
        return f"WeasyPrint cannot run: {exc}"
    return None
