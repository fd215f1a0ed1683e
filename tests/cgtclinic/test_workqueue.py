"""The work-queue registry: providers registered by the apps, merged overdue first, then by due moment."""

import ast
import datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from cgtclinic import workqueue
from cgtclinic.workqueue import Section, WorkItem

pytestmark = pytest.mark.django_db
NOW = timezone.make_aware(datetime.datetime(2026, 12, 4, 10, 0))


@pytest.fixture
def provider():
    items = []

    def fake(user, *, now):
        return [Section("test.kind", "Test", list(items), len(items))]

    workqueue.register(fake)
    workqueue.register(fake)  # registering twice adds it once
    yield items
    workqueue.unregister(fake)


def test_every_app_registers_its_provider():
    names = {f"{p.__module__}.{p.__name__}" for p in workqueue._providers}
    assert {"ethics.selectors.work", "trials.selectors.work", "subsidies.selectors.work"} <= names


def test_items_are_merged_overdue_first_then_by_due_moment(provider, research_office):
    later = WorkItem("test.kind", "later", "/a", due_at=NOW + datetime.timedelta(days=2))
    sooner = WorkItem("test.kind", "sooner", "/b", due_at=NOW + datetime.timedelta(hours=1))
    undated = WorkItem("test.kind", "undated", "/c")
    late = WorkItem("test.kind", "late", "/d", due_at=NOW + datetime.timedelta(days=9), overdue=True)
    provider.extend([later, undated, sooner, late])
    queue = workqueue.work_queue(research_office, now=NOW)
    ours = [item.title for item in queue.items if item.kind == "test.kind"]
    assert ours == ["late", "sooner", "later", "undated"]
    assert sum(1 for s in queue.sections if s.kind == "test.kind") == 1


def test_the_queue_is_cut_to_its_limit(provider, research_office):
    provider.extend(WorkItem("test.kind", f"item {i}", "/x", due_at=NOW) for i in range(10))
    assert len(workqueue.work_queue(research_office, now=NOW, limit=3).items) == 3


def test_nobody_signed_in_has_no_queue(provider):
    provider.append(WorkItem("test.kind", "x", "/x"))
    assert workqueue.work_queue(AnonymousUser()).items == []


def test_due_moments_are_shown_in_beijing_time():
    item = WorkItem("k", "t", "/", due_at=datetime.datetime(2026, 12, 4, 14, 0, tzinfo=datetime.UTC))
    assert item.due_local.strftime("%Y-%m-%d %H:%M") == "2026-12-04 22:00"


def test_cgtclinic_imports_no_app():
    apps = {"trials", "ethics", "subsidies"}
    for name in ("workqueue.py", "inbox.py", "context_processors.py", "api/workqueue.py", "api/notifications.py"):
        tree = ast.parse((Path(settings.BASE_DIR) / "cgtclinic" / name).read_text())
        imported = {
            (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        assert not imported & apps, name
