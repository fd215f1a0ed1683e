"""Committees and members in the admin: the ethics office keeps its own committee's roster and training."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from ethics.models import CommitteeMember, EthicsCommittee, TrainingRecord
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import CommitteeMemberFactory, EthicsCommitteeFactory

pytestmark = pytest.mark.django_db


def committee_form(institution, **overrides):
    data = {
        "institution": institution.pk,
        "name_zh": "医学伦理委员会",
        "name_en": "Medical Ethics Committee",
        "letter_prefix": "测伦审",
        "registration_number": "",
        "is_active": "on",
        "quorum_fraction": "0.50",
        "quorum_requires_non_medical": "on",
        "quorum_requires_non_affiliated": "on",
        "quorum_requires_both_genders": "on",
        "approval_validity_months": "12",
        "continuing_review_months": "12",
        "continuing_review_reminder_days": "30",
        "members-TOTAL_FORMS": "1",
        "members-INITIAL_FORMS": "0",
        "members-0-full_name": "王主任",
        "members-0-member_role": CommitteeMember.MemberRole.CHAIR,
        "members-0-specialty": CommitteeMember.Specialty.MEDICINE,
        "members-0-gender": CommitteeMember.Gender.MALE,
        "members-0-affiliation": "本院",
        "members-0-is_affiliated": "on",
        "members-0-term_start": "2026-01-01",
        "members-0-is_active": "on",
    }
    data.update(overrides)
    return data


def test_office_creates_its_committee_with_members_and_quorum_rule(client, ethics_office):
    client.force_login(ethics_office)
    response = client.post(reverse("admin:ethics_ethicscommittee_add"), committee_form(ethics_office.institution))
    assert response.status_code == 302, response.content.decode()[:2000]
    committee = EthicsCommittee.objects.get()
    assert committee.institution == ethics_office.institution and committee.quorum_requires_both_genders
    assert committee.members.get().member_role == CommitteeMember.MemberRole.CHAIR
    assert committee.history.first().history_user == ethics_office


def test_office_cannot_create_a_committee_for_another_institution(client, ethics_office):
    client.force_login(ethics_office)
    response = client.post(reverse("admin:ethics_ethicscommittee_add"), committee_form(InstitutionFactory()))
    assert response.status_code == 200
    assert "institution" in response.context["adminform"].form.errors
    assert not EthicsCommittee.objects.exists()


def test_member_training_records_are_kept_inline(client, ethics_office):
    member = CommitteeMemberFactory(committee=EthicsCommitteeFactory(institution=ethics_office.institution))
    client.force_login(ethics_office)
    change = reverse("admin:ethics_committeemember_change", args=[member.pk])
    data = {
        "full_name": member.full_name,
        "member_role": member.member_role,
        "specialty": member.specialty,
        "gender": member.gender,
        "affiliation": member.affiliation,
        "is_affiliated": "on",
        "term_start": "2025-01-01",
        "is_active": "on",
        "training_records-TOTAL_FORMS": "1",
        "training_records-INITIAL_FORMS": "0",
        "training_records-0-course": "伦理审查能力培训",
        "training_records-0-provider": "省卫健委",
        "training_records-0-completed_on": "2026-03-01",
        "training_records-0-hours": "8",
        "training_records-0-certificate_number": "GCP-2026-001",
    }
    assert client.post(change, data).status_code == 302
    record = TrainingRecord.objects.get(member=member)
    assert (record.course, str(record.hours)) == ("伦理审查能力培训", "8.0")
    listing = client.get(reverse("admin:ethics_committeemember_changelist"))
    assert [m.last_training_on for m in listing.context["cl"].result_list] == [record.completed_on]


def test_member_list_filters_by_role_specialty_gender_and_affiliation(client, ethics_office):
    committee = EthicsCommitteeFactory(institution=ethics_office.institution)
    lawyer = CommitteeMemberFactory(
        committee=committee, full_name="李律师", specialty="law", gender="male", is_affiliated=False
    )
    doctor = CommitteeMemberFactory(committee=committee, full_name="赵医生", member_role="chair")
    stranger = CommitteeMemberFactory(full_name="外院委员")
    client.force_login(ethics_office)
    changelist = reverse("admin:ethics_committeemember_changelist")
    everyone = client.get(changelist).content.decode()
    assert lawyer.full_name in everyone and doctor.full_name in everyone and stranger.full_name not in everyone
    for query, shown, hidden in (
        ({"member_role__exact": "chair"}, doctor, lawyer),
        ({"specialty__exact": "law"}, lawyer, doctor),
        ({"gender__exact": "male"}, lawyer, doctor),
        ({"is_affiliated__exact": "0"}, lawyer, doctor),
    ):
        content = client.get(changelist, query).content.decode()
        assert shown.full_name in content and hidden.full_name not in content, query


def test_another_institutions_committee_is_not_found_and_cannot_be_edited(client, ethics_office):
    other = EthicsCommitteeFactory(name_zh="他院伦理委员会")
    member = CommitteeMemberFactory(committee=other)
    client.force_login(ethics_office)
    for name, obj in (("ethicscommittee", other), ("committeemember", member)):
        response = client.get(reverse(f"admin:ethics_{name}_change", args=[obj.pk]))
        assert response.status_code in (302, 404)
        assert other.name_zh.encode() not in response.content
    response = client.post(
        reverse("admin:ethics_committeemember_add"),
        {"committee": other.pk, "full_name": "冒名", "member_role": "member", "specialty": "medicine"},
    )
    assert response.status_code == 200
    assert not CommitteeMember.objects.filter(full_name="冒名").exists()


def test_research_office_reads_its_committee_but_cannot_change_it(client, research_office):
    committee = EthicsCommitteeFactory(institution=research_office.institution)
    client.force_login(research_office)
    url = reverse("admin:ethics_ethicscommittee_change", args=[committee.pk])
    page = client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(url, {"name_zh": "改名"}).status_code == 403
    committee.refresh_from_db()
    assert committee.name_zh != "改名"


@pytest.mark.parametrize("role", [Role.PI, Role.REGULATOR])
def test_pis_and_regulators_have_no_committee_admin(client, role):
    client.force_login(UserFactory(role=role))
    response = client.get(reverse("admin:ethics_ethicscommittee_changelist"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
