"""Claims: open, compute from the enrolment ledger, exclude, submit (frozen), review, decide, pay.

One function per step. Amounts come from ``subsidies.rules.calculate`` with the policy values in force on the
claim's reference date; counts come from the ledger (``trials.enrolment.enrolled_as_of``), never from a form.

No patient is claimed twice: a line claims the trial's enrolled patients less those in the hospital's earlier
claims under the program that count (submitted and after, except rejected), and only one claim per hospital and
program can be open at a time (a database constraint), so two drafts can never both take the same patients.
"""

import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import DecimalField, Max, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cgtclinic.errors import Conflict, DomainError, TransitionNotAllowed
from cgtclinic.models import PolicyParameter, User
from cgtclinic.notifications import notify, render_later
from cgtclinic.roles import Role
from subsidies import eligibility, evidence, rollups, rules
from subsidies.models import Claim, ClaimLine, ClaimPayment, ClaimStatusChange, SubsidyProgram
from trials.enrolment import enrolled_as_of
from trials.models import Trial, TrialSite, TrialStatusChange

C = Claim.Status
L = ClaimLine.Status
P = SubsidyProgram.AmountRule
# Trials that never reached an approval are not listed on a claim at all.
NOT_CANDIDATE_STATUSES = (Trial.Status.DRAFT, Trial.Status.SUBMITTED, Trial.Status.UNDER_REVIEW, Trial.Status.WITHDRAWN)
LANGUAGES = ("zh-hans", "en")


def _deny(message=None) -> DomainError:
    return DomainError(message or _("You are not allowed to do this for this claim."), code="permission_denied")


def _is_office_of(actor: User, institution_id: int) -> bool:
    """The hospital's research office prepares, submits and discards its claims."""
    return actor.is_superuser or (
        actor.is_active and actor.role == Role.RESEARCH_OFFICE and actor.institution_id == institution_id
    )


def _is_office(actor: User, claim: Claim) -> bool:
    return _is_office_of(actor, claim.institution_id)


def _is_regulator(actor: User, claim: Claim) -> bool:
    """A regulator of the program's region reviews, decides and pays."""
    return actor.is_superuser or (
        actor.is_active and actor.role == Role.REGULATOR and actor.region_id == claim.program.region_id
    )


def _require_office(actor: User, institution_id: int) -> None:
    if not _is_office_of(actor, institution_id):
        raise _deny(_("Only the hospital's research office can prepare and submit its claims."))


def _require_regulator(actor: User, claim: Claim) -> None:
    if not _is_regulator(actor, claim):
        raise _deny(_("Only a regulator of the program's region can review this claim."))


# Discarding deletes the draft.
DELETED = "deleted"
APPROVE, PARTIAL, REJECT = "approve", "partially_approve", "reject"

# The claim workflow, the one table of it: from each state, the steps it allows and the state each leads to.
# A decision is one of three steps (the ``decision`` of claim_decide). Recomputing and changing lines keep the draft.
ALLOWED: dict[str, dict[str, str]] = {
    C.DRAFT: {"recompute": C.DRAFT, "change_lines": C.DRAFT, "submit": C.SUBMITTED, "discard": DELETED},
    C.SUBMITTED: {"start_review": C.UNDER_REVIEW},
    C.UNDER_REVIEW: {APPROVE: C.APPROVED, PARTIAL: C.PARTIALLY_APPROVED, REJECT: C.REJECTED},
    # A payment of the whole balance pays the claim; a smaller one leaves it partly paid, with its balance.
    C.APPROVED: {"pay": C.PAID, "pay_part": C.PARTIALLY_PAID},
    C.PARTIALLY_APPROVED: {"pay": C.PAID, "pay_part": C.PARTIALLY_PAID},
    C.PARTIALLY_PAID: {"pay": C.PAID, "pay_part": C.PARTIALLY_PAID},
}
DECISIONS = ALLOWED[C.UNDER_REVIEW]
# Who may take each step: the same checks the step functions below make.
STEP_ACTORS = {
    "recompute": _is_office,
    "change_lines": _is_office,
    "submit": _is_office,
    "discard": _is_office,
    "start_review": _is_regulator,
    APPROVE: _is_regulator,
    PARTIAL: _is_regulator,
    REJECT: _is_regulator,
    "pay": _is_regulator,
    "pay_part": _is_regulator,
}
STEPS = tuple(dict.fromkeys(step for steps in ALLOWED.values() for step in steps))


def available_steps(claim: Claim, user: User) -> list[str]:
    """The steps the claim's state allows and the user may take, in the table's order."""
    return [step for step in ALLOWED.get(claim.status, {}) if STEP_ACTORS[step](user, claim)]


def _allows(claim: Claim, step: str) -> bool:
    return step in ALLOWED.get(claim.status, {})


def _lock(claim: Claim) -> Claim:
    return (
        Claim.objects.select_for_update(of=("self",)).select_related("program__region", "institution").get(pk=claim.pk)
    )


def _move(claim: Claim, *, step: str, actor: User, note: str = "", fields=()) -> Claim:
    to = ALLOWED.get(claim.status, {}).get(step)
    if to is None:
        target = next(steps[step] for steps in ALLOWED.values() if step in steps)
        raise TransitionNotAllowed(
            _("A claim that is “%(current)s” cannot become “%(target)s”.")
            % {"current": claim.get_status_display(), "target": C(target).label}
        )
    now = timezone.now()
    from_status = claim.status
    claim.status = to
    claim.status_changed_at = now
    claim._history_user = actor
    claim.save(update_fields=["status", "status_changed_at", *fields])
    ClaimStatusChange.objects.create(claim=claim, from_status=from_status, to_status=to, actor=actor, at=now, note=note)
    # Every change a report counts (submission, decision with its line amounts, payment) ends with a step here.
    rollups.refresh_claim_totals(claim)
    return claim


# --- who is told ------------------------------------------------------------------------------------------------

SUBMITTED_SUBJECT = gettext_lazy("Subsidy claim %(reference)s to review: %(institution)s, %(amount)s RMB")
SUBMITTED_BODY = gettext_lazy(
    "%(institution)s submitted its claim %(reference)s under %(program)s for %(year)s: %(amount)s RMB for "
    "%(lines)s eligible trials. The figures are frozen as submitted; start the review when you take it up."
)
APPROVED_SUBJECT = gettext_lazy("Subsidy claim %(reference)s approved: %(approved)s RMB")
APPROVED_BODY = gettext_lazy(
    "The regulator approved your claim %(reference)s under %(program)s for %(year)s: %(approved)s RMB, as "
    "claimed.%(note)s"
)
PARTIAL_SUBJECT = gettext_lazy("Subsidy claim %(reference)s partially approved: %(approved)s of %(claimed)s RMB")
PARTIAL_BODY = gettext_lazy(
    "The regulator approved %(approved)s of the %(claimed)s RMB of your claim %(reference)s under %(program)s for "
    "%(year)s. Lines lowered:\n%(lines)s%(note)s"
)
PARTIAL_LINE = gettext_lazy("%(protocol)s: %(before)s → %(after)s RMB. Reason: %(reason)s")
REJECTED_SUBJECT = gettext_lazy("Subsidy claim %(reference)s rejected")
REJECTED_BODY = gettext_lazy(
    "The regulator rejected your claim %(reference)s under %(program)s for %(year)s (%(claimed)s RMB). "
    "Reason: %(reason)s"
)
PAID_SUBJECT = gettext_lazy("Subsidy claim %(reference)s paid: %(paid)s RMB")
PAID_BODY = gettext_lazy(
    "%(paid)s RMB of the %(approved)s RMB approved for your claim %(reference)s under %(program)s for %(year)s was "
    "paid on %(day)s.%(payment_reference)s"
)
PART_PAID_SUBJECT = gettext_lazy("Subsidy claim %(reference)s partly paid: %(paid)s RMB, %(balance)s RMB owed")
PART_PAID_BODY = gettext_lazy(
    "%(paid)s RMB of the %(approved)s RMB approved for your claim %(reference)s under %(program)s for %(year)s was "
    "paid on %(day)s.%(payment_reference)s Paid so far: %(so_far)s RMB; still owed: %(balance)s RMB."
)
NOTE = gettext_lazy("\nThe regulator's note: %(note)s")
PAYMENT_REFERENCE = gettext_lazy(" Payment reference: %(reference)s.")

_lines_joined = lazy(lambda *parts: "\n".join(str(part) for part in parts), str)


def _yuan(value: Decimal | None) -> str:
    return f"{rules.to_fen(value or rules.ZERO):,.2f}"


def _claim_params(claim: Claim) -> dict:
    return {
        "reference": claim.reference,
        "institution": claim.institution,
        "program": claim.program,
        "year": claim.year,
        "claimed": _yuan(claim.amount_claimed),
        "approved": _yuan(claim.amount_approved),
    }


def _research_office(claim: Claim):
    return User.objects.office_of(claim.institution_id, Role.RESEARCH_OFFICE)


def _notify_office(claim: Claim, *, topic: str, subject, body, event_key: str = "") -> None:
    """The claiming hospital's research office, with a link to the claim's admin page."""
    notify(
        recipients=_research_office(claim),
        topic=topic,
        event_key=event_key or f"claim:{claim.pk}",
        subject=subject,
        body=body,
        link=reverse("admin:subsidies_claim_change", args=[claim.pk]),
    )


def _notify_submitted(claim: Claim, eligible: int) -> None:
    """The regulators of the program's region; they read claims over the API, so the link is the claim's there."""
    regulators = User.objects.filter(role=Role.REGULATOR, region_id=claim.program.region_id, is_active=True)
    params = {**_claim_params(claim), "amount": _yuan(claim.amount_claimed), "lines": eligible}
    notify(
        recipients=regulators,
        topic="claim.submitted",
        event_key=f"claim:{claim.pk}",
        subject=render_later(SUBMITTED_SUBJECT, **params),
        body=render_later(SUBMITTED_BODY, **params),
        link=reverse("claims-detail", args=[claim.pk]),
    )


def _notify_decided(claim: Claim, decision: str, lines) -> None:
    params = _claim_params(claim)
    note = render_later(NOTE, note=claim.decision_note) if claim.decision_note else ""
    if decision == REJECT:
        subject = render_later(REJECTED_SUBJECT, **params)
        body = render_later(REJECTED_BODY, **params, reason=claim.decision_note)
    elif decision == PARTIAL:
        lowered = [
            render_later(
                PARTIAL_LINE,
                protocol=line.trial.protocol_number,
                before=_yuan(line.amount_computed),
                after=_yuan(line.approved_amount),
                reason=line.regulator_note,
            )
            for line in sorted(lines, key=lambda line: line.trial.protocol_number)
            if line.approved_amount < line.amount_computed
        ]
        subject = render_later(PARTIAL_SUBJECT, **params)
        body = render_later(PARTIAL_BODY, **params, lines=_lines_joined(*lowered), note=note)
    else:
        subject = render_later(APPROVED_SUBJECT, **params)
        body = render_later(APPROVED_BODY, **params, note=note)
    _notify_office(claim, topic="claim.decided", subject=subject, body=body)


def _notify_paid(claim: Claim, payment: ClaimPayment) -> None:
    """The hospital's office, for every payment: how much, and what is still owed if anything."""
    params = {
        **_claim_params(claim),
        "paid": _yuan(payment.amount),
        "so_far": _yuan(claim.amount_paid),
        "balance": _yuan(claim.balance),
        "day": claim.paid_on.isoformat(),
        "payment_reference": (
            render_later(PAYMENT_REFERENCE, reference=claim.payment_reference) if claim.payment_reference else ""
        ),
    }
    whole = claim.status == C.PAID
    _notify_office(
        claim,
        topic="claim.paid",
        subject=render_later(PAID_SUBJECT if whole else PART_PAID_SUBJECT, **params),
        body=render_later(PAID_BODY if whole else PART_PAID_BODY, **params),
        event_key=f"claim:{claim.pk}:payment:{payment.pk}",
    )


# --- policy values ----------------------------------------------------------------------------------------------


def amount_rule(program: SubsidyProgram, on: datetime.date) -> rules.AmountRule:
    """The program's amount rule with the values of its policy parameters in force on a day."""

    def value(code: str) -> Decimal | None:
        if not code:
            return None
        try:
            return PolicyParameter.value_for(code, region=program.region, on=on)
        except PolicyParameter.DoesNotExist as exc:
            raise DomainError(
                _("The policy value %(code)s is not in force for %(region)s on %(day)s.")
                % {"code": code, "region": program.region, "day": on.isoformat()},
                code="policy_value_missing",
            ) from exc

    return rules.AmountRule(
        kind=program.amount_rule,
        rate=value(program.rate_parameter),
        percent=value(program.percent_parameter),
        item_cap=value(program.item_cap_parameter),
        project_cap=value(program.project_cap_parameter),
        institution_year_cap=value(program.institution_year_cap_parameter),
        fixed_amount=program.fixed_amount_rmb,
        project_cap_scope=program.project_cap_scope,
    )


def reference_date(year: int, today: datetime.date | None = None) -> datetime.date:
    """A claim reads values and counts as of the end of its year, or today while the year is running."""
    today = today or timezone.localdate()
    return min(datetime.date(year, 12, 31), today)


# --- what earlier claims already took --------------------------------------------------------------------------


def _earlier_lines(claim: Claim):
    return ClaimLine.objects.filter(
        claim__institution_id=claim.institution_id,
        claim__program_id=claim.program_id,
        claim__status__in=Claim.COUNTING_STATUSES,
        status=L.ELIGIBLE,
    ).exclude(claim_id=claim.pk)


def _line_amount():
    return Coalesce("approved_amount", "amount_computed", output_field=DecimalField(max_digits=14, decimal_places=2))


def earlier_by_trial(claim: Claim) -> dict[int, dict]:
    """Per trial: patients and RMB the hospital's earlier counting claims under the program took. One query."""
    rows = (
        _earlier_lines(claim).values("trial_id").annotate(patients=Sum("patients_claimed"), amount=Sum(_line_amount()))
    )
    return {row["trial_id"]: {"patients": row["patients"] or 0, "amount": row["amount"] or rules.ZERO} for row in rows}


def awarded_elsewhere_by_trial(claim: Claim) -> dict[int, list[dict]]:
    """Per trial: what other hospitals' counting claims under the program took, claim by claim ({"institution",
    "claim", "amount"}), when its cap per project covers the whole project (001 task 5: 每个项目资助总额不超过50万元).
    Empty for a cap per hospital. One query."""
    if (
        claim.program.project_cap_scope != SubsidyProgram.ProjectCapScope.PROJECT
        or not claim.program.project_cap_parameter
    ):
        return {}
    rows = (
        ClaimLine.objects.filter(
            claim__program_id=claim.program_id, claim__status__in=Claim.COUNTING_STATUSES, status=L.ELIGIBLE
        )
        .exclude(claim__institution_id=claim.institution_id)
        .values("trial_id", "claim_id", "claim__year", "claim__institution__name_zh")
        .annotate(amount=Sum(_line_amount()))
        .order_by("trial_id", "claim__year", "claim_id")
    )
    out: dict[int, list[dict]] = {}
    for row in rows:
        out.setdefault(row["trial_id"], []).append(
            {
                "institution": row["claim__institution__name_zh"],
                "claim": Claim(pk=row["claim_id"], year=row["claim__year"]).reference,
                "amount": str(row["amount"] or rules.ZERO),
            }
        )
    return out


def _elsewhere_total(awards: list[dict]) -> Decimal:
    return sum((Decimal(award["amount"]) for award in awards), rules.ZERO)


def institution_year_already(claim: Claim) -> Decimal:
    """RMB the hospital's other counting claims of the same year already take under the program."""
    total = (
        Claim.objects.filter(
            institution_id=claim.institution_id,
            program_id=claim.program_id,
            year=claim.year,
            status__in=Claim.COUNTING_STATUSES,
        )
        .exclude(pk=claim.pk)
        .aggregate(
            total=Sum(
                Coalesce(
                    "amount_approved", "amount_claimed", output_field=DecimalField(max_digits=14, decimal_places=2)
                )
            )
        )["total"]
    )
    return total or rules.ZERO


# --- opening and computing --------------------------------------------------------------------------------------


def claim_open(*, actor: User, program: SubsidyProgram, year: int, institution=None) -> Claim:
    """The research office opens a claim for its hospital; the lines are proposed from the ledger at once."""
    institution = institution or actor.institution
    if institution is None:
        raise DomainError(_("Choose the hospital the claim is for."), field="institution")
    _require_office(actor, institution.pk)
    if institution.region_id != program.region_id:
        raise DomainError(
            _("%(program)s is a program of %(region)s; %(hospital)s is not in that region.")
            % {"program": program, "region": program.region, "hospital": institution},
            field="program",
        )
    if not program.applies_to(year):
        raise DomainError(_("%(program)s does not cover %(year)s.") % {"program": program, "year": year}, field="year")
    today = timezone.localdate()
    if year > today.year:
        raise DomainError(_("A claim is made after the fact: %(year)s has not begun.") % {"year": year}, field="year")
    now = timezone.now()
    with transaction.atomic():
        claim = Claim(
            institution=institution,
            program=program,
            year=year,
            reference_date=reference_date(year, today),
            opened_by=actor,
            opened_at=now,
            status_changed_at=now,
        )
        claim._history_user = actor
        # The partial unique constraint is what stops a second open claim, also when two requests race.
        try:
            with transaction.atomic():
                claim.save()
        except IntegrityError as exc:
            raise Conflict(
                _("%(hospital)s already has an open claim under this program; finish or discard it first.")
                % {"hospital": institution},
                code="claim_open_exists",
            ) from exc
        # Re-read with the program as stored now (the caller's copy may predate a fixed amount being set).
        claim = _lock(claim)
        _recompute(claim)
    return claim


def claim_recompute(*, claim: Claim, actor: User) -> Claim:
    """Re-read the ledger and the policy values for a draft (exclusions and cost items are kept)."""
    _require_office(actor, claim.institution_id)
    with transaction.atomic():
        locked = _lock(claim)
        if not _allows(locked, "recompute"):
            raise TransitionNotAllowed(_("Only a draft claim is recomputed; a submitted claim is frozen."))
        locked.reference_date = reference_date(locked.year)
        locked.save(update_fields=["reference_date"])
        _recompute(locked)
    return locked


def _candidate_sites(claim: Claim):
    return (
        TrialSite.objects.filter(institution_id=claim.institution_id)
        .exclude(trial__status__in=NOT_CANDIDATE_STATUSES)
        .select_related("trial__sponsor", "institution")
        .order_by("trial__protocol_number")
    )


def _completion_dates(trial_ids) -> dict[int, datetime.date]:
    rows = (
        TrialStatusChange.objects.filter(trial_id__in=trial_ids, to_status=Trial.Status.COMPLETED)
        .values("trial_id")
        .annotate(at=Max("at"))
    )
    return {row["trial_id"]: timezone.localdate(row["at"]) for row in rows}


def _reasons(rules_, program, facts, on) -> list[dict]:
    """Each failed rule with its message in both interface languages (the claim is read in either)."""
    by_language = {}
    for language in LANGUAGES:
        with translation.override(language):
            by_language[language] = eligibility.refusals(rules_, program, facts, on)
    return [
        {"rule": item["rule"], **{lang: by_language[lang][i]["message"] for lang in LANGUAGES}}
        for i, item in enumerate(by_language[LANGUAGES[0]])
    ]


def line_refusals(
    program_rules, program, facts, on, *, enrolled_total: int, previously_claimed: int, claimed_before: bool
) -> list[dict]:
    """Why a claim line cannot be paid, each reason in both interface languages: the eligibility rules it fails,
    else nothing left to claim (per patient) or a project already claimed (fixed amount; on an earlier counting
    claim, even if the regulator approved less). Reads only the policy values a rule names (no claim or ledger)."""
    reasons = _reasons(program_rules, program, facts, on)
    if not reasons and program.amount_rule == P.PER_PATIENT and enrolled_total <= previously_claimed:
        reasons.append(_reason("nothing_to_claim", _both(lambda: _("No enrolled patient is left to claim."))))
    if not reasons and program.amount_rule == P.FIXED_AMOUNT and claimed_before:
        reasons.append(_reason("already_claimed", _both(lambda: _("The project was already claimed."))))
    return reasons


def _reason(code: str, text_by_language: dict) -> dict:
    return {"rule": code, **text_by_language}


def _both(message_fn) -> dict:
    out = {}
    for language in LANGUAGES:
        with translation.override(language):
            out[language] = str(message_fn())
    return out


def _recompute(claim: Claim) -> None:
    """Rebuild the claim's lines from the ledger: eligibility, counts, amounts, explanations, evidence."""
    program = claim.program
    on = claim.reference_date
    rule = amount_rule(program, on)
    program_rules = list(program.eligibility_rules.all())
    existing = {(line.trial_id, line.item_reference): line for line in claim.lines.all()}
    earlier = earlier_by_trial(claim)
    elsewhere = awarded_elsewhere_by_trial(claim)

    if program.amount_rule == P.PERCENT_OF_COST:
        # Cost items are entered by the office; their trials are checked like any other line.
        targets = [(line.site, line) for line in existing.values()]
    else:
        targets = [(site, existing.get((site.trial_id, ""))) for site in _candidate_sites(claim)]
        stale = set(existing) - {(site.trial_id, "") for site, _line in targets}
        ClaimLine.objects.filter(claim=claim, trial_id__in=[trial_id for trial_id, _ref in stale]).delete()

    site_ids = [site.pk for site, _line in targets]
    enrolled = enrolled_as_of(site_ids=site_ids, on=on)
    completed = _completion_dates([site.trial_id for site, _line in targets])

    lines, inputs = [], []
    for site, line in targets:
        trial = site.trial
        line = line or ClaimLine(claim=claim, trial=trial, site=site)
        facts = eligibility.CandidateFacts(trial=trial, site=site, completed_on=completed.get(trial.pk))
        took = earlier.get(trial.pk, {"patients": 0, "amount": rules.ZERO})
        line.enrolled_total = enrolled.get(site.pk, 0)
        line.previously_claimed = took["patients"]
        awards = elsewhere.get(trial.pk, [])
        line.previously_awarded = took["amount"] + _elsewhere_total(awards)
        reasons = line_refusals(
            program_rules,
            program,
            facts,
            on,
            enrolled_total=line.enrolled_total,
            previously_claimed=line.previously_claimed,
            claimed_before=trial.pk in earlier,
        )
        line.ineligible_reasons = reasons
        if line.status != L.EXCLUDED:
            line.status = L.INELIGIBLE if reasons else L.ELIGIBLE
        line.evidence = evidence.site_summary(trial, site, facts.completed_on)
        lines.append(line)
        if line.status == L.ELIGIBLE:
            inputs.append(
                rules.LineInput(
                    key=len(lines) - 1,
                    enrolled=line.enrolled_total,
                    previously_claimed=line.previously_claimed,
                    previously_awarded=line.previously_awarded,
                    awarded_elsewhere=_elsewhere_total(awards),
                    elsewhere_awards=tuple(awards),
                    cost=line.cost_rmb,
                )
            )
    # The yearly cap cuts the lines that come last: the research completed most recently.
    inputs.sort(
        key=lambda item: (lines[item.key].evidence.get("completed_on") or "9999", lines[item.key].trial.protocol_number)
    )
    result = rules.calculate(rule, inputs, institution_year_already=institution_year_already(claim))
    computed = {line_result.key: line_result for line_result in result.lines}
    eligible_sites = [line.site for index, line in enumerate(lines) if index in computed]
    ethics = evidence.ethics_by_site(eligible_sites, on)
    slots = (
        evidence.patient_slots([site.pk for site in eligible_sites], on) if program.amount_rule == P.PER_PATIENT else {}
    )
    for index, line in enumerate(lines):
        line_result = computed.get(index)
        line.patients_claimed = line_result.patients if line_result else 0
        line.amount_computed = line_result.amount if line_result else rules.ZERO
        line.explanation = line_result.steps if line_result else []
        if line_result:
            # The evidence of each claimed patient, and of the site's approval and the trial's registration.
            line.evidence.update(
                evidence.line_evidence(
                    trial=line.trial,
                    site=line.site,
                    slots=slots.get(line.site_id, []),
                    ethics=ethics.get(line.site_id),
                    first=line.previously_claimed,
                    count=line.patients_claimed,
                )
            )
        line.save()
    claim.amount_claimed = result.total
    claim.save(update_fields=["amount_claimed"])


# --- the hospital's edits while drafting -----------------------------------------------------------------------


def _draft_line(line: ClaimLine, actor: User) -> tuple[Claim, ClaimLine]:
    _require_office(actor, line.claim.institution_id)
    claim = _lock(line.claim)
    if not _allows(claim, "change_lines"):
        raise TransitionNotAllowed(_("Lines change only while the claim is a draft."))
    return claim, ClaimLine.objects.select_related("trial", "site").get(pk=line.pk)


def line_exclude(*, line: ClaimLine, actor: User, reason: str) -> ClaimLine:
    """Leave a line out of the claim, with the reason (its patients stay unclaimed for a later claim)."""
    if not reason.strip():
        raise DomainError(_("Please give the reason for leaving this line out."), field="reason")
    with transaction.atomic():
        claim, locked = _draft_line(line, actor)
        if locked.status == L.EXCLUDED:
            raise DomainError(_("This line is already excluded."))
        locked.status = L.EXCLUDED
        locked.excluded_reason = reason.strip()
        locked.excluded_by = actor
        locked.excluded_at = timezone.now()
        locked._history_user = actor
        locked.save()
        _recompute(claim)
    return locked


def line_include(*, line: ClaimLine, actor: User) -> ClaimLine:
    """Take an excluded line back into the draft; it is checked again like any other."""
    with transaction.atomic():
        claim, locked = _draft_line(line, actor)
        if locked.status != L.EXCLUDED:
            raise DomainError(_("This line is not excluded."))
        locked.status = L.INELIGIBLE
        locked.excluded_reason = ""
        locked.excluded_by = None
        locked.excluded_at = None
        locked._history_user = actor
        locked.save()
        _recompute(claim)
    return locked


def _parse_money(value, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise DomainError(_("Enter an amount in RMB, such as 120000.00."), field=field) from exc
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(rules.FEN):
        raise DomainError(_("Enter an amount in RMB of at least 0, to the fen."), field=field)
    return amount.quantize(rules.FEN)


def cost_item_add(*, claim: Claim, actor: User, trial: Trial, item_reference: str, cost_rmb) -> ClaimLine:
    """For a percentage program: a cost (e.g. a trial's liability-insurance premium) the subsidy pays part of."""
    _require_office(actor, claim.institution_id)
    item_reference = (item_reference or "").strip()
    if not item_reference:
        raise DomainError(_("Enter the insurance policy number."), field="item_reference")
    cost = _parse_money(cost_rmb, "cost_rmb")
    if cost <= 0:
        raise DomainError(_("The cost must be more than 0."), field="cost_rmb")
    with transaction.atomic():
        locked = _lock(claim)
        if not _allows(locked, "change_lines"):
            raise TransitionNotAllowed(_("Lines change only while the claim is a draft."))
        if locked.program.amount_rule != P.PERCENT_OF_COST:
            raise DomainError(_("This program pays by enrolment; its lines come from the ledger."))
        site = TrialSite.objects.filter(trial=trial, institution_id=locked.institution_id).first()
        if site is None:
            raise DomainError(_("The hospital is not a site of this trial."), field="trial")
        earlier = ClaimLine.objects.filter(
            claim__program_id=locked.program_id,
            claim__institution_id=locked.institution_id,
            claim__status__in=Claim.COUNTING_STATUSES,
            item_reference=item_reference,
        ).exists()
        if earlier or ClaimLine.objects.filter(claim=locked, item_reference=item_reference).exists():
            raise DomainError(_("Policy %(ref)s is already claimed.") % {"ref": item_reference}, field="item_reference")
        line = ClaimLine.objects.create(
            claim=locked, trial=trial, site=site, status=L.INELIGIBLE, item_reference=item_reference, cost_rmb=cost
        )
        _recompute(locked)
    line.refresh_from_db()
    return line


def claim_discard(*, claim: Claim, actor: User) -> None:
    """Throw away a draft; nothing of it was ever claimed."""
    _require_office(actor, claim.institution_id)
    with transaction.atomic():
        locked = _lock(claim)
        if not _allows(locked, "discard"):
            raise TransitionNotAllowed(_("Only a draft claim can be discarded."))
        locked.delete()


# --- the workflow -----------------------------------------------------------------------------------------------


def claim_submit(*, claim: Claim, actor: User) -> Claim:
    """Recompute one last time and freeze: the regulator reviews exactly these counts, amounts and documents."""
    _require_office(actor, claim.institution_id)
    with transaction.atomic():
        locked = _lock(claim)
        if not _allows(locked, "submit"):
            raise TransitionNotAllowed(
                _("A claim that is “%(current)s” cannot be submitted.") % {"current": locked.get_status_display()}
            )
        locked.reference_date = reference_date(locked.year)
        locked.save(update_fields=["reference_date"])
        _recompute(locked)
        lines = list(locked.lines.select_related("trial").all())
        eligible = [line for line in lines if line.status == L.ELIGIBLE]
        if locked.program.amount_rule == P.FIXED_AMOUNT and locked.program.fixed_amount_rmb is None:
            raise DomainError(_("The regulator has not yet set the amount for this program."), code="amount_not_set")
        if not eligible or locked.amount_claimed <= 0:
            raise DomainError(_("The claim has no eligible line with an amount to claim."), code="claim_empty")
        now = timezone.now()
        locked.submitted_by = actor
        locked.submitted_at = now
        locked.snapshot = _snapshot(locked, lines, now)
        _move(
            locked,
            step="submit",
            actor=actor,
            fields=("submitted_by", "submitted_at", "snapshot", "reference_date"),
        )
        _notify_submitted(locked, len(eligible))
    return locked


def _snapshot(claim: Claim, lines: list[ClaimLine], now) -> dict:
    from trials.models import DocumentVersion

    rule = amount_rule(claim.program, claim.reference_date)
    trial_ids = [line.trial_id for line in lines if line.status == L.ELIGIBLE]
    documents = {}
    for version in (
        DocumentVersion.objects.filter(document__trial_id__in=trial_ids)
        .select_related("document")
        .order_by("document__trial_id", "document__kind", "document__title", "number")
    ):
        documents.setdefault(version.document.trial_id, {})[(version.document.kind, version.document.title)] = {
            "kind": version.document.kind,
            "title": version.document.title,
            "version": version.number,
            "version_label": version.version_label,
            "sha256": version.sha256,
        }
    return {
        "frozen_at": now.isoformat(),
        "reference_date": claim.reference_date.isoformat(),
        "program": {"code": claim.program.code, "amount_rule": claim.program.amount_rule},
        "rule": {k: (str(v) if v is not None else None) for k, v in vars(rule).items() if k != "kind"},
        "institution_year_already": str(institution_year_already(claim)),
        "amount_claimed": str(claim.amount_claimed),
        "lines": [
            {
                "id": line.pk,
                "trial_id": line.trial_id,
                "protocol_number": line.trial.protocol_number,
                "status": line.status,
                "item_reference": line.item_reference,
                "cost_rmb": None if line.cost_rmb is None else str(line.cost_rmb),
                "enrolled_total": line.enrolled_total,
                "previously_claimed": line.previously_claimed,
                "patients_claimed": line.patients_claimed,
                "amount_computed": str(line.amount_computed),
                "explanation": line.explanation,
                "ineligible_reasons": line.ineligible_reasons,
                "excluded_reason": line.excluded_reason,
                "evidence": line.evidence,
                "documents": list(documents.get(line.trial_id, {}).values()),
            }
            for line in lines
        ],
    }


def claim_start_review(*, claim: Claim, actor: User) -> Claim:
    _require_regulator(actor, claim)
    with transaction.atomic():
        return _move(_lock(claim), step="start_review", actor=actor)


def claim_decide(*, claim: Claim, actor: User, decision: str, note: str = "", adjustments: dict | None = None) -> Claim:
    """The regulator's decision. ``adjustments`` maps a line id to {"amount", "reason"}: a partial approval
    lowers at least one eligible line (never raises it), each with a reason; a rejection needs a note."""
    _require_regulator(actor, claim)
    if decision not in DECISIONS:
        raise DomainError(_("Choose approve, partially approve or reject."), field="decision")
    adjustments = adjustments or {}
    if decision == REJECT and not note.strip():
        raise DomainError(_("Please give the reason for the rejection."), field="note")
    if decision != PARTIAL and adjustments:
        raise DomainError(_("Only a partial approval adjusts lines."), field="adjustments")
    with transaction.atomic():
        locked = _lock(claim)
        if not _allows(locked, decision):
            raise TransitionNotAllowed(
                _("A claim that is “%(current)s” cannot be decided; start the review first.")
                % {"current": locked.get_status_display()}
            )
        eligible = {line.pk: line for line in locked.lines.filter(status=L.ELIGIBLE).select_related("trial")}
        if decision == PARTIAL:
            _apply_adjustments(eligible, adjustments)
        for line in eligible.values():
            if decision == APPROVE:
                line.approved_amount = line.amount_computed
            elif decision == REJECT:
                line.approved_amount = rules.ZERO
            line._history_user = actor
            line.save(update_fields=["approved_amount", "regulator_note", "explanation"])
        locked.amount_approved = sum((line.approved_amount for line in eligible.values()), rules.ZERO)
        locked.decision_note = note.strip()
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        _move(
            locked,
            step=decision,
            actor=actor,
            note=note.strip(),
            fields=("amount_approved", "decision_note", "decided_by", "decided_at"),
        )
        _notify_decided(locked, decision, eligible.values())
    return locked


def _apply_adjustments(eligible: dict[int, ClaimLine], adjustments: dict) -> None:
    if not adjustments:
        raise DomainError(_("A partial approval adjusts at least one line."), field="adjustments")
    if not isinstance(adjustments, dict) or not all(isinstance(change, dict) for change in adjustments.values()):
        raise DomainError(
            _("Give the adjustments as {line id: {amount, reason}}."), field="adjustments", code="invalid"
        )
    lowered = False
    for raw_id, change in adjustments.items():
        try:
            line = eligible[int(raw_id)]
        except (KeyError, TypeError, ValueError) as exc:
            raise DomainError(
                _("Line %(line)s is not an eligible line of this claim.") % {"line": raw_id}, field="adjustments"
            ) from exc
        amount = _parse_money(change.get("amount"), "adjustments")
        reason = str(change.get("reason") or "").strip()
        if amount > line.amount_computed:
            raise DomainError(
                _("Line %(line)s: the approved amount cannot exceed the %(computed)s RMB claimed.")
                % {"line": line.trial.protocol_number, "computed": line.amount_computed},
                field="adjustments",
            )
        if not reason:
            raise DomainError(
                _("Line %(line)s: give the reason for the adjustment.") % {"line": line.trial.protocol_number},
                field="adjustments",
            )
        lowered = lowered or amount < line.amount_computed
        line.approved_amount = amount
        line.regulator_note = reason
        line.explanation = [
            *line.explanation,
            {
                "code": "regulator_adjustment",
                "before": str(line.amount_computed),
                "amount": str(amount),
                "reason": reason,
            },
        ]
    if not lowered:
        raise DomainError(_("A partial approval lowers at least one line; otherwise approve."), field="adjustments")
    for line in eligible.values():
        if line.approved_amount is None or int(line.pk) not in {int(k) for k in adjustments}:
            line.approved_amount = line.amount_computed


def claim_pay(*, claim: Claim, actor: User, amount, paid_on: datetime.date, payment_reference: str = "") -> Claim:
    """Record a payment of a decided claim: more than 0 and at most its balance (approved less paid so far), on a
    day between the decision and today. The whole balance pays the claim; less leaves it partly paid with the rest
    owed, and later payments follow until the balance is nil. Each payment is a row with who, when and reference."""
    _require_regulator(actor, claim)
    paid = _parse_money(amount, "amount")
    with transaction.atomic():
        locked = _lock(claim)
        if not _allows(locked, "pay"):
            raise TransitionNotAllowed(
                _("A claim that is “%(current)s” cannot be paid.") % {"current": locked.get_status_display()}
            )
        balance = locked.balance
        if paid <= 0:
            raise DomainError(_("The payment must be more than 0."), field="amount")
        if paid > balance:
            raise DomainError(
                _(
                    "The payment of %(paid)s RMB is more than the %(balance)s RMB still owed on the claim (approved "
                    "%(approved)s RMB, paid so far %(so_far)s RMB); an overpayment is not recorded."
                )
                % {
                    "paid": _yuan(paid),
                    "balance": _yuan(balance),
                    "approved": _yuan(locked.amount_approved),
                    "so_far": _yuan(locked.amount_paid),
                },
                field="amount",
                code="overpayment",
            )
        if paid_on > timezone.localdate() or paid_on < timezone.localdate(locked.decided_at):
            raise DomainError(_("The payment date must lie between the decision and today."), field="paid_on")
        now = timezone.now()
        payment = ClaimPayment.objects.create(
            claim=locked,
            amount=paid,
            paid_on=paid_on,
            reference=payment_reference.strip(),
            recorded_by=actor,
            recorded_at=now,
            balance_after=balance - paid,
        )
        locked.amount_paid = (locked.amount_paid or rules.ZERO) + paid
        locked.paid_on = paid_on
        locked.payment_reference = payment_reference.strip()
        step = "pay" if paid == balance else "pay_part"
        _move(
            locked,
            step=step,
            actor=actor,
            note=_("%(paid)s RMB paid, %(balance)s RMB still owed.")
            % {"paid": _yuan(paid), "balance": _yuan(balance - paid)}
            if step == "pay_part"
            else "",
            fields=("amount_paid", "paid_on", "payment_reference"),
        )
        _notify_paid(locked, payment)
    return locked


def program_set_fixed_amount(*, program: SubsidyProgram, actor: User, amount) -> SubsidyProgram:
    """A regulator of the program's region sets the fixed amount per project (a fixed-amount program)."""
    if not actor.is_superuser and not (
        actor.is_active and actor.role == Role.REGULATOR and actor.region_id == program.region_id
    ):
        raise _deny(_("Only a regulator of the program's region sets its amount."))
    if program.amount_rule != P.FIXED_AMOUNT:
        raise DomainError(_("This program's amount follows its policy values, not a fixed amount."))
    value = _parse_money(amount, "amount")
    if value <= 0:
        raise DomainError(_("The amount must be more than 0."), field="amount")
    with transaction.atomic():
        locked = SubsidyProgram.objects.select_for_update().get(pk=program.pk)
        locked.fixed_amount_rmb = value
        locked.fixed_amount_set_by = actor
        locked.fixed_amount_set_at = timezone.now()
        locked._history_user = actor
        locked.save(update_fields=["fixed_amount_rmb", "fixed_amount_set_by", "fixed_amount_set_at"])
    return locked
