import datetime

import factory
from django.utils import timezone

from ethics import rollups
from ethics.models import (
    AgendaItem,
    Alliance,
    AllianceMembership,
    CommitteeMember,
    ConflictOfInterest,
    Decision,
    EthicsCommittee,
    Meeting,
    ReviewAssignment,
    Submission,
    TrainingRecord,
)
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.trials import TrialFactory


class EthicsCommitteeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EthicsCommittee
        django_get_or_create = ("institution", "name_zh")

    institution = factory.SubFactory(InstitutionFactory)
    name_zh = factory.LazyAttribute(lambda o: f"{o.institution.name_zh}医学伦理委员会")
    name_en = "Medical Ethics Committee"
    letter_prefix = factory.Sequence(lambda n: f"伦审{n}")


class CommitteeMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CommitteeMember

    committee = factory.SubFactory(EthicsCommitteeFactory)
    full_name = factory.Sequence(lambda n: f"委员{n}")
    member_role = CommitteeMember.MemberRole.MEMBER
    specialty = CommitteeMember.Specialty.MEDICINE
    gender = CommitteeMember.Gender.FEMALE
    affiliation = factory.LazyAttribute(lambda o: o.committee.institution.name_zh)
    is_affiliated = True
    term_start = datetime.date(2025, 1, 1)


def balanced_committee(committee, size=7):
    """A committee whose full attendance makes a quorum: both genders, a lay and an external member."""
    specs = [
        {"member_role": CommitteeMember.MemberRole.CHAIR, "gender": "male"},
        {"member_role": CommitteeMember.MemberRole.VICE_CHAIR, "gender": "female"},
        {
            "specialty": CommitteeMember.Specialty.LAW,
            "is_affiliated": False,
            "affiliation": "律师事务所",
            "gender": "male",
        },
        {
            "specialty": CommitteeMember.Specialty.COMMUNITY,
            "is_affiliated": False,
            "affiliation": "社区",
            "gender": "female",
        },
    ]
    specs += [{"gender": "female" if i % 2 else "male"} for i in range(size - len(specs))]
    return [CommitteeMemberFactory(committee=committee, **spec) for spec in specs]


class TrainingRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRecord

    member = factory.SubFactory(CommitteeMemberFactory)
    course = "GCP 培训"
    completed_on = datetime.date(2025, 6, 1)


class SubmissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Submission

    trial = factory.SubFactory(TrialFactory)
    committee = factory.SubFactory(
        EthicsCommitteeFactory, institution=factory.SelfAttribute("..trial.lead_institution")
    )
    kind = Submission.Kind.INITIAL
    status = Submission.Status.DRAFT
    summary = "首次伦理审查申请"
    submitted_by = factory.LazyAttribute(lambda o: o.trial.pi)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Made in any status, as the services would leave it: with its turnaround fact (ethics.rollups).
        submission = super()._create(model_class, *args, **kwargs)
        rollups.refresh_turnaround_fact(submission.pk)
        return submission


class ReviewAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewAssignment

    submission = factory.SubFactory(SubmissionFactory)
    member = factory.SubFactory(CommitteeMemberFactory, committee=factory.SelfAttribute("..submission.committee"))
    assigned_at = factory.LazyFunction(timezone.now)


class MeetingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meeting

    committee = factory.SubFactory(EthicsCommitteeFactory)
    scheduled_at = factory.LazyFunction(timezone.now)
    location = "行政楼三楼会议室"


class AgendaItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgendaItem

    meeting = factory.SubFactory(MeetingFactory)
    submission = factory.SubFactory(SubmissionFactory, committee=factory.SelfAttribute("..meeting.committee"))


class ConflictOfInterestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConflictOfInterest

    agenda_item = factory.SubFactory(AgendaItemFactory)
    member = factory.SubFactory(
        CommitteeMemberFactory, committee=factory.SelfAttribute("..agenda_item.meeting.committee")
    )
    description = "本人为该项目合作研究者"


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Decision

    submission = factory.SubFactory(SubmissionFactory, status=Submission.Status.DECIDED)
    committee = factory.SelfAttribute("submission.committee")
    outcome = Decision.Outcome.APPROVE
    decided_at = factory.LazyFunction(timezone.now)
    decided_by = factory.SubFactory(UserFactory)


class AllianceFactory(factory.django.DjangoModelFactory):
    """An alliance with Guangdong's rule shape; tests pass the deadline they exercise."""

    class Meta:
        model = Alliance
        skip_postgeneration_save = True

    name_zh = factory.Sequence(lambda n: f"多中心临床研究伦理审查结果互认联盟{n}")
    name_en = factory.Sequence(lambda n: f"Ethics recognition alliance {n}")
    feedback_working_days = 3
    reminder_time = datetime.time(9, 0)
    source_document = "003_9eed906d397bedc2.txt"
    source_clause = "二、重点任务（四）第15条"

    @factory.post_generation
    def members(obj, create, extracted, **kwargs):
        for committee in extracted or ():
            AllianceMembership.objects.create(alliance=obj, committee=committee, joined_on=datetime.date(2025, 1, 1))
