"""Notifications: the in-app inbox, and copies by e-mail and to institutions' group-chat robots.

``notify()`` records one ``Notification`` per recipient and event; its unique key makes a repeated call for the
same event a no-op. For the rows it newly created, each channel in ``CHANNELS`` plans its deliveries inside the
caller's transaction (what to send where, as JSON), and after commit each delivery becomes a Celery task
(``cgtclinic.tasks.deliver_notification``) with retries and a timeout, so no request waits on a mail server or
a robot. Adding a channel (SMS, another chat robot) is one ``Channel`` subclass added to ``CHANNELS``.
"""

import base64
import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import translation
from django.utils.functional import lazy

from cgtclinic.models import Notification, NotificationWebhook, User

log = logging.getLogger(__name__)

# No mail server or robot may hold a worker longer than this per attempt.
DELIVERY_TIMEOUT_SECONDS = 10
SUBJECT_MAX_LENGTH = Notification._meta.get_field("subject").max_length


class DeliveryDeferred(Exception):
    """The delivery may succeed later (network error, server error, rate limit): it is retried with back-off."""


class DeliveryFailed(Exception):
    """The delivery cannot succeed as configured (wrong key, address refused): it is logged, not retried."""


def _interpolate(message, params: dict) -> str:
    return str(message) % params if params else str(message)


_lazy_interpolate = lazy(_interpolate, str)


def render_later(message, **params):
    """A message translated and filled in only when rendered, so each recipient reads it in their own language.

    Pass a ``gettext_lazy`` string; parameters are rendered then too (a model's bilingual name included).
    """
    return _lazy_interpolate(message, params)


def language_of(person: User) -> str:
    """The language a person reads notifications in: their own choice where recorded, else the site's."""
    code = getattr(person, "language", "") or settings.LANGUAGE_CODE
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


@dataclass(frozen=True)
class Message:
    """What happened, before it is rendered for anyone."""

    topic: str
    event_key: str
    subject: Any
    body: Any
    link: str = ""

    def render(self, language: str) -> tuple[str, str]:
        """Subject (one line, cut to fit) and body in a language."""
        with translation.override(language):
            subject = " ".join(str(self.subject).split())
            body = str(self.body)
        if len(subject) > SUBJECT_MAX_LENGTH:
            subject = subject[: SUBJECT_MAX_LENGTH - 1] + "…"
        return subject, body


@dataclass(frozen=True)
class Delivery:
    """One thing a channel will send: where to (an address, a webhook's id) and what, as JSON."""

    target: str
    payload: dict


class Channel(ABC):
    """One way notifications leave the system.

    ``plan`` runs in the notifying transaction and sees the rows just created; ``deliver`` runs later in a Celery
    task and raises DeliveryDeferred to be retried or DeliveryFailed to give up.
    """

    name: ClassVar[str]

    @abstractmethod
    def plan(self, message: Message, notifications: list[Notification]) -> list[Delivery]: ...

    @abstractmethod
    def deliver(self, target: str, payload: dict) -> None: ...


def _text(subject: str, body: str, link: str) -> str:
    return "\n".join(part for part in (subject, body, link) if part)


class EmailChannel(Channel):
    """A copy of each person's notification to their e-mail address, in their language."""

    name = "email"

    def plan(self, message, notifications):
        return [
            Delivery(n.recipient.email, {"subject": n.subject, "body": _text("", n.body, n.link)})
            for n in notifications
            if n.recipient.email
        ]

    def deliver(self, target, payload):
        connection = get_connection(timeout=DELIVERY_TIMEOUT_SECONDS)
        email = EmailMessage(subject=payload["subject"], body=payload["body"], to=[target], connection=connection)
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(f"recipient refused: {target}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryDeferred(str(exc)) from exc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # A robot address that redirects is misconfigured, and following it could post the message elsewhere.
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _post(url: str, data: bytes, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "cgtclinic", **headers},
        method="POST",
    )
    try:
        with _opener.open(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
            return response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise DeliveryDeferred(f"HTTP {exc.code}") from exc
        raise DeliveryFailed(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DeliveryDeferred(str(exc)) from exc


class WebhookChannel(Channel):
    """One message per event to each active robot, of the kind ``kind``, at an institution of a person notified.

    A group chat is shared, so it gets one message in the site's language that mentions everyone concerned there,
    not one per person.
    """

    kind: ClassVar[str]

    def plan(self, message, notifications):
        people = defaultdict(list)
        for notification in notifications:
            if notification.recipient.institution_id:
                people[notification.recipient.institution_id].append(notification.recipient)
        if not people:
            return []
        hooks = NotificationWebhook.objects.active().filter(kind=self.kind, institution_id__in=people)
        subject, body = message.render(settings.LANGUAGE_CODE)
        return [
            Delivery(str(hook.pk), self.payload(message, subject, body, people[hook.institution_id]))
            for hook in hooks
            if hook.forwards(message.topic)
        ]

    @abstractmethod
    def payload(self, message: Message, subject: str, body: str, people: list[User]) -> dict: ...

    def sign(self, hook: NotificationWebhook, data: bytes) -> tuple[str, dict[str, str]]:
        """The address and headers to post to; robots that sign requests override this."""
        return hook.url, {}

    def check_answer(self, answer: bytes) -> None:
        """Robots answer HTTP 200 with an error code inside; those that do override this."""

    def deliver(self, target, payload):
        hook = NotificationWebhook.objects.active().filter(pk=target).first()
        if hook is None:
            return  # switched off or removed since the event: nothing to send
        data = json.dumps(payload, ensure_ascii=False).encode()
        url, headers = self.sign(hook, data)
        self.check_answer(_post(url, data, headers))


def _mobiles(people: list[User]) -> list[str]:
    return sorted({person.phone.strip() for person in people if person.phone.strip()})


def _robot_errcode(answer: bytes, retry_codes: frozenset[int]) -> None:
    try:
        errcode = int(json.loads(answer or b"{}").get("errcode", 0))
    except (ValueError, TypeError, AttributeError) as exc:
        raise DeliveryFailed("the robot's answer is not JSON") from exc
    if errcode in retry_codes:
        raise DeliveryDeferred(f"robot busy, errcode {errcode}")
    if errcode != 0:
        raise DeliveryFailed(f"robot refused the message, errcode {errcode}")


class WeComChannel(WebhookChannel):
    """企业微信 group robot: text message, mentioning people by mobile number."""

    name = "wecom"
    kind = NotificationWebhook.Kind.WECOM
    MAX_BYTES = 2048  # WeCom rejects longer text content
    RETRY_CODES = frozenset({-1, 45009})  # system busy; more than 20 messages a minute

    def payload(self, message, subject, body, people):
        content = _text(subject, body, message.link).encode()[: self.MAX_BYTES].decode(errors="ignore")
        return {"msgtype": "text", "text": {"content": content, "mentioned_mobile_list": _mobiles(people)}}

    def check_answer(self, answer):
        _robot_errcode(answer, self.RETRY_CODES)


class DingTalkChannel(WebhookChannel):
    """钉钉 group robot: text message with @mentions, signed with the robot's secret when it has one."""

    name = "dingtalk"
    kind = NotificationWebhook.Kind.DINGTALK
    RETRY_CODES = frozenset({-1, 130101})  # system busy; sending too fast

    def payload(self, message, subject, body, people):
        mobiles = _mobiles(people)
        # DingTalk highlights a mention only when the text itself contains "@<mobile>".
        mentions = " ".join(f"@{mobile}" for mobile in mobiles)
        return {
            "msgtype": "text",
            "text": {"content": _text(subject, body, "\n".join(p for p in (message.link, mentions) if p))},
            "at": {"atMobiles": mobiles, "isAtAll": False},
        }

    def sign(self, hook, data):
        if not hook.secret:
            return hook.url, {}
        timestamp = str(int(time.time() * 1000))  # DingTalk accepts a signature for one hour
        digest = hmac.new(hook.secret.encode(), f"{timestamp}\n{hook.secret}".encode(), hashlib.sha256).digest()
        query = urllib.parse.urlencode({"timestamp": timestamp, "sign": base64.b64encode(digest).decode()})
        return f"{hook.url}{'&' if '?' in hook.url else '?'}{query}", {}

    def check_answer(self, answer):
        _robot_errcode(answer, self.RETRY_CODES)


class GenericWebhookChannel(WebhookChannel):
    """Any JSON endpoint: the event as data, signed with HMAC-SHA256 of the body when a secret is set."""

    name = "generic_webhook"
    kind = NotificationWebhook.Kind.GENERIC
    SIGNATURE_HEADER = "X-Cgtclinic-Signature"

    def payload(self, message, subject, body, people):
        return {
            "topic": message.topic,
            "event_key": message.event_key,
            "subject": subject,
            "body": body,
            "link": message.link,
            "recipients": [{"username": p.username, "full_name": p.full_name, "role": p.role} for p in people],
        }

    def sign(self, hook, data):
        if not hook.secret:
            return hook.url, {}
        signature = hmac.new(hook.secret.encode(), data, hashlib.sha256).hexdigest()
        return hook.url, {self.SIGNATURE_HEADER: f"sha256={signature}"}


# Every channel besides the in-app inbox (the Notification row itself), tried in this order.
CHANNELS: list[Channel] = [EmailChannel(), WeComChannel(), DingTalkChannel(), GenericWebhookChannel()]


def channel_named(name: str) -> Channel:
    for channel in CHANNELS:
        if channel.name == name:
            return channel
    raise LookupError(f"no notification channel named {name!r}")


def notify(
    *, recipients: Iterable[User], topic: str, event_key: str, subject, body, link: str = ""
) -> list[Notification]:
    """Tell people about an event once: an inbox row each, then e-mail and robot copies after commit.

    ``subject`` and ``body`` are rendered per recipient in their language, so pass lazy strings (``gettext_lazy``,
    ``render_later``). A recipient who already has this topic and event key gets nothing new, so calling this
    again for the same event, even from another process, creates and sends nothing. Returns the rows created.
    """
    message = Message(topic=topic, event_key=event_key, subject=subject, body=body, link=link)
    people = {person.pk: person for person in recipients if person.is_active}
    created = []
    with transaction.atomic():
        for person in people.values():
            subject_text, body_text = message.render(language_of(person))
            notification, is_new = Notification.objects.get_or_create(
                recipient=person,
                topic=topic,
                event_key=event_key,
                defaults={"subject": subject_text, "body": body_text, "link": link},
            )
            if is_new:
                created.append(notification)
        if created:
            deliveries = [
                (channel.name, delivery.target, delivery.payload)
                for channel in CHANNELS
                for delivery in channel.plan(message, created)
            ]
            # robust: a broker outage after commit must not turn the caller's committed work into an error.
            transaction.on_commit(partial(_enqueue, deliveries), robust=True)
    return created


def _enqueue(deliveries: list[tuple[str, str, dict]]) -> None:
    from cgtclinic.tasks import deliver_notification  # the task module imports this one

    for channel, target, payload in deliveries:
        deliver_notification.delay(channel, target, payload)
