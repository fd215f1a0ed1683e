"""A lead approval recognised by two participating Guangdong hospitals, built through the services, and the people
around it: the lead's offices and PI, each participating ethics office, the region's regulator, another PI."""

from dataclasses import dataclass

from django.core.files.uploadedfile import SimpleUploadedFile

from cgtclinic import workdays
from cgtclinic.models import Institution, User
from cgtclinic.roles import Role
from ethics import services
from ethics.models import Decision, EthicsCommittee, RecognitionRequest, Submission
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import PDF_BYTES, TrialFactory, TrialSiteFactory
from trials import services as trial_services
from trials.models import Trial


@dataclass
class World:
    trial: Trial
    lead_committee: EthicsCommittee
    decision: Decision
    request_a: RecognitionRequest
    request_b: RecognitionRequest
    hospital_a: Institution
    people: dict[str, User]


@dataclass
class Setting:
    """The trial and the people before the lead committee decides: no decision, no request yet."""

    trial: Trial
    lead_committee: EthicsCommittee
    hospital_a: Institution
    hospital_b: Institution
    people: dict[str, User]


def build_setting(region) -> Setting:
    """A multi-centre trial led by one hospital, with hospitals A and B participating, all in one alliance."""
    workdays.sync_from_package(years=[2026])
    lead_hospital = InstitutionFactory(region=region)
    hospital_a, hospital_b = InstitutionFactory(region=region), InstitutionFactory(region=region)
    lead_committee = EthicsCommitteeFactory(
        institution=lead_hospital,
        letter_prefix="牵伦审",
        contact_person="罗敏",
        contact_phone="020-5550-0707",
        contact_email="ethics@lead.example.cn",
        address="广州市越秀区示例路707号",
    )
    balanced_committee(lead_committee)
    committee_a = EthicsCommitteeFactory(institution=hospital_a)
    committee_b = EthicsCommitteeFactory(institution=hospital_b)
    AllianceFactory(members=[lead_committee, committee_a, committee_b])
    trial = TrialFactory(lead_institution=lead_hospital)
    TrialSiteFactory(trial=trial, institution=hospital_a)
    TrialSiteFactory(trial=trial, institution=hospital_b)
    people = {
        "lead_office": UserFactory(role=Role.ETHICS_OFFICE, institution=lead_hospital),
        "lead_research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=lead_hospital),
        "lead_pi": trial.pi,
        "office_a": UserFactory(role=Role.ETHICS_OFFICE, institution=hospital_a),
        "research_office_a": UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital_a),
        "office_b": UserFactory(role=Role.ETHICS_OFFICE, institution=hospital_b),
        "regulator": UserFactory(role=Role.REGULATOR, region=region),
        "other_pi": TrialFactory(lead_institution=hospital_a).pi,
        "outsider_office": UserFactory(role=Role.ETHICS_OFFICE, institution=InstitutionFactory(region=region)),
        "superuser": UserFactory(role=Role.SYSTEM_ADMIN),
    }
    return Setting(trial, lead_committee, hospital_a, hospital_b, people)


def build_world(region) -> World:
    """The lead hospital approves (letter issued); hospitals A and B each get a request."""
    setting = build_setting(region)
    trial, people = setting.trial, setting.people
    decision = approve(trial, people["lead_office"], setting.lead_committee)
    requests = {
        r.committee.institution_id: r
        for r in RecognitionRequest.objects.filter(trial=trial).select_related("committee")
    }
    return World(
        trial=trial,
        lead_committee=setting.lead_committee,
        decision=decision,
        request_a=requests[setting.hospital_a.pk],
        request_b=requests[setting.hospital_b.pk],
        hospital_a=setting.hospital_a,
        people=people,
    )


def approve(trial: Trial, office: User, committee: EthicsCommittee, kind=Submission.Kind.INITIAL) -> Decision:
    """A complete application by the trial's PI, reviewed expedited and approved; the letter is issued."""
    submission = ready_for_decision(trial, office, committee, kind)
    return services.decision_record(submission=submission, actor=office, outcome=Decision.Outcome.APPROVE)


def ready_for_decision(trial: Trial, office: User, committee: EthicsCommittee, kind=Submission.Kind.INITIAL):
    """A complete application by the trial's PI, accepted, routed expedited and reviewed: the office may decide."""
    submission = services.submission_create(actor=trial.pi, trial=trial, kind=kind)
    versions = [
        trial_services.document_add_version(
            trial=trial,
            actor=trial.pi,
            kind=document_kind,
            title=str(document_kind),
            version_label="V1.0" if kind == Submission.Kind.INITIAL else "V2.0",
            uploaded_file=SimpleUploadedFile(f"{document_kind}.pdf", PDF_BYTES),
        )
        for document_kind in services.INITIAL_REQUIRED_DOCUMENTS
    ]
    submission = services.submission_update_draft(
        submission=submission,
        actor=trial.pi,
        summary="审查申请",
        details={"changes": "增加一个剂量组", "reason": "安全性数据支持"}
        if kind == Submission.Kind.AMENDMENT
        else None,
        declarations=dict.fromkeys(services.DECLARATIONS, True),
        documents=versions,
    )
    submission = services.submission_submit(submission=submission, actor=trial.pi)
    services.submission_accept(submission=submission, actor=office)
    submission = services.submission_route(submission=submission, actor=office, review_type="expedited", reason="依规")
    assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
    services.opinion_record(assignment=assignment, actor=office, opinion="approve")
    return submission
