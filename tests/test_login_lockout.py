"""Issue 11: 50 wrong passwords on /admin/login/ and /pi/login/ all answered 200 and the right password then
worked. After AXES_FAILURE_LIMIT failures for an account, or from an address, both logins pause (429, translated),
the attempts are logged, and a system administrator can lift the pause in the admin."""

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"
LOGINS = {"admin": "/admin/login/", "portal": "/pi/login/"}


@pytest.fixture
def office(institution):
    return UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, password=PASSWORD)


@pytest.fixture
def investigator(institution):
    return UserFactory(role=Role.PI, institution=institution, password=PASSWORD)


def attempt(client, login: str, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGINS[login], {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("login", LOGINS)
def test_repeated_wrong_passwords_lock_the_account_even_with_the_right_one(client, login, office, investigator):
    person = office if login == "admin" else investigator
    answers = [attempt(client, login, person.username, "wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    # The form answers each wrong password, and the last one that reaches the limit starts the pause.
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    locked = attempt(client, login, person.username, PASSWORD)
    assert locked.status_code == 429
    assert "请稍后再试" in locked.content.decode() or "分钟" in locked.content.decode()
    # From another address the account stays locked: it is counted per account too.
    assert attempt(client, login, person.username, PASSWORD, address="198.51.100.9").status_code == 429
    assert AccessFailureLog.objects.filter(username=person.username).count() >= settings.AXES_FAILURE_LIMIT


def test_one_address_guessing_many_accounts_is_locked(client, office):
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "admin", f"guess{n}", "wrong", address="192.0.2.50")
    assert attempt(client, "admin", office.username, PASSWORD, address="192.0.2.50").status_code == 429
    # Another address may still sign in to that account.
    assert attempt(client, "admin", office.username, PASSWORD, address="192.0.2.51").status_code == 302


def test_the_pause_speaks_english_on_request(client, office):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "admin", office.username, "wrong")
    locked = client.post(
        LOGINS["admin"],
        {"username": office.username, "password": PASSWORD},
        REMOTE_ADDR="203.0.113.7",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert locked.status_code == 429
    assert "Too many wrong passwords" in locked.content.decode()


def test_a_system_administrator_lifts_the_pause_in_the_admin(client, office):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "admin", office.username, "wrong")
    assert attempt(client, "admin", office.username, PASSWORD).status_code == 429
    admin = UserFactory(role=Role.SYSTEM_ADMIN, is_superuser=True, password=PASSWORD)
    operator = client.__class__()
    operator.force_login(admin)
    page = operator.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert office.username in page.content.decode()
    for row in AccessAttempt.objects.filter(username=office.username):
        assert operator.post(f"/admin/axes/accessattempt/{row.pk}/delete/", {"post": "yes"}).status_code == 302
    AccessAttempt.objects.filter(ip_address="203.0.113.7").delete()
    assert attempt(client, "admin", office.username, PASSWORD).status_code == 302


def test_behind_the_proxy_the_proxys_view_of_the_client_counts(client, settings, office):
    settings.BEHIND_PROXY = True
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            LOGINS["admin"],
            {"username": f"guess{n}", "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.80",  # a forged left part; the proxy appended the right
        )
    refused = client.post(
        LOGINS["admin"],
        {"username": office.username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.80",
    )
    assert refused.status_code == 429
    fine = client.post(
        LOGINS["admin"],
        {"username": office.username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.81",
    )
    assert fine.status_code == 302
