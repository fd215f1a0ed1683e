"""Times a person reads are Beijing time: an event at 13:45 UTC reads 21:45, wherever it is shown."""

import datetime

import pytest
from django.urls import reverse

from ethics.models import Meeting, RecognitionEffect, SubmissionEvent
from tests.factories.ethics import SubmissionFactory

pytestmark = pytest.mark.django_db
AT = datetime.datetime(2026, 3, 2, 13, 45, tzinfo=datetime.UTC)  # 21:45 in Beijing
LATE = datetime.datetime(2026, 3, 2, 16, 30, tzinfo=datetime.UTC)  # 00:30 on 3 March in Beijing


def test_timeline_entry_reads_in_beijing_time(trial, committee):
    submission = SubmissionFactory(trial=trial, committee=committee)
    event = SubmissionEvent.objects.create(
        submission=submission, kind=SubmissionEvent.Kind.CREATED, actor=trial.pi, at=AT
    )
    assert str(event).endswith("@ 2026-03-02 21:45")


def test_meeting_reads_with_its_beijing_date_and_time(committee):
    meeting = Meeting.objects.create(committee=committee, scheduled_at=LATE)
    assert str(meeting).endswith("2026-03-03 00:30")


def test_deadline_effect_reads_in_beijing_time():
    effect = RecognitionEffect(kind=RecognitionEffect.Kind.REMINDER, due_at=AT, happened_at=AT)
    assert str(effect).endswith("2026-03-02 21:45")


def test_admin_timeline_and_portal_timeline_show_beijing_time(client, trial, committee, office):
    submission = SubmissionFactory(
        trial=trial, committee=committee, status="submitted", reference="测伦审受〔2026〕00001"
    )
    SubmissionEvent.objects.create(
        submission=submission, kind=SubmissionEvent.Kind.SUBMITTED, actor=trial.pi, at=AT, to_status="submitted"
    )
    client.force_login(office)
    page = client.get(reverse("admin:ethics_submission_change", args=[submission.pk])).content.decode()
    assert "21:45" in page and "13:45" not in page

    client.force_login(trial.pi)
    page = client.get(reverse("ethics_portal:submission_detail", args=[submission.pk])).content.decode()
    assert "2026-03-02 21:45" in page and "13:45" not in page
