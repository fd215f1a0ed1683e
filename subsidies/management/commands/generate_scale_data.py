"""Build a provincial-scale synthetic data set directly in PostgreSQL, for the benchmark (bench/run.py).

Every row is invented and follows the rules the services enforce, so the reports compute on data shaped like a
province's: trials of every kind, therapy category and status with their lifecycle history; sites with start-up
milestones in order; ethics submissions with their timeline, meetings and numbered decisions; continuing reviews
that keep approvals valid; alliances whose members answer recognition requests on time, late or not yet; an
append-only enrolment ledger with subject codes, aggregate reports and corrections, and SiteEnrolment equal to its
sums; subsidy claims of every status whose lines are computed by subsidies.rules and subsidies.eligibility.

The rows are simulated in Python with one seeded random generator (the same --seed and --today give the same data)
and written with COPY in one transaction. Historical tables (simple-history) are not filled.
"""

import datetime as dt
import itertools
import json
import math
import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cgtclinic import workdays
from cgtclinic.errors import DomainError
from cgtclinic.models import Department, Institution, Region, Sponsor, User
from cgtclinic.roles import Role
from ethics.models import (
    AgendaItem,
    Alliance,
    AllianceMembership,
    Attendance,
    CommitteeMember,
    Decision,
    EthicsCommittee,
    LetterCounter,
    Meeting,
    RecognitionEffect,
    RecognitionRequest,
    ReviewAssignment,
    Submission,
    SubmissionEvent,
)
from ethics.recognition import compute_deadline
from subsidies import eligibility, rules
from subsidies.models import Claim, ClaimLine, ClaimPayment, ClaimStatusChange, EligibilityRule, SubsidyProgram
from subsidies.services import NOT_CANDIDATE_STATUSES, amount_rule
from trials.models import EnrolmentEntry, EnrolmentSubject, SiteEnrolment, Trial, TrialSite, TrialStatusChange

TZ = workdays.CALENDAR_TZ
ONE_DAY = dt.timedelta(days=1)
TS = Trial.Status
SS = Submission.Status
SK = Submission.Kind
EV = SubmissionEvent.Kind
OUT = Decision.Outcome
RS = RecognitionRequest.Status
EK = EnrolmentEntry.Kind
CS = Claim.Status
LS = ClaimLine.Status
AR = SubsidyProgram.AmountRule
YEARS_OF_HISTORY = 6
SYNTHETIC = "generate_scale_data (synthetic benchmark data)"

# Share of the province's institutions (and so of its trials) per seeded region; other regions get a little.
REGION_WEIGHTS = {"shanghai": 0.36, "beijing": 0.26, "guangdong": 0.22, "tianjin": 0.08, "hebei": 0.08}
REGION_ABBR = {"shanghai": "SH", "beijing": "BJ", "guangdong": "GD", "tianjin": "TJ", "hebei": "HE"}
# (Chinese, pinyin) places institutions and sponsors are named after, per region.
PLACES = {
    "shanghai": ["浦东:Pudong", "徐汇:Xuhui", "黄浦:Huangpu", "静安:Jing'an", "长宁:Changning", "普陀:Putuo",
                 "虹口:Hongkou", "杨浦:Yangpu", "闵行:Minhang", "宝山:Baoshan", "嘉定:Jiading", "松江:Songjiang"],
    "beijing": ["东城:Dongcheng", "西城:Xicheng", "朝阳:Chaoyang", "海淀:Haidian", "丰台:Fengtai", "通州:Tongzhou",
                "顺义:Shunyi", "昌平:Changping", "大兴:Daxing", "房山:Fangshan", "石景山:Shijingshan"],
    "guangdong": ["广州:Guangzhou", "深圳:Shenzhen", "佛山:Foshan", "东莞:Dongguan", "珠海:Zhuhai", "汕头:Shantou",
                  "中山:Zhongshan", "惠州:Huizhou", "江门:Jiangmen", "湛江:Zhanjiang", "肇庆:Zhaoqing"],
    "tianjin": ["和平:Heping", "河西:Hexi", "南开:Nankai", "河东:Hedong", "红桥:Hongqiao", "滨海:Binhai",
                "西青:Xiqing", "北辰:Beichen"],
    "hebei": ["石家庄:Shijiazhuang", "唐山:Tangshan", "保定:Baoding", "邯郸:Handan", "廊坊:Langfang",
              "沧州:Cangzhou", "邢台:Xingtai", "秦皇岛:Qinhuangdao"],
}  # fmt: skip
HOSPITAL_KINDS = [
    ("第一人民医院", "First People's Hospital", "一院"),
    ("第二人民医院", "Second People's Hospital", "二院"),
    ("中心医院", "Central Hospital", "中心"),
    ("肿瘤医院", "Cancer Hospital", "肿瘤"),
    ("儿童医院", "Children's Hospital", "儿童"),
    ("中医医院", "Hospital of Traditional Chinese Medicine", "中医"),
    ("妇幼保健院", "Maternal and Child Health Hospital", "妇幼"),
    ("医科大学附属医院", "Affiliated Hospital of the Medical University", "医大附院"),
    ("血液病医院", "Hospital of Blood Diseases", "血液"),
    ("眼科医院", "Eye Hospital", "眼科"),
]
DEPARTMENTS = [
    ("血液科", "Haematology"),
    ("肿瘤科", "Oncology"),
    ("神经内科", "Neurology"),
    ("眼科", "Ophthalmology"),
    ("儿科", "Paediatrics"),
    ("风湿免疫科", "Rheumatology and Immunology"),
    ("消化内科", "Gastroenterology"),
    ("骨科", "Orthopaedics"),
    ("肝胆外科", "Hepatobiliary Surgery"),
    ("临床研究中心", "Clinical Research Centre"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢钟"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚华建红梅玉兰志海燕晓东春立新宇浩婷雪琳俊凯欣怡子涵思远嘉"
TITLES = ["主任医师", "副主任医师", "主治医师", "研究员", "副研究员"]
SYLLABLES = ["安:An", "博:Bo", "诚:Cheng", "达:Da", "德:De", "恩:En", "丰:Feng", "和:He", "嘉:Jia", "健:Jian",
             "景:Jing", "凯:Kai", "朗:Lang", "立:Li", "明:Ming", "诺:Nuo", "启:Qi", "仁:Ren", "赛:Sai", "泰:Tai",
             "拓:Tuo", "维:Wei", "欣:Xin", "信:Xin", "耀:Yao", "益:Yi", "源:Yuan", "远:Yuan", "致:Zhi",
             "卓:Zhuo"]  # fmt: skip
SPONSOR_SUFFIXES = [
    ("生物科技有限公司", "Biotechnology Co., Ltd."),
    ("细胞治疗科技有限公司", "Cell Therapy Co., Ltd."),
    ("基因技术有限公司", "Gene Technology Co., Ltd."),
    ("生物医药股份有限公司", "Biopharma Co., Ltd."),
]
# (Chinese, English) of what a trial tests, per therapy category; the phase is added to the title.
THERAPIES = {
    "gene_modified_cell": [
        ("CD19 CAR-T 细胞治疗复发难治性B细胞淋巴瘤", "CD19 CAR-T cells for relapsed/refractory B-cell lymphoma"),
        ("BCMA CAR-T 细胞治疗复发难治性多发性骨髓瘤", "BCMA CAR-T cells for relapsed/refractory multiple myeloma"),
        ("CD7 CAR-T 细胞治疗T细胞急性淋巴细胞白血病", "CD7 CAR-T cells for T-cell acute lymphoblastic leukaemia"),
        ("GPC3 CAR-T 细胞治疗晚期肝细胞癌", "GPC3 CAR-T cells for advanced hepatocellular carcinoma"),
        ("Claudin18.2 CAR-T 细胞治疗晚期胃癌", "Claudin18.2 CAR-T cells for advanced gastric cancer"),
        ("CD19 CAR-T 细胞治疗难治性系统性红斑狼疮", "CD19 CAR-T cells for refractory systemic lupus erythematosus"),
        ("CAR-NK 细胞治疗急性髓系白血病", "CAR-NK cells for acute myeloid leukaemia"),
        ("NY-ESO-1 TCR-T 细胞治疗晚期滑膜肉瘤", "NY-ESO-1 TCR-T cells for advanced synovial sarcoma"),
    ],
    "immune_cell": [
        ("肿瘤浸润淋巴细胞治疗晚期宫颈癌", "Tumour-infiltrating lymphocytes for advanced cervical cancer"),
        ("自体NK细胞治疗晚期非小细胞肺癌", "Autologous NK cells for advanced non-small-cell lung cancer"),
        (
            "细胞因子诱导的杀伤细胞联合化疗治疗晚期胃癌",
            "Cytokine-induced killer cells with chemotherapy for gastric cancer",
        ),
    ],
    "stem_cell": [
        ("人脐带间充质干细胞治疗膝骨关节炎", "Umbilical-cord mesenchymal stem cells for knee osteoarthritis"),
        ("间充质干细胞治疗激素耐药急性移植物抗宿主病", "Mesenchymal stem cells for steroid-refractory acute GVHD"),
        (
            "人胚胎干细胞来源的多巴胺能神经前体细胞治疗帕金森病",
            "ESC-derived dopaminergic progenitors for Parkinson's disease",
        ),
        ("诱导多能干细胞来源的视网膜色素上皮细胞治疗黄斑变性", "iPSC-derived RPE cells for macular degeneration"),
        ("自体骨髓间充质干细胞治疗失代偿期肝硬化", "Autologous bone-marrow MSCs for decompensated cirrhosis"),
    ],
    "viral_vector_gene": [
        ("AAV 载体人凝血因子IX基因治疗血友病B", "AAV factor IX gene therapy for haemophilia B"),
        ("AAV 载体 SMN1 基因治疗脊髓性肌萎缩症", "AAV SMN1 gene therapy for spinal muscular atrophy"),
        ("AAV 载体 RPE65 基因治疗遗传性视网膜营养不良", "AAV RPE65 gene therapy for inherited retinal dystrophy"),
        ("慢病毒载体 β-珠蛋白基因治疗输血依赖型β-地中海贫血", "Lentiviral β-globin gene therapy for β-thalassaemia"),
        ("溶瘤病毒治疗晚期黑色素瘤", "Oncolytic virus for advanced melanoma"),
    ],
    "gene_editing": [
        ("CRISPR/Cas9 编辑自体造血干细胞治疗β-地中海贫血", "CRISPR/Cas9-edited autologous HSCs for β-thalassaemia"),
        ("碱基编辑治疗家族性高胆固醇血症", "Base editing for familial hypercholesterolaemia"),
        ("基因编辑通用型 CAR-T 细胞治疗复发难治性淋巴瘤", "Gene-edited allogeneic CAR-T cells for relapsed lymphoma"),
        ("CRISPR 基因编辑治疗遗传性转甲状腺素蛋白淀粉样变", "CRISPR gene editing for hereditary ATTR amyloidosis"),
    ],
    "nucleic_acid": [
        ("个体化 mRNA 肿瘤疫苗治疗术后胰腺癌", "Personalised mRNA cancer vaccine after pancreatic cancer surgery"),
        ("siRNA 治疗原发性高草酸尿症", "siRNA for primary hyperoxaluria"),
        ("反义寡核苷酸治疗杜氏肌营养不良", "Antisense oligonucleotide for Duchenne muscular dystrophy"),
    ],
    "other": [
        ("外泌体治疗急性呼吸窘迫综合征", "Exosomes for acute respiratory distress syndrome"),
        ("组织工程皮肤治疗难愈性创面", "Tissue-engineered skin for chronic wounds"),
    ],
}
CATEGORY_WEIGHTS = {
    "gene_modified_cell": 0.34,
    "immune_cell": 0.08,
    "stem_cell": 0.2,
    "viral_vector_gene": 0.14,
    "gene_editing": 0.1,
    "nucleic_acid": 0.09,
    "other": 0.05,
}
# The gene therapies Shanghai's program covers (seeds/policy/subsidy_programs.yaml): gene-modified cells too.
GENE_CATEGORIES = ("viral_vector_gene", "gene_editing", "nucleic_acid", "gene_modified_cell")
CATEGORY_CODES = {
    "gene_modified_cell": "CT",
    "immune_cell": "IC",
    "stem_cell": "SC",
    "viral_vector_gene": "GT",
    "gene_editing": "GE",
    "nucleic_acid": "NA",
    "other": "OT",
}
PHASE_NAMES = {"early": "早期探索性", "1": "I期", "1_2": "I/II期", "2": "II期", "2_3": "II/III期", "3": "III期",
               "4": "IV期", "na": ""}  # fmt: skip
PHASE_NAMES_EN = {"early": "an exploratory", "1": "a phase I", "1_2": "a phase I/II", "2": "a phase II",
                  "2_3": "a phase II/III", "3": "a phase III", "4": "a phase IV", "na": "a"}  # fmt: skip
TARGET_BY_PHASE = {"early": (6, 20), "1": (12, 40), "1_2": (20, 60), "2": (30, 120), "2_3": (80, 240),
                   "3": (120, 400), "4": (200, 500), "na": (20, 100)}  # fmt: skip


def _pairs(items):
    return [tuple(item.split(":", 1)) for item in items]


def _pick(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _apportion(total: int, weights: list[float], *, minimum: int = 0, caps: list[int] | None = None) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder), each at least ``minimum``
    and at most its cap; what a capped share cannot take goes to the others."""
    n = len(weights)
    counts = [minimum] * n
    caps = caps or [total] * n
    left = total - minimum * n
    active = [i for i in range(n) if caps[i] > counts[i]]
    while left > 0 and active:
        weight_sum = sum(weights[i] for i in active) or len(active)
        shares = {i: left * (weights[i] or (weight_sum / len(active))) / weight_sum for i in active}
        given = 0
        for i in active:
            add = min(int(shares[i]), caps[i] - counts[i])
            counts[i] += add
            given += add
        rest = left - given
        for i in sorted(active, key=lambda i: shares[i] - int(shares[i]), reverse=True):
            if rest <= 0:
                break
            if counts[i] < caps[i]:
                counts[i] += 1
                rest -= 1
        left = rest
        active = [i for i in active if caps[i] > counts[i]]
    if left > 0:
        raise ValueError(f"{total} does not fit under the caps")
    return counts


class Table:
    """Rows of one model, held as lists in the table's column order, written with COPY."""

    def __init__(self, model, start_id: int = 1):
        meta = model._meta
        fields = list(meta.concrete_fields)
        self.model = model
        self.name = meta.db_table
        self.columns = [f.column for f in fields]
        self.index = {}
        for i, f in enumerate(fields):
            self.index[f.name] = i
            self.index[f.attname] = i
        self.json = {i for i, f in enumerate(fields) if isinstance(f, models.JSONField)}
        self.defaults = []
        for i, f in enumerate(fields):
            value = None if f.primary_key or f.null else f.get_default()
            if i in self.json and value is not None:
                value = json.dumps(value, ensure_ascii=False)
            self.defaults.append(value)
        self.pk = self.index[meta.pk.attname]
        self.auto_pk = isinstance(meta.pk, models.AutoField | models.BigAutoField)
        self.next_id = start_id
        self.rows: list[list] = []

    def alloc(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def add(self, **values) -> int:
        row = self.defaults.copy()
        index, json_columns = self.index, self.json
        for key, value in values.items():
            i = index[key]
            row[i] = json.dumps(value, ensure_ascii=False) if i in json_columns and value is not None else value
        if self.auto_pk and row[self.pk] is None:
            row[self.pk] = self.alloc()
        self.rows.append(row)
        return row[self.pk]

    def copy(self, cursor) -> None:
        columns = ", ".join(f'"{c}"' for c in self.columns)
        with cursor.copy(f'COPY "{self.name}" ({columns}) FROM STDIN') as copy:
            for row in self.rows:
                copy.write_row(row)


# --- the simulated world ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Committee:
    id: int
    inst: "Inst"
    prefix: str
    validity_months: int
    review_months: int
    members: list = field(default_factory=list)  # (id, is_medical)
    alliances: set = field(default_factory=set)
    meeting_weekday: int = 2


@dataclass(eq=False)
class Inst:
    id: int
    region: Region
    code: str
    name_zh: str
    weight: float
    ro: int = 0
    eo: int = 0
    pis: list = field(default_factory=list)
    departments: list = field(default_factory=list)
    committee: Committee | None = None


@dataclass(eq=False)
class DecisionRow:
    id: int
    submission_id: int
    committee: Committee
    outcome: str
    decided_at: dt.datetime
    decided_by: int
    kind: str
    meeting_id: int | None = None
    votes: tuple | None = None
    requested_modifications: str = ""
    valid_until: dt.date | None = None


@dataclass(eq=False)
class SiteSim:
    id: int
    trial: "TrialSim"
    inst: Inst
    role: str
    pi: int
    target: int
    received: dt.date | None = None
    approved: dt.date | None = None
    contract: dt.date | None = None
    initiated: dt.date | None = None
    first_patient: dt.date | None = None
    valid_until: dt.date | None = None
    enrolled: list = field(default_factory=list)  # (occurred_on, signed count) of enrolled entries


@dataclass(eq=False)
class TrialSim:
    id: int
    lead: Inst
    kind: str
    category: str
    phase: str
    sponsor: "Sponsor | None"
    pi: int
    target: int
    created_at: dt.datetime
    protocol: str
    status: str = TS.DRAFT
    status_at: dt.datetime | None = None
    before_suspension: str = ""
    history: list = field(default_factory=list)  # (from, to, at, actor, reason)
    sites: list = field(default_factory=list)
    approval: DecisionRow | None = None
    valid_until: dt.date | None = None
    active: list = field(default_factory=list)  # [start, end] date intervals while active
    ended_at: dt.datetime | None = None  # completed or terminated
    completed_on: dt.date | None = None

    def status_on(self, day: dt.date) -> str:
        status = TS.DRAFT
        for _from, to, at, _actor, _reason in self.history:
            if at.date() > day:
                break
            status = to
        return status


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Fill an empty database with a realistic synthetic data set at provincial scale (institutions, trials, "
            "sites, ethics reviews, recognition requests, the enrolment ledger and subsidy claims) for the "
            "benchmark. Loads the policy seeds and the holiday calendar first. Same --seed and --today, same data."
        )

    def add_arguments(self, parser):
        add = parser.add_argument
        add("--institutions", type=int, default=200, help=_("Institutions (default 200)."))
        add("--trials", type=int, default=5000, help=_("Trials (default 5,000)."))
        add("--sites", type=int, default=15000, help=_("Trial sites, lead sites included (default 15,000)."))
        add("--enrolment-events", type=int, default=500000, help=_("Enrolment ledger entries (default 500,000)."))
        add("--recognition-requests", type=int, default=20000, help=_("Mutual-recognition requests (default 20,000)."))
        add("--claims", type=int, default=2000, help=_("Subsidy claims (default 2,000)."))
        add("--seed", type=int, default=1, help=_("Seed of the random generator (default 1)."))
        add(
            "--today",
            type=dt.date.fromisoformat,
            default=None,
            help=_("The day the data set ends (YYYY-MM-DD; default: today). Everything happened before it."),
        )

    def handle(self, *args, **options):
        for name in ("institutions", "trials", "sites", "enrolment_events", "recognition_requests", "claims"):
            if options[name] < 0:
                raise CommandError(_("--%(name)s cannot be negative.") % {"name": name.replace("_", "-")})
        if options["institutions"] < 2 and options["sites"] > options["trials"]:
            raise CommandError(_("Multi-centre trials need at least two institutions."))
        if options["sites"] < options["trials"]:
            raise CommandError(_("Every trial has a lead site: --sites must be at least --trials."))
        if Institution.objects.exists() or Trial.objects.exists():
            raise CommandError(
                _(
                    "The database already holds institutions or trials. generate_scale_data fills an empty "
                    "database: create one (createdb), migrate it and run the command there."
                )
            )
        started = time.monotonic()
        self.stdout.write(_("Loading the policy seeds and the holiday calendar…"))
        call_command("sync_calendar", stdout=_Silent())
        call_command("load_seeds", stdout=_Silent())
        with transaction.atomic():
            generator = Generator(self, options)
            generator.run()
        self.stdout.write(self.style.SUCCESS(_("Done in %(seconds).1f s.") % {"seconds": time.monotonic() - started}))


class _Silent:
    def write(self, *args, **kwargs):
        pass

    def flush(self):
        pass


class Generator:
    def __init__(self, command: Command, options: dict):
        self.out = command.stdout
        self.style = command.style
        self.opts = options
        self.rng = random.Random(options["seed"])
        self.today = options["today"] or timezone.localdate()
        # Everything generated happened before the day begins, so nothing lies in the future whenever it is read.
        self.now = dt.datetime.combine(self.today, dt.time(0), tzinfo=TZ)
        self.start = dt.date(self.today.year - YEARS_OF_HISTORY, 1, 1)
        self.calendar = workdays.Calendar.load(self.start - ONE_DAY, self.today + dt.timedelta(days=120))
        self.tables: dict[type, Table] = {}
        self._phase_started = time.monotonic()

    # --- plumbing -------------------------------------------------------------------------------------------------

    def table(self, model) -> Table:
        if model not in self.tables:
            start = 1
            pk = model._meta.pk
            if isinstance(pk, models.AutoField | models.BigAutoField):
                start = (model.objects.aggregate(top=models.Max("pk"))["top"] or 0) + 1
            self.tables[model] = Table(model, start)
        return self.tables[model]

    def phase(self, label: str) -> None:
        now = time.monotonic()
        self.out.write(f"  {label}: {now - self._phase_started:.1f} s")
        self._phase_started = now

    def office(self, day: dt.date) -> dt.datetime:
        """A moment in office hours on a day (weekends too: hospitals report then, less often)."""
        return dt.datetime.combine(day, dt.time(self.rng.randint(8, 17), self.rng.randint(0, 59)), tzinfo=TZ)

    def after(self, moment: dt.datetime, low: float, high: float) -> dt.datetime:
        """A moment in office hours some days after ``moment`` (never before it)."""
        days = self.rng.uniform(low, high)
        later = self.office(moment.astimezone(TZ).date() + dt.timedelta(days=int(days)))
        if later <= moment:
            later = moment + dt.timedelta(minutes=self.rng.randint(15, 180))
        return later

    def lognormal_days(self, median: float, sigma: float) -> int:
        return max(1, int(self.rng.lognormvariate(math.log(median), sigma)))

    def name(self) -> str:
        given = self.rng.choice(GIVEN) + (self.rng.choice(GIVEN) if self.rng.random() < 0.7 else "")
        return self.rng.choice(SURNAMES) + given

    # --- the run ----------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.out.write(
            _("Simulating (seed %(seed)s, up to %(today)s):") % {"seed": self.opts["seed"], "today": self.today}
        )
        self.make_registry()
        self.phase(_("institutions, people, committees and sponsors"))
        self.make_alliances()
        self.make_trials()
        self.phase(_("trials, lifecycles and the lead committees' reviews"))
        self.make_participating_sites()
        self.fill_amendment_requests()
        self.finish_requests()
        self.phase(_("participating sites, local reviews and recognition requests"))
        self.make_enrolment()
        self.phase(_("enrolment ledger"))
        self.make_claims()
        self.phase(_("subsidy claims"))
        self.finish_rows()
        self.write()
        self.make_tokens()

    # --- registry ---------------------------------------------------------------------------------------------------

    def make_registry(self) -> None:
        rng = self.rng
        regions = list(Region.objects.order_by("code"))
        self.regions = regions
        weights = [REGION_WEIGHTS.get(r.code, 0.03) for r in regions]
        n = self.opts["institutions"]
        per_region = _apportion(n, weights, minimum=1 if n >= len(regions) else 0)
        inst_table, dept_table = self.table(Institution), self.table(Department)
        self.users = self.table(User)
        self.insts: list[Inst] = []
        self.insts_by_region = defaultdict(list)
        credit = 0
        for region, count in zip(regions, per_region, strict=True):
            places = _pairs(PLACES.get(region.code, [f"{region.name_zh}:{region.name_en or region.code}"]))
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
                    credit_code=f"12{region.pk % 100:02d}{credit:013d}X",
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

    def make_committees(self) -> None:
        rng = self.rng
        committees, members = self.table(EthicsCommittee), self.table(CommitteeMember)
        specialties = CommitteeMember.Specialty
        for inst in self.insts:
            short = inst.name_zh.removeprefix(inst.region.name_zh)[:4]
            review_months = rng.choices([12, 6], weights=[0.85, 0.15])[0]
            committee = Committee(0, inst, f"{short}伦审", 12, review_months, meeting_weekday=rng.randint(0, 4))
            committee.id = committees.add(
                institution_id=inst.id,
                name_zh=f"{inst.name_zh}医学伦理委员会",
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
        self.meetings: dict[tuple, dict] = {}
        self.letter_decisions: list[DecisionRow] = []

    def make_sponsors(self) -> None:
        rng = self.rng
        sponsors = self.table(Sponsor)
        n = max(10, self.opts["trials"] // 15)
        weights = [REGION_WEIGHTS.get(r.code, 0.03) for r in self.regions]
        used = set()
        self.sponsors: list[Sponsor] = []
        syllables = _pairs(SYLLABLES)
        for k in range(n):
            region = rng.choices(self.regions, weights=weights)[0]
            place_zh, place_en = rng.choice(_pairs(PLACES.get(region.code, [f"{region.name_zh}:{region.code}"])))
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
                credit_code=f"91{region.pk % 100:02d}{k + 1:013d}Y",
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
        alliances = list(Alliance.objects.filter(is_active=True).prefetch_related("regions"))
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
            for region_id in region_ids:
                for inst in self.insts_by_region[region_id]:
                    if rng.random() < 0.85:
                        memberships.add(
                            alliance_id=alliance.pk,
                            committee_id=inst.committee.id,
                            joined_on=self.start - dt.timedelta(days=rng.randint(0, 400)),
                        )
                        inst.committee.alliances.add(alliance.pk)

    def shared_alliance(self, lead: Committee, other: Committee) -> Alliance | None:
        shared = lead.alliances & other.alliances
        if not shared:
            return None
        return min((self.alliances[a] for a in shared), key=lambda a: (a.feedback_working_days, a.pk))

    # --- ethics reviews ---------------------------------------------------------------------------------------------

    def event(self, submission_id, kind, from_status, to_status, actor, at, note="") -> None:
        self.table(SubmissionEvent).add(
            submission_id=submission_id,
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            actor_id=actor,
            at=at,
            note=note,
        )

    def meeting(self, committee: Committee, earliest: dt.datetime) -> dict:
        """The committee's monthly meeting (its weekday in the second week, 14:00) on or after ``earliest``."""
        year, month = earliest.year, earliest.month
        while True:
            first = dt.date(year, month, 1)
            day = first + dt.timedelta(days=(committee.meeting_weekday - first.weekday()) % 7 + 7)
            when = dt.datetime.combine(day, dt.time(14), tzinfo=TZ)
            if when >= earliest:
                break
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        key = (committee.id, when)
        if key not in self.meetings:
            self.meetings[key] = {"id": self.table(Meeting).alloc(), "committee": committee, "at": when, "items": []}
        return self.meetings[key]

    def review(
        self,
        *,
        trial: TrialSim,
        committee: Committee,
        kind: str,
        created_at: dt.datetime,
        by: int,
        full_board: bool,
        outcomes: dict,
        responds_to: int | None = None,
        summary: str = "",
    ) -> tuple[int, dt.datetime | None, DecisionRow | None]:
        """One application through intake, routing, expedited review or a meeting, to the decision and its letter,
        as far as it got by now. Returns (submission id, submitted at, decision or None)."""
        rng = self.rng
        sid = self.table(Submission).alloc()
        eo = committee.inst.eo
        row = {
            "id": sid,
            "trial_id": trial.id,
            "committee_id": committee.id,
            "kind": kind,
            "responds_to_id": responds_to,
            "status": SS.DRAFT,
            "summary": summary,
            "submitted_by_id": by,
            "created_at": created_at,
            "review_type": "",
            "routing_reason": "",
            "missing_items": [],
            "details": {},
            "declarations": {},
        }
        self.event(sid, EV.CREATED, "", SS.DRAFT, by, created_at)
        decision = None

        def move(event, to, actor, at, note=""):
            """A step; ``to`` empty for an event that does not change the status (as ethics.services writes it)."""
            if at > self.now:
                return False
            self.event(sid, event, row["status"] if to else "", to, actor, at, note)
            row["status"] = to or row["status"]
            return True

        def done():
            self.table(Submission).add(**row)
            return sid, row.get("submitted_at"), decision

        at = self.after(created_at, 0, 6)
        if not move(EV.SUBMITTED, SS.SUBMITTED, by, at):
            return done()
        row["submitted_at"] = at
        row["reference"] = f"{committee.prefix}受〔{at.year}〕{sid:05d}号"
        if rng.random() < 0.08:
            at = self.after(at, 1, 3)
            items = ["研究者简历（签名版）", "知情同意书版本号与方案不一致"][: rng.randint(1, 2)]
            if not move(EV.RETURNED, SS.RETURNED, eo, at, note="；".join(items)):
                return done()
            row["missing_items"] = items
            at = self.after(at, 3, 15)
            if not move(EV.SUBMITTED, SS.SUBMITTED, by, at):
                return done()
            row["submitted_at"] = at
            row["missing_items"] = []
        at = self.after(at, 1, 4)
        if not move(EV.ACCEPTED, SS.ACCEPTED, eo, at):
            return done()
        at = at + dt.timedelta(minutes=rng.randint(30, 600))
        review_type = Submission.ReviewType.FULL_BOARD if full_board else Submission.ReviewType.EXPEDITED
        to = SS.AWAITING_MEETING if full_board else SS.EXPEDITED_REVIEW
        reason = "首次审查，高风险细胞与基因治疗研究" if full_board else "不大于最小风险的修改或定期审查"
        if not move(EV.ROUTED, to, eo, at, note=reason):
            return done()
        row["review_type"], row["routing_reason"] = review_type, reason
        outcome = _pick(rng, outcomes)
        meeting_id = votes = None
        if full_board:
            meeting = self.meeting(committee, at + dt.timedelta(days=7))
            scheduled = min(self.after(at, 1, 5), meeting["at"] - dt.timedelta(hours=20))
            if not move(EV.SCHEDULED, "", eo, max(scheduled, at + dt.timedelta(minutes=5))):
                return done()
            meeting["items"].append(sid)
            decided_at = meeting["at"] + dt.timedelta(minutes=rng.randint(30, 200))
            meeting_id = meeting["id"]
            present = len(committee.members) - rng.randint(0, 2)
            against = rng.randint(0, 1)
            votes = (present - against, against)
        else:
            assigned = at + dt.timedelta(minutes=rng.randint(20, 300))
            if not move(EV.REVIEWER_ASSIGNED, "", eo, assigned):
                return done()
            medical = [m for m, is_medical in committee.members if is_medical]
            reviewers = rng.sample(medical, min(len(medical), rng.randint(1, 2)))
            opinion_at = self.after(assigned, 2, 10)
            for member_id in reviewers:
                recorded = opinion_at if opinion_at <= self.now else None
                self.table(ReviewAssignment).add(
                    submission_id=sid,
                    member_id=member_id,
                    assigned_at=assigned,
                    opinion=outcome if recorded else "",
                    risk_benefit_comment="风险受益比可接受" if recorded else "",
                    recorded_at=recorded,
                )
            if not move(EV.OPINION_RECORDED, "", eo, opinion_at):
                return done()
            decided_at = self.after(opinion_at, 0, 3)
        if not move(EV.DECIDED, SS.DECIDED, eo, decided_at, note=str(OUT(outcome).label)):
            return done()
        row["decided_at"] = decided_at
        text = {
            OUT.APPROVE_AFTER_MODIFICATION: "请按审查意见修改知情同意书中的风险描述后报送",
            OUT.MODIFY_AND_RESUBMIT: "剂量递增方案的安全性依据不足，请补充临床前数据后重新提交",
            OUT.DISAPPROVE: "研究的风险受益比不可接受",
        }.get(outcome, "")
        decision = DecisionRow(
            id=self.table(Decision).alloc(),
            submission_id=sid,
            committee=committee,
            outcome=outcome,
            decided_at=decided_at,
            decided_by=eo,
            kind=kind,
            meeting_id=meeting_id,
            votes=votes,
            requested_modifications=text,
        )
        if outcome == OUT.APPROVE and kind in (SK.INITIAL, SK.CONTINUING_REVIEW, SK.MODIFICATION_RESPONSE):
            decision.valid_until = _add_months(decided_at.date(), committee.validity_months)
        self.letter_decisions.append(decision)
        self.event(sid, EV.LETTER_ISSUED, "", "", eo, decided_at + dt.timedelta(minutes=rng.randint(5, 90)))
        return done()

    def report(self, *, trial: TrialSim, committee: Committee, kind: str, at: dt.datetime, by: int, summary: str):
        """A report the committee acknowledges (SAE, closure) as far as it got by now."""
        sid = self.table(Submission).alloc()
        eo = committee.inst.eo
        created = at - dt.timedelta(days=self.rng.randint(0, 3), minutes=self.rng.randint(5, 600))
        events = [(EV.CREATED, "", SS.DRAFT, by, created), (EV.SUBMITTED, SS.DRAFT, SS.SUBMITTED, by, at)]
        accepted = self.after(at, 0, 3)
        events.append((EV.ACCEPTED, SS.SUBMITTED, SS.ACCEPTED, eo, accepted))
        events.append((EV.ACKNOWLEDGED, SS.ACCEPTED, SS.ACKNOWLEDGED, eo, self.after(accepted, 0, 5)))
        status = SS.DRAFT
        for kind_, from_status, to_status, actor, when in events:
            if when > self.now:
                break
            self.event(sid, kind_, from_status, to_status, actor, when)
            status = to_status
        self.table(Submission).add(
            id=sid,
            trial_id=trial.id,
            committee_id=committee.id,
            kind=kind,
            status=status,
            reference=f"{committee.prefix}报〔{at.year}〕{sid:05d}号" if status != SS.DRAFT else "",
            summary=summary,
            submitted_by_id=by,
            created_at=created,
            submitted_at=at if status != SS.DRAFT else None,
        )

    def approve_with_modifications(self, trial, committee, *, kind, created_at, by, full_board, outcomes):
        """An application and, while the committee asks for modifications, the applicant's responses.
        Returns (first submission's submitted at, the final decision or None)."""
        sid, submitted, decision = self.review(
            trial=trial, committee=committee, kind=kind, created_at=created_at, by=by, full_board=full_board,
            outcomes=outcomes, summary=_summary(kind, trial),
        )  # fmt: skip
        while decision is not None and decision.outcome in (OUT.APPROVE_AFTER_MODIFICATION, OUT.MODIFY_AND_RESUBMIT):
            full = decision.outcome == OUT.MODIFY_AND_RESUBMIT
            sid, _submitted, decision = self.review(
                trial=trial,
                committee=committee,
                kind=SK.MODIFICATION_RESPONSE,
                created_at=self.after(decision.decided_at, 5, 30),
                by=by,
                full_board=full,
                outcomes={OUT.APPROVE: 0.88, OUT.DISAPPROVE: 0.12} if full else {OUT.APPROVE: 1},
                responds_to=sid,
                summary="按审查意见修改后的回复及修订文件",
            )
            if decision is not None and decision.kind == SK.MODIFICATION_RESPONSE:
                decision.kind = SK.INITIAL if kind == SK.INITIAL else kind
        return submitted, decision

    def validity_chain(self, trial: TrialSim, committee: Committee, decision: DecisionRow, end: dt.datetime):
        """Continuing reviews that keep an approval valid while the study runs; returns the last valid_until."""
        valid_until = decision.valid_until
        last = decision
        while True:
            due = _add_months(last.decided_at.date(), committee.review_months)
            due = min(due, valid_until)
            created = self.office(due - dt.timedelta(days=self.rng.randint(25, 45)))
            if created > end or created > self.now:
                break
            _sid, _submitted, cr = self.review(
                trial=trial, committee=committee, kind=SK.CONTINUING_REVIEW, created_at=created, by=trial.pi,
                full_board=False, outcomes={OUT.APPROVE: 1}, summary="年度定期跟踪审查报告",
            )  # fmt: skip
            if cr is None:
                break
            valid_until = cr.valid_until
            last = cr
        last.next_review = _add_months(last.decided_at.date(), committee.review_months) if not trial.ended_at else None
        return valid_until

    # --- trials -----------------------------------------------------------------------------------------------------

    def make_trials(self) -> None:
        rng = self.rng
        n = self.opts["trials"]
        span = (self.today - ONE_DAY - self.start).days
        inst_weights = [i.weight for i in self.insts]
        self.trials: list[TrialSim] = []
        protocol_seq = defaultdict(int)
        sites = self.table(TrialSite)
        for _k in range(n):
            lead = rng.choices(self.insts, weights=inst_weights)[0]
            kind = rng.choices(list(Trial.Kind.values), weights=[0.55, 0.37, 0.08])[0]
            category = _pick(rng, CATEGORY_WEIGHTS)
            if kind == Trial.Kind.REGISTRATION:
                phase = rng.choices(["1", "1_2", "2", "2_3", "3"], weights=[0.35, 0.25, 0.2, 0.08, 0.12])[0]
                sponsor = rng.choice(self.enterprises)
            elif kind == Trial.Kind.IIT:
                phase = rng.choices(["early", "1", "1_2", "2", "na"], weights=[0.4, 0.3, 0.15, 0.1, 0.05])[0]
                sponsor = rng.choice(self.academic) if rng.random() < 0.3 else None
            else:
                phase = rng.choice(["na", "4", "early"])
                sponsor = None
            # More trials every year: the creation date leans towards the present.
            created = self.office(self.start + dt.timedelta(days=int(span * math.sqrt(rng.random()))))
            year = created.year
            protocol_seq[(lead.id, year)] += 1
            low, high = TARGET_BY_PHASE[phase]
            trial = TrialSim(
                id=self.table(Trial).alloc(),
                lead=lead,
                kind=kind,
                category=category,
                phase=phase,
                sponsor=sponsor,
                pi=rng.choice(lead.pis),
                target=rng.randint(low, high),
                created_at=created,
                protocol=f"{lead.code}-{CATEGORY_CODES[category]}-{year}-{protocol_seq[(lead.id, year)]:03d}",
            )
            trial.status_at = created
            trial.sites.append(SiteSim(sites.alloc(), trial, lead, TrialSite.SiteRole.LEAD, trial.pi, trial.target))
            self.trials.append(trial)
            self.simulate_lifecycle(trial)
        self.plan_participating_sites()

    def move(self, trial: TrialSim, to: str, at: dt.datetime, actor: int, reason: str = "") -> bool:
        if at > self.now:
            return False
        if to == TS.SUSPENDED:
            trial.before_suspension = trial.status
        elif trial.status == TS.SUSPENDED:
            trial.before_suspension = ""
        trial.history.append((trial.status, to, at, actor, reason))
        trial.status, trial.status_at = to, at
        return True

    def simulate_lifecycle(self, trial: TrialSim) -> None:
        """Draft → submitted → under review → (ethics) approved → active → closed → completed, with withdrawals,
        suspensions and terminations on the way; stops where the trial is today."""
        rng = self.rng
        lead, ro, committee = trial.lead, trial.lead.ro, trial.lead.committee
        lead_site = trial.sites[0]
        if rng.random() < 0.02:
            self.move(
                trial, TS.WITHDRAWN, self.after(trial.created_at, 10, 90), trial.pi, "申办方调整研发策略，撤回立项"
            )
            return
        # Drafting takes weeks, now and then months (documents, the sponsor's contract, the HGR application).
        submitted = self.after(trial.created_at, 2, 2 + self.lognormal_days(18, 0.9))
        if not self.move(trial, TS.SUBMITTED, submitted, trial.pi):
            return
        review_started = self.after(submitted, 1, 10)
        if not self.move(trial, TS.UNDER_REVIEW, review_started, ro):
            return
        full_board = rng.random() < 0.7
        outcomes = (
            {
                OUT.APPROVE: 0.72,
                OUT.APPROVE_AFTER_MODIFICATION: 0.18,
                OUT.MODIFY_AND_RESUBMIT: 0.05,
                OUT.DISAPPROVE: 0.05,
            }
            if full_board
            else {OUT.APPROVE: 0.8, OUT.APPROVE_AFTER_MODIFICATION: 0.17, OUT.MODIFY_AND_RESUBMIT: 0.03}
        )
        ethics_submitted, decision = self.approve_with_modifications(
            trial, committee, kind=SK.INITIAL, created_at=review_started, by=trial.pi, full_board=full_board,
            outcomes=outcomes,
        )  # fmt: skip
        if ethics_submitted:
            lead_site.received = ethics_submitted.date()
        if decision is None:
            return
        if decision.outcome == OUT.DISAPPROVE:
            self.move(trial, TS.WITHDRAWN, decision.decided_at + dt.timedelta(minutes=5), lead.eo, "伦理委员会不同意")
            return
        trial.approval = decision
        self.move(trial, TS.APPROVED, decision.decided_at + dt.timedelta(minutes=2), lead.eo)
        lead_site.approved = decision.decided_at.date()
        if trial.kind == Trial.Kind.REGISTRATION:
            trial.nmpa = f"CXSL{decision.decided_at.year % 100:02d}{rng.randint(1000, 99999):05d}"
        # Start-up at the lead site: contract, then initiation, when the trial becomes active.
        contract = lead_site.approved + dt.timedelta(days=self.lognormal_days(45, 0.8))
        initiated = contract + dt.timedelta(days=self.lognormal_days(25, 0.7))
        if rng.random() < 0.03:
            stop = self.after(decision.decided_at, 60, 240)
            if stop.date() < initiated and self.move(trial, TS.TERMINATED, stop, ro, "申办方终止研发计划"):
                trial.ended_at = stop
                lead_site.contract = contract if contract < stop.date() else None
                self.after_end(trial, committee, decision)
                return
        lead_site.contract = contract if contract < self.today else None
        activation = self.office(initiated)
        if not self.move(trial, TS.ACTIVE, activation, ro):
            self.after_end(trial, committee, decision)
            return
        lead_site.initiated = initiated
        active_from = initiated
        months = rng.uniform(8, 30) if trial.target > 30 else rng.uniform(6, 20)
        close = activation + dt.timedelta(days=int(months * 30.4))
        ended = False
        if rng.random() < 0.06:
            suspend = activation + (close - activation) * rng.uniform(0.2, 0.8)
            suspend = self.office(suspend.date())
            if self.move(trial, TS.SUSPENDED, suspend, lead.eo, "发生严重不良事件，暂停入组并评估安全性"):
                trial.active.append([active_from, suspend.date() - ONE_DAY])
                length = rng.randint(30, 150)
                if rng.random() < 0.3:
                    stop = self.after(suspend, 10, length)
                    if self.move(trial, TS.TERMINATED, stop, lead.eo, "安全性评估后终止研究"):
                        trial.ended_at = stop
                    ended = True
                else:
                    resume = self.after(suspend, length, length + 5)
                    if self.move(trial, TS.ACTIVE, resume, lead.eo, "安全性评估完成，恢复研究"):
                        active_from = resume.date()
                        close += dt.timedelta(days=length)
                    else:
                        ended = True
            else:
                ended = True
                trial.active.append([active_from, self.today - ONE_DAY])
        if not ended:
            if rng.random() < 0.04:
                span = (close.date() - active_from).days
                stop = self.office(active_from + dt.timedelta(days=int(span * rng.uniform(0.1, 0.9))))
                if stop > trial.status_at and self.move(trial, TS.TERMINATED, stop, ro, "入组困难，申办方终止研究"):
                    trial.ended_at = stop
                    trial.active.append([active_from, stop.date() - ONE_DAY])
                    ended = True
            if not ended:
                if self.move(trial, TS.ENROLMENT_CLOSED, close, ro):
                    trial.active.append([active_from, close.date() - ONE_DAY])
                    complete = self.after(close, 90, 400)
                    if self.move(trial, TS.COMPLETED, complete, ro):
                        trial.ended_at = complete
                        trial.completed_on = complete.date()
                else:
                    trial.active.append([active_from, self.today - ONE_DAY])
        trial.active = [[a, min(b, self.today - ONE_DAY)] for a, b in trial.active if a <= min(b, self.today - ONE_DAY)]
        self.after_end(trial, committee, decision)

    def after_end(self, trial: TrialSim, committee: Committee, decision: DecisionRow) -> None:
        """Continuing reviews while the study runs, SAE reports while it enrols, and its closure report."""
        rng = self.rng
        end = trial.ended_at or self.now
        trial.valid_until = self.validity_chain(trial, committee, decision, end)
        trial.sites[0].valid_until = trial.valid_until
        for start, stop in trial.active:
            for _k in range(rng.choices([0, 1, 2, 3], weights=[0.75, 0.15, 0.07, 0.03])[0]):
                when = self.office(start + dt.timedelta(days=rng.randint(0, max(0, (stop - start).days))))
                self.report(trial=trial, committee=committee, kind=SK.SAE, at=when, by=trial.pi,
                            summary="严重不良事件报告：细胞因子释放综合征（3级）")  # fmt: skip
        if trial.completed_on:
            self.report(trial=trial, committee=committee, kind=SK.FINAL_REPORT, at=self.after(trial.ended_at, 5, 40),
                        by=trial.pi, summary="研究结题报告")  # fmt: skip

    # --- participating sites ----------------------------------------------------------------------------------------

    def plan_participating_sites(self) -> None:
        rng = self.rng
        extra = self.opts["sites"] - len(self.trials)
        if extra <= 0:
            return
        multi_weight = {Trial.Kind.REGISTRATION: 0.85, Trial.Kind.IIT: 0.45, Trial.Kind.OTHER: 0.3}
        multi = [t for t in self.trials if rng.random() < multi_weight[t.kind]]
        rng.shuffle(multi)
        if not multi:
            multi = self.trials[:]
        multi = multi[: max(1, min(len(multi), extra))]
        cap = len(self.insts) - 1
        counts = _apportion(extra, [rng.lognormvariate(0, 0.8) for _t in multi], minimum=1, caps=[cap] * len(multi))
        sites = self.table(TrialSite)
        weights = [i.weight for i in self.insts]
        for trial, count in zip(multi, counts, strict=True):
            taken = {trial.lead.id}
            same_region = self.insts_by_region[trial.lead.region.pk]
            while len(taken) < count + 1:
                pool = same_region if rng.random() < 0.7 and len(same_region) > 1 else self.insts
                inst = rng.choices(pool, weights=[i.weight for i in pool] if pool is not self.insts else weights)[0]
                if inst.id in taken:
                    continue
                taken.add(inst.id)
                trial.sites.append(
                    SiteSim(sites.alloc(), trial, inst, TrialSite.SiteRole.PARTICIPATING, rng.choice(inst.pis), 0)
                )
            participating = trial.sites[1:]
            lead_share = rng.uniform(0.3, 0.5)
            trial.sites[0].target = max(1, int(trial.target * lead_share))
            rest = trial.target - trial.sites[0].target
            for site, share in zip(participating, _apportion(max(rest, 0), [1] * len(participating)), strict=True):
                site.target = share

    def make_participating_sites(self) -> None:
        """Each participating site of an approved trial: recognition of the lead's result through a shared alliance,
        or a full local review; then contract, initiation and (later) enrolment."""
        rng = self.rng
        eligible = []
        for trial in self.trials:
            if trial.approval is None:
                continue
            for site in trial.sites[1:]:
                if self.shared_alliance(trial.lead.committee, site.inst.committee):
                    eligible.append(site)
        wanted = self.opts["recognition_requests"]
        asked = {id(s) for s in (rng.sample(eligible, wanted) if len(eligible) > wanted else eligible)}
        self.requests: list[dict] = []
        self.requests_by_site = defaultdict(list)
        for trial in self.trials:
            if trial.approval is None:
                continue
            lead_decision = trial.approval
            for site in trial.sites[1:]:
                if id(site) in asked:
                    alliance = self.shared_alliance(trial.lead.committee, site.inst.committee)
                    request = self.open_request(
                        alliance, trial, site, lead_decision, SK.INITIAL, lead_decision.decided_at
                    )
                    site.received = request["received_at"].date()
                    answered = request.get("responded_at")
                    if request["status"] in (RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS):
                        site.approved = answered.date()
                        site.valid_until = trial.valid_until
                    elif request["status"] == RS.DECLINED:
                        self.local_review(trial, site, answered + dt.timedelta(hours=2), declined=request)
                else:
                    start = self.after(lead_decision.decided_at, 5, 60)
                    if start <= (trial.ended_at or self.now):
                        self.local_review(trial, site, start)
                self.site_startup(trial, site)

    def local_review(self, trial: TrialSim, site: SiteSim, start: dt.datetime, declined: dict | None = None) -> None:
        committee = site.inst.committee
        submitted, decision = self.approve_with_modifications(
            trial, committee, kind=SK.INITIAL, created_at=start, by=site.pi, full_board=self.rng.random() < 0.5,
            outcomes={OUT.APPROVE: 0.85, OUT.APPROVE_AFTER_MODIFICATION: 0.15},
        )  # fmt: skip
        if declined is not None:
            declined["local_review_id"] = decision.submission_id if decision else None
        if submitted and site.received is None:
            site.received = submitted.date()
        if decision is not None and decision.outcome == OUT.APPROVE:
            site.approved = decision.decided_at.date()
            site.valid_until = self.validity_chain(trial, committee, decision, trial.ended_at or self.now)

    def site_startup(self, trial: TrialSim, site: SiteSim) -> None:
        if site.approved is None:
            return
        stop = trial.ended_at.date() if trial.ended_at else self.today
        contract = site.approved + dt.timedelta(days=self.lognormal_days(55, 0.85))
        if contract >= stop:
            return
        site.contract = contract
        initiated = contract + dt.timedelta(days=self.lognormal_days(28, 0.75))
        first_active = trial.active[0][0] if trial.active else None
        if first_active is None or initiated >= stop:
            return
        site.initiated = max(initiated, first_active)
        if site.initiated >= stop:
            site.initiated = None

    # --- recognition requests ---------------------------------------------------------------------------------------

    def open_request(self, alliance, trial, site, decision: DecisionRow, subject: str, received_at) -> dict:
        """A request as requests_open_for_decision opens it, and the participating office's answer (if any yet)."""
        rng = self.rng
        deadline = compute_deadline(alliance, received_at, self.calendar)
        request = {
            "id": self.table(RecognitionRequest).alloc(),
            "alliance_id": alliance.pk,
            "trial_id": trial.id,
            "site_id": site.id,
            "committee": site.inst.committee,
            "lead_decision_id": decision.id,
            "subject": subject,
            "received_at": received_at,
            **deadline,
        }
        due = deadline["due_at"]
        roll = rng.random()
        if roll < 0.015:
            request["withdrawn_at"] = self.after(received_at, 0, 2)
        elif roll < 0.83:
            # On time: somewhere between receipt and the deadline, mostly early.
            share = rng.random() ** 1.6 * 0.9
            request["responded_at"] = received_at + dt.timedelta(minutes=10) + (due - received_at) * share
        elif roll < 0.95:
            request["responded_at"] = due + dt.timedelta(hours=rng.uniform(1, 24 * 12))
        else:
            request["responded_at"] = due + dt.timedelta(days=rng.uniform(15, 90))
        answered = request.get("responded_at")
        if answered and answered <= self.now:
            # An amendment to a study the site already recognised is recognised (declining would reopen the study).
            declined = 0.07 if subject == SK.INITIAL else 0
            request["status"] = rng.choices(
                [RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS, RS.DECLINED], weights=[0.78, 0.15, declined]
            )[0]
        elif request.get("withdrawn_at") and request["withdrawn_at"] <= self.now:
            request["status"] = RS.WITHDRAWN
        else:
            request["status"] = RS.OPEN
            request.pop("responded_at", None)
        self.requests.append(request)
        self.requests_by_site[site.id].append(request)
        return request

    def fill_amendment_requests(self) -> None:
        """Amendments the lead committee approves ask the sites that recognised the trial again, until the
        number of requests asked for is reached."""
        rng = self.rng
        remaining = self.opts["recognition_requests"] - len(self.requests)
        candidates = [
            t
            for t in self.trials
            if t.approval is not None
            and t.active
            and any(r["status"] in (RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS)
                    for s in t.sites[1:] for r in self.requests_by_site[s.id])
        ]  # fmt: skip
        attempts = 0
        while remaining > 0 and candidates:
            attempts += 1
            if attempts > 50 * (self.opts["recognition_requests"] + 10):
                break
            trial = rng.choice(candidates)
            start, stop = trial.active[0][0], trial.active[-1][1]
            when = self.office(start + dt.timedelta(days=rng.randint(0, max(0, (stop - start).days))))
            created = when - dt.timedelta(days=rng.randint(15, 30))
            recognised = [
                s
                for s in trial.sites[1:]
                if self.requests_by_site[s.id]
                and any(r.get("responded_at") and r["responded_at"] < created
                        and r["status"] in (RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS)
                        for r in self.requests_by_site[s.id])
            ]  # fmt: skip
            if not recognised:
                continue
            _sid, _submitted, decision = self.review(
                trial=trial, committee=trial.lead.committee, kind=SK.AMENDMENT, created_at=created, by=trial.pi,
                full_board=False, outcomes={OUT.APPROVE: 1}, summary="方案修订：增加剂量扩展队列，更新知情同意书",
            )  # fmt: skip
            if decision is None:
                continue
            for site in recognised[:remaining]:
                alliance = self.shared_alliance(trial.lead.committee, site.inst.committee)
                self.open_request(alliance, trial, site, decision, SK.AMENDMENT, decision.decided_at)
            remaining -= min(len(recognised), remaining)
        if remaining > 0:
            raise CommandError(
                _(
                    "Only %(made)d recognition requests fit the generated trials; ask for fewer or for more "
                    "trials and sites."
                )
                % {"made": len(self.requests)}
            )

    def finish_requests(self) -> None:
        """Supersede requests still open when the site's next one arrived; then deadlines' effects and rows."""
        table, effects = self.table(RecognitionRequest), self.table(RecognitionEffect)
        for requests in self.requests_by_site.values():
            requests.sort(key=lambda r: r["received_at"])
            for request, following in itertools.pairwise(requests):
                if request["status"] == RS.WITHDRAWN:
                    continue
                if request["status"] == RS.OPEN or (
                    request.get("responded_at") and request["responded_at"] > following["received_at"]
                ):
                    request["status"] = RS.SUPERSEDED
                    request["superseded_by_id"] = following["id"]
                    request["until"] = following["received_at"]
                    request.pop("responded_at", None)
        for request in self.requests:
            committee = request.pop("committee")
            answered = request.pop("responded_at", None)
            withdrawn = request.pop("withdrawn_at", None)
            until = request.pop("until", None) or answered or withdrawn or self.now
            if request["status"] == RS.WITHDRAWN:
                until = withdrawn
            for kind, when in ((RecognitionEffect.Kind.REMINDER, request["remind_at"]),
                               (RecognitionEffect.Kind.ESCALATION, request["due_at"])):  # fmt: skip
                if when < until and when <= self.now:
                    effects.add(
                        request_id=request["id"],
                        kind=kind,
                        due_at=request["due_at"],
                        happened_at=when + dt.timedelta(seconds=self.rng.randint(1, 55)),
                    )
                    if kind == RecognitionEffect.Kind.ESCALATION:
                        request["escalated_at"] = when + dt.timedelta(seconds=self.rng.randint(1, 55))
            if answered is not None:
                hours = workdays.working_hours_between(request["received_at"], answered, calendar=self.calendar)
                request.update(
                    responded_at=answered,
                    responded_by_id=committee.inst.eo,
                    late=answered > request["due_at"],
                    response_working_hours=(Decimal(hours.total_seconds()) / 3600).quantize(Decimal("0.01")),
                    response_note={
                        RS.RECOGNISED_WITH_CONDITIONS: "认可，条件：本中心须使用本院版本的知情同意书",
                        RS.DECLINED: "本中心受试人群特殊，需进行完整的本地审查",
                    }.get(request["status"], ""),
                )
            table.add(committee_id=committee.id, **request)

    # --- enrolment --------------------------------------------------------------------------------------------------

    def make_enrolment(self) -> None:
        """Allocate the events over the sites that enrol, in proportion to target and time open, then report
        subjects (screened → enrolled or screen failure → withdrawn or completed) in date order."""
        rng = self.rng
        enrolling = []
        for trial in self.trials:
            for site in trial.sites:
                windows = self.site_windows(trial, site)
                if windows:
                    enrolling.append((site, windows))
        total = self.opts["enrolment_events"]
        if total and not enrolling:
            raise CommandError(_("No site was open for enrolment; ask for more trials or a later --today."))
        weights = [
            max(site.target, 3) * sum((b - a).days + 1 for a, b in windows) ** 0.5 for site, windows in enrolling
        ]
        budgets = _apportion(total, weights) if enrolling else []
        self.entries, self.subjects = self.table(EnrolmentEntry), self.table(EnrolmentSubject)
        self.site_counts = self.table(SiteEnrolment)
        for (site, windows), budget in zip(enrolling, budgets, strict=True):
            if budget:
                # One site in ten reports counts per day instead of one subject code per entry.
                self.enrol_site(site, windows, budget, aggregate=rng.random() < 0.1)

    def site_windows(self, trial: TrialSim, site: SiteSim) -> list[list[dt.date]]:
        """The days a site may screen and enrol: the trial active, the site initiated, its approval valid."""
        if site.initiated is None:
            return []
        out = []
        for start, stop in trial.active:
            a, b = max(start, site.initiated, site.approved), min(stop, site.valid_until or stop)
            if a <= b:
                out.append([a, b])
        return out

    def subject_chain(self, days, day_set, last_open, exits_until) -> list[tuple[dt.date, str]]:
        rng = self.rng
        # Screening leans a little towards the first months (referrals waiting for the site to open).
        screened = days[min(len(days) - 1, int(len(days) * rng.random() ** 1.15))]
        chain = [(screened, EK.SCREENED)]
        enrolled = screened + dt.timedelta(days=rng.randint(3, 21))
        if rng.random() < 0.24:
            failed = screened + dt.timedelta(days=rng.randint(1, 14))
            chain.append((failed if failed in day_set else screened, EK.SCREEN_FAILED))
        elif enrolled in day_set:
            chain.append((enrolled, EK.ENROLLED))
            if rng.random() < 0.12:
                exit_day, exit_kind = enrolled + dt.timedelta(days=rng.randint(7, 300)), EK.WITHDRAWN
            else:
                exit_day, exit_kind = enrolled + dt.timedelta(days=rng.randint(90, 540)), EK.COMPLETED
            if exit_day <= exits_until:
                chain.append((exit_day, exit_kind))
        elif enrolled <= last_open or screened + dt.timedelta(days=21) < self.today:
            # The day the subject would have been enrolled fell outside the window: not enrolled after screening.
            chain.append((screened, EK.SCREEN_FAILED))
        return chain

    def enrol_site(self, site: SiteSim, windows, budget: int, aggregate: bool) -> None:
        """Exactly ``budget`` ledger entries for one site, its SiteEnrolment row equal to their sums."""
        rng = self.rng
        trial = site.trial
        days = []
        for a, b in windows:
            days.extend(a + dt.timedelta(days=k) for k in range((b - a).days + 1))
        day_set = set(days)
        last_open = windows[-1][1]
        exits_until = self.today - ONE_DAY
        if trial.ended_at:
            exits_until = min(exits_until, trial.ended_at.date())
        # About one entry in 150 is corrected; each correction is two entries (a reversal and its counterpart).
        corrections = min(budget // 10, int(budget / 150 + rng.random())) if budget >= 20 else 0
        main = budget - 2 * corrections
        events = []  # (date, order, kind, subject number)
        keys = set()
        subjects = 0
        while (len(keys) if aggregate else len(events)) < main:
            if aggregate and subjects > 10 * main:
                # Too few days open for that many daily counts: this site reports subject by subject after all.
                aggregate, events, keys, subjects = False, [], set(), 0
            subjects += 1
            chain = self.subject_chain(days, day_set, last_open, exits_until)
            if not aggregate:
                chain = chain[: main - len(events)]
            for day, kind in chain:
                events.append((day, ORDER[kind], kind, subjects))
                keys.add((day, ORDER[kind], kind))
        events.sort()
        if aggregate:
            grouped = defaultdict(int)
            for day, rank, kind, _subject in events:
                grouped[(day, rank, kind)] += 1
            # The earliest entries: every kept failure, enrolment or exit has its earlier events kept too.
            rows = [(day, kind, grouped[(day, rank, kind)], None) for day, rank, kind in sorted(grouped)[:main]]
        else:
            rows = [(day, kind, 1, subject) for day, _rank, kind, subject in events]
        reporters = (site.pi, site.inst.ro)
        last_reported = None
        subject_ids, previous_day, written = {}, {}, []
        for day, kind, count, subject in rows:
            reported = self.office(day + dt.timedelta(days=rng.choice((0, 0, 0, 1, 1, 2, 3))))
            if last_reported is not None and reported <= last_reported:
                reported = last_reported + dt.timedelta(seconds=rng.randint(30, 900))
            reported = min(reported, self.now - dt.timedelta(seconds=1))
            last_reported = reported
            subject_id = None
            if subject is not None:
                subject_id = subject_ids.get(subject)
                if subject_id is None:
                    subject_id = subject_ids[subject] = self.subjects.add(
                        trial_id=trial.id, site_id=site.id, code=f"{site.inst.code}-{subject:04d}", created_at=reported
                    )
            entry_id = self.entries.add(
                site_id=site.id,
                trial_id=trial.id,
                kind=kind,
                occurred_on=day,
                count=count,
                subject_id=subject_id,
                reported_by_id=rng.choice(reporters),
                reported_at=reported,
            )
            written.append([entry_id, day, kind, count, subject_id, reported, previous_day.get(subject)])
            if subject is not None:
                previous_day[subject] = day
        self.correct(site, written, corrections, day_set, exits_until, aggregate)
        counts = dict.fromkeys(EK.values, 0)
        live_enrolled = []
        for _id, day, kind, count, _subject_id, _reported, _prev, *flags in written:
            sign = -1 if "reversal" in flags else 1
            counts[kind] += sign * count
            if kind == EK.ENROLLED:
                site.enrolled.append((day, sign * count))
                if not flags:
                    live_enrolled.append(day)
        site.first_patient = min(live_enrolled, default=None)
        self.site_counts.add(
            site_id=site.id,
            trial_id=trial.id,
            screened=counts[EK.SCREENED],
            enrolled=counts[EK.ENROLLED],
            screen_failed=counts[EK.SCREEN_FAILED],
            withdrawn=counts[EK.WITHDRAWN],
            completed=counts[EK.COMPLETED],
            last_enrolled_on=max(live_enrolled, default=None),
            updated_at=max(row[5] for row in written),
        )

    def correct(self, site, written: list, corrections: int, day_set, exits_until, aggregate: bool) -> None:
        """Corrections as the ledger records them. An aggregate site reported a batch twice and reverses the
        duplicate; a site with subject codes reverses a subject's latest entry and reports it again on the day it
        really happened. ``written`` gets the new rows, flagged, and the reversed originals are flagged too."""
        if not corrections:
            return
        rng = self.rng
        trial = site.trial
        latest = {}
        for row in written:
            if row[4] is not None:
                latest[row[4]] = row
        if aggregate:
            pool = [row for row in written if row[2] in (EK.SCREENED, EK.ENROLLED)]
            chosen = [rng.choice(pool) for _k in range(corrections)]
        else:
            chosen = rng.sample(list(latest.values()), min(corrections, len(latest)))
        limit = self.now - dt.timedelta(seconds=1)
        for original in chosen:
            entry_id, day, kind, count, subject_id, reported, previous = original[:7]
            first_at = min(reported + dt.timedelta(minutes=rng.randint(2, 90)), limit)
            second_at = min(first_at + dt.timedelta(days=rng.randint(1, 6)), limit)
            common = {"site_id": site.id, "trial_id": trial.id, "kind": kind, "occurred_on": day, "count": count}
            if aggregate:
                duplicate = self.entries.add(
                    **common, note="重复录入", reported_by_id=site.inst.ro, reported_at=first_at
                )
                written.append([duplicate, day, kind, count, None, first_at, None, "reversed"])
                reversal = self.entries.add(
                    **common,
                    reverses_id=duplicate,
                    reason="同一批受试者重复录入，冲销重复条目",
                    reported_by_id=site.inst.ro,
                    reported_at=second_at,
                )
                written.append([reversal, day, kind, count, None, second_at, None, "reversal"])
                continue
            corrected = day - ONE_DAY
            open_needed = kind in (EK.SCREENED, EK.ENROLLED, EK.SCREEN_FAILED)
            if (previous is not None and corrected < previous) or (open_needed and corrected not in day_set):
                corrected = day
            reversal = self.entries.add(
                **common,
                subject_id=subject_id,
                reverses_id=entry_id,
                reason="受试者事件日期录入错误，冲销后按正确日期重新报告",
                reported_by_id=site.inst.ro,
                reported_at=first_at,
            )
            original.append("reversed")
            written.append([reversal, day, kind, count, subject_id, first_at, None, "reversal"])
            again = self.entries.add(
                **{**common, "occurred_on": corrected},
                subject_id=subject_id,
                note="更正日期",
                reported_by_id=site.inst.ro,
                reported_at=second_at,
            )
            written.append([again, corrected, kind, count, subject_id, second_at, None])

    # --- claims -----------------------------------------------------------------------------------------------------

    def make_claims(self) -> None:
        wanted = self.opts["claims"]
        programs = list(SubsidyProgram.objects.select_related("region").prefetch_related("eligibility_rules"))
        if not programs and wanted:
            programs = self.fallback_programs()
        builder = ClaimBuilder(self, programs)
        made = builder.build(wanted)
        if made < wanted:
            raise CommandError(
                _(
                    "Only %(made)d subsidy claims fit the generated data (programs, their regions' institutions and "
                    "eligible trials); ask for fewer claims or more institutions and trials."
                )
                % {"made": made}
            )

    def fallback_programs(self) -> list[SubsidyProgram]:
        """When the policy seeds hold no subsidy program yet: Shanghai's two programs on the seeded values."""
        shanghai = next((r for r in self.regions if r.code == "shanghai"), None)
        if shanghai is None:
            return []
        per_patient = SubsidyProgram.objects.create(
            code="scale-shanghai-gene-therapy",
            region=shanghai,
            name_zh="基因治疗临床研究医疗机构资助（基准测试数据）",
            name_en="Gene-therapy trial subsidy (benchmark data)",
            source_document=SYNTHETIC,
            source_clause="—",
            year_from=2023,
            amount_rule=AR.PER_PATIENT,
            rate_parameter="subsidy_per_patient_rmb",
            project_cap_parameter="subsidy_project_cap_rmb",
            institution_year_cap_parameter="subsidy_institution_year_cap_rmb",
            selective=True,
        )
        for position, (kind, params) in enumerate(
            [
                (EligibilityRule.Kind.THERAPY_CATEGORY, {"categories": list(GENE_CATEGORIES)}),
                (EligibilityRule.Kind.TRIAL_KIND, {"iit": True, "industry_sponsor_in_region": True}),
                (EligibilityRule.Kind.RESEARCH_COMPLETED, {"completed_on_or_after": "2023-08-31"}),
                (EligibilityRule.Kind.ETHICS_APPROVAL, {}),
            ]
        ):  # fmt: skip
            EligibilityRule.objects.create(program=per_patient, kind=kind, params=params, position=position)
        insurance = SubsidyProgram.objects.create(
            code="scale-shanghai-insurance",
            region=shanghai,
            name_zh="临床研究责任保险保费补贴（基准测试数据）",
            name_en="Trial liability-insurance premium subsidy (benchmark data)",
            source_document=SYNTHETIC,
            source_clause="—",
            year_from=2023,
            amount_rule=AR.PERCENT_OF_COST,
            percent_parameter="insurance_premium_subsidy_percent",
            item_cap_parameter="insurance_premium_subsidy_cap_rmb",
        )
        EligibilityRule.objects.create(program=insurance, kind=EligibilityRule.Kind.ETHICS_APPROVAL, params={})
        return list(SubsidyProgram.objects.select_related("region").prefetch_related("eligibility_rules"))

    # --- rows and COPY ----------------------------------------------------------------------------------------------

    def finish_rows(self) -> None:
        """Trials and sites (now that their story is known), status history, meetings and numbered letters."""
        trials, changes, sites = self.table(Trial), self.table(TrialStatusChange), self.table(TrialSite)
        for trial in self.trials:
            for from_status, to_status, at, actor, reason in trial.history:
                changes.add(trial_id=trial.id, from_status=from_status, to_status=to_status, actor_id=actor, at=at,
                            reason=reason)  # fmt: skip
            approved = trial.status not in (TS.DRAFT, TS.SUBMITTED, TS.UNDER_REVIEW, TS.WITHDRAWN)
            title_zh, title_en = self.rng.choice(THERAPIES[trial.category])
            hgr = Trial.HGRStatus
            trials.add(
                id=trial.id,
                title_zh=f"{title_zh}的{PHASE_NAMES[trial.phase]}临床研究",
                title_en=f"{title_en}: {PHASE_NAMES_EN[trial.phase]} study",
                protocol_number=trial.protocol,
                kind=trial.kind,
                therapy_category=trial.category,
                phase=trial.phase,
                sponsor_id=trial.sponsor.pk if trial.sponsor else None,
                lead_institution_id=trial.lead.id,
                department_id=self.rng.choice(trial.lead.departments),
                pi_id=trial.pi,
                target_enrolment=trial.target,
                nmpa_approval_number=getattr(trial, "nmpa", "") if approved else "",
                filing_number=f"MR-{trial.lead.code[:2]}-{trial.created_at.year}-{trial.id:05d}"
                if approved and trial.kind == Trial.Kind.IIT
                else "",
                chictr_id=f"ChiCTR{trial.created_at.year % 100:02d}{trial.id:08d}"
                if approved and trial.kind == Trial.Kind.IIT
                else "",
                nct_id=f"NCT{trial.id + 5000000:08d}" if approved and trial.kind == Trial.Kind.REGISTRATION else "",
                hgr_status=hgr.APPROVED if approved and trial.sponsor and trial.kind == Trial.Kind.REGISTRATION
                else hgr.NOT_REQUIRED,
                status=trial.status,
                status_changed_at=trial.history[-1][2] if trial.history else None,
                status_before_suspension=trial.before_suspension,
                created_by_id=trial.pi,
                created_at=trial.created_at,
                updated_at=trial.status_at,
            )  # fmt: skip
            for site in trial.sites:
                sites.add(
                    id=site.id,
                    trial_id=trial.id,
                    institution_id=site.inst.id,
                    role=site.role,
                    site_pi_id=site.pi,
                    site_target=site.target,
                    submission_received_on=site.received,
                    ethics_approved_on=site.approved,
                    contract_signed_on=site.contract,
                    site_initiated_on=site.initiated,
                    first_patient_in_on=site.first_patient,
                    ethics_valid_until=site.valid_until,
                )
        meetings, agenda, attendance = self.table(Meeting), self.table(AgendaItem), self.table(Attendance)
        for meeting in self.meetings.values():
            held = meeting["at"] < self.now
            meetings.add(
                id=meeting["id"],
                committee_id=meeting["committee"].id,
                scheduled_at=meeting["at"],
                location="行政楼第一会议室",
                status=Meeting.Status.HELD if held else Meeting.Status.PLANNED,
                quorum_met=True if held else None,
            )
            for position, submission_id in enumerate(meeting["items"], start=1):
                agenda.add(meeting_id=meeting["id"], submission_id=submission_id, position=position)
            if held:
                for member_id, _medical in meeting["committee"].members:
                    attendance.add(meeting_id=meeting["id"], member_id=member_id)
        decisions, counters = self.table(Decision), self.table(LetterCounter)
        sequence = defaultdict(int)
        for decision in sorted(self.letter_decisions, key=lambda d: (d.committee.id, d.decided_at, d.id)):
            year = decision.decided_at.year
            sequence[(decision.committee.id, year)] += 1
            number = sequence[(decision.committee.id, year)]
            approving = decision.valid_until is not None
            decisions.add(
                id=decision.id,
                submission_id=decision.submission_id,
                committee_id=decision.committee.id,
                outcome=decision.outcome,
                decided_at=decision.decided_at,
                decided_by_id=decision.decided_by,
                meeting_id=decision.meeting_id,
                votes_for=decision.votes[0] if decision.votes else None,
                votes_against=decision.votes[1] if decision.votes else None,
                requested_modifications=decision.requested_modifications,
                valid_until=decision.valid_until,
                continuing_review_months=decision.committee.review_months if approving else None,
                next_continuing_review_due=getattr(decision, "next_review", None) if approving else None,
                letter_year=year,
                letter_sequence=number,
                letter_number=f"{decision.committee.prefix}〔{year}〕{number:03d}号",
            )
        for (committee_id, year), last in sorted(sequence.items()):
            counters.add(committee_id=committee_id, year=year, last_number=last)

    def write(self) -> None:
        self.out.write(_("Writing with COPY:"))
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            total = 0
            for model, table in self.tables.items():
                if not table.rows:
                    continue
                began = time.monotonic()
                table.copy(cursor)
                total += len(table.rows)
                self.out.write(f"  {table.name:<36} {len(table.rows):>9,} rows  {time.monotonic() - began:6.2f} s")
                if table.auto_pk:
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', %s), "
                        f'(SELECT MAX("{model._meta.pk.column}") FROM "{table.name}"))',
                        [model._meta.pk.column],
                    )
            began = time.monotonic()
            # The foreign keys are deferred: check them all now, then defer them again for whoever goes on.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            self.out.write(f"  {'foreign keys checked':<36} {total:>9,} rows  {time.monotonic() - began:6.2f} s")
            began = time.monotonic()
            for table in self.tables.values():
                if table.rows:
                    cursor.execute(f'ANALYZE "{table.name}"')
            self.out.write(f"  {'ANALYZE':<36} {'':>9}       {time.monotonic() - began:6.2f} s")

    def make_tokens(self) -> None:
        # Their API keys are issued when needed (make bench issues its own; an operator in the admin): keys are
        # stored only as digests, so a key made here could not be handed to anyone.
        self.out.write(
            _("Regulator accounts (no password; issue an API token in the admin): %(names)s")
            % {"names": ", ".join(f"scale-regulator-{r.code}" for r in self.regions)}
        )


ORDER = {EK.SCREENED: 0, EK.ENROLLED: 1, EK.SCREEN_FAILED: 2, EK.WITHDRAWN: 3, EK.COMPLETED: 4}


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)


def _summary(kind: str, trial: TrialSim) -> str:
    return {SK.INITIAL: "首次伦理审查申请", SK.AMENDMENT: "方案修订申请"}.get(kind, "") + f"（{trial.protocol}）"


# --- claims -------------------------------------------------------------------------------------------------------


class ClaimBuilder:
    """Claims per institution and program, computed with the real eligibility rules and subsidy arithmetic.

    A per-patient or fixed-amount program is claimed once a year, for the year before (the current year may have a
    claim in progress); a percentage program's cost items (insurance policies) are claimed in monthly batches. A
    hospital has one claim per program open at a time: each is decided before the next is opened.
    """

    YEARLY = ((2, 20), (2, 15), (5, 40))
    BATCH = ((1, 5), (1, 4), (2, 10))

    def __init__(self, gen: Generator, programs: list[SubsidyProgram]):
        self.gen = gen
        self.rng = gen.rng
        self.programs = programs
        self.claims = gen.table(Claim)
        self.lines = gen.table(ClaimLine)
        self.changes = gen.table(ClaimStatusChange)
        self.payments = gen.table(ClaimPayment)
        self.rule_cache = {}
        # What the rules say depends only on these facts, which change a few times in a trial's life.
        self.reasons_cache = {}
        self.sites_by_inst = defaultdict(list)
        for trial in sorted(gen.trials, key=lambda t: t.protocol):
            for site in trial.sites:
                self.sites_by_inst[site.inst.id].append(site)
        self.taken = defaultdict(lambda: {"patients": 0, "amount": rules.ZERO})  # (inst, program, trial)
        self.year_taken = defaultdict(lambda: rules.ZERO)  # (inst, program, year)
        self.busy = defaultdict(list)  # (inst, program) -> [(opened, decided or date.max)]

    def build(self, wanted: int) -> int:
        gen, rng = self.gen, self.rng
        yearly = defaultdict(list)
        batches = []
        for program in self.programs:
            first = max(program.year_from, gen.start.year)
            last = min(program.year_to or gen.today.year, gen.today.year)
            for inst in gen.insts_by_region.get(program.region_id, []):
                if not self.sites_by_inst[inst.id]:
                    continue
                if program.amount_rule == AR.PERCENT_OF_COST:
                    months = [
                        dt.date(y, m, 1)
                        for y in range(first, last + 1)
                        for m in range(1, 13)
                        if dt.date(y, m, 12) < gen.today
                    ]
                    batches.append((program, inst, months))
                    continue
                for year in range(first, last + 1):
                    if year < gen.today.year:
                        opened = dt.date(year + 1, 1, 5) + dt.timedelta(days=rng.randint(0, 80))
                    else:
                        opened = gen.today - dt.timedelta(days=rng.randint(2, 60))
                    if opened < gen.today and opened.year >= year:
                        yearly[(program.pk, inst.id)].append((program, inst, opened, year))
        made = 0
        pairs = sorted(yearly)
        rng.shuffle(pairs)
        for pair in pairs:
            for program, inst, opened, year in yearly[pair]:
                if made < wanted:
                    made += self.claim(program, inst, opened, year, self.YEARLY)
        need = wanted - made
        if need > 0 and batches:
            capacity = [len(months) for _p, _i, months in batches]
            weights = [len(self.sites_by_inst[inst.id]) for _p, inst, _m in batches]
            counts = _apportion(min(need, sum(capacity)), weights, caps=capacity)
            leftovers = []
            for (program, inst, months), count in zip(batches, counts, strict=True):
                chosen = set(rng.sample(months, count))
                for month in sorted(chosen):
                    made += self.claim(program, inst, month.replace(day=rng.randint(1, 10)), month.year, self.BATCH)
                leftovers.append((program, inst, [m for m in months if m not in chosen]))
            # Months that had nothing to claim are made up with other months.
            for program, inst, months in leftovers:
                for month in months:
                    if made >= wanted:
                        break
                    made += self.claim(program, inst, month.replace(day=rng.randint(1, 10)), month.year, self.BATCH)
        return made

    def rule(self, program: SubsidyProgram, on: dt.date):
        key = (program.pk, on)
        if key not in self.rule_cache:
            try:
                self.rule_cache[key] = amount_rule(program, on)
            except DomainError:
                self.rule_cache[key] = None
        return self.rule_cache[key]

    def facts(self, site: SiteSim, on: dt.date) -> eligibility.CandidateFacts:
        """The trial and site as they stood on the reference date, for the eligibility rules."""
        t = site.trial
        trial = Trial(
            id=t.id,
            protocol_number=t.protocol,
            kind=t.kind,
            therapy_category=t.category,
            phase=t.phase,
            status=t.status_on(on),
            lead_institution_id=t.lead.id,
            pi_id=t.pi,
            target_enrolment=t.target,
        )
        trial.sponsor = t.sponsor

        def known(day):
            return day if day is not None and day <= on else None

        trial_site = TrialSite(
            id=site.id,
            trial_id=t.id,
            institution_id=site.inst.id,
            role=site.role,
            submission_received_on=known(site.received),
            ethics_approved_on=known(site.approved),
            site_initiated_on=known(site.initiated),
        )
        return eligibility.CandidateFacts(trial=trial, site=trial_site, completed_on=known(t.completed_on))

    def reasons(self, program: SubsidyProgram, facts, on: dt.date) -> list[dict]:
        """Each failed rule with its message in both interface languages, as subsidies.services stores them."""
        site, trial = facts.site, facts.trial
        key = (program.pk, site.id, trial.status, facts.completed_on, site.ethics_approved_on, site.site_initiated_on)
        if key not in self.reasons_cache:
            self.reasons_cache[key] = self._reasons(program, facts, on)
        return [dict(reason) for reason in self.reasons_cache[key]]

    def _reasons(self, program: SubsidyProgram, facts, on: dt.date) -> list[dict]:
        program_rules = list(program.eligibility_rules.all())
        by_language = {}
        for language in ("zh-hans", "en"):
            with translation.override(language):
                by_language[language] = eligibility.refusals(program_rules, program, facts, on)
        return [
            {"rule": item["rule"], "zh-hans": item["message"], "en": by_language["en"][i]["message"]}
            for i, item in enumerate(by_language["zh-hans"])
        ]

    def timeline(self, opened: dt.date, pace) -> list[dt.datetime]:
        gen = self.gen
        moments = [gen.office(opened)]
        for low, high in pace:
            moments.append(gen.after(moments[-1], low, high))
        return moments  # opened, submitted, review started, decided

    def claim(self, program: SubsidyProgram, inst: Inst, opened: dt.date, year: int, pace) -> bool:
        """One claim as claim_open and claim_submit compute it, then its review; False if it cannot be made
        (another claim of the hospital under the program open then, or nothing eligible to claim)."""
        gen, rng = self.gen, self.rng
        pair = (inst.id, program.pk)
        moments = self.timeline(opened, pace)
        closes = moments[3].date() if moments[3] <= gen.now else dt.date.max
        if any(opened <= b and a <= closes for a, b in self.busy[pair]):
            return False
        submitted = moments[1] if moments[1] <= gen.now else None
        reference = min(dt.date(year, 12, 31), (submitted or moments[0]).date())
        rule = self.rule(program, reference)
        if rule is None:
            return False
        if program.amount_rule == AR.FIXED_AMOUNT and rule.fixed_amount is None:
            rule = self.set_fixed_amount(program, reference)
        candidates = [
            s
            for s in self.sites_by_inst[inst.id]
            if s.trial.created_at.date() <= reference and s.trial.status_on(reference) not in NOT_CANDIDATE_STATUSES
        ]
        if program.amount_rule == AR.PERCENT_OF_COST:
            insured = [
                s
                for s in candidates
                if s.approved and s.approved <= opened and s.trial.status_on(opened) in (TS.ACTIVE, TS.ENROLMENT_CLOSED)
            ]
            # The hospital lists the policies of the trials the program covers (and now and then one it does not).
            covered = [s for s in insured if not self.reasons(program, self.facts(s, reference), reference)]
            if not covered:
                return False
            candidates = rng.sample(covered, min(len(covered), rng.randint(1, 3)))
            others = [s for s in insured if s not in covered]
            if others and rng.random() < 0.1:
                candidates.append(rng.choice(others))
            candidates.sort(key=lambda s: s.trial.protocol)
        lines = []
        for site in candidates:
            facts = self.facts(site, reference)
            reasons = self.reasons(program, facts, reference)
            took = dict(self.taken[(inst.id, program.pk, site.trial.id)])
            enrolled = sum(count for day, count in site.enrolled if day <= reference)
            if not reasons and program.amount_rule == AR.PER_PATIENT and enrolled <= took["patients"]:
                reasons.append(
                    _both("nothing_to_claim", "没有可申报的入组患者。", "No enrolled patient is left to claim.")
                )
            if not reasons and program.amount_rule == AR.FIXED_AMOUNT and took["amount"] > 0:
                reasons.append(_both("already_claimed", "该项目已申报。", "The project was already claimed."))
            status = LS.INELIGIBLE if reasons else LS.ELIGIBLE
            if status == LS.ELIGIBLE and rng.random() < 0.03:
                status = LS.EXCLUDED
            cost = Decimal(rng.randrange(20000, 400000, 500)) if program.amount_rule == AR.PERCENT_OF_COST else None
            lines.append(
                {
                    "site": site,
                    "facts": facts,
                    "reasons": reasons,
                    "enrolled": enrolled,
                    "took": took,
                    "status": status,
                    "item_reference": f"PICC{year}{site.id:07d}{opened.month:02d}" if cost is not None else "",
                    "cost": cost,
                }
            )
        inputs = [
            rules.LineInput(
                key=index,
                enrolled=line["enrolled"],
                previously_claimed=line["took"]["patients"],
                previously_awarded=line["took"]["amount"],
                cost=line["cost"],
            )
            for index, line in enumerate(lines)
            if line["status"] == LS.ELIGIBLE
        ]
        # The yearly cap cuts the lines that come last: the research completed most recently.
        inputs.sort(
            key=lambda i: (lines[i.key]["facts"].completed_on or dt.date.max, lines[i.key]["site"].trial.protocol)
        )
        result = rules.calculate(rule, inputs, institution_year_already=self.year_taken[(inst.id, program.pk, year)])
        if result.total <= 0:
            return False
        self.busy[pair].append((opened, closes))
        self.write(program, inst, year, reference, rule, lines, result, moments)
        return True

    def set_fixed_amount(self, program: SubsidyProgram, on: dt.date):
        """A fixed-amount program's amount is the regulator's to set; the generated regulator sets one."""
        program.fixed_amount_rmb = Decimal(self.rng.choice([300000, 500000, 1000000]))
        program.fixed_amount_set_by_id = self.gen.regulators[program.region_id]
        program.fixed_amount_set_at = dt.datetime.combine(self.gen.start, dt.time(10), tzinfo=TZ)
        program.save(update_fields=["fixed_amount_rmb", "fixed_amount_set_by", "fixed_amount_set_at"])
        self.rule_cache.clear()
        return self.rule(program, on)

    def write(self, program, inst, year, reference, rule, lines, result, moments) -> None:
        """The claim, its lines (with the regulator's approved amounts) and its status history, as of now."""
        gen, rng = self.gen, self.rng
        regulator = gen.regulators[program.region_id]
        claim_id = self.claims.alloc()
        decision = rng.choices([CS.APPROVED, CS.PARTIALLY_APPROVED, CS.REJECTED], weights=[0.62, 0.24, 0.14])[0]
        computed = {r.key: r for r in result.lines}
        if decision == CS.PARTIALLY_APPROVED and not any(r.amount > 0 for r in computed.values()):
            decision = CS.APPROVED
        partial_line = (
            rng.choice([k for k, r in computed.items() if r.amount > 0]) if decision == CS.PARTIALLY_APPROVED else None
        )
        history, status = [], CS.DRAFT
        for to, at, actor in zip(
            (CS.SUBMITTED, CS.UNDER_REVIEW, decision), moments[1:], (inst.ro, regulator, regulator), strict=True
        ):
            if at > gen.now:
                break
            history.append((status, to, at, actor))
            status = to
        decided = status in (CS.APPROVED, CS.PARTIALLY_APPROVED, CS.REJECTED)
        approved_total = rules.ZERO if decided else None
        note = ""
        rows = []
        for index, line in enumerate(lines):
            r = computed.get(index)
            patients, amount, explanation = (r.patients, r.amount, r.steps) if r else (0, rules.ZERO, [])
            approved, line_note = None, ""
            if decided and line["status"] == LS.ELIGIBLE:
                approved = rules.ZERO if status == CS.REJECTED else amount
                if index == partial_line:
                    approved = rules.to_fen(amount * Decimal(rng.choice(["0.6", "0.7", "0.8", "0.9"])))
                    line_note = "部分受试者入组依据不足，按核定人数拨付"
                    explanation = [*explanation, {"code": "regulator_adjustment", "before": str(amount),
                                                  "amount": str(approved), "reason": line_note}]  # fmt: skip
                approved_total += approved
            rows.append((line, patients, amount, explanation, approved, line_note))
        if status == CS.REJECTED:
            note = "申报材料与入组台账不符，本年度不予补助"
        paid_at = None
        if status in (CS.APPROVED, CS.PARTIALLY_APPROVED) and approved_total > 0 and rng.random() < 0.85:
            paid_at = gen.after(history[-1][2], 15, 90)
            if paid_at <= gen.now:
                history.append((status, CS.PAID, paid_at, regulator))
                status = CS.PAID
            else:
                paid_at = None
        submitted_at = history[0][2] if history else None
        counting = status in Claim.COUNTING_STATUSES
        line_ids = []
        for line, patients, amount, explanation, approved, line_note in rows:
            site, excluded = line["site"], line["status"] == LS.EXCLUDED
            line_ids.append(
                self.lines.add(
                    claim_id=claim_id,
                    trial_id=site.trial.id,
                    site_id=site.id,
                    status=line["status"],
                    ineligible_reasons=line["reasons"],
                    enrolled_total=line["enrolled"],
                    previously_claimed=line["took"]["patients"],
                    patients_claimed=patients,
                    previously_awarded=line["took"]["amount"],
                    item_reference=line["item_reference"],
                    cost_rmb=line["cost"],
                    amount_computed=amount,
                    explanation=explanation,
                    evidence=_evidence(line["facts"], site.trial),
                    excluded_reason="该项目已通过其他渠道获得资助" if excluded else "",
                    excluded_by_id=inst.ro if excluded else None,
                    excluded_at=moments[0] + dt.timedelta(hours=2) if excluded else None,
                    approved_amount=approved,
                    regulator_note=line_note,
                )
            )
            if counting and line["status"] == LS.ELIGIBLE:
                took = self.taken[(inst.id, program.pk, site.trial.id)]
                took["patients"] += patients
                took["amount"] += approved if approved is not None else amount
        if counting:
            self.year_taken[(inst.id, program.pk, year)] += approved_total if decided else result.total
        snapshot = None
        if submitted_at:
            snapshot = {
                "frozen_at": submitted_at.isoformat(),
                "reference_date": reference.isoformat(),
                "program": {"code": program.code, "amount_rule": program.amount_rule},
                "rule": {k: (str(v) if v is not None else None) for k, v in vars(rule).items() if k != "kind"},
                "institution_year_already": str(result.institution_year_already),
                "amount_claimed": str(result.total),
                "lines": [
                    {
                        "id": line_id,
                        "trial_id": line["site"].trial.id,
                        "protocol_number": line["site"].trial.protocol,
                        "status": line["status"],
                        "item_reference": line["item_reference"],
                        "cost_rmb": None if line["cost"] is None else str(line["cost"]),
                        "enrolled_total": line["enrolled"],
                        "previously_claimed": line["took"]["patients"],
                        "patients_claimed": patients,
                        "amount_computed": str(amount),
                        "explanation": r_steps,
                        "ineligible_reasons": line["reasons"],
                        "excluded_reason": "该项目已通过其他渠道获得资助" if line["status"] == LS.EXCLUDED else "",
                        "evidence": _evidence(line["facts"], line["site"].trial),
                        "documents": [],
                    }
                    for line_id, (line, patients, amount, r_steps, _a, _n) in zip(line_ids, rows, strict=True)
                ],
            }
        for from_status, to_status, at, actor in history:
            self.changes.add(
                claim_id=claim_id,
                from_status=from_status,
                to_status=to_status,
                actor_id=actor,
                at=at,
                note=note if to_status == CS.REJECTED else "",
            )
        decided_at = moments[3] if decided or status == CS.PAID else None
        self.claims.add(
            id=claim_id,
            institution_id=inst.id,
            program_id=program.pk,
            year=year,
            status=status,
            reference_date=reference,
            opened_by_id=inst.ro,
            opened_at=moments[0],
            submitted_by_id=inst.ro if submitted_at else None,
            submitted_at=submitted_at,
            snapshot=snapshot,
            amount_claimed=result.total,
            amount_approved=approved_total,
            amount_paid=approved_total if paid_at else None,
            paid_on=paid_at.date() if paid_at else None,
            payment_reference=f"CZ{paid_at.year}{claim_id:06d}" if paid_at else "",
            decision_note=note,
            decided_by_id=regulator if decided_at else None,
            decided_at=decided_at,
            status_changed_at=history[-1][2] if history else moments[0],
        )
        if paid_at:
            # Paid in one payment of the whole approved amount, recorded by the regulator who paid it.
            self.payments.add(
                claim_id=claim_id,
                amount=approved_total,
                paid_on=paid_at.date(),
                reference=f"CZ{paid_at.year}{claim_id:06d}",
                recorded_by_id=regulator,
                recorded_at=paid_at,
                balance_after=rules.ZERO,
            )


def _both(code: str, zh: str, en: str) -> dict:
    return {"rule": code, "zh-hans": zh, "en": en}


def _evidence(facts: eligibility.CandidateFacts, trial: TrialSim) -> dict:
    site = facts.site
    return {
        "protocol_number": trial.protocol,
        "kind": trial.kind,
        "therapy_category": trial.category,
        "status": facts.trial.status,
        "sponsor": trial.sponsor.name_zh if trial.sponsor else "",
        "site_role": site.role,
        "completed_on": facts.completed_on.isoformat() if facts.completed_on else None,
        "ethics_approved_on": site.ethics_approved_on.isoformat() if site.ethics_approved_on else None,
        "site_initiated_on": site.site_initiated_on.isoformat() if site.site_initiated_on else None,
        "startup_days": site.startup_days,
    }
