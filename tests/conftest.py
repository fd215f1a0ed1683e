import pytest
from django.core.cache import cache
from django.utils import translation
from rest_framework.test import APIClient

from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory, review_interval_parameter


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The suite's own connections may empty the ledger: transactional tests end with a flush, which TRUNCATEs
    every table, and the ledger's trigger refuses that to any other session (trials migration 0004). And a
    ``replica`` alias mirrors the test database, for the tests of reports read from a replica."""
    from django.conf import settings

    for database in settings.DATABASES.values():
        if database["ENGINE"].endswith("postgresql"):
            database.setdefault("OPTIONS", {})["options"] = "-c cgtclinic.allow_ledger_truncate=on"
    # A second alias on the same test database, as a report replica would be (tests/api/test_reports_replica.py
    # points REPORTS_DATABASE at it); a mirror is a connection of its own, so it sees committed rows only.
    default = settings.DATABASES["default"]
    settings.DATABASES.setdefault("replica", {**default, "TEST": {**default.get("TEST", {}), "MIRROR": "default"}})


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    """Uploaded files go to a per-test directory; passwords hash fast (PBKDF2 would dominate run time)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The manifest needs collectstatic, which production runs at build time and tests do not.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a test that activates English must not leak it to the next one
    (pytest-xdist runs tests in a different order in each worker)."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def review_interval(db):
    """The national continuing-review interval that the enrolment ledger needs (tests of the ledger, claims and
    reports use it; tests/trials and tests/subsidies switch it on for every test)."""
    return review_interval_parameter()


@pytest.fixture
def fresh_throttle():
    """Throttle counts live in the cache; a test that uses it starts and ends with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def region(db):
    return RegionFactory(code="test-region", name_zh="测试省", name_en="Test Province")


@pytest.fixture
def institution(region):
    return InstitutionFactory(region=region)


@pytest.fixture
def research_office(institution):
    return UserFactory(role=Role.RESEARCH_OFFICE, institution=institution)


@pytest.fixture
def ethics_office(institution):
    return UserFactory(role=Role.ETHICS_OFFICE, institution=institution)


@pytest.fixture
def pi(institution):
    return UserFactory(role=Role.PI, institution=institution)


@pytest.fixture
def regulator(region):
    return UserFactory(role=Role.REGULATOR, region=region)


@pytest.fixture
def system_admin(db):
    return UserFactory(role=Role.SYSTEM_ADMIN)
