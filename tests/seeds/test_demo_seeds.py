"""The demo data set: every lifecycle status, histories the services accept, data later features rely on."""

import re

import pytest

from cgtclinic.models import Institution, PolicyParameter, Sponsor, User
from cgtclinic.roles import ADMIN_ROLES, Role
from cgtclinic.seeding import SEEDS_DIR, load_seeds
from tests.factories.trials import TrialFactory
from tests.seeds.files import read_rows
from trials import services
from trials.models import Trial, TrialSite

pytestmark = pytest.mark.django_db

S = Trial.Status

# The service that takes a trial into each status (resuming from a suspension is handled apart).
SERVICE_FOR = {
    S.SUBMITTED: services.trial_submit,
    S.UNDER_REVIEW: services.trial_start_review,
    S.APPROVED: services.trial_approve,
    S.ACTIVE: services.trial_activate,
    S.ENROLMENT_CLOSED: services.trial_close_enrolment,
    S.COMPLETED: services.trial_complete,
    S.SUSPENDED: services.trial_suspend,
    S.TERMINATED: services.trial_terminate,
    S.WITHDRAWN: services.trial_withdraw,
}
NEEDS_REASON = {S.SUSPENDED, S.TERMINATED, S.WITHDRAWN}


@pytest.fixture
def demo_report(demo_loaded_once, db):
    """Every test here reads the demo set, so it is loaded once for the module."""
    return demo_loaded_once


def test_demo_covers_every_status(demo_report):
    assert set(Trial.objects.values_list("status", flat=True)) == set(S.values)


def test_each_status_matches_its_history(demo_report):
    for trial in Trial.objects.prefetch_related("status_changes"):
        changes = list(trial.status_changes.order_by("id"))
        expected_from = S.DRAFT
        for change in changes:
            assert change.from_status == expected_from, trial
            expected_from = change.to_status
        assert trial.status == expected_from, trial
        assert trial.status_changed_at == (changes[-1].at if changes else None), trial
        if trial.status == S.SUSPENDED:
            assert trial.status_before_suspension == changes[-1].from_status


def test_every_seeded_history_is_allowed_by_the_lifecycle_services(demo_report):
    """Replay each demo history on a fresh trial through the services, with the same people acting."""
    for seeded in Trial.objects.select_related("lead_institution", "pi"):
        replay = TrialFactory(
            lead_institution=seeded.lead_institution,
            pi=seeded.pi,
            kind=seeded.kind,
            therapy_category=seeded.therapy_category,
        )
        # Activation needs the trial's gates met: the replay has the seeded trial's answers.
        for answer in seeded.gate_answers.filter(site=None):
            answer.pk, answer.trial = None, replay
            answer.save()
        for change in seeded.status_changes.order_by("id"):
            if change.from_status == S.SUSPENDED:
                step, kwargs = services.trial_resume, {"reason": change.reason}
            else:
                step = SERVICE_FOR[change.to_status]
                kwargs = {"reason": change.reason} if change.to_status in NEEDS_REASON else {}
            replay = step(trial=replay, actor=change.actor, **kwargs)
            assert replay.status == change.to_status
        assert replay.status == seeded.status


def test_trials_span_kinds_and_therapy_categories(demo_report):
    assert {Trial.Kind.IIT, Trial.Kind.REGISTRATION} <= set(Trial.objects.values_list("kind", flat=True))
    assert set(Trial.objects.values_list("therapy_category", flat=True)) == set(Trial.TherapyCategory.values)


@pytest.mark.parametrize("region", ["shanghai", "guangdong"])
def test_multicentre_trials_start_up_within_and_beyond_the_target(demo_report, region):
    target = PolicyParameter.objects.get(
        code="startup_target_weeks", region__code="beijing", source_document__startswith="004_"
    )
    target_days = int(target.value) * 7
    sites = TrialSite.objects.filter(
        trial__lead_institution__region__code=region, role=TrialSite.SiteRole.PARTICIPATING
    ).exclude(site_initiated_on=None)

    start_up = [site.startup_days for site in sites]
    assert any(days <= target_days for days in start_up)
    assert any(days > target_days for days in start_up)


def test_a_guangdong_trial_runs_at_three_guangdong_hospitals(demo_report):
    trial = next(
        trial
        for trial in Trial.objects.filter(lead_institution__region__code="guangdong")
        if trial.sites.filter(institution__region__code="guangdong").count() >= 3
    )
    assert trial.sites.filter(role=TrialSite.SiteRole.PARTICIPATING).exclude(ethics_approved_on=None).count() >= 2


def test_a_shanghai_hospital_has_completed_gene_therapy_trials_to_claim_for(demo_report):
    completed = Trial.objects.filter(
        lead_institution__region__code="shanghai",
        status=S.COMPLETED,
        therapy_category=Trial.TherapyCategory.VIRAL_VECTOR_GENE,
    )
    hospital = Institution.objects.get(led_trials__in=completed.filter(kind=Trial.Kind.REGISTRATION))
    assert completed.filter(lead_institution=hospital, sponsor__region__code="shanghai").exists()
    assert completed.filter(lead_institution=hospital, kind=Trial.Kind.IIT).exists()


def test_sponsors_include_local_cgt_enterprises_and_one_that_is_not(demo_report):
    cgt_regions = set(Sponsor.objects.filter(is_cgt_enterprise=True).values_list("region__code", flat=True))
    assert {"shanghai", "beijing", "guangdong"} <= cgt_regions
    assert Sponsor.objects.filter(is_cgt_enterprise=False).exists()


def test_every_region_has_demo_hospitals(demo_report):
    regions = set(Institution.objects.values_list("region__code", flat=True))
    assert regions == {"beijing", "shanghai", "guangdong", "tianjin", "hebei"}


def test_demo_accounts_get_a_password_once_and_keep_it(demo_report):
    logins = {
        row["username"]: row["role"] for row in read_rows(SEEDS_DIR / "demo" / "people.yaml") if row.get("demo_account")
    }
    assert set(logins.values()) == set(Role.values)
    created = {account.username: account.password for account in demo_report.new_accounts}
    assert set(created) == set(logins)
    hashes = {}
    for username, password in created.items():
        user = User.objects.get(username=username)
        assert user.check_password(password)
        assert user.is_staff == (user.role in ADMIN_ROLES)
        hashes[username] = user.password
    assert User.objects.get(username="admin").is_superuser

    again = load_seeds(demo=True)

    assert again.new_accounts == []
    assert sorted(again.kept_accounts) == sorted(logins)
    assert dict(User.objects.filter(username__in=logins).values_list("username", "password")) == hashes


def test_people_on_record_cannot_sign_in(demo_report):
    logins = {account.username for account in demo_report.new_accounts}
    others = User.objects.exclude(username__in=logins)
    assert others.exists()
    assert not any(user.has_usable_password() for user in others)


# Invented addresses only: domains reserved for examples and tests (RFC 2606, RFC 6761).
RESERVED_MAIL_DOMAIN = re.compile(r"@([a-z0-9-]+\.)*(example|test|example\.(org|com|net))$")


def test_every_demo_person_has_an_e_mail_address_at_a_reserved_domain(demo_report):
    rows = read_rows(SEEDS_DIR / "demo" / "people.yaml")
    people = dict(User.objects.filter(username__in=[row["username"] for row in rows]).values_list("username", "email"))

    assert set(people) == {row["username"] for row in rows}
    without = sorted(username for username, email in people.items() if not email)
    assert not without, f"no e-mail address: {without}"
    assert all(RESERVED_MAIL_DOMAIN.search(email) for email in people.values()), people
    assert len(set(people.values())) == len(people), "each person has an address of their own"


# The Guangdong mutual-recognition loop of the README's walkthrough: who signs in, where, in which role.
GUANGDONG_LOOP = {
    "zhujiang_eo": (Role.ETHICS_OFFICE, "珠大附一"),
    "zhujiang_ro": (Role.RESEARCH_OFFICE, "珠大附一"),
    "zhujiang_pi_huang": (Role.PI, "珠大附一"),
    "wanqu_eo": (Role.ETHICS_OFFICE, "湾区人民医院"),
    "wanqu_ro": (Role.RESEARCH_OFFICE, "湾区人民医院"),
    "nanyue_eo": (Role.ETHICS_OFFICE, "南粤肿瘤医院"),
    "nanyue_ro": (Role.RESEARCH_OFFICE, "南粤肿瘤医院"),
    "gd_alliance_secretariat": (Role.ETHICS_OFFICE, "珠大附一"),
}


def test_the_guangdong_recognition_loop_has_a_login_for_every_part(demo_report):
    created = {account.username for account in demo_report.new_accounts}
    trial = Trial.objects.get(protocol_number="ZJFH-CART-2025-08")
    lead = trial.lead_institution
    participating = set(trial.sites.exclude(institution=lead).values_list("institution__short_name", flat=True))

    assert lead.short_name == "珠大附一"
    assert participating == {"湾区人民医院", "南粤肿瘤医院"}
    for username, (role, hospital) in GUANGDONG_LOOP.items():
        user = User.objects.select_related("institution").get(username=username)
        assert (user.role, user.institution.short_name) == (role, hospital), username
        assert username in created and user.has_usable_password() and user.is_staff == (role in ADMIN_ROLES)
        assert user.email
    # The lead PI is the trial's PI.
    assert trial.pi.username == "zhujiang_pi_huang"
    regulator = User.objects.get(username="guangdong_regulator")
    assert (regulator.role, regulator.region.code, regulator.institution) == (Role.REGULATOR, "guangdong", None)
    assert "guangdong_regulator" in created


def test_the_readme_account_table_lists_exactly_the_demo_logins():
    """The README tells a newcomer which account to use for what; it names every demo login and no other."""
    readme = (SEEDS_DIR.parent / "README.md").read_text(encoding="utf-8")
    heading = readme.index("| username | who | for |")
    table = readme[heading : readme.index("\n\n", heading)]
    named = set(re.findall(r"`([a-z_]+)`", table))
    logins = {row["username"] for row in read_rows(SEEDS_DIR / "demo" / "people.yaml") if row.get("demo_account")}
    assert named == logins
