"""Gates before a trial or site may start and enrol, through the services: HGR and biosafety gates (seeded
rules), the site PI's GCP certificate, the delegation log, and consent per subject."""

import datetime

import pytest
from django.utils.translation import gettext

from cgtclinic.errors import DomainError
from cgtclinic.models import Notification
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import DecisionFactory, SubmissionFactory
from tests.factories.trials import (
    DocumentVersionFactory,
    GcpCertificateFactory,
    TrialDocumentFactory,
    TrialFactory,
    TrialSiteFactory,
    active_site,
    days_ago,
    delegate,
    seed_gate_rules,
    seed_reminder_days,
    trial_with_history,
)
from trials import consent, enrolment, gates, qualifications, services
from trials.models import (
    CertificateReminder,
    Duty,
    EnrolmentEntry,
    EnrolmentSubject,
    Gate,
    GateAnswer,
    GcpCertificate,
    SubjectConsent,
    Trial,
    TrialDocument,
)

pytestmark = pytest.mark.django_db
K = EnrolmentEntry.Kind
S = Trial.Status
O = GateAnswer.Outcome  # noqa: E741 - the answer's outcomes, as in the services


@pytest.fixture
def gate_rules():
    seed_gate_rules()


@pytest.fixture
def reminder_days(db) -> int:
    return seed_reminder_days()


def office_of(institution):
    return UserFactory(role=Role.RESEARCH_OFFICE, institution=institution)


def approved_trial(**kwargs) -> Trial:
    start = days_ago(100)
    return trial_with_history(
        [(S.SUBMITTED, start), (S.UNDER_REVIEW, start + datetime.timedelta(days=1)), (S.APPROVED, days_ago(90))],
        **kwargs,
    )


# --- which gates apply ----------------------------------------------------------------------------------------


def test_which_gates_apply_is_the_seeded_data(gate_rules):
    iit_vector = TrialFactory(kind=Trial.Kind.IIT, therapy_category=Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    registration_cells = TrialFactory(kind=Trial.Kind.REGISTRATION, therapy_category=Trial.TherapyCategory.STEM_CELL)
    other = TrialFactory(kind=Trial.Kind.OTHER, therapy_category=Trial.TherapyCategory.NUCLEIC_ACID)
    assert gates.applicable_gates(iit_vector) == [Gate.HGR, Gate.BIOSAFETY]
    assert gates.applicable_gates(registration_cells) == [Gate.HGR]
    assert gates.applicable_gates(other) == []
    for rule in gates.rules_for(iit_vector):
        assert rule.source_document and rule.source_clause


def test_no_gate_applies_without_seeded_rules():
    trial = approved_trial()
    assert gates.applicable_gates(trial) == []
    assert services.trial_activate(trial=trial, actor=office_of(trial.lead_institution)).status == S.ACTIVE


# --- trial activation -----------------------------------------------------------------------------------------


def test_activation_is_refused_until_the_hgr_gate_is_answered(gate_rules):
    trial = approved_trial()
    office = office_of(trial.lead_institution)
    with pytest.raises(DomainError) as refused:
        services.trial_activate(trial=trial, actor=office)
    assert refused.value.code == "gate_not_met"
    assert str(Gate.HGR.label) in str(refused.value) and gettext("not yet answered") in str(refused.value)

    gates.gate_answer(trial=trial, actor=office, gate=Gate.HGR, outcome=O.PENDING)
    with pytest.raises(DomainError, match=gettext("pending")):
        services.trial_activate(trial=trial, actor=office)

    with pytest.raises(DomainError) as no_reason:
        gates.gate_answer(trial=trial, actor=office, gate=Gate.HGR, outcome=O.NOT_APPLICABLE)
    assert no_reason.value.field == "reason"
    gates.gate_answer(
        trial=trial, actor=office, gate=Gate.HGR, outcome=O.NOT_APPLICABLE, reason="无外方单位参与，不采集保藏样本"
    )
    assert services.trial_activate(trial=trial, actor=office).status == S.ACTIVE
    trial.refresh_from_db()
    assert trial.hgr_status == Trial.HGRStatus.NOT_REQUIRED


def test_a_met_gate_needs_its_number_and_date_and_mirrors_the_trials_hgr_fields(gate_rules):
    trial = approved_trial()
    office = office_of(trial.lead_institution)
    with pytest.raises(DomainError) as refused:
        gates.gate_answer(trial=trial, actor=office, gate=Gate.HGR, outcome=O.MET, met_on=days_ago(5))
    assert refused.value.field == "reference_number"
    with pytest.raises(DomainError) as refused:
        gates.gate_answer(trial=trial, actor=office, gate=Gate.HGR, outcome=O.MET, reference_number="BC2026-1")
    assert refused.value.field == "met_on"
    answer = gates.gate_answer(
        trial=trial, actor=office, gate=Gate.HGR, outcome=O.MET, reference_number="BC2026-1", met_on=days_ago(5)
    )
    assert (answer.recorded_by, answer.history.count()) == (office, 1)
    trial.refresh_from_db()
    assert (trial.hgr_status, trial.hgr_approval_number) == (Trial.HGRStatus.APPROVED, "BC2026-1")


def test_who_may_answer_a_gate(gate_rules):
    trial = TrialFactory(therapy_category=Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    site = TrialSiteFactory(trial=trial)
    answer = {"outcome": O.PENDING}
    for actor in (
        office_of(site.institution),
        UserFactory(role=Role.ETHICS_OFFICE, institution=trial.lead_institution),
        trial.pi,
        UserFactory(role=Role.RESEARCH_OFFICE),
    ):
        with pytest.raises(DomainError) as refused:
            gates.gate_answer(trial=trial, actor=actor, gate=Gate.HGR, **answer)
        assert refused.value.code == "permission_denied"
    site_office = office_of(site.institution)
    gates.gate_answer(trial=trial, actor=site_office, gate=Gate.BIOSAFETY, site=site, **answer)
    with pytest.raises(DomainError) as refused:
        gates.gate_answer(trial=trial, actor=site_office, gate=Gate.HGR, site=site, **answer)
    assert refused.value.field == "site"
    with pytest.raises(DomainError) as refused:
        gates.gate_answer(trial=trial, actor=site_office, gate=Gate.BIOSAFETY, **answer)
    assert refused.value.field == "site"


def test_a_gate_that_does_not_apply_cannot_be_answered(gate_rules):
    trial = TrialFactory(therapy_category=Trial.TherapyCategory.STEM_CELL)
    with pytest.raises(DomainError) as refused:
        gates.gate_answer(
            trial=trial,
            actor=office_of(trial.lead_institution),
            gate=Gate.BIOSAFETY,
            site=trial.sites.get(),
            outcome=O.PENDING,
        )
    assert refused.value.code == "gate_not_applicable"


# --- site initiation and enrolment ------------------------------------------------------------------------------


def test_a_site_is_initiated_only_once_its_biosafety_review_is_met_by_that_day(gate_rules):
    trial = TrialFactory(therapy_category=Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    site = trial.sites.get()
    office = office_of(trial.lead_institution)
    gates.gate_answer(trial=trial, actor=office, gate=Gate.HGR, outcome=O.NOT_APPLICABLE, reason="不涉及")
    initiation = {"ethics_approved_on": days_ago(40), "site_initiated_on": days_ago(10)}
    with pytest.raises(DomainError) as refused:
        services.site_update(site=site, actor=office, **initiation)
    assert refused.value.code == "gate_not_met"
    assert str(Gate.BIOSAFETY.label) in str(refused.value) and str(site.institution) in str(refused.value)

    review = {"trial": trial, "actor": office, "gate": Gate.BIOSAFETY, "site": site, "outcome": O.MET}
    gates.gate_answer(**review, reference_number="IBC-1", met_on=days_ago(5))
    # Approved, but only after the initiation day: the refusal gives both dates.
    with pytest.raises(DomainError, match=days_ago(10).isoformat()):
        services.site_update(site=site, actor=office, **initiation)
    gates.gate_answer(**review, reference_number="IBC-1", met_on=days_ago(12))
    assert services.site_update(site=site, actor=office, **initiation).site_initiated_on == days_ago(10)


def test_a_site_added_with_its_initiation_date_is_refused_while_its_own_gate_is_unanswered(gate_rules):
    trial = TrialFactory(kind=Trial.Kind.OTHER, therapy_category=Trial.TherapyCategory.GENE_EDITING)
    office = office_of(trial.lead_institution)
    other = TrialSiteFactory.build().institution
    other.region.save()
    other.save()
    pi = UserFactory(role=Role.PI, institution=other)
    GcpCertificateFactory(person=pi)
    with pytest.raises(DomainError) as refused:
        services.site_add(trial=trial, actor=office, institution=other, site_pi=pi, site_initiated_on=days_ago(3))
    assert refused.value.code == "gate_not_met"


def test_enrolment_is_refused_while_a_gate_is_pending_and_names_it(gate_rules):
    site = active_site(kind=Trial.Kind.REGISTRATION, therapy_category=Trial.TherapyCategory.STEM_CELL)
    office = office_of(site.institution)
    gates.gate_answer(trial=site.trial, actor=office, gate=Gate.HGR, outcome=O.PENDING)
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(3))
    assert refused.value.code == "gate_not_met" and str(Gate.HGR.label) in str(refused.value)
    assert not EnrolmentEntry.objects.exists()

    gates.gate_answer(
        trial=site.trial, actor=office, gate=Gate.HGR, outcome=O.MET, reference_number="BC-7", met_on=days_ago(5)
    )
    with pytest.raises(DomainError, match=days_ago(6).isoformat()):
        enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(6))
    enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(3))
    # Exits are reported whatever the gates: the subjects are already on study.
    gates.gate_answer(trial=site.trial, actor=office, gate=Gate.HGR, outcome=O.PENDING)
    enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.WITHDRAWN, occurred_on=days_ago(1))


# --- the site PI's certificate --------------------------------------------------------------------------------


def test_the_site_pi_needs_a_certificate_valid_on_the_day_of_enrolment():
    site = active_site()
    pi = site.site_pi
    GcpCertificate.objects.filter(person=pi).update(issued_on=days_ago(400), expires_on=days_ago(30))
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(site=site, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(10))
    assert refused.value.code == "pi_not_qualified" and days_ago(10).isoformat() in str(refused.value)
    # On a day the certificate covered, the enrolment stands.
    enrolment.enrolment_report(site=site, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(40))
    GcpCertificateFactory(person=pi, issued_on=days_ago(31))
    enrolment.enrolment_report(site=site, actor=pi, kind=K.ENROLLED, occurred_on=days_ago(10))


def test_certificates_are_recorded_by_the_person_or_their_hospitals_offices():
    pi = UserFactory(role=Role.PI)
    fields = {"number": "GCP-9", "issuer": "某培训机构", "issued_on": days_ago(10), "expires_on": days_ago(-1000)}
    for outsider in (UserFactory(role=Role.RESEARCH_OFFICE), UserFactory(role=Role.PI, institution=pi.institution)):
        with pytest.raises(DomainError) as refused:
            qualifications.certificate_record(actor=outsider, person=pi, **fields)
        assert refused.value.code == "permission_denied"
    with pytest.raises(DomainError) as refused:
        qualifications.certificate_record(actor=pi, person=pi, **{**fields, "expires_on": days_ago(20)})
    assert refused.value.field == "expires_on"
    certificate = qualifications.certificate_record(actor=pi, person=pi, **fields)
    assert qualifications.valid_certificate(pi, days_ago(1)) == certificate
    with pytest.raises(DomainError) as duplicate:
        qualifications.certificate_record(actor=office_of(pi.institution), person=pi, **fields)
    assert duplicate.value.code == "duplicate_certificate"


# --- the delegation log -------------------------------------------------------------------------------------------


def test_an_investigator_reports_only_with_the_report_duty_on_the_day():
    site = active_site()
    colleague = UserFactory(role=Role.PI, institution=site.institution)
    assert not enrolment.may_report(colleague, site)
    with pytest.raises(DomainError) as refused:
        qualifications.delegation_record(
            site=site, actor=colleague, person=colleague, duties=[Duty.REPORT], starts_on=days_ago(50)
        )
    assert refused.value.code == "permission_denied"
    [line] = qualifications.delegation_record(
        site=site, actor=site.site_pi, person=colleague, duties=[Duty.REPORT], starts_on=days_ago(50)
    )
    assert enrolment.may_report(colleague, site)
    assert site in enrolment.sites_reportable_by(colleague)
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(site=site, actor=colleague, kind=K.SCREENED, occurred_on=days_ago(60))
    assert refused.value.code == "not_delegated"
    enrolment.enrolment_report(site=site, actor=colleague, kind=K.SCREENED, occurred_on=days_ago(40))
    qualifications.delegation_end(delegation=line, actor=office_of(site.institution), ends_on=days_ago(20))
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(site=site, actor=colleague, kind=K.SCREENED, occurred_on=days_ago(10))
    assert refused.value.code == "not_delegated"


def test_the_delegation_log_refuses_overlaps_and_strangers():
    site = active_site()
    colleague = UserFactory(role=Role.PI, institution=site.institution)
    qualifications.delegation_record(
        site=site, actor=site.site_pi, person=colleague, duties=[Duty.CONSENT, Duty.ENROL], starts_on=days_ago(50)
    )
    with pytest.raises(DomainError) as refused:
        qualifications.delegation_record(
            site=site, actor=site.site_pi, person=colleague, duties=[Duty.ENROL], starts_on=days_ago(10)
        )
    assert refused.value.code == "delegation_overlaps"
    for person, field in ((UserFactory(role=Role.PI), "person"), (site.site_pi, "person")):
        with pytest.raises(DomainError) as refused:
            qualifications.delegation_record(
                site=site, actor=site.site_pi, person=person, duties=[Duty.REPORT], starts_on=days_ago(1)
            )
        assert refused.value.field == field
    with pytest.raises(DomainError) as refused:
        qualifications.delegation_record(
            site=site, actor=site.site_pi, person=colleague, duties=["sing"], starts_on=days_ago(1)
        )
    assert refused.value.field == "duties"


def test_the_research_office_of_the_sites_hospital_reports_as_its_registrar():
    site = active_site()
    entry = enrolment.enrolment_report(
        site=site, actor=office_of(site.institution), kind=K.SCREENED, occurred_on=days_ago(5)
    )
    assert entry.count == 1


# --- reminders ----------------------------------------------------------------------------------------------------


def test_reminders_before_and_after_expiry_are_sent_exactly_once(reminder_days):
    pi = UserFactory(role=Role.PI)
    office = office_of(pi.institution)
    certificate = GcpCertificateFactory(person=pi, expires_on=days_ago(-(reminder_days + 1)))
    assert qualifications.send_certificate_reminders() == []

    certificate.expires_on = days_ago(-reminder_days)
    certificate.save()
    sent = qualifications.send_certificate_reminders()
    assert sent == [(certificate, CertificateReminder.Stage.BEFORE_EXPIRY)]
    assert qualifications.send_certificate_reminders() == []
    told = Notification.objects.filter(topic="gcp_certificate.before_expiry")
    assert set(told.values_list("recipient", flat=True)) == {pi.pk, office.pk}

    certificate.expires_on = days_ago(1)
    certificate.issued_on = days_ago(1000)
    certificate.save()
    assert qualifications.send_certificate_reminders() == [(certificate, CertificateReminder.Stage.EXPIRED)]
    assert qualifications.send_certificate_reminders() == []
    assert Notification.objects.filter(topic="gcp_certificate.expired").count() == 2
    assert CertificateReminder.objects.filter(certificate=certificate).count() == 2


def test_a_renewed_certificate_silences_the_old_ones_reminders(reminder_days):
    pi = UserFactory(role=Role.PI)
    GcpCertificateFactory(person=pi, expires_on=days_ago(-5))
    GcpCertificateFactory(person=pi, issued_on=days_ago(3), expires_on=days_ago(-1000))
    assert qualifications.send_certificate_reminders() == []


def test_the_sweep_task_sends_each_reminder_once(reminder_days):
    from trials.tasks import sweep_certificate_reminders

    GcpCertificateFactory(expires_on=days_ago(-1))
    assert sweep_certificate_reminders.apply().get() == 1
    assert sweep_certificate_reminders.apply().get() == 0


# --- consent per subject --------------------------------------------------------------------------------------


def approve_icf(trial, number: int, on: datetime.date):
    document = TrialDocument.objects.filter(trial=trial, kind=TrialDocument.Kind.ICF).first() or (
        TrialDocumentFactory(trial=trial, kind=TrialDocument.Kind.ICF, title="知情同意书")
    )
    version = DocumentVersionFactory(document=document, number=number)
    submission = SubmissionFactory(trial=trial)
    submission.documents.add(version)
    DecisionFactory(
        submission=submission,
        decided_at=datetime.datetime.combine(on, datetime.time(10), tzinfo=datetime.UTC),
    )
    return version


def test_an_enrolment_naming_a_subject_records_the_approved_icf_and_the_consent_date():
    site = active_site()
    pi = site.site_pi
    v1 = approve_icf(site.trial, 1, days_ago(220))
    unapproved = DocumentVersionFactory(document=v1.document, number=2)
    report = {"site": site, "actor": pi, "kind": K.ENROLLED, "occurred_on": days_ago(30), "subject_code": "RK-001"}
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(**report)
    assert refused.value.code == "consent_required"
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(**report, icf_version=unapproved, consented_on=days_ago(31))
    assert refused.value.field == "icf_version"
    with pytest.raises(DomainError) as refused:
        enrolment.enrolment_report(**report, icf_version=v1, consented_on=days_ago(29))
    assert refused.value.field == "consented_on"
    assert not EnrolmentSubject.objects.filter(consents__isnull=False).exists()
    enrolment.enrolment_report(**report, icf_version=v1, consented_on=days_ago(31))
    consent_row = SubjectConsent.objects.get()
    assert (consent_row.icf_version, consent_row.consented_on, consent_row.is_reconsent) == (v1, days_ago(31), False)


def test_a_new_approved_icf_lists_subjects_for_reconsent_until_it_is_recorded():
    site = active_site()
    pi = site.site_pi
    v1 = approve_icf(site.trial, 1, days_ago(220))
    for code in ("RK-001", "RK-002"):
        enrolment.enrolment_report(
            site=site,
            actor=pi,
            kind=K.ENROLLED,
            occurred_on=days_ago(30),
            subject_code=code,
            icf_version=v1,
            consented_on=days_ago(31),
        )
    enrolment.enrolment_report(site=site, actor=pi, kind=K.WITHDRAWN, occurred_on=days_ago(20), subject_code="RK-002")
    sites = type(site).objects.filter(pk=site.pk)
    assert consent.reconsent_due(sites) == []
    v2 = approve_icf(site.trial, 2, days_ago(10))
    [due] = consent.reconsent_due(sites)
    assert (due.subject.code, due.signed, due.current) == ("RK-001", v1, v2)

    subject = EnrolmentSubject.objects.get(code="RK-001")
    stranger = UserFactory(role=Role.PI, institution=site.institution)
    with pytest.raises(DomainError) as refused:
        consent.consent_record(subject=subject, actor=stranger, icf_version=v2, consented_on=days_ago(5))
    assert refused.value.code == "permission_denied"
    with pytest.raises(DomainError) as refused:
        consent.consent_record(subject=subject, actor=pi, icf_version=v2, consented_on=days_ago(-1))
    assert refused.value.field == "consented_on"
    delegate(site, stranger, Duty.CONSENT)
    again = consent.consent_record(subject=subject, actor=stranger, icf_version=v2, consented_on=days_ago(5))
    assert again.is_reconsent
    assert consent.reconsent_due(sites) == []
    with pytest.raises(DomainError):
        consent.consent_record(subject=subject, actor=pi, icf_version=v1, consented_on=days_ago(4))


# --- work queues --------------------------------------------------------------------------------------------------


def test_work_queues_show_reconsent_certificates_and_pending_gates(gate_rules, reminder_days):
    from cgtclinic.workqueue import work_queue

    site = active_site(kind=Trial.Kind.REGISTRATION, therapy_category=Trial.TherapyCategory.STEM_CELL)
    pi, office = site.site_pi, office_of(site.institution)
    stranger_office = office_of(TrialSiteFactory().institution)
    gates.gate_answer(
        trial=site.trial, actor=office, gate=Gate.HGR, outcome=O.MET, reference_number="BC-1", met_on=days_ago(300)
    )
    v1 = approve_icf(site.trial, 1, days_ago(220))
    enrolment.enrolment_report(
        site=site,
        actor=pi,
        kind=K.ENROLLED,
        occurred_on=days_ago(30),
        subject_code="RK-001",
        icf_version=v1,
        consented_on=days_ago(30),
    )
    approve_icf(site.trial, 2, days_ago(2))
    gates.gate_answer(trial=site.trial, actor=office, gate=Gate.HGR, outcome=O.PENDING)
    GcpCertificate.objects.filter(person=pi).update(expires_on=days_ago(-3))

    def kinds(user):
        return {section.kind: section.count for section in work_queue(user).sections}

    pi_kinds = kinds(pi)
    assert (pi_kinds["consent.reconsent"], pi_kinds["qualifications.certificate"]) == (1, 1)
    office_kinds = kinds(office)
    assert office_kinds["consent.reconsent"] == 1
    assert office_kinds["gates.pending"] == 1
    assert office_kinds["qualifications.certificate"] == 1
    assert not {"consent.reconsent", "gates.pending", "qualifications.certificate"} & set(kinds(stranger_office))


def test_unanswered_gates_wait_on_the_research_office_that_must_answer_them(gate_rules, django_assert_max_num_queries):
    from cgtclinic.workqueue import work_queue

    # A viral-vector IIT owes the HGR gate (lead office) and the biosafety review of each site (that site's office).
    trial = approved_trial(kind=Trial.Kind.IIT, therapy_category=Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    site = TrialSiteFactory(trial=trial)
    lead_office, site_office = office_of(trial.lead_institution), office_of(site.institution)
    stranger_office = office_of(TrialSiteFactory().institution)
    TrialFactory(lead_institution=trial.lead_institution, status=S.COMPLETED)  # closed: owes nothing now

    def sections(user):
        with django_assert_max_num_queries(40):
            return {section.kind: section for section in work_queue(user).sections}

    lead = sections(lead_office)
    assert lead[f"gates.unanswered.{Gate.HGR}"].count == 1
    item = lead[f"gates.unanswered.{Gate.HGR}"].items[0]
    assert trial.protocol_number in item.title and f"trial={trial.pk}&gate=hgr" in item.url
    theirs = sections(site_office)
    assert theirs[f"gates.unanswered.{Gate.BIOSAFETY}"].count == 1
    assert f"site={site.pk}" in theirs[f"gates.unanswered.{Gate.BIOSAFETY}"].items[0].url
    assert not any(kind.startswith("gates.unanswered") for kind in sections(stranger_office))

    gates.gate_answer(trial=trial, actor=lead_office, gate=Gate.HGR, outcome=O.NOT_APPLICABLE, reason="无外方参与")
    gates.gate_answer(
        trial=trial, actor=site_office, gate=Gate.BIOSAFETY, site=site, outcome=O.PENDING
    )  # pending: listed as pending now, no longer as unanswered
    assert f"gates.unanswered.{Gate.HGR}" not in sections(lead_office)
    after = sections(site_office)
    assert f"gates.unanswered.{Gate.BIOSAFETY}" not in after and after["gates.pending"].count == 1
