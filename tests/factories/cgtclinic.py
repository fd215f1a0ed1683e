import datetime

import factory
from django.utils import timezone

from cgtclinic.models import Department, Institution, PolicyParameter, PolicyTarget, Region, Sponsor, User
from cgtclinic.roles import Role


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"r{n}")
    name_zh = factory.Sequence(lambda n: f"地区{n}")
    name_en = factory.Sequence(lambda n: f"Region {n}")


class InstitutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Institution

    region = factory.SubFactory(RegionFactory)
    name_zh = factory.Sequence(lambda n: f"第{n}人民医院")
    name_en = factory.Sequence(lambda n: f"People's Hospital No. {n}")
    grade = "三级甲等"


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    institution = factory.SubFactory(InstitutionFactory)
    name_zh = factory.Sequence(lambda n: f"血液科{n}")
    name_en = factory.Sequence(lambda n: f"Haematology {n}")


class SponsorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sponsor

    name_zh = factory.Sequence(lambda n: f"细胞生物科技有限公司{n}")
    name_en = factory.Sequence(lambda n: f"Cell Biotech Co. {n}")
    region = factory.SubFactory(RegionFactory)
    is_cgt_enterprise = True


class UserFactory(factory.django.DjangoModelFactory):
    """A person with a role; institution or region is filled in to match the role."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    full_name = factory.Sequence(lambda n: f"张医生{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    role = Role.RESEARCH_OFFICE
    institution = factory.Maybe(
        factory.LazyAttribute(lambda o: o.role in (Role.RESEARCH_OFFICE, Role.ETHICS_OFFICE, Role.PI)),
        yes_declaration=factory.SubFactory(InstitutionFactory),
        no_declaration=None,
    )
    region = factory.Maybe(
        factory.LazyAttribute(lambda o: o.role == Role.REGULATOR),
        yes_declaration=factory.SubFactory(RegionFactory),
        no_declaration=None,
    )
    is_superuser = factory.LazyAttribute(lambda o: o.role == Role.SYSTEM_ADMIN)
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class PolicyParameterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyParameter

    code = factory.Sequence(lambda n: f"param-{n}")
    name_zh = "参数"
    name_en = "Parameter"
    value = 3
    unit = PolicyParameter.Unit.WORKING_DAYS
    effective_from = factory.LazyFunction(lambda: timezone.localdate().replace(month=1, day=1))
    source_document = "003_9eed906d397bedc2.txt"
    source_clause = "任务15"


class PolicyTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyTarget

    region = factory.SubFactory(RegionFactory)
    metric = PolicyTarget.Metric.NEW_TRIAL_APPROVALS
    target_value = 15
    period_start = factory.LazyFunction(lambda: timezone.localdate().replace(year=2024, month=1, day=1))
    deadline_year = 2026
    source_document = "000_db00af38292194d0.txt"
    source_clause = "目标"


def review_interval_parameter() -> PolicyParameter:
    """The national continuing-review interval (12 months, as seeded), which bounds an ethics approval recorded
    without a validity date: the enrolment ledger needs it."""
    return PolicyParameterFactory(
        code="continuing_review_interval_months",
        region=None,
        value=12,
        unit=PolicyParameter.Unit.MONTHS,
        effective_from=datetime.date(2023, 2, 18),
        source_document="《涉及人的生命科学和医学研究伦理审查办法》（国卫科教发〔2023〕4号）",
        source_clause="跟踪审查",
    )


def issue_token(user, **fields):
    """An API token for ``user`` as the admin issues it; the plaintext key (shown once in the product) is ``.key``."""
    from cgtclinic.models import ApiToken

    token, key = ApiToken.objects.create(user=user, **fields)
    token.key = key
    return token
