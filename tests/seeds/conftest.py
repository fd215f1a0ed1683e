import shutil

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import translation

from cgtclinic.seeding import SEEDS_DIR, demo_pdf, load_seeds
from ethics import letters


@pytest.fixture(autouse=True)
def _english():
    """The tests read the loader's messages in English, whatever the catalogue translates them to."""
    with translation.override("en"):
        yield


def _stand_in_letter(decision, language=letters.AUTHORITATIVE_LANGUAGE) -> bytes:
    return demo_pdf(f"Stand-in decision letter {decision.letter_year}-{decision.letter_sequence} ({language})")


@pytest.fixture(scope="module", autouse=True)
def quick_letters(request):
    """Rendering a decision letter with WeasyPrint takes most of a demo load (about 0.8 s a letter, a dozen
    letters). Modules that do not look at the letters get a one-page stand-in PDF; a module that sets
    ``REAL_LETTERS = True`` renders the real ones (tests/ethics/test_letters.py tests the renderer itself)."""
    if getattr(request.module, "REAL_LETTERS", False):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(letters, "render_decision_letter", _stand_in_letter)
        yield


@pytest.fixture
def seeds_dir(tmp_path):
    """A private copy of seeds/ that a test may edit."""
    copy = tmp_path / "seeds"
    shutil.copytree(SEEDS_DIR, copy)
    return copy


@pytest.fixture(scope="module")
def demo_media(tmp_path_factory):
    """Where the module-scoped demo load puts its uploads and letters (tests point MEDIA_ROOT here to read them)."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def demo_loaded_once(django_db_setup, django_db_blocker, demo_media, quick_letters):
    """Load the demo set once per module, in a transaction rolled back when the module is done; each test
    runs in a savepoint inside it, so what a test changes is undone after it. Only for modules whose every
    test works on the loaded demo set (its rows are visible to all of the module's tests). The demo's
    uploads and letters go to a directory of the module's own."""
    fast_hashing = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        MEDIA_ROOT=demo_media,
    )
    with django_db_blocker.unblock(), fast_hashing, translation.override("en"):
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield load_seeds(SEEDS_DIR, demo=True)
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def demo_report(db):
    """The result of loading the policy and demo seeds from the repository."""
    return load_seeds(SEEDS_DIR, demo=True)


@pytest.fixture
def policy_report(db):
    """The result of loading the policy seeds from the repository."""
    return load_seeds(SEEDS_DIR)
