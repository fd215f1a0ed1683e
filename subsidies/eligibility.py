"""Eligibility rules: each kind reads its parameters (data from seeds/) and says why a trial does not qualify.

A rule returns None when the trial meets it, or a translated sentence saying what is missing. Rules read only
what ``CandidateFacts`` carries, which the caller loads for all candidate trials at once.
"""

import datetime
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from cgtclinic.models import PolicyParameter
from subsidies.models import EligibilityRule, SubsidyProgram
from trials.models import Trial, TrialSite

Kind = EligibilityRule.Kind


@dataclass(frozen=True)
class CandidateFacts:
    trial: Trial
    site: TrialSite
    completed_on: datetime.date | None  # the day the trial became "completed", if it has


def check_params(kind: str, params: dict) -> list[str]:
    """What is wrong with a rule's parameters (empty when they are fine)."""
    if not isinstance(params, dict):
        return [_("Parameters must be an object.")]
    problems = []
    if kind == Kind.THERAPY_CATEGORY:
        categories = params.get("categories")
        if (
            not isinstance(categories, list)
            or not categories
            or not set(map(str, categories)) <= set(Trial.TherapyCategory.values)
        ):
            problems.append(
                _("List the therapy categories, from: %(choices)s")
                % {"choices": ", ".join(Trial.TherapyCategory.values)}
            )
    elif kind == Kind.TRIAL_KIND:
        allowed = {"iit", "industry_sponsor_in_region", "sponsor_cgt_enterprise"}
        if set(params) - allowed or not (params.get("iit") or params.get("industry_sponsor_in_region")):
            problems.append(
                _("Set iit and/or industry_sponsor_in_region to true (and optionally sponsor_cgt_enterprise).")
            )
    elif kind == Kind.RESEARCH_COMPLETED:
        since = params.get("completed_on_or_after")
        if since is not None:
            try:
                datetime.date.fromisoformat(since)
            except (TypeError, ValueError):
                problems.append(_("completed_on_or_after must be a date such as 2023-08-31."))
    elif kind == Kind.STARTUP_WITHIN_TARGET:
        if not params.get("parameter"):
            problems.append(_("Name the policy value holding the target in weeks (parameter)."))
    elif kind != Kind.ETHICS_APPROVAL:
        problems.append(_("Unknown rule."))
    return problems


def refusal(rule: EligibilityRule, program: SubsidyProgram, facts: CandidateFacts, on: datetime.date) -> str | None:
    """Why the candidate fails this rule, or None."""
    trial, site, params = facts.trial, facts.site, rule.params
    if rule.kind == Kind.THERAPY_CATEGORY:
        if trial.therapy_category not in params["categories"]:
            names = pgettext("enumeration separator", ", ").join(
                str(Trial.TherapyCategory(c).label) for c in params["categories"]
            )
            return _("Therapy category “%(category)s” is not covered (covered: %(covered)s).") % {
                "category": trial.get_therapy_category_display(),
                "covered": names,
            }
        return None
    if rule.kind == Kind.TRIAL_KIND:
        if trial.kind == Trial.Kind.IIT and params.get("iit"):
            return None
        if trial.kind == Trial.Kind.REGISTRATION and params.get("industry_sponsor_in_region"):
            sponsor = trial.sponsor
            if sponsor is None or sponsor.region_id != program.region_id:
                return _("The sponsor is not an enterprise registered in %(region)s.") % {"region": program.region}
            if params.get("sponsor_cgt_enterprise") and not sponsor.is_cgt_enterprise:
                return _("The sponsor is not registered as a CGT enterprise.")
            return None
        return _("Trials of the kind “%(kind)s” are not covered.") % {"kind": trial.get_kind_display()}
    if rule.kind == Kind.RESEARCH_COMPLETED:
        if facts.completed_on is None or trial.status != Trial.Status.COMPLETED:
            return _("The research is not completed (status: %(status)s).") % {"status": trial.get_status_display()}
        if facts.completed_on > on:
            return _("The research was completed after the claim's reference date.")
        since = params.get("completed_on_or_after")
        if since and facts.completed_on < datetime.date.fromisoformat(since):
            return _("The research was completed on %(day)s, before the program began (%(since)s).") % {
                "day": facts.completed_on.isoformat(),
                "since": since,
            }
        return None
    if rule.kind == Kind.ETHICS_APPROVAL:
        if site.ethics_approved_on is None:
            return _("The site has no ethics approval or recognition recorded.")
        return None
    if rule.kind == Kind.STARTUP_WITHIN_TARGET:
        days = site.startup_days
        if days is None:
            return _("The site's start-up dates (submission received, site initiated) are not recorded.")
        try:
            weeks = PolicyParameter.value_for(
                params["parameter"], region=program.region, on=site.submission_received_on
            )
        except PolicyParameter.DoesNotExist:
            return _("No start-up target was in force when the site received the submission.")
        if days > weeks * 7:
            return _("Start-up took %(weeks)s weeks, over the target of %(target)s weeks.") % {
                "weeks": round(days / 7, 1),
                "target": format(weeks.normalize(), "f"),
            }
        return None
    return _("Unknown rule.")


def refusals(rules: list[EligibilityRule], program: SubsidyProgram, facts: CandidateFacts, on: datetime.date):
    """[{"rule": kind, "message": text}] for every rule the candidate fails."""
    out = []
    for rule in rules:
        message = refusal(rule, program, facts, on)
        if message:
            out.append({"rule": rule.kind, "message": str(message)})
    return out
