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
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return None
        finally:
            uploaded.seek(0)
        return ALLOWED_TYPES[extension][0] if _OOXML_MARKERS[extension] in names else None
    kind = filetype.guess(head)
    return kind.mime if kind else None


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
