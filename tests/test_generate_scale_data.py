"""generate_scale_data at a tiny size: the counts asked for, and data every service would have written."""

import datetime
import hashlib
import itertools

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import models, transaction
from django.db.models import Sum
from django.utils import translation

from bench.scale_data import SCALES, sizes
from bench.scale_data.stream import Writer
from cgtclinic import rollups
from cgtclinic.models import ApiToken, Department, Institution, Region, User
from cgtclinic.roles import Role
from ethics import recognition, safety
from ethics.models import (
    AllianceMembership,
    Decision,
    RecognitionRequest,
    SafetyClock,
    SafetyEffect,
    SafetyEvent,
    Submission,
)
from subsidies import evidence
from subsidies.models import Claim, ClaimLine, SubsidyProgram
from tests.factories.cgtclinic import InstitutionFactory
from trials import filings
from trials.enrolment import rebuild_site_counts
from trials.filing_models import FilingEffect, FilingObligation
from trials.models import (
    Delegation,
    Duty,
    EnrolmentEntry,
    EnrolmentSubject,
    GcpCertificate,
    SiteEnrolment,
    SubjectConsent,
    Trial,
    TrialSite,
)

SIZES = {
    "institutions": 10,
    "trials": 60,
    "sites": 150,
    "enrolment_events": 3000,
    "recognition_requests": 120,
    "claims": 20,
    "research_filings": 40,
    "safety_events": 80,
}
TODAY = datetime.date(2026, 6, 30)


def generate(**overrides):
    call_command(
        "generate_scale_data", **{"seed": 7, "today": TODAY, **SIZES, **overrides}, stdout=_Null(), stderr=_Null()
    )


class _Null:
    def write(self, *args, **kwargs):
        pass

    def flush(self):
        pass


@pytest.fixture(scope="module")
def generated_once(django_db_setup, django_db_blocker):
    """Generate once per module, in a transaction rolled back when the module is done (each test runs in a
    savepoint inside it). The tests that need an empty database come first in the file, before this exists."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            generate()
            yield
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def generated(generated_once, db):
    pass


# --- on an empty database (before the module's data set exists) ------------------------------------------------


def _fingerprint() -> str:
    rows = [
        *Trial.objects.order_by("protocol_number").values_list("protocol_number", "status", "title_zh", "phase"),
        *EnrolmentEntry.objects.order_by("site__trial__protocol_number", "site__institution__name_zh", "id")
        .values_list("kind", "occurred_on", "count"),
        *Claim.objects.order_by("opened_at", "id").values_list("institution__name_zh", "status", "amount_claimed"),
        *RecognitionRequest.objects.order_by("received_at", "site__institution__name_zh", "id")
        .values_list("status", "due_at", "responded_at"),
        *Decision.objects.order_by("letter_number").values_list("letter_number", "decided_at", "outcome"),
        *ClaimLine.objects.order_by("claim__opened_at", "site__institution__name_zh", "item_reference", "id")
        .values_list("status", "amount_computed", "evidence"),
        *SafetyClock.objects.order_by("id").values_list("kind", "due_at", "met_at"),
        *FilingObligation.objects.order_by("id").values_list("kind", "due_at", "status", "filed_on"),
        *Institution.objects.order_by("credit_code").values_list("credit_code", "name_zh"),
        *AllianceMembership.objects.order_by("alliance__name_zh", "committee__institution__credit_code")
        .values_list("alliance__name_zh", "committee__institution__credit_code"),
    ]  # fmt: skip
    return hashlib.sha256(repr(rows).encode()).hexdigest()


class _Undo(Exception):
    pass


def test_same_seed_same_data(db):
    prints = []
    for seed in (7, 7, 8):
        try:
            with transaction.atomic():
                generate(seed=seed, trials=30, sites=70, enrolment_events=800, recognition_requests=40, claims=5)
                prints.append(_fingerprint())
                raise _Undo
        except _Undo:
            pass
    assert prints[0] == prints[1]
    assert prints[2] != prints[0]


def _renumber_regions(offset: int) -> None:
    """Give every region another primary key, as another database would have (foreign keys are checked at commit)."""
    links = [
        (model, field)
        for model in apps.get_models(include_auto_created=True)
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model is Region
    ]
    for region in Region.objects.order_by("-pk"):
        new = region.pk + offset
        Region.objects.filter(pk=region.pk).update(pk=new)
        for model, field in links:
            model._base_manager.filter(**{field.attname: region.pk}).update(**{field.attname: new})


def test_the_data_set_does_not_depend_on_primary_keys(db):
    """A CI run failed because the same seed made other data in another database: the alliances' memberships were
    drawn in the order of a set of region primary keys, which differ between databases."""
    prints = []
    for offset in (0, 37, 1000):
        try:
            with transaction.atomic():
                _renumber_regions(offset)
                generate(trials=30, sites=70, enrolment_events=800, recognition_requests=40, claims=5)
                prints.append(_fingerprint())
                raise _Undo
        except _Undo:
            pass
    assert prints[0] == prints[1] == prints[2]


def test_safety_reports_wait_for_the_periods_they_are_timed_by(db):
    """A data set reaching back before 2020-07-01 (the seeded safety periods' start) dates its safety reports from
    then: before it there is no period to time their clocks by (a national run stopped on a report of 2020-06-03)."""
    try:
        with transaction.atomic():
            generate(today=datetime.date(2021, 3, 31), trials=30, sites=70, enrolment_events=800, claims=0)
            earliest = SafetyEvent.objects.order_by("received_at").values_list("received_at", flat=True).first()
            assert earliest is not None
            assert earliest.date() >= datetime.date(2020, 7, 1)
            raise _Undo
    except _Undo:
        pass


def test_a_scale_names_sizes_and_a_size_given_overrides_it():
    assert sizes("provincial", {}) == SCALES["provincial"]
    assert sizes("national", {"claims": 5, "trials": None}) == {**SCALES["national"], "claims": 5}
    # National is the provincial data set ten times over.
    assert all(SCALES["national"][name] == 10 * SCALES["provincial"][name] for name in SCALES["provincial"])


def test_an_explicit_size_overrides_the_national_preset(db):
    with transaction.atomic():
        generate(scale="national", trials=30, sites=70, enrolment_events=800, recognition_requests=40, claims=5)
        assert (Institution.objects.count(), Trial.objects.count(), Claim.objects.count()) == (10, 30, 5)
        transaction.set_rollback(True)


def test_a_row_pointing_at_nothing_is_refused(db):
    from django.db import connection

    connection.ensure_connection()
    with transaction.atomic(), connection.connection.cursor() as cursor:
        writer = Writer(cursor)
        writer.table(Department).add(institution_id=987654, name_zh="血液科", name_en="Haematology")
        with translation.override("en"), pytest.raises(CommandError, match="institution_id = 987654"):
            writer.finish(_Null())
        transaction.set_rollback(True)


def test_refuses_more_claims_than_the_data_holds(db):
    with translation.override("en"), pytest.raises(CommandError, match="claims"):
        generate(claims=100000)
    assert not Trial.objects.exists()


def test_refuses_a_database_that_holds_data(db):
    InstitutionFactory()
    with translation.override("en"), pytest.raises(CommandError, match="empty"):
        generate()
    assert not Trial.objects.exists()


@pytest.mark.parametrize(
    "overrides", [{"sites": SIZES["trials"] - 1}, {"claims": -1}, {"institutions": 1}], ids=["sites", "negative", "one"]
)
def test_refuses_sizes_that_cannot_be(db, overrides):
    with pytest.raises(CommandError):
        generate(**overrides)
    assert not Institution.objects.exists()


# --- the generated data set --------------------------------------------------------------------------------------


def test_counts_are_as_asked(generated):
    assert Institution.objects.count() == SIZES["institutions"]
    assert Trial.objects.count() == SIZES["trials"]
    assert TrialSite.objects.count() == SIZES["sites"]
    assert EnrolmentEntry.objects.count() == SIZES["enrolment_events"]
    assert RecognitionRequest.objects.count() == SIZES["recognition_requests"]
    assert Claim.objects.count() == SIZES["claims"]


def test_trials_have_lifecycles_of_every_kind(generated):
    assert set(Trial.objects.values_list("kind", flat=True)) == set(Trial.Kind.values)
    assert len(set(Trial.objects.values_list("status", flat=True))) >= 5
    for trial in Trial.objects.exclude(status=Trial.Status.DRAFT).prefetch_related("status_changes"):
        changes = list(trial.status_changes.all())
        assert changes[0].from_status == Trial.Status.DRAFT
        assert changes[-1].to_status == trial.status
        assert all(a.to_status == b.from_status and a.at <= b.at for a, b in itertools.pairwise(changes))


def test_site_enrolment_equals_the_ledger(generated):
    cached = {row.site_id: row for row in SiteEnrolment.objects.all()}
    assert set(cached) == set(EnrolmentEntry.objects.values_list("site_id", flat=True))
    assert EnrolmentEntry.objects.filter(reverses__isnull=False).exists()
    fields = ("screened", "enrolled", "screen_failed", "withdrawn", "completed", "last_enrolled_on")
    for site in TrialSite.objects.filter(pk__in=cached):
        rebuilt = rebuild_site_counts(site)
        assert [getattr(rebuilt, f) for f in fields] == [getattr(cached[site.pk], f) for f in fields]
        assert rebuilt.screen_failed <= rebuilt.screened
        assert rebuilt.withdrawn + rebuilt.completed <= rebuilt.enrolled


def test_enrolment_happens_where_and_when_the_site_may_enrol(generated):
    for entry in EnrolmentEntry.objects.select_related("site"):
        assert entry.site.ethics_approved_on <= entry.occurred_on < TODAY
        assert entry.trial_id == entry.site.trial_id
        if entry.kind in (EnrolmentEntry.Kind.SCREENED, EnrolmentEntry.Kind.ENROLLED):
            assert entry.site.site_initiated_on <= entry.occurred_on <= entry.site.ethics_valid_until


def test_claim_totals_are_the_sums_of_their_lines(generated):
    assert len(set(Claim.objects.values_list("status", flat=True))) >= 3
    for claim in Claim.objects.all():
        lines = ClaimLine.objects.filter(claim=claim)
        assert claim.amount_claimed == lines.aggregate(total=Sum("amount_computed"))["total"]
        assert claim.amount_claimed > 0
        if claim.status in (Claim.Status.APPROVED, Claim.Status.PARTIALLY_APPROVED, Claim.Status.PAID):
            eligible = lines.filter(status=ClaimLine.Status.ELIGIBLE)
            assert claim.amount_approved == eligible.aggregate(total=Sum("approved_amount"))["total"]
        if claim.status == Claim.Status.PAID:
            assert 0 < claim.amount_paid == claim.amount_approved
            # Paid as the service pays: one payment row of the whole balance.
            (payment,) = claim.payments.all()
            assert (payment.amount, payment.balance_after) == (claim.amount_paid, 0)
    # One claim per hospital and program open at a time (the database constraint holds it, too).
    open_claims = Claim.objects.filter(status__in=Claim.OPEN_STATUSES)
    assert open_claims.count() == open_claims.values("institution", "program").distinct().count()


def test_recognition_deadlines_follow_receipt(generated):
    for request in RecognitionRequest.objects.all():
        assert request.received_at < request.remind_at <= request.due_at
        if request.responded_at:
            assert request.late == (request.responded_at > request.due_at)
            assert request.response_working_hours is not None
    statuses = set(RecognitionRequest.objects.values_list("status", flat=True))
    assert {RecognitionRequest.Status.RECOGNISED, RecognitionRequest.Status.SUPERSEDED} <= statuses
    assert RecognitionRequest.objects.filter(late=True).exists()


def test_site_milestones_are_in_order(generated):
    milestones = TrialSite.MILESTONES
    for site in TrialSite.objects.all():
        dates = [getattr(site, name) for name in milestones]
        reached = [d for d in dates if d is not None]
        assert dates[: len(reached)] == reached, f"site {site.pk}: a milestone is missing before a later one"
        assert reached == sorted(reached)
    within = TrialSite.objects.filter(site_initiated_on__isnull=False)
    assert any(site.startup_days <= 25 * 7 for site in within)


def test_decisions_are_numbered_per_committee_and_year(generated):
    assert Decision.objects.filter(meeting__isnull=False).exists()
    assert set(Submission.objects.values_list("review_type", flat=True)) >= set(Submission.ReviewType.values)
    for decision in Decision.objects.select_related("submission"):
        assert decision.submission.decided_at == decision.decided_at
        assert decision.letter_year == decision.decided_at.year


def test_every_foreign_key_points_at_a_row(generated):
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and model.objects.exists():
                target = field.related_model._default_manager.values("pk")
                dangling = model._default_manager.exclude(**{f"{field.attname}__isnull": True}).exclude(
                    **{f"{field.attname}__in": target}
                )
                assert not dangling.exists(), f"{model.__name__}.{field.name} points at missing rows"


def test_a_regulator_per_region_whose_token_is_issued_when_needed(generated):
    for region in Region.objects.all():
        regulator = User.objects.get(username=f"scale-regulator-{region.code}")
        assert regulator.role == Role.REGULATOR and regulator.region == region
        assert not regulator.has_usable_password()
        assert not ApiToken.objects.filter(user=regulator).exists()  # keys are digests: bench issues its own


def test_claim_evidence_is_what_the_service_shows(generated):
    """Each computed line's evidence (claimed patients, the site's approval letter, the trial's registration) is what
    subsidies.evidence reads from the generated rows, and the line names the trial by its titles."""
    lines = ClaimLine.objects.filter(status=ClaimLine.Status.ELIGIBLE).select_related("claim__program", "trial", "site")
    assert lines.exists()
    letters = 0
    for line in lines:
        on, site = line.claim.reference_date, line.site
        per_patient = line.claim.program.amount_rule == SubsidyProgram.AmountRule.PER_PATIENT
        ethics = evidence.ethics_by_site([site], on).get(site.pk)
        slots = evidence.patient_slots([site.pk], on).get(site.pk, []) if per_patient else []
        expected = evidence.line_evidence(
            trial=line.trial,
            site=site,
            slots=slots,
            ethics=ethics,
            first=line.previously_claimed,
            count=line.patients_claimed,
        )
        assert {key: line.evidence[key] for key in expected} == expected
        assert (line.evidence["title_zh"], line.evidence["title_en"]) == (line.trial.title_zh, line.trial.title_en)
        letters += bool(ethics and ethics["letter_number"])
    assert letters


def test_governance_records_of_issue_12_are_there(generated):
    """Every coded subject signed the trial's ICF on the day of screening; initiated sites keep a delegation log
    naming their PI; every PI holds GCP certificates."""
    subjects = EnrolmentSubject.objects.all()
    assert subjects.exists()
    consents = {c.subject_id: c for c in SubjectConsent.objects.select_related("icf_version__document")}
    for subject in subjects:
        consent = consents[subject.pk]
        first = subject.entries.order_by("occurred_on", "pk").first()
        assert consent.consented_on == first.occurred_on
        assert consent.icf_version.document.trial_id == subject.trial_id
    for site in TrialSite.objects.filter(site_initiated_on__isnull=False):
        assert Delegation.objects.filter(site=site, person_id=site.site_pi_id, duty=Duty.REPORT).exists()
    pis = User.objects.filter(role=Role.PI)
    assert pis.count() == GcpCertificate.objects.values("person").distinct().count()


# --- deadlines the sweeps watch -----------------------------------------------------------------------------------

END = datetime.datetime.combine(TODAY, datetime.time(0), tzinfo=datetime.timezone(datetime.timedelta(hours=8)))


def test_research_filings_are_owed_filed_and_open(generated):
    obligations = FilingObligation.objects.all()
    assert 0 < obligations.count() <= SIZES["research_filings"]
    assert {FilingObligation.Kind.INITIAL, FilingObligation.Kind.ANNUAL} <= set(
        obligations.values_list("kind", flat=True)
    )
    assert set(obligations.values_list("trial__kind", flat=True)) == {Trial.Kind.IIT}
    statuses = set(obligations.values_list("status", flat=True))
    assert {FilingObligation.Status.FILED, FilingObligation.Status.OPEN} <= statuses
    for obligation in obligations.select_related("trial__lead_institution__region"):
        assert obligation.remind_at <= obligation.due_at
        sequence = int(obligation.source_key.split(":")[1]) if obligation.kind == "annual" else 1
        deadline = filings.compute_deadline(obligation.trial, obligation.kind, obligation.basis_on, sequence=sequence)
        assert (obligation.due_at, obligation.remind_at) == (deadline["due_at"], deadline["remind_at"])
        if obligation.status == FilingObligation.Status.FILED:
            assert obligation.filed_on <= TODAY
            assert obligation.late == (filings._end_of(obligation.filed_on) > obligation.due_at)
        if obligation.kind == FilingObligation.Kind.INITIAL and obligation.status == FilingObligation.Status.FILED:
            assert obligation.trial.filed_on == obligation.filed_on


def test_safety_reports_have_their_clocks(generated):
    events = SafetyEvent.objects.all()
    assert events.count() == SIZES["safety_events"]
    assert set(events.values_list("kind", flat=True)) == {SafetyEvent.Kind.SAE, SafetyEvent.Kind.SUSAR}
    assert SafetyClock.objects.open().exists() and SafetyClock.objects.filter(met_at__isnull=False).exists()
    assert SafetyClock.objects.filter(late=True).exists()
    for clock in SafetyClock.objects.select_related("event"):
        assert clock.started_at <= clock.remind_at <= clock.due_at
        if clock.met_at:
            assert clock.met_at <= END and clock.late == (clock.met_at > clock.due_at)
        met = {
            SafetyClock.Kind.SPONSOR_REPORT: clock.event.sponsor_notified_at,
            SafetyClock.Kind.EC_REPORT: clock.event.ec_reported_at,
            SafetyClock.Kind.PI_REVIEW: clock.event.pi_reviewed_at,
            SafetyClock.Kind.COMMITTEE_REVIEW: clock.event.committee_reviewed_at,
            SafetyClock.Kind.SUSAR_EXPEDITED: clock.event.received_at,
        }[clock.kind]
        assert clock.met_at == met
    # Every step the report took is in its timeline, in the order the service allows.
    for event in events.prefetch_related("steps"):
        status = ""
        for step in event.steps.all():
            assert step.from_status == status
            status = step.to_status
        assert status == event.status


def test_open_items_are_left_for_the_sweeps(generated):
    assert RecognitionRequest.objects.open().exists()
    assert SafetyClock.objects.open().filter(due_at__lt=END).exists()  # overdue
    assert SafetyClock.objects.open().filter(due_at__gt=END).exists()
    assert FilingObligation.objects.open().filter(due_at__gt=END).exists()
    # An effect due before the data set ends happened then: a sweep at its end has nothing to redo ...
    assert safety.sweep(END) == {"reminders": 0, "escalations": 0}
    assert filings.sweep(END) == {"reminders": 0, "escalations": 0}
    assert not any(recognition.sweep(END).values())
    assert (
        SafetyEffect.objects.filter(kind="escalation").count()
        == SafetyClock.objects.filter(escalated_at__isnull=False).count()
    )
    assert (
        FilingEffect.objects.filter(kind="escalation").count()
        == FilingObligation.objects.filter(escalated_at__isnull=False).count()
    )
    # ... and one later has work (safety clocks run for days, an annual report for a year).
    assert sum(safety.sweep(END + datetime.timedelta(days=30)).values()) > 0
    assert sum(filings.sweep(END + datetime.timedelta(days=400)).values()) > 0


def test_rollups_equal_their_recomputation(generated):
    assert rollups.differences() == {}


def test_the_rollups_are_analysed_for_the_planner(generated):
    """Rollups are filled after the COPY phase analysed the raw tables: without their own statistics the planner
    guesses a few hundred rows and sorts a region's 100,000 on disk."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(DISTINCT tablename) FROM pg_stats WHERE tablename = ANY(%s)",
            [["trials_siterollup", "ethics_turnaroundfact", "subsidies_projectclaimtotal"]],
        )
        assert cursor.fetchone()[0] == 3
