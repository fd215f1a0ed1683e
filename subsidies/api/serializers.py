"""API shapes for subsidy programs and claims.

Read serializers are read-only; money is a string with two decimals (RMB to the fen). Texts computed when a claim
was (re)computed are stored in both interface languages and rendered here in the request's language. Input
serializers only check the shape; subsidies.services decides whether the step is allowed.
"""

import datetime

from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cgtclinic.models import Institution, PolicyParameter
from subsidies import evidence, rules, services
from subsidies.models import Claim, ClaimLine, ClaimPayment, ClaimStatusChange, EligibilityRule, SubsidyProgram
from trials.api.serializers import VisibleTrialField

MONEY = {"max_digits": 14, "decimal_places": 2}
PARAMETER_FIELDS = (
    ("rate", "rate_parameter"),
    ("percent", "percent_parameter"),
    ("item_cap", "item_cap_parameter"),
    ("project_cap", "project_cap_parameter"),
    ("institution_year_cap", "institution_year_cap_parameter"),
)


def _language_key() -> str:
    language = translation.get_language() or "zh-hans"
    return "en" if language.startswith("en") else "zh-hans"


def reason_in_language(reason: dict) -> str:
    """An ineligibility reason (stored in both interface languages) in the request's language."""
    return reason.get(_language_key()) or reason.get("message") or reason.get("zh-hans") or reason.get("rule", "")


# Programs -------------------------------------------------------------------------------------------------


def policy_values_in_force(programs, on: datetime.date) -> dict[tuple[int, str], PolicyParameter]:
    """{(region id, code): row} for every policy value the programs' amount rules name, in force on a day.

    One query for any number of programs; a regional row wins over a national one, then the latest start, as in
    ``PolicyParameter.value_for``.
    """
    codes = {getattr(p, attr) for p in programs for _key, attr in PARAMETER_FIELDS if getattr(p, attr)}
    region_ids = {p.region_id for p in programs}
    if not codes:
        return {}
    rows = (
        PolicyParameter.objects.filter(code__in=codes, effective_from__lte=on)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
        .filter(Q(region_id__in=region_ids) | Q(region__isnull=True))
        .order_by("effective_from")
    )
    national, regional = {}, {}
    for row in rows:
        if row.region_id is None:
            national[row.code] = row
        else:
            regional[(row.region_id, row.code)] = row
    return {
        (region_id, code): regional.get((region_id, code)) or national.get(code)
        for region_id in region_ids
        for code in codes
        if regional.get((region_id, code)) or national.get(code)
    }


class EligibilityRuleSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = EligibilityRule
        fields = ("kind", "kind_display", "params", "source_clause")
        read_only_fields = fields


class PolicyValueSerializer(serializers.Serializer):
    """One number of the amount rule as in force today, with where it comes from."""

    role = serializers.ChoiceField(
        choices=[key for key, _attr in PARAMETER_FIELDS], help_text=_("Which number of the amount rule this is.")
    )
    code = serializers.CharField(help_text=_("Code of the policy value."))
    value = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    unit = serializers.CharField(allow_null=True)
    effective_from = serializers.DateField(allow_null=True)
    source_document = serializers.CharField(allow_null=True)
    source_clause = serializers.CharField(allow_null=True)


class ProgramListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        programs = list(data.all() if hasattr(data, "all") else data)
        self.context["policy_values"] = policy_values_in_force(programs, timezone.localdate())
        return super().to_representation(programs)


class SubsidyProgramSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)
    region_code = serializers.CharField(source="region.code", read_only=True)
    region_name = serializers.CharField(source="region.name", read_only=True)
    amount_rule_display = serializers.CharField(source="get_amount_rule_display", read_only=True)
    eligibility_rules = EligibilityRuleSerializer(many=True, read_only=True)
    policy_values = serializers.SerializerMethodField(
        help_text=_(
            "The numbers of the amount rule in force today for the program's region; value is null when none is."
        )
    )
    fixed_amount_rmb = serializers.DecimalField(**MONEY, read_only=True, allow_null=True)
    fixed_amount_set_by_name = serializers.CharField(
        source="fixed_amount_set_by.full_name", read_only=True, allow_null=True
    )

    class Meta:
        model = SubsidyProgram
        list_serializer_class = ProgramListSerializer
        fields = (
            "id",
            "code",
            "name",
            "name_zh",
            "name_en",
            "region",
            "region_code",
            "region_name",
            "source_document",
            "source_clause",
            "source_quote",
            "year_from",
            "year_to",
            "amount_rule",
            "amount_rule_display",
            "selective",
            "policy_values",
            "fixed_amount_rmb",
            "fixed_amount_set_at",
            "fixed_amount_set_by_name",
            "eligibility_rules",
        )
        read_only_fields = fields

    @extend_schema_field(PolicyValueSerializer(many=True))
    def get_policy_values(self, program: SubsidyProgram) -> list[dict]:
        if "policy_values" not in self.context:
            self.context["policy_values"] = policy_values_in_force([program], timezone.localdate())
        in_force = self.context["policy_values"]
        out = []
        for role, attr in PARAMETER_FIELDS:
            code = getattr(program, attr)
            if not code:
                continue
            row = in_force.get((program.region_id, code))
            out.append(
                {
                    "role": role,
                    "code": code,
                    "value": None if row is None else str(row.value),
                    "unit": None if row is None else row.unit,
                    "effective_from": None if row is None else row.effective_from.isoformat(),
                    "source_document": None if row is None else row.source_document,
                    "source_clause": None if row is None else row.source_clause,
                }
            )
        return out


class FixedAmountSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY, help_text=_('RMB per project, to the fen, e.g. "200000.00".'))


# Claims ---------------------------------------------------------------------------------------------------


class ExplanationStepSerializer(serializers.Serializer):
    """One step of how a line's amount was reached: its code, its numbers (money as strings) and the sentence."""

    code = serializers.CharField()
    text = serializers.CharField(help_text=_("The step in the request's language."))
    amount = serializers.CharField(required=False, help_text=_("RMB after this step."))
    cut = serializers.CharField(required=False, help_text=_("RMB this cap cut, for a cap step."))


class ReasonSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text=_("The eligibility rule (or nothing_to_claim, already_claimed)."))
    message = serializers.CharField(help_text=_("Why the line does not qualify, in the request's language."))


class MissingEvidenceSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=evidence.MISSING)
    count = serializers.IntegerField(help_text=_("How many patients (or 1 for the site or the trial)."))
    message = serializers.CharField(help_text=_("What is missing, in the request's language."))


class ClaimLineSerializer(serializers.ModelSerializer):
    """One trial (or cost item) of a claim with how its amount was reached."""

    protocol_number = serializers.CharField(source="trial.protocol_number", read_only=True)
    trial_title = serializers.CharField(source="trial.title", read_only=True)
    site_role = serializers.CharField(source="site.role", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    ineligible_reasons = serializers.SerializerMethodField()
    explanation = serializers.SerializerMethodField(
        help_text=_("How the amount was computed, in the request's language.")
    )
    explanation_steps = serializers.SerializerMethodField()
    previously_awarded = serializers.DecimalField(**MONEY, read_only=True)
    cost_rmb = serializers.DecimalField(**MONEY, read_only=True, allow_null=True)
    amount_computed = serializers.DecimalField(**MONEY, read_only=True)
    approved_amount = serializers.DecimalField(**MONEY, read_only=True, allow_null=True)
    evidence = serializers.JSONField(
        read_only=True,
        help_text=_(
            "The trial and site facts the line was checked on, and the evidence of each claimed patient: ethics "
            "(the site's approval: letter_number, decided_on, source), registration (chictr_id, nct_id, "
            "filing_number, nmpa_approval_number), patients (position, subject, enrolled_on, consent, missing) and "
            "missing ({code: count})."
        ),
    )
    evidence_missing = serializers.SerializerMethodField(
        help_text=_("What evidence is missing for the line, in the request's language (does not block submission).")
    )

    class Meta:
        model = ClaimLine
        fields = (
            "id",
            "trial",
            "protocol_number",
            "trial_title",
            "site",
            "site_role",
            "status",
            "status_display",
            "ineligible_reasons",
            "enrolled_total",
            "previously_claimed",
            "patients_claimed",
            "previously_awarded",
            "item_reference",
            "cost_rmb",
            "amount_computed",
            "explanation",
            "explanation_steps",
            "evidence",
            "evidence_missing",
            "excluded_reason",
            "excluded_at",
            "approved_amount",
            "regulator_note",
        )
        read_only_fields = fields

    @extend_schema_field(ReasonSerializer(many=True))
    def get_ineligible_reasons(self, line: ClaimLine) -> list[dict]:
        return [{"rule": r.get("rule", ""), "message": reason_in_language(r)} for r in line.ineligible_reasons]

    @extend_schema_field(MissingEvidenceSerializer(many=True))
    def get_evidence_missing(self, line: ClaimLine) -> list[dict]:
        missing = (line.evidence or {}).get("missing") or {}
        return [
            {"code": code, "count": count, "message": evidence.missing_label(code)} for code, count in missing.items()
        ]

    def get_explanation(self, line: ClaimLine) -> str:
        return rules.describe(line.explanation)

    @extend_schema_field(ExplanationStepSerializer(many=True))
    def get_explanation_steps(self, line: ClaimLine) -> list[dict]:
        return [{**step, "text": rules.describe_step(step)} for step in line.explanation]


class ClaimStatusChangeSerializer(serializers.ModelSerializer):
    actor_name = serializers.CharField(source="actor.full_name", read_only=True)

    class Meta:
        model = ClaimStatusChange
        fields = ("from_status", "to_status", "at", "actor_name", "note")
        read_only_fields = fields


class ClaimPaymentSerializer(serializers.ModelSerializer):
    """One payment of the claim: how much, on which day, with what reference, recorded by whom and when."""

    amount = serializers.DecimalField(**MONEY, read_only=True)
    balance_after = serializers.DecimalField(
        **MONEY, read_only=True, help_text=_("What was still owed after this payment.")
    )
    recorded_by_name = serializers.CharField(source="recorded_by.full_name", read_only=True)

    class Meta:
        model = ClaimPayment
        fields = ("id", "amount", "paid_on", "reference", "balance_after", "recorded_by_name", "recorded_at")
        read_only_fields = fields


CLAIM_FIELDS = (
    "id",
    "reference",
    "institution",
    "institution_name",
    "program",
    "program_code",
    "program_name",
    "amount_rule",
    "region_code",
    "year",
    "status",
    "status_display",
    "reference_date",
    "opened_at",
    "opened_by_name",
    "submitted_at",
    "submitted_by_name",
    "amount_claimed",
    "amount_approved",
    "amount_paid",
    "balance",
    "payments",
    "paid_on",
    "payment_reference",
    "decision_note",
    "decided_at",
    "decided_by_name",
    "status_changed_at",
    "available_steps",
    "lines",
)


class ClaimSerializer(serializers.ModelSerializer):
    """A claim with its lines, as a list row."""

    reference = serializers.CharField(read_only=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True)
    program_code = serializers.CharField(source="program.code", read_only=True)
    program_name = serializers.CharField(source="program.name", read_only=True)
    amount_rule = serializers.ChoiceField(
        source="program.amount_rule", choices=SubsidyProgram.AmountRule.choices, read_only=True
    )
    region_code = serializers.CharField(source="program.region.code", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    opened_by_name = serializers.CharField(source="opened_by.full_name", read_only=True)
    submitted_by_name = serializers.CharField(source="submitted_by.full_name", read_only=True, allow_null=True)
    decided_by_name = serializers.CharField(source="decided_by.full_name", read_only=True, allow_null=True)
    amount_claimed = serializers.DecimalField(**MONEY, read_only=True)
    amount_approved = serializers.DecimalField(**MONEY, read_only=True, allow_null=True)
    amount_paid = serializers.DecimalField(
        **MONEY, read_only=True, allow_null=True, help_text=_("The sum of the payments so far.")
    )
    balance = serializers.DecimalField(
        **MONEY,
        read_only=True,
        allow_null=True,
        help_text=_("Approved and not yet paid; null before the decision and for a rejected claim."),
    )
    payments = ClaimPaymentSerializer(many=True, read_only=True)
    lines = ClaimLineSerializer(many=True, read_only=True)
    available_steps = serializers.SerializerMethodField(
        help_text=_(
            "The steps the claim's status allows and you may take now: recompute, change_lines (exclude, include, "
            "cost-items), submit, discard (DELETE), start_review (/start-review/), approve, partially_approve and "
            "reject (/decide/ with that decision), pay and pay_part (/pay/: the whole balance pays the claim, less "
            "leaves it partly paid)."
        )
    )

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=services.STEPS)))
    def get_available_steps(self, claim) -> list[str]:
        request = self.context.get("request")
        return services.available_steps(claim, request.user) if request is not None else []

    class Meta:
        model = Claim
        fields = CLAIM_FIELDS
        read_only_fields = fields


class ClaimDetailSerializer(ClaimSerializer):
    """One claim with its lines, its history and the snapshot frozen on submission (null for a draft)."""

    status_changes = ClaimStatusChangeSerializer(many=True, read_only=True)
    snapshot = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text=_("Counts, amounts, explanations, evidence and documents exactly as submitted."),
    )

    class Meta:
        model = Claim
        fields = (*CLAIM_FIELDS, "status_changes", "snapshot")
        read_only_fields = fields


class ClaimOpenSerializer(serializers.Serializer):
    program = serializers.PrimaryKeyRelatedField(
        queryset=SubsidyProgram.objects.all(), help_text=_("The program to claim under.")
    )
    year = serializers.IntegerField(min_value=2000, max_value=2100, help_text=_("The year the claim is for."))
    institution = serializers.IntegerField(
        required=False, help_text=_("Only for a system administrator: the hospital the claim is for.")
    )

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["program"].queryset = SubsidyProgram.objects.visible_to(request.user)
        return fields

    def validate_institution(self, value):
        try:
            return Institution.objects.get(pk=value)
        except Institution.DoesNotExist as exc:
            raise serializers.ValidationError(_("No such institution.")) from exc


class ExcludeSerializer(serializers.Serializer):
    reason = serializers.CharField(
        allow_blank=True, max_length=2000, help_text=_("Why the hospital leaves this line out of the claim.")
    )


class CostItemSerializer(serializers.Serializer):
    trial = VisibleTrialField(help_text=_("The trial the cost belongs to."))
    item_reference = serializers.CharField(max_length=60, help_text=_("The insurance policy number."))
    cost_rmb = serializers.DecimalField(**MONEY, help_text=_("The cost in RMB, to the fen (the premium paid)."))


class AdjustmentSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY, help_text=_("The amount approved for the line, in RMB."))
    reason = serializers.CharField(allow_blank=True, max_length=2000, help_text=_("Why the line is lowered."))


class DecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(
        choices=[
            (services.APPROVE, _("Approve")),
            (services.PARTIAL, _("Partially approve")),
            (services.REJECT, _("Reject")),
        ]
    )
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=4000, help_text=_("Required for a rejection.")
    )
    adjustments = serializers.DictField(
        child=AdjustmentSerializer(),
        required=False,
        default=dict,
        help_text=_("For a partial approval: {line id: {amount, reason}} for each line approved at less."),
    )

    def validate_adjustments(self, value):
        return {key: {"amount": change["amount"], "reason": change["reason"]} for key, change in value.items()}


class PaySerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        **MONEY,
        help_text=_(
            "RMB paid, at most the balance still owed: the whole balance pays the claim, less leaves it partly paid."
        ),
    )
    paid_on = serializers.DateField(help_text=_("The day the money was paid."))
    payment_reference = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=100, help_text=_("e.g. the bank transfer number.")
    )
