"""notify(): one inbox row per person and event, rendered in their language; e-mail and robot copies through a
real Celery worker on Redis, posted to a robot server on 127.0.0.1."""

import base64
import hashlib
import hmac

import pytest
from django.core import mail
from django.utils.translation import gettext_lazy

from cgtclinic.models import Notification, NotificationWebhook
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from tests.cgtclinic.helpers import (
    NotificationWebhookFactory,
    RobotServer,
    flush_broker,
    needs_redis,
    running_worker,
    wait_until,
)
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.trials import TrialFactory

TOPIC = "continuing_review.upcoming"


def _message(trial, **overrides):
    return {
        "topic": TOPIC,
        "event_key": f"trial:{trial.pk}",
        "subject": render_later(gettext_lazy("Attention needed: %(trial)s"), trial=trial),
        "body": render_later(gettext_lazy("The study %(trial)s needs your attention."), trial=trial),
        **overrides,
    }


@pytest.fixture
def trial(institution):
    return TrialFactory(lead_institution=institution)


@pytest.fixture
def reader_in_english(institution):
    person = UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, phone="13900000002")
    person.language = "en"
    return person


@pytest.mark.django_db
def test_one_row_per_recipient_and_a_repeat_creates_and_sends_nothing(
    trial, research_office, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as first:
        created = notify(recipients=[trial.pi, research_office, trial.pi], **_message(trial))
    assert {n.recipient for n in created} == {trial.pi, research_office}
    assert len(first) == 1  # one hand-over to the channels, after commit

    with django_capture_on_commit_callbacks() as second:
        again = notify(recipients=[trial.pi, research_office], **_message(trial))
    assert again == []
    assert second == []
    assert Notification.objects.filter(event_key=f"trial:{trial.pk}").count() == 2


@pytest.mark.django_db
def test_a_new_person_for_the_same_event_is_told_without_repeating_the_others(trial, research_office):
    notify(recipients=[trial.pi], **_message(trial))
    created = notify(recipients=[trial.pi, research_office], **_message(trial))
    assert [n.recipient for n in created] == [research_office]


@pytest.mark.django_db
def test_inactive_people_are_not_notified(trial):
    gone = UserFactory(role=Role.RESEARCH_OFFICE, institution=trial.lead_institution, is_active=False)
    assert notify(recipients=[gone], **_message(trial)) == []
    assert not Notification.objects.filter(recipient=gone).exists()


@pytest.mark.django_db
def test_each_person_reads_it_in_their_language(trial, research_office, reader_in_english):
    notify(recipients=[research_office, reader_in_english], **_message(trial))
    chinese = Notification.objects.get(recipient=research_office)
    english = Notification.objects.get(recipient=reader_in_english)
    assert trial.title_zh in chinese.subject and trial.title_zh in chinese.body
    assert trial.title_en in english.subject and trial.title_en in english.body
    assert trial.title_en not in chinese.body


@pytest.mark.django_db
def test_a_long_subject_is_cut_to_one_line_that_fits(trial, research_office):
    notify(recipients=[research_office], **_message(trial, subject="第一行\n" + "长" * 400))
    subject = Notification.objects.get(recipient=research_office).subject
    assert "\n" not in subject
    assert len(subject) == Notification._meta.get_field("subject").max_length
    assert subject.endswith("…")


@pytest.mark.django_db
def test_inbox_is_private(trial, research_office):
    notify(recipients=[trial.pi, research_office], **_message(trial))
    assert list(Notification.objects.visible_to(research_office).values_list("recipient", flat=True)) == [
        research_office.pk
    ]


# --- through a real worker ------------------------------------------------------------------------------------


@pytest.fixture
def worker():
    with running_worker():
        yield


@pytest.fixture
def robots():
    with RobotServer() as server:
        yield server


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_email_copies_are_sent_once_in_each_language(worker, trial, research_office, reader_in_english):
    notify(recipients=[research_office, reader_in_english], **_message(trial))
    wait_until(lambda: len(mail.outbox) == 2, what="two e-mails")
    by_address = {message.to[0]: message for message in mail.outbox}
    assert trial.title_zh in by_address[research_office.email].subject
    assert trial.title_en in by_address[reader_in_english.email].subject
    assert trial.title_en in by_address[reader_in_english.email].body

    notify(recipients=[research_office, reader_in_english], **_message(trial))
    notify(recipients=[research_office], topic="other.topic", event_key="x", subject="第二件事", body="正文")
    wait_until(lambda: len(mail.outbox) == 3, what="the e-mail of the second event")
    assert [m.subject for m in mail.outbox].count("第二件事") == 1
    assert len(mail.outbox) == 3


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_robot_payloads_for_wecom_dingtalk_and_generic(worker, robots, trial, research_office):
    trial.pi.phone = "13900000001"
    trial.pi.save()
    research_office.phone = ""
    research_office.save()
    institution = trial.lead_institution
    NotificationWebhookFactory(institution=institution, url=robots.url("/wecom?key=abc"))
    NotificationWebhookFactory(
        institution=institution,
        kind=NotificationWebhook.Kind.DINGTALK,
        url=robots.url("/dingtalk?access_token=tok"),
        secret="SECdingtalk",
    )
    NotificationWebhookFactory(
        institution=institution,
        kind=NotificationWebhook.Kind.GENERIC,
        url=robots.url("/generic"),
        secret="generic-key",
        topics="continuing_review",
    )
    # Not sent to: a robot switched off, one for other topics, and another hospital's.
    NotificationWebhookFactory(institution=institution, url=robots.url("/off?key=x"), is_active=False)
    NotificationWebhookFactory(institution=institution, url=robots.url("/other-topic?key=x"), topics="recognition")
    NotificationWebhookFactory(institution=InstitutionFactory(), url=robots.url("/elsewhere?key=x"))

    notify(recipients=[trial.pi, research_office], **_message(trial))
    wait_until(lambda: len(robots.requests) >= 3, what="three robot posts")

    [wecom_post] = robots.received("/wecom")
    assert wecom_post["query"] == {"key": "abc"}
    assert wecom_post["json"]["msgtype"] == "text"
    assert trial.title_zh in wecom_post["json"]["text"]["content"]
    assert wecom_post["json"]["text"]["mentioned_mobile_list"] == ["13900000001"]

    [ding] = robots.received("/dingtalk")
    assert ding["json"]["msgtype"] == "text"
    assert ding["json"]["at"] == {"atMobiles": ["13900000001"], "isAtAll": False}
    assert "@13900000001" in ding["json"]["text"]["content"]
    timestamp = ding["query"]["timestamp"]
    expected = hmac.new(b"SECdingtalk", f"{timestamp}\nSECdingtalk".encode(), hashlib.sha256).digest()
    assert ding["query"]["access_token"] == "tok"
    assert base64.b64decode(ding["query"]["sign"]) == expected

    [generic] = robots.received("/generic")
    assert generic["json"]["topic"] == TOPIC and generic["json"]["event_key"] == f"trial:{trial.pk}"
    assert {r["username"] for r in generic["json"]["recipients"]} == {trial.pi.username, research_office.username}
    signature = hmac.new(b"generic-key", generic["raw"], hashlib.sha256).hexdigest()
    assert generic["headers"]["X-Cgtclinic-Signature"] == f"sha256={signature}"

    # The same event again reaches no robot; e-mails went out once per person.
    notify(recipients=[trial.pi, research_office], **_message(trial))
    wait_until(lambda: len(mail.outbox) == 2, what="two e-mails")
    assert len(robots.requests) == 3


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_busy_robot_is_retried_and_a_refusing_one_is_not(worker, robots, trial):
    institution = trial.lead_institution
    NotificationWebhookFactory(institution=institution, url=robots.url("/busy?key=a"))
    NotificationWebhookFactory(institution=institution, kind=NotificationWebhook.Kind.GENERIC, url=robots.url("/down"))
    NotificationWebhookFactory(institution=institution, url=robots.url("/wrong-key?key=b"))
    robots.answers["/busy"] = [(200, {"errcode": 45009, "errmsg": "api freq out of limit"})]
    robots.answers["/down"] = [(503, {})]
    robots.answers["/wrong-key"] = [(200, {"errcode": 93000, "errmsg": "invalid webhook url"})]

    notify(recipients=[trial.pi], **_message(trial))
    wait_until(lambda: len(robots.received("/busy")) == 2, what="the busy robot's retry")
    wait_until(lambda: len(robots.received("/down")) == 2, what="the failed server's retry")
    assert len(robots.received("/wrong-key")) == 1


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_robot_switched_off_before_delivery_gets_nothing(robots, trial):
    hook = NotificationWebhookFactory(institution=trial.lead_institution, url=robots.url("/late?key=a"))
    flush_broker()
    notify(recipients=[trial.pi], **_message(trial))  # queued in Redis, no worker yet
    hook.is_active = False
    hook.save()
    with running_worker(keep_queued=True):
        wait_until(lambda: len(mail.outbox) == 1, what="the e-mail queued with the robot post")
    assert robots.requests == []
