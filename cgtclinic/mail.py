"""The e-mail backend used when no SMTP server is configured (``make run``, the demo).

Each message is printed to the console, as Django's console backend does, and also kept as a file of its own
under ``EMAIL_FILE_PATH`` (``$CGT_DATA_DIR/mail/``): under honcho the Celery worker's console output is
interleaved with the web server's and beat's, so the files are where the demo reads its mail. Each file is a
standard ``.eml`` message (any mail client opens it) named after the moment it was sent and its first recipient.
"""

import itertools
import os
import re
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.utils import timezone

_sequence = itertools.count(1)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)[:80] or "nobody"


class ConsoleAndFileEmailBackend(ConsoleEmailBackend):
    """Print each message to the console and write it to ``<file_path>/<time>-<pid>-<n>-<recipient>.eml``."""

    def __init__(self, *args, file_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.file_path = Path(file_path or settings.EMAIL_FILE_PATH)
        self.file_path.mkdir(parents=True, exist_ok=True)

    def write_message(self, message):
        super().write_message(message)
        moment = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        recipient = _safe((message.recipients() or [""])[0])
        name = f"{moment}-{os.getpid()}-{next(_sequence):04d}-{recipient}.eml"
        (self.file_path / name).write_bytes(message.message().as_bytes(linesep="\n"))
