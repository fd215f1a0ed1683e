import datetime
import hashlib
import io

import factory
import yaml
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from pypdf import PdfWriter

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, SponsorFactory, UserFactory
from trials.models import (
    Delegation,
    DocumentVersion,
    Duty,
    FilingObligation,
    GcpCertificate,
    Trial,
    TrialDocument,
    TrialReview,
    TrialSite,
    TrialStatusChange,
)

# Site PIs made by the factories hold a GCP certificate valid over every date the tests use.
CERTIFICATE_ISSUED_ON = datetime.date(2015, 1, 1)


class GcpCertificateFactory(factory.django.DjangoModelFactory):
    """A GCP training certificate, valid from long ago until three years from today."""

    class Meta:
        model = GcpCertificate

    person = factory.SubFactory(UserFactory, role=Role.PI)
    number = factory.Sequence(lambda n: f"GCP-{n:06d}")
    issuer = "国家药品监督管理局高级研修学院"
    issued_on = CERTIFICATE_ISSUED_ON
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=3 * 365))
    recorded_by = factory.SelfAttribute("person")
    recorded_at = factory.LazyFunction(timezone.now)


def qualify(person) -> None:
    """Give a person a valid GCP certificate unless they already hold one today."""
    if (
        person is not None
        and not GcpCertificate.objects.filter(person=person, expires_on__gt=timezone.localdate()).exists()
    ):
        GcpCertificateFactory(person=person)


class DelegationFactory(factory.django.DjangoModelFactory):
    """A line of a site's delegation log: by default the "report" duty, open-ended, from long ago."""

    class Meta:
        model = Delegation

    site = factory.SubFactory("tests.factories.trials.TrialSiteFactory")
    person = factory.SubFactory(UserFactory, role=Role.PI, institution=factory.SelfAttribute("..site.institution"))
    duty = Duty.REPORT
    starts_on = CERTIFICATE_ISSUED_ON
    recorded_by = factory.SelfAttribute("site.site_pi")
    recorded_at = factory.LazyFunction(timezone.now)


def delegate(site, person, *duties) -> None:
    """Put a person on a site's delegation log for the duties (default: report), from long ago."""
    for duty in duties or (Duty.REPORT,):
        DelegationFactory(site=site, person=person, duty=duty, recorded_by=site.site_pi or person)


def _one_page_pdf() -> bytes:
    """A real (blank, one-page) PDF: uploads are checked by parsing, not by their first bytes."""
    buffer = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.write(buffer)
    return buffer.getvalue()


PDF_BYTES = _one_page_pdf()


class TrialFactory(factory.django.DjangoModelFactory):
    """A draft trial led by an institution, with its lead site (as trial_create makes it)."""

    class Meta:
        model = Trial
        skip_postgeneration_save = True

    title_zh = factory.Sequence(lambda n: f"CD19 CAR-T 细胞治疗复发难治性B细胞淋巴瘤的临床研究 {n}")
    title_en = factory.Sequence(lambda n: f"CD19 CAR-T cells for relapsed/refractory B-cell lymphoma {n}")
    protocol_number = factory.Sequence(lambda n: f"CGT-{2026}-{n:04d}")
    kind = Trial.Kind.IIT
    therapy_category = Trial.TherapyCategory.IMMUNE_CELL
    phase = Trial.Phase.PHASE_1
    sponsor = factory.SubFactory(SponsorFactory)
    lead_institution = factory.SubFactory(InstitutionFactory)
    pi = factory.SubFactory(UserFactory, role=Role.PI, institution=factory.SelfAttribute("..lead_institution"))
    target_enrolment = 30
    hgr_status = Trial.HGRStatus.NOT_REQUIRED
    status = Trial.Status.DRAFT

    @factory.post_generation
    def lead_site(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            qualify(obj.pi)
            TrialSite.objects.create(
                trial=obj,
                institution=obj.lead_institution,
                role=TrialSite.SiteRole.LEAD,
                site_pi=obj.pi,
                site_target=obj.target_enrolment,
                **kwargs,
            )

    @factory.post_generation
    def reviews_passed(obj, create, extracted, **kwargs):
        """An IIT has passed academic review and institutional approval unless told otherwise
        (``reviews_passed=False``), so that tests of other rules can activate it."""
        if create and extracted is not False and obj.kind == Trial.Kind.IIT:
            now = timezone.now()
            for kind in TrialReview.Kind.values:
                TrialReview.objects.create(
                    trial=obj,
                    kind=kind,
                    outcome=TrialReview.Outcome.PASSED,
                    decided_on=timezone.localdate(now),
                    recorded_by=obj.pi,
                    recorded_at=now,
                )


class TrialSiteFactory(factory.django.DjangoModelFactory):
    """A participating site."""

    class Meta:
        model = TrialSite
        skip_postgeneration_save = True

    trial = factory.SubFactory(TrialFactory)
    institution = factory.SubFactory(InstitutionFactory)
    role = TrialSite.SiteRole.PARTICIPATING
    site_pi = factory.SubFactory(UserFactory, role=Role.PI, institution=factory.SelfAttribute("..institution"))
    site_target = 10

    @factory.post_generation
    def qualified(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            qualify(obj.site_pi)


class TrialStatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrialStatusChange

    trial = factory.SubFactory(TrialFactory)
    from_status = Trial.Status.DRAFT
    to_status = Trial.Status.SUBMITTED
    actor = factory.SubFactory(UserFactory)
    at = factory.LazyFunction(lambda: datetime.datetime.now(datetime.UTC))


class TrialDocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrialDocument

    trial = factory.SubFactory(TrialFactory)
    kind = TrialDocument.Kind.PROTOCOL
    title = factory.Sequence(lambda n: f"研究方案 {n}")


class DocumentVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DocumentVersion

    document = factory.SubFactory(TrialDocumentFactory)
    number = factory.Sequence(lambda n: n + 1)
    file = factory.LazyFunction(lambda: ContentFile(PDF_BYTES, name="protocol.pdf"))
    original_name = "protocol.pdf"
    content_type = "application/pdf"
    size = len(PDF_BYTES)
    sha256 = hashlib.sha256(PDF_BYTES).hexdigest()
    uploaded_by = factory.SubFactory(UserFactory)


def trial_with_history(history: list[tuple[str, datetime.date]], *, actor=None, **kwargs) -> Trial:
    """A trial whose lifecycle history (status, day) is recorded as the services would, ending in the last status.

    Enrolment checks read the status a trial had on the day of an event, so a trial that enrolled in the past
    and is completed now needs its history, e.g. [("active", 2025-01-10), ("enrolment_closed", ...), ...].
    """
    trial = TrialFactory(status=history[-1][0] if history else Trial.Status.DRAFT, **kwargs)
    actor = actor or trial.pi
    previous = Trial.Status.DRAFT
    for position, (status, day) in enumerate(history):
        at = datetime.datetime.combine(
            day, datetime.time(9, position), tzinfo=datetime.timezone(datetime.timedelta(hours=8))
        )
        TrialStatusChange.objects.create(trial=trial, from_status=previous, to_status=status, actor=actor, at=at)
        previous = status
    return trial


def approve_site(site: TrialSite, on: datetime.date, valid_until: datetime.date | None = None) -> TrialSite:
    """Record the site's ethics approval (as an ethics decision or a recognition would)."""
    site.ethics_approved_on = on
    site.ethics_valid_until = valid_until
    site.save(update_fields=["ethics_approved_on", "ethics_valid_until"])
    return site


S = Trial.Status


def days_ago(days: int) -> datetime.date:
    return timezone.localdate() - datetime.timedelta(days=days)


def active_site(*, started: int = 200, valid_for: int | None = 165, **trial_kwargs) -> TrialSite:
    """The lead site of a trial active since ``started`` days ago, with an ethics approval dated 20 days before
    that and valid for ``valid_for`` more days (None: no validity recorded, the national interval applies).

    Plain function (not a fixture) so the API, admin and portal tests can build the same world."""
    start = days_ago(started)
    history = [
        (S.SUBMITTED, start - datetime.timedelta(days=60)),
        (S.UNDER_REVIEW, start - datetime.timedelta(days=50)),
        (S.APPROVED, start - datetime.timedelta(days=20)),
        (S.ACTIVE, start),
    ]
    trial = trial_with_history(history, **trial_kwargs)
    valid_until = None if valid_for is None else days_ago(-valid_for)
    return approve_site(trial.sites.get(role=TrialSite.SiteRole.LEAD), start - datetime.timedelta(days=20), valid_until)


def move_trial(trial: Trial, status: str, on: datetime.date) -> Trial:
    """Record one more lifecycle step on a trial built by ``active_site`` (as the trial services would)."""
    at = datetime.datetime.combine(on, datetime.time(12), tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
    trial.status_changes.create(from_status=trial.status, to_status=status, actor=trial.pi, at=at)
    trial.status = status
    trial.save(update_fields=["status"])
    return trial


class FilingObligationFactory(factory.django.DjangoModelFactory):
    """An open filing due at the end of ``basis_on`` + 30 days (set due_at/remind_at for other deadlines)."""

    class Meta:
        model = FilingObligation

    trial = factory.SubFactory(TrialFactory)
    kind = FilingObligation.Kind.ANNUAL
    source_key = factory.Sequence(lambda n: f"test:{n}")
    basis_on = factory.LazyFunction(timezone.localdate)
    due_at = factory.LazyAttribute(
        lambda o: timezone.make_aware(
            datetime.datetime.combine(o.basis_on + datetime.timedelta(days=31), datetime.time())
        )
    )
    remind_at = factory.LazyAttribute(lambda o: o.due_at - datetime.timedelta(days=14))


POLICY_SEEDS = settings.BASE_DIR / "seeds" / "policy"


def seed_gate_rules() -> None:
    """The gate rules of seeds/policy/gates.yaml, loaded as load_seeds loads them."""
    from cgtclinic.seeding import PolicySeeds, Regions, SeedReport
    from trials import gate_seeds

    gate_seeds.load_gate_rules(PolicySeeds(POLICY_SEEDS, SeedReport(), Regions()))


def seed_reminder_days() -> int:
    """The seeded GCP-certificate reminder period (parameters.yaml), stored as load_seeds stores it."""
    from trials.qualifications import REMINDER_DAYS_CODE

    rows = yaml.safe_load((POLICY_SEEDS / "parameters.yaml").read_text(encoding="utf-8"))
    row = next(row for row in rows if row["code"] == REMINDER_DAYS_CODE)
    fields = ("code", "name_zh", "name_en", "value", "unit", "effective_from", "source_document", "source_clause")
    PolicyParameter.objects.create(**{name: row[name] for name in fields})
    return int(row["value"])


def answer_gates(trial, *, by=None) -> None:
    """Answer every gate the seeded rules apply to the trial (and each of its sites) "not applicable", so that tests
    of other rules can activate it and enrol; tests of the gates themselves answer them one by one."""
    from trials import gates
    from trials.models import GateAnswer

    recorder = by or trial.pi or trial.created_by
    for gate in gates.applicable_gates(trial):
        for site in [None] if gates.is_trial_gate(gate) else list(trial.sites.all()):
            GateAnswer.objects.update_or_create(
                trial=trial,
                site=site,
                gate=gate,
                defaults={
                    "outcome": GateAnswer.Outcome.NOT_APPLICABLE,
                    "reason": "not applicable in this test",
                    "recorded_by": recorder,
                    "recorded_at": timezone.now(),
                },
            )
