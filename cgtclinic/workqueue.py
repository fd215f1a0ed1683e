"""What waits on a person: a registry of work-queue providers filled by the apps.

``cgtclinic`` imports no app, so each app registers a provider in its ``AppConfig.ready()``. A provider takes the
user and the moment and returns ``Section``s, one per kind of work it knows about (recognition requests to
answer, meetings to hold, claims to prepare …), each with a few items and a capped count. A provider returns
nothing, without a query, for a role it does not serve. Every section costs at most two bounded queries (the
items, and a capped count when the items fill the page), so the queue's cost does not grow with the rows.
"""

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils import timezone

# Items fetched per kind, and the number beyond which a count is shown as "100+".
ITEMS_PER_KIND = 20
COUNT_CAP = 100
# Items shown in the merged queue.
QUEUE_LIMIT = 50


@dataclass(frozen=True)
class WorkItem:
    """One thing a person must do, and where they do it."""

    kind: str
    title: str
    url: str
    due_at: datetime.datetime | None = None
    overdue: bool = False
    # The deadline is a whole day (a continuing review due on a date), shown without a time.
    all_day: bool = False
    detail: str = ""
    # The deadline reaches a year whose holiday schedule is not yet published.
    provisional: bool = False

    @property
    def due_local(self) -> datetime.datetime | None:
        return timezone.localtime(self.due_at) if self.due_at else None


@dataclass(frozen=True)
class Section:
    """One kind of work: its label, the first items and how many there are (capped at ``COUNT_CAP``)."""

    kind: str
    label: str
    items: Sequence[WorkItem]
    count: int
    capped: bool = False


@dataclass
class WorkQueue:
    items: list[WorkItem] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        return sum(item.overdue for item in self.items)

    @property
    def total(self) -> int:
        return sum(section.count for section in self.sections)

    @property
    def capped(self) -> bool:
        return any(section.capped for section in self.sections)


Provider = Callable[..., Iterable[Section]]
_providers: list[Provider] = []


def register(provider: Provider) -> Provider:
    """Add a provider, called as ``provider(user, now=...)``; registering the same one twice adds it once."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def unregister(provider: Provider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def section(
    kind: str,
    label,
    queryset: QuerySet,
    to_item: Callable[[object], WorkItem],
    *,
    limit: int = ITEMS_PER_KIND,
) -> Section:
    """A section from an ordered queryset: its first ``limit`` rows as items, and its count capped at COUNT_CAP
    (read only when the rows fill the page, with a LIMIT so it never scans more than COUNT_CAP + 1 rows)."""
    rows = list(queryset[:limit])
    return Section(kind, str(label), [to_item(row) for row in rows], *capped_count(queryset, len(rows), limit))


def capped_count(queryset: QuerySet, fetched: int, limit: int) -> tuple[int, bool]:
    if fetched < limit:
        return fetched, False
    found = queryset.order_by().values("pk")[: COUNT_CAP + 1].count()
    return min(found, COUNT_CAP), found > COUNT_CAP


def _sort_key(item: WorkItem):
    far = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    return (not item.overdue, item.due_at is None, item.due_at or far, item.title)


def work_queue(user, *, now: datetime.datetime | None = None, limit: int = QUEUE_LIMIT) -> WorkQueue:
    """Everything the registered providers say waits on ``user``: overdue first, then by due moment."""
    queue = WorkQueue()
    if not user.is_authenticated or not user.is_active:
        return queue
    now = now or timezone.now()
    for provider in _providers:
        for found in provider(user, now=now):
            queue.sections.append(found)
            queue.items.extend(found.items)
    queue.items.sort(key=_sort_key)
    del queue.items[limit:]
    return queue
