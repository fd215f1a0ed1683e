"""Checks on uploaded trial documents: allowed type, size, and content that matches the extension."""

import hashlib
import zipfile

import filetype
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError

# Extension → (MIME type to store, the detected types that may carry it).
ALLOWED_TYPES: dict[str, tuple[str, frozenset[str]]] = {
    "pdf": ("application/pdf", frozenset({"application/pdf"})),
    "docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}),
    ),
    "xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        frozenset({"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}),
    ),
    "doc": ("application/msword", frozenset({"application/x-ole-storage", "application/msword"})),
    "jpg": ("image/jpeg", frozenset({"image/jpeg"})),
    "jpeg": ("image/jpeg", frozenset({"image/jpeg"})),
    "png": ("image/png", frozenset({"image/png"})),
}

# OLE2 compound files (legacy .doc) begin with this signature; filetype does not know it.
_OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
# Office Open XML parts that tell a Word document from a workbook.
_OOXML_MARKERS = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml"}
# An Office document is a zip archive: bound what it inflates to, so that a small upload cannot fill memory or disk
# when it is opened (a "zip bomb"). Real documents inflate a few times over; bombs, a thousand times and more.
OOXML_MAX_INFLATED_BYTES = 256 * 1024 * 1024
OOXML_MAX_RATIO = 100
OOXML_MAX_MEMBERS = 10_000


class CheckedUpload:
    """An upload that passed every check, with what was learnt about it."""

    def __init__(self, *, extension: str, content_type: str, size: int, sha256: str):
        self.extension = extension
        self.content_type = content_type
        self.size = size
        self.sha256 = sha256


def _detect(extension: str, uploaded) -> str | None:
    uploaded.seek(0)
    head = uploaded.read(8192)
    uploaded.seek(0)
    if extension == "doc":
        return "application/x-ole-storage" if head.startswith(_OLE_SIGNATURE) else None
    if extension in _OOXML_MARKERS:
        try:
            with zipfile.ZipFile(uploaded) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
            return None
        finally:
            uploaded.seek(0)
        _check_inflated_size(members, uploaded)
        names = {member.filename for member in members}
        return ALLOWED_TYPES[extension][0] if _OOXML_MARKERS[extension] in names else None
    kind = filetype.guess(head)
    if kind and kind.mime == "application/pdf" and not _pdf_opens(uploaded):
        return None
    return kind.mime if kind else None


def _check_inflated_size(members: list[zipfile.ZipInfo], uploaded) -> None:
    inflated = sum(member.file_size for member in members)
    compressed = max(sum(member.compress_size for member in members), 1)
    if (
        len(members) > OOXML_MAX_MEMBERS
        or inflated > OOXML_MAX_INFLATED_BYTES
        or inflated / compressed > OOXML_MAX_RATIO
    ):
        raise DomainError(
            _("“%(name)s” unpacks to %(size)s, far more than a real document: it is refused.")
            % {"name": uploaded.name, "size": filesizeformat(inflated)},
            code="file_content_mismatch",
            field="file",
        )


def _pdf_opens(uploaded) -> bool:
    """Whether the bytes parse as a PDF with at least one page (a PDF header on anything else is not enough)."""
    from pypdf import PdfReader

    uploaded.seek(0)
    try:
        return len(PdfReader(uploaded, strict=False).pages) > 0
    except Exception:  # a malformed file may fail anywhere in the parser; every failure means "not a PDF"
        return False
    finally:
        uploaded.seek(0)


def check_upload(uploaded) -> CheckedUpload:
    """Refuse a file whose type is not allowed, which is too large or empty, or whose bytes are not what its
    extension claims; return its type, size and SHA-256 otherwise."""
    name = uploaded.name or ""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in ALLOWED_TYPES:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise DomainError(
            _("Files of type “%(ext)s” are not accepted. Allowed: %(allowed)s.")
            % {"ext": extension or "?", "allowed": allowed},
            code="file_type",
            field="file",
        )
    size = uploaded.size
    if not size:
        raise DomainError(_("The file is empty."), code="file_empty", field="file")
    limit = settings.CGT_UPLOAD_MAX_BYTES
    if size > limit:
        raise DomainError(
            _("The file is %(size)s; the limit is %(limit)s.")
            % {"size": filesizeformat(size), "limit": filesizeformat(limit)},
            code="file_too_large",
            field="file",
        )
    content_type, accepted = ALLOWED_TYPES[extension]
    if _detect(extension, uploaded) not in accepted:
        raise DomainError(
            _("The content of “%(name)s” is not a .%(ext)s file. Please upload the original document.")
            % {"name": name, "ext": extension},
            code="file_content_mismatch",
            field="file",
        )
    digest = hashlib.sha256()
    for chunk in uploaded.chunks():
        digest.update(chunk)
    uploaded.seek(0)
    return CheckedUpload(extension=extension, content_type=content_type, size=size, sha256=digest.hexdigest())
