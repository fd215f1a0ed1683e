"""The demo's mutual recognition: the Guangdong alliance from the policy value, its demo members, and the lead
approval of the Guangdong multi-centre trial replayed through the recognition services with its timers."""

import pytest
from django.utils import timezone

from cgtclinic.models import PolicyParameter, Region
from cgtclinic.seeding import SEEDS_DIR, SeedError, load_seeds
from ethics import recognition
from ethics.models import Alliance, EthicsCommittee, RecognitionEffect, RecognitionRequest, Submission
from tests.seeds.files import read_rows, write_rows

pytestmark = pytest.mark.django_db

R = RecognitionRequest.Status
Effect = RecognitionEffect.Kind
ALLIANCES_FILE = SEEDS_DIR / "policy" / "alliances.yaml"
TRIAL = "ZJFH-CART-2025-08"


@pytest.fixture
def demo_report(demo_loaded_once, db):
    return demo_loaded_once


def _requests(subject: str) -> dict[str, RecognitionRequest]:
    rows = RecognitionRequest.objects.filter(trial__protocol_number=TRIAL, subject=subject).select_related(
        "committee__institution"
    )
    return {request.committee.institution.short_name: request for request in rows}


def test_only_alliances_whose_deadline_a_policy_states_are_seeded(demo_report):
    assert Alliance.objects.count() == len(read_rows(ALLIANCES_FILE)) == 1


def test_the_guangdong_alliance_takes_its_deadline_and_clause_from_the_policy_value(demo_report):
    alliance = Alliance.objects.get()
    guangdong = Region.objects.get(code="guangdong")
    parameter = PolicyParameter.objects.get(code="recognition_feedback_working_days", region=guangdong)

    assert alliance.feedback_working_days == PolicyParameter.value_for(parameter.code, region=guangdong)
    assert (alliance.source_document, alliance.source_clause) == (parameter.source_document, parameter.source_clause)
    assert list(alliance.regions.all()) == [guangdong]
    assert alliance.coordinator.username == "gd_alliance_secretariat"
    assert set(alliance.committees.all()) == set(EthicsCommittee.objects.filter(institution__region=guangdong))


def test_every_demo_request_falls_due_as_the_working_day_calendar_says(demo_report):
    requests = list(RecognitionRequest.objects.select_related("alliance"))

    assert len(requests) == 4
    for request in requests:
        expected = recognition.compute_deadline(request.alliance, request.received_at)
        assert (request.due_at, request.remind_at, request.provisional) == (
            expected["due_at"],
            expected["remind_at"],
            expected["provisional"],
        )
        assert request.received_at == request.lead_decision.decided_at


def test_the_lead_approval_is_recognised_in_time_at_one_site_and_late_with_conditions_at_the_other(demo_report):
    initial = _requests(Submission.Kind.INITIAL)
    in_time, late = initial["湾区人民医院"], initial["南粤肿瘤医院"]

    assert (in_time.status, in_time.late, in_time.escalated_at) == (R.RECOGNISED, False, None)
    assert in_time.responded_at < in_time.due_at and not in_time.effects.exists()
    assert (late.status, late.late) == (R.RECOGNISED_WITH_CONDITIONS, True)
    assert late.response_note and late.responded_by.username == "nanyue_eo"
    effects = {(e.kind, e.happened_at) for e in late.effects.all()}
    assert effects == {(Effect.REMINDER, late.remind_at), (Effect.ESCALATION, late.due_at)}
    assert late.escalated_at == late.due_at < late.responded_at


def test_one_request_stays_open_with_its_deadline_at_the_next_close_of_business(demo_report):
    amendment = _requests(Submission.Kind.AMENDMENT)
    now = timezone.now()

    assert amendment["湾区人民医院"].status == R.RECOGNISED
    [still_open] = RecognitionRequest.objects.open()
    assert still_open == amendment["南粤肿瘤医院"]
    assert still_open.due_at > now and not still_open.effects.exists()
    # The previous working day's deadline (an approval a day earlier) has passed: this one is the next.
    earlier = recognition.compute_deadline(still_open.alliance, still_open.received_at - timezone.timedelta(days=1))
    assert earlier["due_at"] <= now


def test_the_beat_fires_the_open_request_s_reminder_and_escalation_once(demo_report):
    still_open = RecognitionRequest.objects.open().get()

    assert recognition.sweep(now=still_open.due_at) == {"reminders": 1, "escalations": 1}
    assert recognition.sweep(now=still_open.due_at) == {"reminders": 0, "escalations": 0}
    assert still_open.effects.count() == 2


def test_every_effect_exists_once(demo_report):
    assert RecognitionEffect.objects.count() == 2
    keys = list(RecognitionEffect.objects.values_list("request", "kind", "due_at"))
    assert len(keys) == len(set(keys))


def test_loading_again_changes_nothing(demo_report):
    before = {
        model: list(model.objects.order_by("pk").values())
        for model in (Alliance, RecognitionRequest, RecognitionEffect)
    }

    report = load_seeds(SEEDS_DIR, demo=True)

    assert (report.created, report.updated) == (0, 0)
    for model, rows in before.items():
        assert list(model.objects.order_by("pk").values()) == rows


def test_an_alliance_needs_a_policy_value_in_force(seeds_dir):
    before = list(Alliance.objects.values())
    path = seeds_dir / "policy" / "alliances.yaml"
    rows = read_rows(path)
    rows[0]["feedback_parameter"] = "no_such_parameter"
    write_rows(path, rows)

    with pytest.raises(SeedError, match=r"alliances\.yaml, row 1.*no_such_parameter"):
        load_seeds(seeds_dir)
    assert list(Alliance.objects.values()) == before


def test_a_recognise_step_must_name_a_participating_site(seeds_dir):
    before = RecognitionRequest.objects.count()
    path = seeds_dir / "demo" / "ethics_submissions.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("site: gd-wanqu, outcome: recognised}", "site: gd-zhujiang, outcome: recognised}", 1))

    with pytest.raises(SeedError, match="not a participating site of ZJFH-CART-2025-08"):
        load_seeds(seeds_dir, demo=True)
    assert RecognitionRequest.objects.count() == before


def test_the_demo_participating_office_can_judge_the_open_request_and_the_lead_hears_the_answers(demo_report):
    from cgtclinic.models import Notification, User
    from cgtclinic.roles import Role

    request = RecognitionRequest.objects.open().select_related("committee", "trial", "lead_decision").get()
    office = User.objects.filter(role=Role.ETHICS_OFFICE, institution_id=request.committee.institution_id).first()
    assert recognition.may_open_lead_result(office, request)
    result = recognition.lead_result(request)
    assert result["letter"]["sha256"] == request.lead_decision.letter_sha256
    assert result["documents"]
    contact = result["committee"]
    assert contact.contact_person and contact.contact_phone and contact.contact_email and contact.address
    answered = RecognitionRequest.objects.filter(trial=request.trial, status=R.RECOGNISED).first()
    told = set(
        Notification.objects.filter(topic="recognition.answered", event_key=f"request:{answered.pk}").values_list(
            "recipient", flat=True
        )
    )
    assert request.trial.pi_id in told
