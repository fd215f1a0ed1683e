"""Upload checks: type allowed, size bounded, bytes match the extension; versions never overwrite."""

import hashlib
import io
import zipfile

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import PDF_BYTES, TrialFactory
from trials import services
from trials.uploads import check_upload

PNG_BYTES = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 32
JPEG_BYTES = bytes.fromhex("ffd8ffe000104a46494600010100000100010000") + b"\x00" * 32
OLE_BYTES = bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 504


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def xlsx_bytes() -> bytes:
    buffer = io.BytesIO()
    openpyxl.Workbook().save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        ("方案.pdf", PDF_BYTES, "application/pdf"),
        ("ICF.DOCX", docx_bytes(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("budget.xlsx", xlsx_bytes(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("old.doc", OLE_BYTES, "application/msword"),
        ("scan.png", PNG_BYTES, "image/png"),
        ("scan.jpg", JPEG_BYTES, "image/jpeg"),
    ],
)
def test_allowed_files_pass_with_their_type_and_hash(name, content, content_type):
    checked = check_upload(SimpleUploadedFile(name, content))
    assert checked.content_type == content_type
    assert checked.size == len(content)
    assert checked.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("virus.exe", b"MZ\x90\x00", "file_type"),
        ("noextension", PDF_BYTES, "file_type"),
        ("empty.pdf", b"", "file_empty"),
        ("fake.pdf", b"<html>not a pdf</html>", "file_content_mismatch"),
        ("renamed.docx", xlsx_bytes(), "file_content_mismatch"),
        ("renamed.xlsx", docx_bytes(), "file_content_mismatch"),
        ("zip.docx", b"PK\x03\x04 broken zip", "file_content_mismatch"),
        ("image.pdf", PNG_BYTES, "file_content_mismatch"),
        ("text.doc", b"plain text", "file_content_mismatch"),
        ("pdf.png", PDF_BYTES, "file_content_mismatch"),
    ],
)
def test_refused_files_say_why(name, content, code):
    with pytest.raises(DomainError) as err:
        check_upload(SimpleUploadedFile(name, content))
    assert err.value.code == code
    assert err.value.field == "file"


def test_size_limit_comes_from_settings(settings):
    settings.CGT_UPLOAD_MAX_BYTES = 100
    with pytest.raises(DomainError) as err:
        check_upload(SimpleUploadedFile("big.pdf", PDF_BYTES + b"0" * 100))
    assert err.value.code == "file_too_large"


@pytest.mark.django_db
def test_versions_are_numbered_and_never_overwrite(research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    first = services.document_add_version(
        trial=trial,
        actor=research_office,
        kind="protocol",
        title="方案",
        uploaded_file=SimpleUploadedFile("p.pdf", PDF_BYTES),
    )
    second = services.document_add_version(
        trial=trial,
        actor=research_office,
        kind="protocol",
        title="方案",
        uploaded_file=SimpleUploadedFile("p.pdf", PDF_BYTES + b"%2"),
        version_label="V2.0",
    )
    assert (first.number, second.number) == (1, 2)
    assert first.document_id == second.document_id
    assert first.file.name != second.file.name
    first.file.open("rb")
    assert first.file.read() == PDF_BYTES
    assert second.sha256 == hashlib.sha256(PDF_BYTES + b"%2").hexdigest()
    assert second.uploaded_by == research_office


@pytest.mark.django_db
def test_refused_upload_stores_nothing(research_office, tmp_path, settings):
    trial = TrialFactory(lead_institution=research_office.institution)
    with pytest.raises(DomainError):
        services.document_add_version(
            trial=trial,
            actor=research_office,
            kind="icf",
            title="ICF",
            uploaded_file=SimpleUploadedFile("i.pdf", b"nope"),
        )
    assert not trial.documents.exists()
    assert not (settings.MEDIA_ROOT / "documents").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.REGULATOR, Role.ETHICS_OFFICE])
def test_only_research_office_and_pis_upload(role, region, institution):
    trial = TrialFactory(lead_institution=institution)
    actor = UserFactory(role=role, institution=institution if role != Role.REGULATOR else None, region=region)
    with pytest.raises(DomainError) as err:
        services.document_add_version(
            trial=trial, actor=actor, kind="ib", title="IB", uploaded_file=SimpleUploadedFile("ib.pdf", PDF_BYTES)
        )
    assert err.value.code == "permission_denied"


@pytest.mark.django_db
def test_cannot_upload_to_a_trial_one_cannot_see(research_office):
    trial = TrialFactory()
    with pytest.raises(DomainError):
        services.document_add_version(
            trial=trial,
            actor=research_office,
            kind="ib",
            title="IB",
            uploaded_file=SimpleUploadedFile("ib.pdf", PDF_BYTES),
        )


def test_an_executable_behind_a_pdf_header_is_refused():
    """Issue 11: a file that starts with %PDF-1.4 but is an executable was accepted as a PDF."""
    fake = b"%PDF-1.4\n" + b"MZ\x90\x00\x03\x00\x00\x00" * 512
    with pytest.raises(DomainError) as refused:
        check_upload(SimpleUploadedFile("protocol.pdf", fake))
    assert refused.value.code == "file_content_mismatch"


def test_a_pdf_without_pages_is_refused():
    with pytest.raises(DomainError):
        check_upload(SimpleUploadedFile("empty.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"))


def test_a_docx_that_inflates_enormously_is_refused():
    """Issue 11: a docx that inflates to 1 GiB was accepted. Here 64 MiB of zeros compress to about 64 KiB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("word/media/padding.bin", b"\x00" * (64 * 1024 * 1024))
    with pytest.raises(DomainError) as refused:
        check_upload(SimpleUploadedFile("bomb.docx", buffer.getvalue()))
    assert "bomb.docx" in str(refused.value.message)
