"""Give each pytest-xdist worker its own Redis database, before Django reads its settings.

Loaded with ``-p tests.xdist_redis`` (pyproject addopts), so it runs before pytest-django imports the settings.
Worker gwN uses database (base - N) of the REDIS_URL the suite was started with, so a worker that flushes its
broker or runs a Celery worker never touches another worker's messages.
"""

import os
import re


def _worker_redis_url(url: str, worker: str) -> str:
    number = int(worker.removeprefix("gw"))
    match = re.fullmatch(r"(redis://[^/]+)(?:/(\d+))?", url)
    if not match:
        return url
    base = int(match.group(2) or 15)
    return f"{match.group(1)}/{(base - number) % 16}"


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _worker_redis_url(os.environ["REDIS_URL"], _worker)
