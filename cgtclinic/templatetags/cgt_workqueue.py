from django import template

from cgtclinic import inbox, workqueue

register = template.Library()


@register.simple_tag
def work_queue_for(user):
    """What waits on the user (cgtclinic.workqueue), for the admin home."""
    return workqueue.work_queue(user)


@register.simple_tag
def latest_notifications(user, count: int = 8):
    return list(inbox.notifications_of(user)[:count])
