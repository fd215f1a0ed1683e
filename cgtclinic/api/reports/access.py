"""Who may read a report and how often: the scope a request covers, the permission and the throttle."""

import datetime
import logging
from dataclasses import dataclass

from django.utils.translation import gettext_lazy
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from cgtclinic.models import Region, User
from cgtclinic.roles import Role, may_read_reports

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportScope:
    """Whose data a request covers: ``viewer`` is the user the models' ``visible_to`` is asked about."""

    user: User
    viewer: User
    region: Region | None
    now: datetime.datetime

    @property
    def region_id(self) -> int | None:
        return self.region.pk if self.region else None


def regulator_of(region: Region) -> User:
    """An unsaved stand-in regulator: a system administrator reading one region sees what its regulators see."""
    return User(username="", role=Role.REGULATOR, region=region, is_active=True)


class ReportPermission(BasePermission):
    """Regulators (their region) and system administrators read reports; every other role is refused."""

    message = gettext_lazy("Reports are for regulators and system administrators.")

    def has_permission(self, request, view):
        return may_read_reports(request.user)


class ReportRateThrottle(ScopedRateThrottle):
    """Per user and scope, a fixed-window counter in the cache (Redis): one atomic increment per request.

    DRF's own throttle keeps the time of every request in the window and re-pickles that list on each request, so
    its cost grows with the rate; a counter costs the same at 60 a minute as at a million an hour. The rate is read
    from the settings at request time (so a changed rate applies at once)."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        try:
            count = self._count(f"{self.key}:{window}")
        except Exception:
            # The counter lives in Redis: while Redis is down, reports go on unthrottled rather than failing.
            logger.warning("report throttle unavailable (cache error); request allowed", exc_info=True)
            return True
        return count <= self.num_requests

    def _count(self, key: str) -> int:
        self.cache.add(key, 0, self.duration + 1)
        try:
            return self.cache.incr(key)
        except ValueError:  # the window's counter expired between add and incr
            self.cache.set(key, 1, self.duration + 1)
            return 1

    def wait(self):
        return max(0.0, self.window_ends - self.now)
