"""Seeds for the gates and qualifications: the gate rules (seeds/policy/gates.yaml) and the demo's certificates,
gate answers and delegation logs (seeds/demo/gcp_certificates.yaml, gate_answers.yaml, delegations.yaml), loaded
by trials/seeds.py.

The demo rows are written through the services (``trials.gates``, ``trials.qualifications``), so they are
checked as the app checks them. Certificates load before the trials (a site's PI needs one on the day the site
is initiated); a trial's gate answers load after the trial and before its sites' milestones (a site is
initiated only once its gates are met); delegations load once the sites exist.
"""

from pathlib import Path

from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError
from cgtclinic.models import User
from cgtclinic.seeding import PolicySeeds, Row, SeedReport, field_values, parse_date, read_rows, ref, refused, upsert
from trials import gates, qualifications
from trials.models import Delegation, GateAnswer, GateRule, GcpCertificate, Trial, TrialSite

GATES_FILE = "gates.yaml"
CERTIFICATES_FILE = "gcp_certificates.yaml"
GATE_ANSWERS_FILE = "gate_answers.yaml"
DELEGATIONS_FILE = "delegations.yaml"
RULE_FIELDS = ("source_document", "source_clause", "source_quote", "note")


def load_gate_rules(policy: PolicySeeds) -> None:
    """The gate rules; rules no longer in the file are listed, not deleted."""
    rows = read_rows(
        policy.directory / GATES_FILE,
        required={"gate", "source_document"},
        optional={"trial_kind", "therapy_category", "source_clause", "source_quote", "note"},
        key=("gate", "trial_kind", "therapy_category"),
        label="gate",
    )
    seeded = set()
    for row in rows:
        lookup = {
            "gate": row.data["gate"],
            "trial_kind": row.data.get("trial_kind") or "",
            "therapy_category": row.data.get("therapy_category") or "",
        }
        upsert(policy.report, row, GateRule, lookup, field_values(row, GateRule, RULE_FIELDS))
        seeded.add(tuple(lookup.values()))
    for rule in GateRule.objects.all():
        if (rule.gate, rule.trial_kind, rule.therapy_category) not in seeded:
            policy.report.not_in_seeds.append(str(rule))


class DemoQualifications:
    """The demo's GCP certificates, gate answers per trial (and site) and delegation lines."""

    def __init__(self, directory: Path, report: SeedReport, people: dict[str, User], institutions: dict):
        self.report = report
        self.people = people
        self.institutions = institutions
        self.certificates = read_rows(
            directory / CERTIFICATES_FILE,
            required={"person", "number", "issuer", "issued", "expires", "by"},
            optional=set(),
            key=("person", "issuer", "number"),
            label="number",
        )
        self.gates = read_rows(
            directory / GATE_ANSWERS_FILE,
            required={"trial", "gate", "outcome", "by"},
            optional={"site", "number", "date", "reason"},
            key=("trial", "gate", "site"),
            label="trial",
        )
        self.delegations = read_rows(
            directory / DELEGATIONS_FILE,
            required={"trial", "site", "person", "duties", "from", "by"},
            optional={"until"},
            key=("trial", "site", "person", "from"),
            label="person",
        )

    def load_certificates(self) -> None:
        for row in self.certificates:
            person = ref(row, "person", self.people, "people.yaml")
            number = str(row.data["number"])
            issuer = row.data["issuer"]
            if GcpCertificate.objects.filter(person=person, issuer=issuer, number=number).exists():
                self.report.tally(GcpCertificate).unchanged += 1
                continue
            try:
                qualifications.certificate_record(
                    actor=ref(row, "by", self.people, "people.yaml"),
                    person=person,
                    number=number,
                    issuer=issuer,
                    issued_on=parse_date(row, "issued"),
                    expires_on=parse_date(row, "expires"),
                )
            except DomainError as exc:
                raise refused(row, exc) from exc
            self.report.tally(GcpCertificate).created += 1

    def load_gates(self, trial: Trial, site: TrialSite | None = None) -> None:
        """The answers of one trial's gates (site is None) or of one of its sites."""
        for row in self.gates:
            if row.data["trial"] != trial.protocol_number:
                continue
            site_ref = row.data.get("site")
            if (site is None) != (site_ref is None):
                continue
            if site is not None and self.institutions.get(site_ref) != site.institution:
                continue
            self._answer(row, trial, site)

    def _answer(self, row: Row, trial: Trial, site: TrialSite | None) -> None:
        existing = GateAnswer.objects.filter(trial=trial, gate=row.data["gate"], site=site).first()
        if existing is not None:
            self.report.tally(GateAnswer).unchanged += 1
            return
        try:
            gates.gate_answer(
                trial=trial,
                actor=ref(row, "by", self.people, "people.yaml"),
                gate=row.data["gate"],
                outcome=row.data["outcome"],
                site=site,
                reference_number=str(row.data.get("number") or ""),
                met_on=parse_date(row, "date") if row.data.get("date") else None,
                reason=row.data.get("reason") or "",
            )
        except DomainError as exc:
            raise refused(row, exc) from exc
        self.report.tally(GateAnswer).created += 1

    def load_delegations(self) -> None:
        for row in self.delegations:
            institution = ref(row, "site", self.institutions, "institutions.yaml")
            site = TrialSite.objects.filter(trial__protocol_number=row.data["trial"], institution=institution).first()
            if site is None:
                raise row.error(_("“site”: not a site of this trial in trials.yaml."))
            person = ref(row, "person", self.people, "people.yaml")
            starts_on = parse_date(row, "from")
            if Delegation.objects.filter(site=site, person=person, starts_on=starts_on).exists():
                self.report.tally(Delegation).unchanged += 1
                continue
            duties = row.data["duties"]
            if not isinstance(duties, list):
                raise row.error(_("“duties” must be a list."))
            try:
                qualifications.delegation_record(
                    site=site,
                    actor=ref(row, "by", self.people, "people.yaml"),
                    person=person,
                    duties=duties,
                    starts_on=starts_on,
                    ends_on=parse_date(row, "until") if row.data.get("until") else None,
                )
            except DomainError as exc:
                raise refused(row, exc) from exc
            self.report.tally(Delegation).created += len(duties)
