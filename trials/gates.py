"""Gates before a trial or site may start and enrol: human genetic resources (HGR) approval or filing, and the
institutional biosafety review of viral-vector products.

Which gates a trial has is data (``GateRule``, seeded from seeds/policy/gates.yaml with the source of each rule),
matched on the trial's kind and therapy category. HGR approval is one per trial (the Ministry of Science and
Technology approves or receives the filing for the whole project); the biosafety review is one per site (each
hospital's biosafety committee reviews the viral vector handled on its premises). Each applicable gate has an
answer: met (number and date), not applicable (with the reason), or pending; a missing answer is pending.
The trial's activation, a site's initiation and every screening or enrolment check ``refusal`` here.
"""

import datetime
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic.errors import DomainError
from cgtclinic.models import User
from cgtclinic.roles import Role
from trials.models import Gate, GateAnswer, GateRule, Trial, TrialSite
from trials.uploads import check_upload

Outcome = GateAnswer.Outcome
# Gates answered once per trial; the others once per site.
TRIAL_GATES = frozenset({Gate.HGR})
# What to do to meet each gate, shown in every refusal that names it.
HOW_TO_MEET = {
    Gate.HGR: gettext_lazy(
        "the lead institution's research office records the approval or filing number and date from the human "
        "genetic resources service system, or answers “not applicable” with the reason"
    ),
    Gate.BIOSAFETY: gettext_lazy(
        "the site's research office records the institutional biosafety committee's approval number and date, or "
        "answers “not applicable” with the reason"
    ),
}


def rules_for(trial: Trial):
    """The seeded rules that make gates apply to a trial of this kind and therapy category."""
    return GateRule.objects.filter(
        Q(trial_kind="") | Q(trial_kind=trial.kind), Q(therapy_category="") | Q(therapy_category=trial.therapy_category)
    )


def applicable_gates(trial: Trial) -> list[str]:
    """The gates that apply to a trial, in the order of ``Gate``."""
    found = set(rules_for(trial).values_list("gate", flat=True))
    return [gate for gate in Gate.values if gate in found]


def is_trial_gate(gate: str) -> bool:
    return gate in TRIAL_GATES


@dataclass(frozen=True)
class GateState:
    """One applicable gate of a trial (or of one of its sites) and its answer, or None when not yet answered."""

    gate: str
    site: TrialSite | None
    answer: GateAnswer | None

    def met_on(self, day: datetime.date | None) -> bool:
        """Whether the gate is passed on a day (today when None): not applicable, or met on or before it."""
        if self.answer is None:
            return False
        if self.answer.outcome == Outcome.NOT_APPLICABLE:
            return True
        if self.answer.outcome != Outcome.MET:
            return False
        return day is None or self.answer.met_on <= day

    @property
    def label(self) -> str:
        name = Gate(self.gate).label
        return f"{name} ({self.site.institution})" if self.site else str(name)


def gate_states(trial: Trial, sites=None) -> list[GateState]:
    """Every applicable gate of the trial: trial gates once, site gates once per site given (default: all)."""
    gates = applicable_gates(trial)
    if not gates:
        return []
    if sites is None:
        sites = list(TrialSite.objects.filter(trial=trial).select_related("institution"))
    answers = {(a.gate, a.site_id): a for a in GateAnswer.objects.filter(trial=trial, gate__in=gates)}
    states = []
    for gate in gates:
        if is_trial_gate(gate):
            states.append(GateState(gate, None, answers.get((gate, None))))
        else:
            # A site not saved yet has no answer: its gates are answered once it exists.
            states.extend(GateState(gate, site, answers.get((gate, site.pk)) if site.pk else None) for site in sites)
    return states


def missing(trial: Trial, *, sites=None, on: datetime.date | None = None) -> list[GateState]:
    return [state for state in gate_states(trial, sites) if not state.met_on(on)]


def refusal_text(states: list[GateState], on: datetime.date | None = None) -> str:
    """One sentence per missing gate: what it is, where it stands and how to meet it."""
    lines = []
    for state in states:
        if state.answer is not None and state.answer.outcome == Outcome.MET:
            where = _("approved on %(day)s, after %(on)s") % {
                "day": state.answer.met_on.isoformat(),
                "on": on.isoformat() if on else "",
            }
        elif state.answer is not None:
            where = _("pending")
        else:
            where = _("not yet answered")
        lines.append(
            _("%(gate)s: %(where)s — %(fix)s.") % {"gate": state.label, "where": where, "fix": HOW_TO_MEET[state.gate]}
        )
    return " ".join(lines)


def check(trial: Trial, *, sites=None, on: datetime.date | None = None, action: str) -> None:
    """Refuse ``action`` (a translated phrase, e.g. “activate the trial”) while an applicable gate is not met."""
    gaps = missing(trial, sites=sites, on=on)
    if gaps:
        raise DomainError(
            _("Cannot %(action)s until its approvals are in place. %(missing)s")
            % {"action": action, "missing": refusal_text(gaps, on)},
            code="gate_not_met",
        )


def may_answer(actor: User, trial: Trial, site: TrialSite | None) -> bool:
    """Trial gates: the lead institution's research office; site gates: the research office of the site's
    hospital or of the lead. Superusers too."""
    if actor.is_superuser:
        return True
    if not actor.is_active or actor.role != Role.RESEARCH_OFFICE:
        return False
    if site is None:
        return actor.institution_id == trial.lead_institution_id
    return actor.institution_id in (site.institution_id, trial.lead_institution_id)


def answerable_sites(trial: Trial, actor: User):
    """The sites whose site gates the actor may answer."""
    sites = TrialSite.objects.filter(trial=trial).select_related("institution")
    return [site for site in sites if may_answer(actor, trial, site)]


# Trial.hgr_status mirrors the HGR gate's answer, for the lists and exports that already show it.
_HGR_STATUS = {
    Outcome.MET: Trial.HGRStatus.APPROVED,
    Outcome.NOT_APPLICABLE: Trial.HGRStatus.NOT_REQUIRED,
    Outcome.PENDING: Trial.HGRStatus.APPLIED,
}


def gate_answer(
    *,
    trial: Trial,
    actor: User,
    gate: str,
    outcome: str,
    site: TrialSite | None = None,
    reference_number: str = "",
    met_on: datetime.date | None = None,
    reason: str = "",
    document=None,
) -> GateAnswer:
    """Record (or change) the answer to one of a trial's gates; the history keeps earlier answers."""
    if gate not in Gate.values:
        raise DomainError(_("Unknown gate."), field="gate")
    if outcome not in Outcome.values:
        raise DomainError(_("Choose met, not applicable or pending."), field="outcome")
    if gate not in applicable_gates(trial):
        raise DomainError(
            _("%(gate)s does not apply to this trial's kind and therapy category.") % {"gate": Gate(gate).label},
            code="gate_not_applicable",
            field="gate",
        )
    if is_trial_gate(gate):
        if site is not None:
            raise DomainError(_("This gate is answered once for the whole trial, not per site."), field="site")
    elif site is None or site.trial_id != trial.pk:
        raise DomainError(_("Choose the site of this trial whose review this is."), field="site")
    if not may_answer(actor, trial, site):
        raise DomainError(_("You may not answer this trial's gates."), code="permission_denied")
    reference_number, reason = reference_number.strip(), reason.strip()
    if outcome == Outcome.MET:
        if not reference_number:
            raise DomainError(_("Please give the approval or filing number."), field="reference_number")
        if met_on is None:
            raise DomainError(_("Please give the date of the approval or filing."), field="met_on")
        if met_on > timezone.localdate():
            raise DomainError(_("The date cannot be in the future."), field="met_on")
        reason = ""
    elif outcome == Outcome.NOT_APPLICABLE:
        if not reason:
            raise DomainError(_("Please say why this gate does not apply to the trial."), field="reason")
        reference_number, met_on = "", None
    else:
        met_on = None
    if document is not None:
        check_upload(document)
    with transaction.atomic():
        Trial.objects.select_for_update().filter(pk=trial.pk).first()
        answer = GateAnswer.objects.filter(trial=trial, gate=gate, site=site).first() or GateAnswer(
            trial=trial, gate=gate, site=site
        )
        answer.outcome = outcome
        answer.reference_number = reference_number
        answer.met_on = met_on
        answer.reason = reason
        answer.recorded_by = actor
        answer.recorded_at = timezone.now()
        if document is not None:
            answer.document.save(document.name, document, save=False)
        try:
            answer.full_clean(exclude=["document"])
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages)) from exc
        answer._history_user = actor
        answer.save()
        if gate == Gate.HGR:
            status = _HGR_STATUS[outcome]
            if outcome == Outcome.MET and trial.hgr_status == Trial.HGRStatus.FILED:
                status = Trial.HGRStatus.FILED
            Trial.objects.filter(pk=trial.pk).update(
                hgr_status=status, hgr_approval_number=reference_number, updated_at=timezone.now()
            )
    return answer
