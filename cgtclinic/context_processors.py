import functools

from cgtclinic import inbox


def unread_notifications(request):
    """``cgt_unread_count`` for the admin header: a callable the template calls when it shows the count, so a page
    that does not pays nothing, and one that does pays one query however often it shows it."""
    user = getattr(request, "user", None)
    if user is None:
        return {}

    @functools.cache
    def count() -> int:
        return inbox.unread_count(user) if user.is_staff else 0

    return {"cgt_unread_count": count}
