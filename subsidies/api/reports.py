"""Regulator reports over subsidy claims: per program, institution and year, and per project."""

from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from cgtclinic.api.reports import (
    Column,
    ReportData,
    ReportFilterSerializer,
    ReportView,
    choice_list,
)
from cgtclinic.reporting.sql import page_with_totals, viewer_key
from subsidies import reports
from subsidies.models import Claim

STATUS_COLUMNS = tuple(
    Column(f"claims_{status}", "integer", format_lazy(_("claims: {status}"), status=Claim.Status(status).label))
    for status in reports.CLAIM_STATUSES
)


class ClaimFilters(ReportFilterSerializer):
    program = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this program (id)."))
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this institution's claims."))
    year = serializers.IntegerField(
        required=False, min_value=2000, max_value=2099, help_text=_("Only claims for this year.")
    )
    status = choice_list(
        [(status, Claim.Status(status).label) for status in reports.CLAIM_STATUSES],
        _("Count and sum only claims in these statuses (the room under the yearly cap always counts every claim)."),
    )


class SubsidyClaimsReport(ReportView):
    name = "subsidies"
    title = _("Subsidy claims")
    description = _(
        "Hospitals' submitted subsidy claims under the region's programs, per program, institution and claim year: "
        "claims by status, amounts claimed, approved and paid (RMB), and the institution's yearly cap (the policy "
        "value in force on the year's reference date) with what the year's claims take from it (approved amounts "
        "once decided, else claimed; rejected claims take nothing) and the room left. A claim paid less than "
        "approved is partly paid; its balance is in the balance owed. Drafts are not counted."
    )
    filter_serializer_class = ClaimFilters
    columns = (
        Column("program_id", "integer", _("program id")),
        Column("program_code", "string", _("program code")),
        Column("program_name", "string", _("program")),
        Column("institution_id", "integer", _("institution id")),
        Column("institution_name", "string", _("institution")),
        Column("year", "integer", _("claim year")),
        Column("claims", "integer", _("claims")),
        *STATUS_COLUMNS,
        Column("amount_claimed", "money", _("amount claimed (RMB)")),
        Column("amount_approved", "money", _("amount approved (RMB)")),
        Column("amount_paid", "money", _("amount paid (RMB)")),
        Column(
            "amount_owed",
            "money",
            _("balance owed (RMB)"),
            _("Approved and not yet paid, over the approved and partly paid claims."),
        ),
        Column("institution_year_cap", "money", _("cap per institution per year (RMB)"), _("Null: no such cap.")),
        Column("counted_toward_cap", "money", _("taken from the yearly cap (RMB)")),
        Column("room_under_institution_year_cap", "money", _("room left under the yearly cap (RMB)")),
    )
    summary_fields = (
        Column("claims", "integer", _("claims")),
        *STATUS_COLUMNS,
        Column("amount_claimed", "money", _("amount claimed (RMB)")),
        Column("amount_approved", "money", _("amount approved (RMB)")),
        Column("amount_paid", "money", _("amount paid (RMB)")),
        Column("amount_owed", "money", _("balance owed (RMB)")),
        Column("institutions", "integer", _("institutions")),
        Column("programs", "integer", _("programs")),
    )
    bench_sql = """
        WITH groups AS (
            SELECT t.program_id, t.claiming_institution_id AS institution_id, t.year,
                   SUM(t.claim_count) AS claims,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'submitted'), 0) AS claims_submitted,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'under_review'), 0) AS claims_under_review,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'approved'), 0) AS claims_approved,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'partially_approved'), 0)
                       AS claims_partially_approved,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'rejected'), 0) AS claims_rejected,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'partially_paid'), 0) AS claims_partially_paid,
                   COALESCE(SUM(t.claim_count) FILTER (WHERE t.status = 'paid'), 0) AS claims_paid,
                   SUM(t.claimed_rmb) AS amount_claimed, SUM(t.approved_rmb) AS amount_approved,
                   SUM(t.paid_rmb) AS amount_paid, SUM(t.owed_rmb) AS amount_owed,
                   SUM(t.counted_rmb) AS counted_toward_cap,
                   COUNT(DISTINCT t.claiming_institution_id) AS institutions, COUNT(DISTINCT t.program_id) AS programs
            FROM subsidies_claimyeartotal t
            JOIN subsidies_subsidyprogram p ON p.id = t.program_id
            WHERE p.region_id = %(region_id)s
            GROUP BY GROUPING SETS ((t.program_id, t.claiming_institution_id, t.year), ())
        )
        SELECT g.*, p.code AS program_code, p.name_zh AS program_name, i.name_zh AS institution_name,
               cap.value AS institution_year_cap,
               GREATEST(cap.value - g.counted_toward_cap, 0) AS room_under_institution_year_cap
        FROM groups g
        LEFT JOIN subsidies_subsidyprogram p ON p.id = g.program_id
        LEFT JOIN cgtclinic_institution i ON i.id = g.institution_id
        LEFT JOIN LATERAL (
            SELECT v.value FROM cgtclinic_policyparameter v
            WHERE v.code = p.institution_year_cap_parameter
              AND v.effective_from <= LEAST(make_date(g.year::int, 12, 31), CURRENT_DATE)
              AND (v.effective_to IS NULL OR v.effective_to >= LEAST(make_date(g.year::int, 12, 31), CURRENT_DATE))
              AND (v.region_id = p.region_id OR v.region_id IS NULL)
            ORDER BY v.region_id NULLS LAST, v.effective_from DESC LIMIT 1
        ) cap ON TRUE
        ORDER BY p.code, i.name_zh, g.year
    """

    def compute(self, scope, filters):
        chosen = {name: filters.get(name) for name in ("program", "institution", "year")}
        statuses = tuple(filters.get("status", ()))

        def rows():
            totals = reports.year_totals_in_scope(
                viewer=scope.viewer,
                program_id=chosen["program"],
                institution_id=chosen["institution"],
                year=chosen["year"],
            )
            return reports.claim_rows(totals=totals, statuses=statuses)

        self.caps = reports.cap_values(viewer=scope.viewer, field="institution_year_cap_parameter")
        data = ReportData(rows=None, summary={})
        data.rows = page_with_totals(
            data,
            rows,
            reports.CLAIM_TOTALS,
            empty=reports.CLAIM_EMPTY,
            key=(self.name, viewer_key(scope.viewer), *chosen.values(), statuses),
        )
        return data

    def present(self, rows, scope, filters):
        today = timezone.localdate(scope.now)
        return [reports.with_year_cap(row, self.caps, today) for row in rows]


class ProjectFilters(ReportFilterSerializer):
    program = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this program (id)."))
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this institution's claims."))


class SubsidyProjectsReport(ReportView):
    name = "subsidy-projects"
    title = _("Subsidies per project")
    description = _(
        "Per program and trial (project): the eligible lines of the submitted and decided claims (rejected claims "
        "excluded), the patients claimed, the RMB they take (approved amounts once decided, else computed), and the "
        "room left under the program's cap per project in force today. Where the program's cap covers the project "
        "over all hospitals (cap_scope project, 001 task 5: 每个项目资助总额), a project is one row summing every "
        "hospital's claims and the institution is empty; where it caps each hospital separately "
        "(project_per_hospital), there is one row per project and hospital."
    )
    filter_serializer_class = ProjectFilters
    columns = (
        Column("program_id", "integer", _("program id")),
        Column("program_code", "string", _("program code")),
        Column(
            "cap_scope",
            "string",
            _("the project cap counts"),
            _("project: over all hospitals; project_per_hospital: each hospital separately."),
        ),
        Column("institution_id", "integer", _("institution id"), _("Null: the cap covers every hospital.")),
        Column("institution_name", "string", _("institution"), _("Null: the cap covers every hospital.")),
        Column("trial_id", "integer", _("trial id")),
        Column("protocol_number", "string", _("protocol number")),
        Column("institutions", "integer", _("hospitals with claims")),
        Column("claims", "integer", _("claims")),
        Column("patients_claimed", "integer", _("patients claimed")),
        Column("amount_counted", "money", _("amount taken (RMB)")),
        Column("project_cap", "money", _("cap per project (RMB)"), _("Null: the program has no cap per project.")),
        Column("room_under_project_cap", "money", _("room left under the project cap (RMB)")),
    )
    summary_fields = (
        Column("projects", "integer", _("projects")),
        Column("patients_claimed", "integer", _("patients claimed")),
        Column("amount_counted", "money", _("amount taken (RMB)")),
        Column("projects_with_cap", "integer", _("projects with a cap")),
        Column("projects_at_cap", "integer", _("projects at their cap")),
        Column("room_under_project_caps", "money", _("room left under the project caps (RMB)")),
    )
    bench_sql = """
        WITH projects AS (
            SELECT t.program_id, p.project_cap_scope AS cap_scope,
                   CASE WHEN p.project_cap_scope = 'project_per_hospital' THEN t.claiming_institution_id END
                       AS institution_id,
                   t.trial_id, COUNT(*) AS institutions, SUM(t.claim_count) AS claims,
                   SUM(t.patient_count) AS patients_claimed, SUM(t.counted_rmb) AS amount_counted
            FROM subsidies_projectclaimtotal t
            JOIN subsidies_subsidyprogram p ON p.id = t.program_id
            WHERE p.region_id = %(region_id)s
            GROUP BY 1, 2, 3, 4
        )
        SELECT *, COUNT(*) OVER () AS projects, SUM(patients_claimed) OVER () AS total_patients_claimed,
               SUM(amount_counted) OVER () AS total_amount_counted,
               COUNT(*) FILTER (WHERE project_cap IS NOT NULL) OVER () AS projects_with_cap,
               COUNT(*) FILTER (WHERE room_under_project_cap <= 0) OVER () AS projects_at_cap,
               COALESCE(SUM(room_under_project_cap) OVER (), 0) AS room_under_project_caps
        FROM (
        SELECT g.*, p.code AS program_code, i.name_zh AS institution_name, t.protocol_number,
               cap.value AS project_cap, GREATEST(cap.value - g.amount_counted, 0) AS room_under_project_cap
        FROM projects g
        JOIN subsidies_subsidyprogram p ON p.id = g.program_id
        LEFT JOIN cgtclinic_institution i ON i.id = g.institution_id
        JOIN trials_trial t ON t.id = g.trial_id
        LEFT JOIN LATERAL (
            SELECT v.value FROM cgtclinic_policyparameter v
            WHERE v.code = p.project_cap_parameter AND v.effective_from <= CURRENT_DATE
              AND (v.effective_to IS NULL OR v.effective_to >= CURRENT_DATE)
              AND (v.region_id = p.region_id OR v.region_id IS NULL)
            ORDER BY v.region_id NULLS LAST, v.effective_from DESC LIMIT 1
        ) cap ON TRUE
        ) q
        ORDER BY program_code, protocol_number, trial_id, institution_name
        LIMIT 100
    """

    def compute(self, scope, filters):
        rows = reports.project_rows(
            viewer=scope.viewer,
            today=timezone.localdate(scope.now),
            program_id=filters.get("program"),
            institution_id=filters.get("institution"),
        )
        data = ReportData(rows=None, summary={})
        data.rows = page_with_totals(data, lambda: rows, reports.PROJECT_TOTALS, empty=reports.PROJECT_EMPTY)
        return data

    def present(self, rows, scope, filters):
        for row in rows:
            row["patients_claimed"] = row.pop("patients")
        return rows
