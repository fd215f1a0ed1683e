"""Regulator reports over trials, sites and enrolment: pipeline, start-up time, enrolment, policy targets."""

import datetime

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from cgtclinic.api.reports import (
    Column,
    ListParameter,
    ReportData,
    ReportFilterSerializer,
    ReportView,
    choice_list,
)
from cgtclinic.models import PolicyTarget
from cgtclinic.reporting.sql import share
from trials import reports
from trials.models import FilingObligation, Trial

STATUS_HELP = _("One or more trial statuses (repeat the parameter or separate with commas).")
KIND_HELP = _("One or more kinds of trial.")
CATEGORY_HELP = _("One or more therapy categories.")


def _label(choices, value):
    return str(choices(value).label) if value else None


def _today(scope):
    return timezone.localdate(scope.now)


def _days(value):
    return None if value is None else round(value)


# --- pipeline ---------------------------------------------------------------------------------------------------


class PipelineFilters(ReportFilterSerializer):
    group_by = ListParameter(
        child=serializers.ChoiceField(choices=list(reports.PIPELINE_GROUPS)),
        required=False,
        help_text=_(
            "What to count by: any of status, kind, therapy_category, institution (the site's institution). "
            "Default: status, kind, therapy_category."
        ),
    )
    status = choice_list(Trial.Status.choices, STATUS_HELP)
    kind = choice_list(Trial.Kind.choices, KIND_HELP)
    therapy_category = choice_list(Trial.TherapyCategory.choices, CATEGORY_HELP)
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only sites at this institution."))
    registered_from = serializers.DateField(required=False, help_text=_("Trials registered on or after this day."))
    registered_to = serializers.DateField(required=False, help_text=_("Trials registered on or before this day."))
    date_ranges = (("registered_from", "registered_to"),)


class PipelineReport(ReportView):
    name = "pipeline"
    title = _("Trial pipeline")
    description = _(
        "Trials and their sites in the region, by lifecycle stage, kind, therapy category and institution. A trial "
        "counts for a region when it has a site there; with institution in group_by it counts once per institution "
        "where it has a site, so the summary's trials (each trial once) can be less than the rows' sum."
    )
    filter_serializer_class = PipelineFilters
    columns = (
        Column("status", "string", _("trial status"), _("Lifecycle status code; null when not grouped by status.")),
        Column("status_label", "string", _("trial status (label)")),
        Column("kind", "string", _("kind"), _("iit, registration or other; null when not grouped by kind.")),
        Column("kind_label", "string", _("kind (label)")),
        Column("therapy_category", "string", _("therapy category")),
        Column("therapy_category_label", "string", _("therapy category (label)")),
        Column("institution_id", "integer", _("institution id"), _("The site's institution, when grouped by it.")),
        Column("institution_name", "string", _("institution")),
        Column("trials", "integer", _("trials"), _("Distinct trials with a site in the group.")),
        Column("sites", "integer", _("sites")),
        Column("lead_sites", "integer", _("lead sites")),
        Column("sites_ethics_approved", "integer", _("sites with ethics approval")),
        Column("sites_contract_signed", "integer", _("sites with a signed contract")),
        Column("sites_initiated", "integer", _("sites initiated")),
        Column("sites_first_patient_in", "integer", _("sites with a first patient in")),
    )
    summary_fields = (
        Column("trials", "integer", _("trials")),
        Column("sites", "integer", _("sites")),
        Column("institutions", "integer", _("institutions with a site")),
        Column("sites_initiated", "integer", _("sites initiated")),
        Column("sites_first_patient_in", "integer", _("sites with a first patient in")),
    )
    bench_sql = """
        SELECT r.trial_status AS status, r.trial_kind AS kind, r.therapy_category,
               COUNT(*) FILTER (WHERE r.first_in_region) AS trials, COUNT(*) AS sites,
               COUNT(*) FILTER (WHERE r.role = 'lead') AS lead_sites,
               COUNT(r.ethics_approved_on) AS sites_ethics_approved,
               COUNT(r.contract_signed_on) AS sites_contract_signed,
               COUNT(r.site_initiated_on) AS sites_initiated,
               COUNT(r.first_patient_in_on) AS sites_first_patient_in,
               COUNT(DISTINCT r.institution_id) AS institutions
        FROM trials_siterollup r
        WHERE r.region_id = %(region_id)s
        GROUP BY GROUPING SETS ((r.trial_status, r.trial_kind, r.therapy_category), ())
        ORDER BY r.trial_status, r.trial_kind, r.therapy_category
    """

    def compute(self, scope, filters):
        filters["group_by"] = list(dict.fromkeys(filters.get("group_by") or reports.PIPELINE_DEFAULT_GROUPS))
        sites = reports.pipeline_sites(
            viewer=scope.viewer,
            statuses=filters.get("status", ()),
            kinds=filters.get("kind", ()),
            categories=filters.get("therapy_category", ()),
            institution_id=filters.get("institution"),
            registered_from=filters.get("registered_from"),
            registered_to=filters.get("registered_to"),
        )
        trials = reports.distinct_trials(scope.viewer, one_institution=bool(filters.get("institution")))
        return ReportData(
            rows=reports.pipeline(sites=sites, trials=trials, group_by=filters["group_by"]),
            summary=reports.pipeline_summary(sites=sites, trials=trials),
        )

    def present(self, rows, scope, filters):
        for row in rows:
            row.setdefault("status", None)
            row.setdefault("kind", None)
            row.setdefault("therapy_category", None)
            row.setdefault("institution_id", None)
            row.setdefault("institution_name", None)
            row["status_label"] = _label(Trial.Status, row["status"])
            row["kind_label"] = _label(Trial.Kind, row["kind"])
            row["therapy_category_label"] = _label(Trial.TherapyCategory, row["therapy_category"])
        return rows


# --- start-up ---------------------------------------------------------------------------------------------------


class StartupFilters(ReportFilterSerializer):
    submitted_from = serializers.DateField(
        required=False, help_text=_("Sites whose submission was received on or after this day.")
    )
    submitted_to = serializers.DateField(required=False, help_text=_("… on or before this day."))
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only sites at this institution."))
    kind = choice_list(Trial.Kind.choices, KIND_HELP)
    therapy_category = choice_list(Trial.TherapyCategory.choices, CATEGORY_HELP)
    target_weeks = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=260,
        help_text=_(
            "Measure against this many weeks instead of the region's start-up target (the policy value in force "
            "on the day each site's submission was received)."
        ),
    )
    date_ranges = (("submitted_from", "submitted_to"),)


STAGE_HELP = _("ethics (submission → ethics approval), contract, initiation or first_patient.")


class StartupReport(ReportView):
    name = "startup"
    title = _("Site start-up time")
    description = _(
        "Per site: calendar days from the submission received to site initiation (start-up) and to the first "
        "patient in, against the region's start-up target (e.g. Beijing: 25 weeks), and the days each stage took: "
        "ethics (submission → ethics approval), contract (→ contract signed), initiation (→ site initiated), "
        "first_patient (→ first patient in). A stage still under way counts its days until today; current_stage "
        "names it. slowest_stage is where most time went."
    )
    filter_serializer_class = StartupFilters
    columns = (
        Column("site_id", "integer", _("site id")),
        Column("trial_id", "integer", _("trial id")),
        Column("protocol_number", "string", _("protocol number")),
        Column("trial_status", "string", _("trial status")),
        Column("institution_id", "integer", _("institution id")),
        Column("institution_name", "string", _("institution")),
        Column("site_role", "string", _("site role"), _("lead or participating.")),
        Column("submission_received_on", "date", _("submission received")),
        Column("ethics_approved_on", "date", _("ethics approved")),
        Column("contract_signed_on", "date", _("contract signed")),
        Column("site_initiated_on", "date", _("site initiated")),
        Column("first_patient_in_on", "date", _("first patient in")),
        Column("startup_days", "integer", _("start-up days"), _("Submission received → site initiated.")),
        Column("days_to_first_patient", "integer", _("days to first patient"), _("Submission → first patient in.")),
        Column("target_weeks", "number", _("target (weeks)"), _("The start-up target the site is measured against.")),
        Column("within_target", "boolean", _("within target"), _("Null until the site is initiated.")),
        Column("ethics_days", "integer", _("ethics stage (days)")),
        Column("contract_days", "integer", _("contract stage (days)")),
        Column("initiation_days", "integer", _("initiation stage (days)")),
        Column("first_patient_days", "integer", _("first-patient stage (days)")),
        Column("current_stage", "string", _("current stage"), STAGE_HELP),
        Column("slowest_stage", "string", _("slowest stage"), STAGE_HELP),
    )
    summary_fields = (
        Column("sites", "integer", _("sites whose start-up began")),
        Column("sites_initiated", "integer", _("sites initiated")),
        Column("sites_first_patient_in", "integer", _("sites with a first patient in")),
        Column("sites_waiting", "integer", _("sites still in a start-up stage")),
        Column("median_startup_days", "number", _("median start-up days")),
        Column("p90_startup_days", "number", _("90th percentile of start-up days")),
        Column("median_days_to_first_patient", "number", _("median days to first patient")),
        Column("p90_days_to_first_patient", "number", _("90th percentile of days to first patient")),
        Column("sites_with_target", "integer", _("initiated sites with a target")),
        Column("sites_within_target", "integer", _("initiated sites within their target")),
        Column("within_target_share", "number", _("share within target"), _("0 to 1.")),
        Column("median_ethics_days", "number", _("median ethics stage (days)")),
        Column("median_contract_days", "number", _("median contract stage (days)")),
        Column("median_initiation_days", "number", _("median initiation stage (days)")),
        Column("median_first_patient_days", "number", _("median first-patient stage (days)")),
        Column("slowest_ethics", "integer", _("sites slowest in ethics")),
        Column("slowest_contract", "integer", _("sites slowest in contract")),
        Column("slowest_initiation", "integer", _("sites slowest in initiation")),
        Column("slowest_first_patient", "integer", _("sites slowest in first patient")),
        Column("slowest_stage", "string", _("stage with the longest median"), STAGE_HELP),
    )
    bench_sql = """
        WITH d AS (
            SELECT r.startup_days, r.days_to_first_patient, r.ethics_days AS ethics, r.contract_days AS contract,
                   r.initiation_days AS initiation, r.first_patient_days AS first_patient, r.waiting,
                   (SELECT p.value FROM cgtclinic_policyparameter p
                     WHERE p.code = 'startup_target_weeks' AND p.effective_from <= r.submission_received_on
                       AND (p.effective_to IS NULL OR p.effective_to >= r.submission_received_on)
                       AND (p.region_id = r.region_id OR p.region_id IS NULL)
                     ORDER BY p.region_id NULLS LAST, p.effective_from DESC LIMIT 1) AS target_weeks
            FROM trials_siterollup r
            WHERE r.region_id = %(region_id)s AND r.submission_received_on IS NOT NULL
        )
        SELECT COUNT(*) AS sites, COUNT(startup_days) AS sites_initiated,
               COUNT(days_to_first_patient) AS sites_first_patient_in,
               COUNT(*) FILTER (WHERE waiting) AS sites_waiting,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY startup_days) AS median_startup_days,
               PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY startup_days) AS p90_startup_days,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY days_to_first_patient) AS median_days_to_first_patient,
               PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY days_to_first_patient) AS p90_days_to_first_patient,
               COUNT(*) FILTER (WHERE startup_days IS NOT NULL AND target_weeks IS NOT NULL) AS sites_with_target,
               COUNT(*) FILTER (WHERE startup_days <= target_weeks * 7) AS sites_within_target,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY ethics) AS median_ethics_days,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY contract) AS median_contract_days,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY initiation) AS median_initiation_days,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY first_patient) AS median_first_patient_days
        FROM d
    """

    def compute(self, scope, filters):
        sites = reports.startup_sites(
            viewer=scope.viewer,
            submitted_from=filters.get("submitted_from"),
            submitted_to=filters.get("submitted_to"),
            institution_id=filters.get("institution"),
            kinds=filters.get("kind", ()),
            categories=filters.get("therapy_category", ()),
        )
        measured = reports.startup_sites_sql(sites, today=_today(scope), target_weeks=filters.get("target_weeks"))
        report = reports.startup_report(measured)
        summary = reports.startup_summary(measured)
        return ReportData(
            rows=lambda offset, limit: reports.startup_rows(report, offset, limit),
            summary=summary,
            count=summary["sites"],
        )

    def present(self, rows, scope, filters):
        for row in rows:
            for name in (
                "startup_days",
                "days_to_first_patient",
                "ethics_days",
                "contract_days",
                "initiation_days",
                "first_patient_days",
            ):
                row[name] = _days(row[name])
        return rows


# --- enrolment --------------------------------------------------------------------------------------------------


class EnrolmentFilters(ReportFilterSerializer):
    group_by = serializers.ChoiceField(
        choices=list(reports.ENROLMENT_GROUPS),
        required=False,
        default="trial",
        help_text=_("One row per trial (default), site, institution or month (of the event date)."),
    )
    occurred_from = serializers.DateField(
        required=False, help_text=_("Count ledger events on or after this day (default: all).")
    )
    occurred_to = serializers.DateField(required=False, help_text=_("… on or before this day."))
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only sites at this institution."))
    trial = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this trial's sites."))
    kind = choice_list(Trial.Kind.choices, KIND_HELP)
    therapy_category = choice_list(Trial.TherapyCategory.choices, CATEGORY_HELP)
    date_ranges = (("occurred_from", "occurred_to"),)


class EnrolmentReport(ReportView):
    name = "enrolment"
    title = _("Enrolment against targets")
    description = _(
        "Subjects screened, enrolled, failing screening, withdrawn and completed at the region's sites (net of "
        "corrections), by trial, site, institution or month, against the sites' enrolment targets. Without a "
        "period the counts are the sites' current counts; with occurred_from / occurred_to they are the ledger's "
        "events of that period. For a trial, site_target is the sum of its targets at the region's sites and "
        "trial_target its overall target."
    )
    filter_serializer_class = EnrolmentFilters
    columns = (
        Column("trial_id", "integer", _("trial id")),
        Column("protocol_number", "string", _("protocol number")),
        Column("site_id", "integer", _("site id")),
        Column("institution_id", "integer", _("institution id")),
        Column("institution_name", "string", _("institution")),
        Column("month", "string", _("month"), _("YYYY-MM, when grouped by month.")),
        Column("sites", "integer", _("sites")),
        Column("site_target", "integer", _("target of the sites")),
        Column("trial_target", "integer", _("trial's overall target")),
        Column("screened", "integer", _("screened")),
        Column("enrolled", "integer", _("enrolled")),
        Column("screen_failed", "integer", _("screen failures")),
        Column("withdrawn", "integer", _("withdrawn")),
        Column("completed", "integer", _("completed")),
        Column("on_study", "integer", _("on study"), _("Enrolled less withdrawn and completed.")),
        Column("percent_of_target", "number", _("percentage of target"), _("enrolled × 100 / site_target.")),
        Column("enrolled_cumulative", "integer", _("enrolled, cumulative"), _("When grouped by month.")),
        Column("last_enrolled_on", "date", _("last enrolment")),
    )
    summary_fields = (
        Column("sites", "integer", _("sites")),
        Column("trials", "integer", _("trials")),
        Column("institutions", "integer", _("institutions")),
        Column("site_target", "integer", _("target of the sites")),
        Column("screened", "integer", _("screened")),
        Column("enrolled", "integer", _("enrolled")),
        Column("screen_failed", "integer", _("screen failures")),
        Column("withdrawn", "integer", _("withdrawn")),
        Column("completed", "integer", _("completed")),
        Column("on_study", "integer", _("on study")),
        Column("percent_of_target", "number", _("percentage of target")),
    )
    bench_sql = """
        SELECT r.trial_id, r.protocol_number, COUNT(*) AS sites, COALESCE(SUM(r.site_target), 0) AS site_target,
               MAX(r.trial_target) AS trial_target,
               SUM(r.screened) AS screened, SUM(r.enrolled) AS enrolled,
               SUM(r.screen_failed) AS screen_failed, SUM(r.withdrawn) AS withdrawn,
               SUM(r.completed) AS completed, MAX(r.last_enrolled_on) AS last_enrolled_on
        FROM trials_siterollup r
        WHERE r.region_id = %(region_id)s
        GROUP BY GROUPING SETS ((r.trial_id, r.protocol_number), ())
        ORDER BY r.protocol_number, r.trial_id
        LIMIT 1001
    """

    def compute(self, scope, filters):
        group_by = filters["group_by"]
        sites = reports.enrolment_sites(
            viewer=scope.viewer,
            institution_id=filters.get("institution"),
            trial_id=filters.get("trial"),
            kinds=filters.get("kind", ()),
            categories=filters.get("therapy_category", ()),
        )
        trials = reports.distinct_trials(scope.viewer, one_institution=bool(filters.get("institution")))
        if not (filters.get("occurred_from") or filters.get("occurred_to")) and group_by != "month":
            self.period = None
            summary = reports.with_progress(reports.enrolment_current_summary(sites=sites, trials=trials))
            rows = reports.enrolment_groups(sites=sites, group_by=group_by, with_counts=True)
            return ReportData(rows=rows, summary=summary, count=summary[GROUP_COUNTS[group_by]])
        self.period = {
            "sites": sites,
            "occurred_from": filters.get("occurred_from"),
            "occurred_to": filters.get("occurred_to"),
        }
        # Zero counts first: a period without events adds nothing to the summary.
        summary = reports.add_counts(reports.enrolment_targets(sites=sites, trials=trials), {})
        if group_by == "month":
            months = reports.period_months(**self.period)
            cumulative = 0
            for row in months:
                reports.add_counts(summary, row)
                cumulative += row["enrolled"]
                row["enrolled_cumulative"] = cumulative
                row["month"] = row["month"].strftime("%Y-%m")
            return ReportData(rows=months, summary=reports.with_progress(summary))
        if group_by == "institution":
            # At most one row per institution: every institution's counts at once, and the totals from them.
            self.ledger = reports.period_counts(**self.period, by="institution")
            for counts in self.ledger.values():
                reports.add_counts(summary, counts)
        else:
            self.ledger = None
            reports.add_counts(summary, reports.period_counts(**self.period).get(None, {}))
        rows = reports.enrolment_groups(sites=sites, group_by=group_by, with_counts=False)
        return ReportData(rows=rows, summary=reports.with_progress(summary), count=summary[GROUP_COUNTS[group_by]])

    def present(self, rows, scope, filters):
        group_by = filters["group_by"]
        if self.period and group_by != "month":
            key = GROUP_KEYS[group_by]
            ledger = self.ledger
            if ledger is None:
                ledger = reports.period_counts(**self.period, by=group_by, keys=[row[key] for row in rows])
            for row in rows:
                row.update(ledger.get(row[key]) or reports.no_counts())
        for row in rows:
            for name in (column.name for column in self.columns):
                row.setdefault(name, None)
            reports.with_progress(row)
        return rows


GROUP_KEYS = {"trial": "trial_id", "site": "site_id", "institution": "institution_id"}
GROUP_COUNTS = {"trial": "trials", "site": "sites", "institution": "institutions"}


# --- policy targets ---------------------------------------------------------------------------------------------


class PolicyTargetReport(ReportView):
    name = "policy-targets"
    title = _("Policy targets")
    description = _(
        "Each region's published targets (seeds/policy/targets.yaml) against the data so far. New clinical-trial "
        "approvals count the NMPA clinical-trial approvals (批件) and implied permissions (默示许可) by their date "
        "(the trial's nmpa_approved_on); new clinical filings count the biomedical new-technology clinical research "
        "filings (临床备案) by their filing date. Both count trials led by the region's institutions, between the "
        "target's period_start and the end of its deadline year; the lifecycle step “approved” is not counted. "
        "expected_by_now is the target spread evenly over that period; on_track compares achieved with it."
    )
    columns = (
        Column("region_code", "string", _("region code")),
        Column("region_name", "string", _("region")),
        Column("metric", "string", _("metric"), _("new_trial_approvals or new_clinical_filings.")),
        Column("metric_label", "string", _("metric (label)")),
        Column("target_value", "integer", _("target")),
        Column("period_start", "date", _("counted from")),
        Column("period_end", "date", _("counted until")),
        Column("deadline_year", "integer", _("by the end of year")),
        Column("achieved", "integer", _("achieved so far")),
        Column("remaining", "integer", _("still to achieve")),
        Column("percent_achieved", "number", _("% achieved")),
        Column("expected_by_now", "number", _("expected by now")),
        Column("on_track", "boolean", _("on track")),
        Column("met", "boolean", _("met")),
        Column("days_left", "integer", _("days left")),
        Column("source_document", "string", _("source document")),
        Column("source_clause", "string", _("source clause")),
    )
    summary_fields = (
        Column("targets", "integer", _("targets")),
        Column("met", "integer", _("targets met")),
        Column("on_track", "integer", _("targets on track")),
    )
    bench_sql = """
        SELECT pt.id, pt.metric, pt.target_value,
               COUNT(e.day) FILTER (
                   WHERE e.metric = pt.metric AND e.day >= pt.period_start
                     AND e.day <= make_date(pt.deadline_year, 12, 31)
               ) AS achieved
        FROM cgtclinic_policytarget pt
        LEFT JOIN (
            SELECT 'new_trial_approvals' AS metric, t.nmpa_approved_on AS day
            FROM trials_trial t
            JOIN cgtclinic_institution i ON i.id = t.lead_institution_id
            WHERE i.region_id = %(region_id)s AND t.nmpa_approved_on IS NOT NULL
            UNION ALL
            SELECT 'new_clinical_filings', f.filed_on
            FROM trials_filingobligation f
            JOIN trials_trial t ON t.id = f.trial_id
            JOIN cgtclinic_institution i ON i.id = t.lead_institution_id
            WHERE i.region_id = %(region_id)s AND f.kind = 'new_technology' AND f.status = 'filed'
        ) e ON TRUE
        WHERE pt.region_id = %(region_id)s
        GROUP BY pt.id, pt.metric, pt.target_value
        ORDER BY pt.deadline_year, pt.metric
    """

    def compute(self, scope, filters):
        rows = reports.policy_targets(viewer=scope.viewer, region_id=scope.region_id, today=_today(scope))
        summary = {
            "targets": len(rows),
            "met": sum(row["met"] for row in rows),
            "on_track": sum(row["on_track"] for row in rows),
        }
        return ReportData(rows=rows, summary=summary)

    def present(self, rows, scope, filters):
        for row in rows:
            row["metric_label"] = str(PolicyTarget.Metric(row["metric"]).label)
        return rows


# --- research filings -------------------------------------------------------------------------------------------


class FilingFilters(ReportFilterSerializer):
    due_from = serializers.DateField(
        required=False, help_text=_("Filings whose deadline ends on or after this day (default: 1 January this year).")
    )
    due_to = serializers.DateField(
        required=False, help_text=_("… on or before this day (default: 31 December this year).")
    )
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this lead institution."))
    kind = choice_list(FilingObligation.Kind.choices, _("One or more kinds of filing."))
    date_ranges = (("due_from", "due_to"),)


class ResearchFilingsReport(ReportView):
    name = "research-filings"
    title = _("Research filings")
    description = _(
        "Filings owed by trials led by the region's institutions, per lead institution, whose deadline ends in the "
        "period: the initial upload to the national medical-research filing system, annual progress reports, "
        "change filings after approved amendments, completion summaries, and new-technology filings with the health "
        "commission. due counts them all (filings no longer due, e.g. after withdrawal, are left out); filed_on_time "
        "and filed_late the recorded ones by whether the filing date was within the deadline; overdue the open ones "
        "past it; open those not yet due."
    )
    filter_serializer_class = FilingFilters
    columns = (
        Column("institution_id", "integer", _("institution id")),
        Column("institution_name", "string", _("lead institution")),
        Column("due", "integer", _("filings due")),
        Column("filed_on_time", "integer", _("filed on time")),
        Column("filed_late", "integer", _("filed late")),
        Column("overdue", "integer", _("overdue (open past the deadline)")),
        Column("open", "integer", _("open, not yet due")),
        Column("on_time_share", "number", _("share filed on time"), _("Of the filings recorded, 0 to 1.")),
    )
    summary_fields = (
        Column("due", "integer", _("filings due")),
        Column("filed_on_time", "integer", _("filed on time")),
        Column("filed_late", "integer", _("filed late")),
        Column("overdue", "integer", _("overdue (open past the deadline)")),
        Column("open", "integer", _("open, not yet due")),
        Column("on_time_share", "number", _("share filed on time")),
    )
    bench_sql = """
        SELECT t.lead_institution_id AS institution_id, COUNT(*) AS due,
               COUNT(*) FILTER (WHERE f.status = 'filed' AND NOT f.late) AS filed_on_time,
               COUNT(*) FILTER (WHERE f.status = 'filed' AND f.late) AS filed_late,
               COUNT(*) FILTER (WHERE f.status = 'open' AND f.due_at <= now()) AS overdue,
               COUNT(*) FILTER (WHERE f.status = 'open' AND f.due_at > now()) AS open
        FROM trials_filingobligation f
        JOIN trials_trial t ON t.id = f.trial_id
        JOIN cgtclinic_institution i ON i.id = t.lead_institution_id
        WHERE i.region_id = %(region_id)s AND f.status <> 'cancelled'
          AND f.due_at > (make_date(EXTRACT(YEAR FROM now() AT TIME ZONE 'Asia/Shanghai')::int, 1, 1)::timestamp
                          AT TIME ZONE 'Asia/Shanghai')
          AND f.due_at <= (make_date(EXTRACT(YEAR FROM now() AT TIME ZONE 'Asia/Shanghai')::int + 1, 1, 1)::timestamp
                           AT TIME ZONE 'Asia/Shanghai')
        GROUP BY t.lead_institution_id
        ORDER BY t.lead_institution_id
    """

    def compute(self, scope, filters):
        today = _today(scope)
        obligations = reports.filing_obligations(
            viewer=scope.viewer,
            due_from=filters.get("due_from") or datetime.date(today.year, 1, 1),
            due_to=filters.get("due_to") or datetime.date(today.year, 12, 31),
            institution_id=filters.get("institution"),
            kinds=filters.get("kind") or (),
        )
        summary = reports.filings_summary(obligations, now=scope.now)
        summary["on_time_share"] = _on_time_share(summary)
        return ReportData(rows=reports.filings_by_institution(obligations, now=scope.now), summary=summary)

    def present(self, rows, scope, filters):
        for row in rows:
            row["on_time_share"] = _on_time_share(row)
        return rows


def _on_time_share(row: dict):
    return share(row["filed_on_time"], row["filed_on_time"] + row["filed_late"])
