"""Institutions, their departments and people, ethics committees with their members, sponsors, alliances, and a
regulator per region (cgtclinic's and ethics' registry)."""

import datetime as dt
import secrets
from collections import defaultdict
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from bench.scale_data.world import (
    DEPARTMENTS,
    GCP_ISSUERS,
    HOSPITAL_KINDS,
    ONE_DAY,
    PLACES,
    REGION_ABBR,
    REGION_WEIGHTS,
    SPONSOR_SUFFIXES,
    SYLLABLES,
    SYNTHETIC,
    TITLES,
    TZ,
    Committee,
    Inst,
    apportion,
    pairs,
)
from cgtclinic.models import Department, Institution, Region, Sponsor, User
from cgtclinic.roles import Role
from ethics.models import Alliance, AllianceMembership, CommitteeMember, EthicsCommittee
from trials.models import GcpCertificate


class RegistryPhase:
    def make_registry(self) -> None:
        rng = self.rng
        regions = list(Region.objects.order_by("code"))
        self.regions = regions
        # Region numbers by code, not by primary key: the same seed gives the same codes in any database.
        self.region_numbers = {region.pk: k + 1 for k, region in enumerate(regions)}
        weights = [REGION_WEIGHTS.get(r.code, 0.03) for r in regions]
        n = self.opts["institutions"]
        per_region = apportion(n, weights, minimum=1 if n >= len(regions) else 0)
        inst_table, dept_table = self.table(Institution), self.table(Department)
        self.users = self.table(User)
        self.insts: list[Inst] = []
        self.insts_by_region = defaultdict(list)
        credit = 0
        for region, count in zip(regions, per_region, strict=True):
            places = pairs(PLACES.get(region.code, [f"{region.name_zh}:{region.name_en or region.code}"]))
            abbr = REGION_ABBR.get(region.code, region.code[:2].upper())
            combos = [(p, k) for p in places for k in HOSPITAL_KINDS]
            rng.shuffle(combos)
            for i in range(count):
                (place_zh, place_en), (kind_zh, kind_en, kind_short) = combos[i % len(combos)]
                branch = i // len(combos)
                suffix_zh = f"第{branch + 1}分院" if branch else ""
                suffix_en = f", Branch {branch + 1}" if branch else ""
                credit += 1
                # Hospital size: a few large hospitals lead most trials.
                weight = rng.paretovariate(1.4)
                inst_id = inst_table.add(
                    region_id=region.pk,
                    name_zh=f"{region.name_zh}{place_zh}{kind_zh}{suffix_zh}",
                    name_en=f"{place_en} {kind_en}{suffix_en}",
                    short_name=f"{place_zh}{kind_short}{branch + 1 if branch else ''}",
                    credit_code=f"12{self.region_numbers[region.pk]:02d}{credit:013d}X",
                    grade=rng.choices(["三级甲等", "三级乙等", "二级甲等"], weights=[0.75, 0.15, 0.1])[0],
                    is_active=True,
                )
                inst = Inst(inst_id, region, f"{abbr}{len(self.insts_by_region[region.pk]) + 1:03d}", "", weight)
                inst.name_zh = f"{region.name_zh}{place_zh}{kind_zh}{suffix_zh}"
                for dept_zh, dept_en in rng.sample(DEPARTMENTS, rng.randint(4, 7)):
                    inst.departments.append(dept_table.add(institution_id=inst_id, name_zh=dept_zh, name_en=dept_en))
                self.insts.append(inst)
                self.insts_by_region[region.pk].append(inst)
        total_weight = sum(i.weight for i in self.insts)
        expected_trials = self.opts["trials"]
        for inst in self.insts:
            inst.ro = self.person(inst, Role.RESEARCH_OFFICE, "ro")
            inst.eo = self.person(inst, Role.ETHICS_OFFICE, "eo")
            n_pis = max(3, min(60, int(4 + 1.5 * expected_trials * inst.weight / total_weight)))
            inst.pis = [self.person(inst, Role.PI, f"pi{k + 1}") for k in range(n_pis)]
            for pi in inst.pis:
                self.gcp_certificates(inst, pi)
        self.regulators = {}
        for region in regions:
            self.regulators[region.pk] = self.users.add(
                username=f"scale-regulator-{region.code}",
                full_name=f"{region.name_zh}卫生健康委员会 {self.name()}",
                email=f"regulator-{region.code}@example.org",
                password="!" + secrets.token_urlsafe(30),
                role=Role.REGULATOR,
                region_id=region.pk,
                language="zh-hans",
                is_active=True,
                is_superuser=False,
                date_joined=dt.datetime.combine(self.start, dt.time(9), tzinfo=TZ),
            )
        self.make_committees()
        self.make_sponsors()

    def person(self, inst: Inst, role: str, handle: str) -> int:
        username = f"{inst.code.lower()}-{handle}"
        return self.users.add(
            username=username,
            full_name=self.name(),
            email=f"{username}@example.org",
            password="!" + secrets.token_urlsafe(30),
            professional_title=self.rng.choice(TITLES) if role == Role.PI else "",
            role=role,
            institution_id=inst.id,
            department_id=self.rng.choice(inst.departments) if role == Role.PI else None,
            language="zh-hans",
            is_active=True,
            is_superuser=False,
            date_joined=dt.datetime.combine(self.start, dt.time(9), tzinfo=TZ)
            - dt.timedelta(days=self.rng.randint(0, 900)),
        )

    def gcp_certificates(self, inst: Inst, person: int) -> None:
        """A PI's GCP training certificates, each valid three years and renewed before it lapses, up to now; a few
        PIs let the last one lapse or renew it only after a reminder (trials.qualifications' work queue)."""
        rng, table = self.rng, self.table(GcpCertificate)
        issuer = rng.choice(GCP_ISSUERS)
        issued = self.start - dt.timedelta(days=rng.randint(0, 1000))
        serial = 0
        while issued < self.today:
            serial += 1
            expires = issued + relativedelta(years=3)
            table.add(
                person_id=person,
                number=f"GCP{issued.year}{person:06d}{serial}",
                issuer=issuer,
                issued_on=issued,
                expires_on=expires,
                recorded_by_id=inst.ro,
                recorded_at=self.office(min(issued + dt.timedelta(days=rng.randint(0, 20)), self.today - ONE_DAY)),
            )
            if expires >= self.today - dt.timedelta(days=30) and rng.random() < 0.08:
                break  # lapsed, or about to lapse without a renewal yet
            issued = expires - dt.timedelta(days=rng.randint(10, 60))

    def make_committees(self) -> None:
        rng = self.rng
        committees, members = self.table(EthicsCommittee), self.table(CommitteeMember)
        specialties = CommitteeMember.Specialty
        for inst in self.insts:
            short = inst.name_zh.removeprefix(inst.region.name_zh)[:4]
            review_months = rng.choices([12, 6], weights=[0.85, 0.15])[0]
            committee = Committee(
                0, inst, f"{inst.name_zh}医学伦理委员会", f"{short}伦审", 12, review_months,
                meeting_weekday=rng.randint(0, 4),
            )  # fmt: skip
            committee.id = committees.add(
                institution_id=inst.id,
                name_zh=committee.name_zh,
                name_en="Medical Ethics Committee",
                letter_prefix=committee.prefix,
                registration_number=f"MEC-{inst.code}",
                approval_validity_months=committee.validity_months,
                continuing_review_months=review_months,
                continuing_review_reminder_days=30,
                quorum_fraction=Decimal("0.50"),
                is_active=True,
            )
            # A balanced committee: medical members, a lawyer, an ethicist and a lay member; two external.
            roster = [("chair", specialties.MEDICINE), ("vice_chair", specialties.PHARMACY)]
            roster += [("member", s) for s in (specialties.MEDICINE, specialties.MEDICINE, specialties.NURSING)]
            roster += [("member", s) for s in (specialties.LAW, specialties.ETHICS, specialties.COMMUNITY)]
            roster += [("member", specialties.MEDICINE)] * rng.randint(0, 3) + [("secretary", specialties.OTHER)]
            for k, (member_role, specialty) in enumerate(roster):
                external = specialty in (specialties.LAW, specialties.COMMUNITY)
                member_id = members.add(
                    committee_id=committee.id,
                    full_name=self.name(),
                    member_role=member_role,
                    specialty=specialty,
                    gender=("female", "male")[k % 2],
                    affiliation="" if not external else "律师事务所" if specialty == specialties.LAW else "社区",
                    is_affiliated=not external,
                    term_start=self.start - dt.timedelta(days=rng.randint(30, 700)),
                    is_active=True,
                )
                committee.members.append((member_id, specialty in CommitteeMember.MEDICAL_SPECIALTIES))
            inst.committee = committee

    def make_sponsors(self) -> None:
        rng = self.rng
        sponsors = self.table(Sponsor)
        n = max(10, self.opts["trials"] // 15)
        weights = [REGION_WEIGHTS.get(r.code, 0.03) for r in self.regions]
        used = set()
        self.sponsors: list[Sponsor] = []
        syllables = pairs(SYLLABLES)
        for k in range(n):
            region = rng.choices(self.regions, weights=weights)[0]
            place_zh, place_en = rng.choice(pairs(PLACES.get(region.code, [f"{region.name_zh}:{region.code}"])))
            kind = rng.choices(list(Sponsor.Kind.values), weights=[0.8, 0.05, 0.1, 0.05])[0]
            (a_zh, a_en), (b_zh, b_en) = rng.sample(syllables, 2)
            if kind == Sponsor.Kind.ENTERPRISE:
                suffix_zh, suffix_en = rng.choice(SPONSOR_SUFFIXES)
            elif kind == Sponsor.Kind.UNIVERSITY:
                suffix_zh, suffix_en = "生命科学研究院", "Institute of Life Sciences"
            elif kind == Sponsor.Kind.INSTITUTION:
                suffix_zh, suffix_en = "转化医学中心", "Translational Medicine Centre"
            else:
                suffix_zh, suffix_en = "医学发展基金会", "Medical Development Foundation"
            name_zh = f"{place_zh}{a_zh}{b_zh}{suffix_zh}"
            if name_zh in used:
                name_zh = f"{name_zh}（{k}）"
            used.add(name_zh)
            sponsor = Sponsor(
                name_zh=name_zh,
                name_en=f"{place_en} {a_en}{b_en.lower()} {suffix_en}",
                kind=kind,
                region=region,
                credit_code=f"91{self.region_numbers[region.pk]:02d}{k + 1:013d}Y",
                is_cgt_enterprise=kind == Sponsor.Kind.ENTERPRISE and rng.random() < 0.65,
            )
            sponsor.pk = sponsor.id = sponsors.add(
                name_zh=sponsor.name_zh,
                name_en=sponsor.name_en,
                kind=kind,
                region_id=region.pk,
                credit_code=sponsor.credit_code,
                is_cgt_enterprise=sponsor.is_cgt_enterprise,
            )
            self.sponsors.append(sponsor)
        self.enterprises = [s for s in self.sponsors if s.kind == Sponsor.Kind.ENTERPRISE] or self.sponsors
        self.academic = [s for s in self.sponsors if s.kind != Sponsor.Kind.ENTERPRISE] or self.sponsors

    # --- alliances --------------------------------------------------------------------------------------------------

    def make_alliances(self) -> None:
        """The seeded alliances, and for seeded regions without one a synthetic alliance of their committees."""
        rng = self.rng
        alliances = list(Alliance.objects.filter(is_active=True).order_by("name_zh").prefetch_related("regions"))
        covered = {region.pk for alliance in alliances for region in alliance.regions.all()}
        table = self.table(Alliance)
        region_by_code = {r.code: r for r in self.regions}
        plans = []
        if region_by_code.get("shanghai") and region_by_code["shanghai"].pk not in covered:
            plans.append(
                ("上海市医疗机构伦理审查结果互认联盟", "Shanghai ethics review recognition alliance", ["shanghai"], 5)
            )
        northern = [region_by_code[c] for c in ("beijing", "tianjin", "hebei") if c in region_by_code]
        if northern and not any(r.pk in covered for r in northern):
            plans.append(
                ("京津冀伦理审查结果互认联盟", "Beijing-Tianjin-Hebei ethics review recognition alliance",
                 [r.code for r in northern], 7)
            )  # fmt: skip
        m2m = Alliance.regions.through
        m2m_table = self.table(m2m)
        for name_zh, name_en, codes, days in plans:
            alliance = Alliance(
                name_zh=name_zh,
                name_en=name_en,
                feedback_working_days=days,
                close_of_business=dt.time(17, 30),
                reminder_time=dt.time(9),
                source_document=SYNTHETIC,
                source_clause="—",
                is_active=True,
            )
            coordinator = self.insts_by_region[region_by_code[codes[0]].pk]
            alliance.coordinator_id = coordinator[0].eo if coordinator else None
            alliance.pk = alliance.id = table.add(
                name_zh=name_zh,
                name_en=name_en,
                feedback_working_days=days,
                close_of_business=alliance.close_of_business,
                reminder_time=alliance.reminder_time,
                coordinator_id=alliance.coordinator_id,
                source_document=SYNTHETIC,
                source_clause="—",
                is_active=True,
            )
            for code in codes:
                m2m_table.add(alliance_id=alliance.pk, region_id=region_by_code[code].pk)
            alliance.region_ids = {region_by_code[c].pk for c in codes}
            alliances.append(alliance)
        memberships = self.table(AllianceMembership)
        self.alliances = {}
        for alliance in alliances:
            region_ids = getattr(alliance, "region_ids", None) or {r.pk for r in alliance.regions.all()}
            self.alliances[alliance.pk] = alliance
            # In region-code order: a set of primary keys iterates in an order that depends on their values, which
            # differ from one database to the next, and the draws below would follow it.
            for region_id in sorted(region_ids, key=lambda pk: self.region_numbers[pk]):
                for inst in self.insts_by_region[region_id]:
                    if rng.random() < 0.85:
                        memberships.add(
                            alliance_id=alliance.pk,
                            committee_id=inst.committee.id,
                            joined_on=self.start - dt.timedelta(days=rng.randint(0, 400)),
                        )
                        inst.committee.alliances.add(alliance.pk)
