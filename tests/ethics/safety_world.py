"""A hospital with a committee that approved a trial, its site PI and offices, and the seeded safety periods."""

import datetime

import pytest
import yaml
from django.conf import settings
from django.utils import timezone

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from cgtclinic.workdays import CALENDAR_TZ
from ethics import safety
from ethics.models import SafetyEvent
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import DecisionFactory, EthicsCommitteeFactory, SubmissionFactory
from tests.factories.trials import TrialFactory
from trials.models import EnrolmentSubject

SAFETY_CODES = ("sae_", "susar_", "safety_")


def load_safety_parameters() -> None:
    """The seeded safety rows of seeds/policy/parameters.yaml, as the loader stores them."""
    rows = yaml.safe_load((settings.BASE_DIR / "seeds" / "policy" / "parameters.yaml").read_text(encoding="utf-8"))
    for row in rows:
        if row["code"].startswith(SAFETY_CODES):
            PolicyParameter.objects.create(**{**row, "region": None})


def seeded(code: str) -> int:
    return int(PolicyParameter.objects.get(code=code).value)


def beijing(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=CALENDAR_TZ)


@pytest.fixture
def world(db):
    load_safety_parameters()
    return build_world()


def build_world(hospital=None) -> dict:
    """A hospital (new unless given) whose committee approved a new trial led there, with its offices."""
    hospital = hospital or InstitutionFactory()
    committee = EthicsCommitteeFactory(institution=hospital)
    trial = TrialFactory(lead_institution=hospital)
    DecisionFactory(submission=SubmissionFactory(trial=trial, committee=committee, status="decided"))
    site = trial.sites.get()
    subject = EnrolmentSubject.objects.create(trial=trial, site=site, code="RK-001")
    return {
        "hospital": hospital,
        "committee": committee,
        "trial": trial,
        "site": site,
        "pi": trial.pi,
        "subject": subject,
        "ethics_office": UserFactory(role=Role.ETHICS_OFFICE, institution=hospital),
        "research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital),
    }


def record_sae(world, aware_at=None, **overrides) -> SafetyEvent:
    fields = {
        "actor": world["pi"],
        "site": world["site"],
        "kind": SafetyEvent.Kind.SAE,
        "term": "细胞因子释放综合征 4级",
        "description": "输注后第3天出现高热、低血压，转入ICU。",
        "criteria": [SafetyEvent.Criterion.HOSPITALISATION],
        "expectedness": SafetyEvent.Expectedness.EXPECTED,
        "causality": SafetyEvent.Causality.RELATED,
        "subject": world["subject"],
        "aware_at": aware_at or timezone.now(),
    }
    return safety.safety_event_record(**(fields | overrides))


def record_susar(world, sponsor_aware_on, received_at, *, fatal=False, **overrides) -> SafetyEvent:
    fields = {
        "actor": world["pi"],
        "site": world["site"],
        "kind": SafetyEvent.Kind.SUSAR,
        "term": "免疫效应细胞相关神经毒性综合征",
        "description": "他中心病例，申办者评估为可疑且非预期。",
        "criteria": [SafetyEvent.Criterion.LIFE_THREATENING if fatal else SafetyEvent.Criterion.HOSPITALISATION],
        "expectedness": SafetyEvent.Expectedness.UNEXPECTED,
        "causality": SafetyEvent.Causality.POSSIBLY_RELATED,
        "sponsor_aware_on": sponsor_aware_on,
        "received_at": received_at,
    }
    return safety.safety_event_record(**(fields | overrides))
