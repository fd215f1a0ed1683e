"""The simulated world: names and weights the data set is drawn from, and the compact records later phases read.

Only what a later phase needs is kept per trial, site, decision and request (slotted records; a site's enrolment as
arrays); every row itself is written as soon as it is made (``stream.Table``).
"""

import datetime as dt
import random
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field

from cgtclinic import workdays
from cgtclinic.models import Region, Sponsor
from ethics.models import Decision, RecognitionRequest, Submission, SubmissionEvent
from subsidies.models import Claim, ClaimLine, SubsidyProgram
from trials.models import EnrolmentEntry, Trial

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
ICF_TITLE = "知情同意书"
GCP_ISSUERS = ["国家药品监督管理局高级研修学院", "中国医院协会临床研究GCP培训中心", "医院GCP培训办公室"]
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


def pairs(items):
    return [tuple(item.split(":", 1)) for item in items]


def pick(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def apportion(total: int, weights: list[float], *, minimum: int = 0, caps: list[int] | None = None) -> list[int]:
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


ORDER = {EK.SCREENED: 0, EK.ENROLLED: 1, EK.SCREEN_FAILED: 2, EK.WITHDRAWN: 3, EK.COMPLETED: 4}


# --- the simulated world ------------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Committee:
    id: int
    inst: "Inst"
    name_zh: str
    prefix: str
    validity_months: int
    review_months: int
    members: list = field(default_factory=list)  # (id, is_medical)
    alliances: set = field(default_factory=set)
    meeting_weekday: int = 2


@dataclass(eq=False, slots=True)
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


@dataclass(eq=False, slots=True)
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
    next_review: dt.date | None = None
    letter_number: str = ""  # numbered once every decision is known (ethics.write_decisions)


@dataclass(eq=False, slots=True)
class RequestSim:
    """A recognition request until its row is written (finish_requests)."""

    id: int
    alliance_id: int
    trial_id: int
    site: "SiteSim"
    lead_decision: DecisionRow
    subject: str
    received_at: dt.datetime
    deadline: dict
    status: str = RS.OPEN
    responded_at: dt.datetime | None = None
    withdrawn_at: dt.datetime | None = None
    superseded_by_id: int | None = None
    until: dt.datetime | None = None
    local_review_id: int | None = None


@dataclass(eq=False, slots=True)
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
    # The site's own committee's approving decision on its initial review, or the recognition of the lead's.
    approval: DecisionRow | None = None
    recognised: RequestSim | None = None
    # Live ENROLLED entries in ledger order (day, then entry): day ordinals, running patient total, subject number
    # (0 for a count reported without subject codes). Compact: claims read them, nothing else.
    enrolled_days: array = field(default_factory=lambda: array("i"))
    enrolled_running: array = field(default_factory=lambda: array("i"))
    enrolled_counts: array = field(default_factory=lambda: array("i"))
    enrolled_subjects: array = field(default_factory=lambda: array("i"))
    enrolled_consented: array = field(default_factory=lambda: array("i"))  # the subject's consent day (ordinal)

    def enrolled_on(self, day: dt.date) -> int:
        """Patients enrolled and standing on ``day`` (what trials.enrolment.enrolled_as_of reads from the ledger)."""
        at = bisect_right(self.enrolled_days, day.toordinal())
        return self.enrolled_running[at - 1] if at else 0


@dataclass(eq=False, slots=True)
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
    title_zh: str = ""
    title_en: str = ""
    department: int = 0
    status: str = TS.DRAFT
    status_at: dt.datetime | None = None
    before_suspension: str = ""
    history: list = field(default_factory=list)  # (from, to, at, actor, reason)
    sites: list = field(default_factory=list)
    approval: DecisionRow | None = None
    nmpa: str = ""
    icf_version: int = 0  # the informed-consent form its subjects sign (written with the first subject)
    valid_until: dt.date | None = None
    active: list = field(default_factory=list)  # [start, end] date intervals while active
    ended_at: dt.datetime | None = None  # completed or terminated
    completed_on: dt.date | None = None
    filed_on: dt.date | None = None  # the initial research filing (investigator-initiated trials)
    filing_due: bool = False  # its initial filing is owed and not yet recorded: no filing number yet

    def status_on(self, day: dt.date) -> str:
        status = TS.DRAFT
        for _from, to, at, _actor, _reason in self.history:
            if at.date() > day:
                break
            status = to
        return status

    @property
    def approved(self) -> bool:
        return self.status not in (TS.DRAFT, TS.SUBMITTED, TS.UNDER_REVIEW, TS.WITHDRAWN)

    def registration(self) -> dict:
        """The registration and filing numbers its row holds (approved trials are registered or filed)."""
        approved, year = self.approved, self.created_at.year
        iit, registration = self.kind == Trial.Kind.IIT, self.kind == Trial.Kind.REGISTRATION
        return {
            "nmpa_approval_number": self.nmpa if approved else "",
            "filing_number": f"MR-{self.lead.code[:2]}-{year}-{self.id:05d}"
            if approved and iit and not self.filing_due
            else "",
            "chictr_id": f"ChiCTR{year % 100:02d}{self.id:08d}" if approved and iit else "",
            "nct_id": f"NCT{self.id + 5000000:08d}" if approved and registration else "",
        }
