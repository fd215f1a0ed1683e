"""Institutions' robot addresses: refused when unsafe or unusable, and managed only by their own research office."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from cgtclinic.models import NotificationWebhook
from cgtclinic.roles import Role
from tests.cgtclinic.helpers import NotificationWebhookFactory
from tests.factories.cgtclinic import InstitutionFactory, UserFactory

Kind = NotificationWebhook.Kind
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=4f9c1e"

GOOD = [
    (Kind.WECOM, WECOM),
    (Kind.DINGTALK, DINGTALK),
    (Kind.GENERIC, "https://hub.example-hospital.cn/hooks/cgt"),
    (Kind.GENERIC, "https://10.2.3.4/hooks/cgt"),  # an intranet address is a legitimate on-premises deployment
]
BAD = [
    (Kind.GENERIC, "http://hub.example-hospital.cn/hooks/cgt"),
    (Kind.GENERIC, "ftp://hub.example-hospital.cn/hooks"),
    (Kind.GENERIC, "https://user:pass@hub.example-hospital.cn/hooks"),
    (Kind.GENERIC, "https://localhost/hooks"),
    (Kind.GENERIC, "https://127.0.0.1:8000/admin/"),
    (Kind.GENERIC, "https://[::1]/hooks"),
    (Kind.GENERIC, "https://169.254.169.254/latest/meta-data/"),
    (Kind.GENERIC, "not a url"),
    (Kind.WECOM, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
    (Kind.WECOM, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="),
    (Kind.DINGTALK, "https://oapi.dingtalk.com/robot/send?key=4f9c1e"),
]


def _hook(institution, kind, url, **fields):
    return NotificationWebhook(institution=institution, name="科研处群", kind=kind, url=url, **fields)


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "url"), GOOD)
def test_usable_addresses_are_accepted(institution, kind, url):
    _hook(institution, kind, url).full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "url"), BAD)
def test_unsafe_or_unusable_addresses_are_refused_with_a_reason(institution, kind, url):
    with pytest.raises(ValidationError) as err, translation.override("en"):
        _hook(institution, kind, url).full_clean()
    assert set(err.value.message_dict) == {"url"}
    assert all(message.strip() for message in err.value.message_dict["url"])


@pytest.mark.django_db
def test_wecom_takes_no_secret_and_topics_must_be_dotted_words(institution):
    with pytest.raises(ValidationError) as err:
        _hook(institution, Kind.WECOM, WECOM, secret="abc", topics="continuing review").full_clean()
    assert set(err.value.message_dict) == {"secret", "topics"}


@pytest.mark.django_db
def test_topics_are_tidied_and_cover_their_sub_topics(institution):
    hook = _hook(institution, Kind.DINGTALK, DINGTALK, topics=" continuing_review , recognition.overdue ,")
    hook.full_clean()
    assert hook.topics == "continuing_review,recognition.overdue"
    assert hook.forwards("continuing_review.upcoming")
    assert hook.forwards("recognition.overdue")
    assert not hook.forwards("recognition.upcoming")
    assert not hook.forwards("continuing_review_extra")
    assert _hook(institution, Kind.GENERIC, "https://x.example/", topics="").forwards("anything.at_all")


@pytest.mark.django_db
def test_the_secret_is_not_kept_in_history(institution):
    hook = NotificationWebhookFactory(institution=institution, kind=Kind.DINGTALK, url=DINGTALK, secret="SECret")
    assert not hasattr(hook.history.first(), "secret")


# --- admin --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_research_office_sees_and_adds_only_its_own_institutions_robots(client, research_office):
    own = NotificationWebhookFactory(institution=research_office.institution, name="本院科研群")
    other = NotificationWebhookFactory(institution=InstitutionFactory(), name="外院科研群")
    client.force_login(research_office)

    listing = client.get(reverse("admin:cgtclinic_notificationwebhook_changelist")).content.decode()
    assert own.name in listing and other.name not in listing
    assert client.get(reverse("admin:cgtclinic_notificationwebhook_change", args=[other.pk])).status_code in (302, 404)

    form = {"name": "伦理群", "kind": Kind.WECOM, "url": WECOM, "secret": "", "topics": "", "is_active": "on"}
    refused = client.post(
        reverse("admin:cgtclinic_notificationwebhook_add"), {**form, "institution": other.institution_id}
    )
    assert refused.status_code == 200 and not NotificationWebhook.objects.filter(name="伦理群").exists()
    added = client.post(
        reverse("admin:cgtclinic_notificationwebhook_add"), {**form, "institution": research_office.institution_id}
    )
    assert added.status_code == 302
    assert NotificationWebhook.objects.get(name="伦理群").institution == research_office.institution


@pytest.mark.django_db
def test_a_bad_address_is_refused_on_the_admin_form(client, research_office):
    client.force_login(research_office)
    response = client.post(
        reverse("admin:cgtclinic_notificationwebhook_add"),
        {
            "institution": research_office.institution_id,
            "name": "坏地址",
            "kind": Kind.GENERIC,
            "url": "http://127.0.0.1:6379/",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["url"]
    assert not NotificationWebhook.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ETHICS_OFFICE, Role.PI])
def test_other_roles_cannot_manage_robots(client, institution, role):
    hook = NotificationWebhookFactory(institution=institution)
    client.force_login(UserFactory(role=role, institution=institution))
    for url in (
        reverse("admin:cgtclinic_notificationwebhook_changelist"),
        reverse("admin:cgtclinic_notificationwebhook_change", args=[hook.pk]),
        reverse("admin:cgtclinic_notificationwebhook_add"),
    ):
        assert client.get(url).status_code in (302, 403)
    assert list(NotificationWebhook.objects.visible_to(UserFactory(role=role, institution=institution))) == []
