"""Request bodies the API tests send."""

from django.core.files.uploadedfile import SimpleUploadedFile

from cgtclinic.models import Institution
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import PDF_BYTES
from trials.models import Trial

ROLES = ("research_office", "ethics_office", "pi", "regulator", "system_admin", "anonymous")


def trial_payload(*, lead: Institution, pi=None, **overrides) -> dict:
    """What a research office sends to record a trial."""
    pi = pi or UserFactory(role=Role.PI, institution=lead)
    return {
        "title_zh": "BCMA CAR-T 治疗复发难治性多发性骨髓瘤",
        "title_en": "BCMA CAR-T for relapsed/refractory multiple myeloma",
        "protocol_number": "CGT-API-0001",
        "kind": Trial.Kind.IIT,
        "therapy_category": Trial.TherapyCategory.IMMUNE_CELL,
        "phase": Trial.Phase.PHASE_1,
        "lead_institution": lead.pk,
        "pi": pi.pk,
        "target_enrolment": 24,
        "hgr_status": Trial.HGRStatus.NOT_REQUIRED,
        **overrides,
    }


def pdf_upload(name: str = "protocol.pdf", content: bytes = PDF_BYTES) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pdf")


def upload_payload(trial: Trial, **overrides) -> dict:
    return {"trial": trial.pk, "kind": "protocol", "title": "研究方案", "file": pdf_upload(), **overrides}
