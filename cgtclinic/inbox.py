"""A person's inbox: the notifications ``cgtclinic.notifications.notify`` recorded for them, and marking them read.

Every read goes through ``Notification.objects.visible_to``, so nobody reads or marks another person's messages.
"""

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from cgtclinic.models import Notification, User

# The header shows "99+" beyond this: counting further would cost without telling anyone more.
UNREAD_CAP = 99


def notifications_of(user: User, *, unread: bool = False) -> QuerySet[Notification]:
    """The person's notifications, newest first."""
    notifications = Notification.objects.visible_to(user).order_by("-created_at", "-id")
    return notifications.unread() if unread else notifications


def unread_count(user: User) -> int:
    """Unread notifications, up to UNREAD_CAP + 1; one query on the partial index of unread rows."""
    if not user.is_authenticated or not user.is_active:
        return 0
    return Notification.objects.visible_to(user).unread().order_by().values("pk")[: UNREAD_CAP + 1].count()


def mark_read(*, notification: Notification, actor: User) -> Notification:
    """Mark one of the actor's notifications read (once: the first reading time is kept)."""
    if notification.recipient_id != actor.pk:
        raise Notification.DoesNotExist
    if notification.read_at is None:
        now = timezone.now()
        with transaction.atomic():
            Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now)
        notification.read_at = now
    return notification


def mark_all_read(*, actor: User) -> int:
    """Mark every unread notification of the actor read; the number marked."""
    return Notification.objects.visible_to(actor).unread().update(read_at=timezone.now())


def safe_link(notification: Notification) -> str:
    """The notification's link if it stays on this site (links are paths), else empty."""
    link = notification.link or ""
    if link.startswith("/") and url_has_allowed_host_and_scheme(link, allowed_hosts=None):
        return link
    return ""
