"""Regulator reports over ethics review: recognition timeliness (with the overdue requests), review turnaround,
safety-reporting timeliness."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from rest_framework import serializers

from cgtclinic.api.reports import (
    EXPORT_PAGE_SIZE,
    Column,
    ColumnSerializer,
    ListParameter,
    ReportData,
    ReportFilterSerializer,
    ReportView,
    choice_list,
)
from cgtclinic.reporting.sql import groups_and_total, vendor
from ethics import reports
from ethics.models import SafetyClock, Submission


class RecognitionFilters(ReportFilterSerializer):
    received_from = serializers.DateField(required=False, help_text=_("Requests received on or after this day."))
    received_to = serializers.DateField(required=False, help_text=_("… on or before this day."))
    alliance = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this alliance's requests."))
    institution = serializers.IntegerField(
        required=False, min_value=1, help_text=_("Only requests to this (participating) institution's committee.")
    )
    date_ranges = (("received_from", "received_to"),)


class TimelinessFilters(RecognitionFilters):
    group_by = serializers.ChoiceField(
        choices=["alliance", "institution"],
        required=False,
        default="alliance",
        help_text=_("One row per alliance (default) or per participating institution."),
    )
    rows = serializers.ChoiceField(
        choices=["groups", "overdue"],
        required=False,
        default="groups",
        help_text=_(
            "The rows: the groups (default), or the overdue requests, longest overdue first (to export the whole "
            "list as CSV or Excel, or to page through it)."
        ),
    )


def _recognition_filters(filters) -> dict:
    return {
        "received_from": filters.get("received_from"),
        "received_to": filters.get("received_to"),
        "alliance_id": filters.get("alliance"),
        "institution_id": filters.get("institution"),
    }


HOURS_HELP = _("Working hours from receipt to the answer, over answered requests.")
# The overdue list in the JSON body (the rest with ?rows=overdue); the Excel workbook has it all on a sheet.
OVERDUE_IN_JSON = 100

OVERDUE_COLUMNS = (
    Column("request_id", "integer", _("request id")),
    Column("trial_id", "integer", _("trial id")),
    Column("protocol_number", "string", _("protocol number")),
    Column("trial_title", "string", _("trial")),
    Column("site_id", "integer", _("site id")),
    Column("institution_id", "integer", _("institution id")),
    Column("institution_name", "string", _("participating institution")),
    Column("committee_name", "string", _("participating committee")),
    Column("alliance_id", "integer", _("alliance id")),
    Column("alliance_name", "string", _("alliance")),
    Column("subject", "string", _("what is to be recognised"), _("initial or amendment.")),
    Column("received_at", "datetime", _("received at")),
    Column("due_at", "datetime", _("due at")),
    Column("overdue_days", "number", _("days overdue"), _("Calendar days since the deadline.")),
    Column("escalated_at", "datetime", _("escalated at")),
    Column("provisional", "boolean", _("provisional deadline")),
)


def _columns(columns) -> list[dict]:
    return [{"name": c.name, "label": str(c.label), "type": c.kind} for c in columns]


OverdueRequestSerializer = type(
    "RecognitionOverdueRequestSerializer",
    (serializers.Serializer,),
    {column.name: column.serializer_field() for column in OVERDUE_COLUMNS},
)


class OverdueRequestsSerializer(serializers.Serializer):
    """The overdue requests the JSON body carries besides the groups."""

    count = serializers.IntegerField(help_text=_("Overdue requests in all (the same as summary.overdue)."))
    columns = ColumnSerializer(many=True)
    rows = OverdueRequestSerializer(
        many=True,
        help_text=_(
            "The first 100 overdue requests, longest overdue first (all of them, up to 20000, on the Excel "
            "workbook's overdue_requests sheet; page through them with ?rows=overdue)."
        ),
    )


class RecognitionTimelinessReport(ReportView):
    name = "recognition-timeliness"
    title = _("Mutual-recognition timeliness")
    description = _(
        "Ethics mutual-recognition requests to the region's committees, per alliance or per participating "
        "institution: received, answered within the alliance's deadline, answered late, open within the deadline, "
        "open past it (overdue), and the median and 90th percentile of the response time in working hours. "
        "Withdrawn and superseded requests are not counted. The JSON body also lists the overdue requests, the "
        "longest overdue first, with the days since the deadline and when the request was escalated "
        "(overdue_requests: the count and the first 100); the Excel workbook has all of them on a sheet of their "
        "own. With ?rows=overdue the rows are the overdue requests instead of the groups (CSV, Excel, JSON pages)."
    )
    filter_serializer_class = TimelinessFilters
    columns = (
        Column("group", "string", _("grouped by"), _("alliance or institution.")),
        Column("group_id", "integer", _("alliance or institution id")),
        Column("group_name", "string", _("alliance or institution")),
        Column("received", "integer", _("requests received")),
        Column("answered_on_time", "integer", _("answered within the deadline")),
        Column("answered_late", "integer", _("answered late")),
        Column("open", "integer", _("open, within the deadline")),
        Column("overdue", "integer", _("open, past the deadline")),
        Column("on_time_share", "number", _("share answered on time"), _("Of the answered requests, 0 to 1.")),
        Column("median_working_hours", "number", _("median response (working hours)"), HOURS_HELP),
        Column("p90_working_hours", "number", _("90th percentile of response (working hours)"), HOURS_HELP),
    )
    summary_fields = (
        Column("received", "integer", _("requests received")),
        Column("answered_on_time", "integer", _("answered within the deadline")),
        Column("answered_late", "integer", _("answered late")),
        Column("open", "integer", _("open, within the deadline")),
        Column("overdue", "integer", _("open, past the deadline")),
        Column("on_time_share", "number", _("share answered on time")),
        Column("median_working_hours", "number", _("median response (working hours)")),
        Column("p90_working_hours", "number", _("90th percentile of response (working hours)")),
    )
    extra_schema = {"overdue_requests": OverdueRequestsSerializer(required=False)}
    # The groups and their total (GROUPING SETS), then the first page of overdue requests with their count.
    bench_sql = """
        SELECT u.group_id, a.name_zh AS group_name, COUNT(*) AS received,
               COUNT(*) FILTER (WHERE u.answered AND NOT u.late) AS answered_on_time,
               COUNT(*) FILTER (WHERE u.answered AND u.late) AS answered_late,
               COUNT(*) FILTER (WHERE NOT u.answered AND u.due_at > now()) AS open,
               COUNT(*) FILTER (WHERE NOT u.answered AND u.due_at <= now()) AS overdue,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY u.response_working_hours) FILTER (WHERE u.answered)
                   AS median_working_hours,
               PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY u.response_working_hours) FILTER (WHERE u.answered)
                   AS p90_working_hours
        FROM (
            SELECT f.alliance_id AS group_id, TRUE AS answered, f.late, f.response_working_hours,
                   NULL::timestamptz AS due_at
            FROM ethics_recognitionanswerfact f
            JOIN cgtclinic_institution i ON i.id = f.institution_id
            WHERE i.region_id = %(region_id)s
            UNION ALL
            SELECT r.alliance_id, FALSE, FALSE, NULL, r.due_at
            FROM ethics_recognitionrequest r
            JOIN ethics_ethicscommittee c ON c.id = r.committee_id
            JOIN cgtclinic_institution i ON i.id = c.institution_id
            WHERE i.region_id = %(region_id)s AND r.status = 'open'
        ) u
        JOIN ethics_alliance a ON a.id = u.group_id
        GROUP BY GROUPING SETS ((u.group_id, a.name_zh), ())
        ORDER BY a.name_zh;
        SELECT r.id AS request_id, r.trial_id, t.protocol_number, t.title_zh AS trial_title, r.site_id,
               c.institution_id, i.name_zh AS institution_name, c.name_zh AS committee_name, r.alliance_id,
               a.name_zh AS alliance_name, r.subject, r.received_at, r.due_at,
               EXTRACT(EPOCH FROM now() - r.due_at) / 86400.0 AS overdue_days, r.escalated_at, r.provisional,
               COUNT(*) OVER () AS overdue
        FROM ethics_recognitionrequest r
        JOIN trials_trial t ON t.id = r.trial_id
        JOIN ethics_alliance a ON a.id = r.alliance_id
        JOIN ethics_ethicscommittee c ON c.id = r.committee_id
        JOIN cgtclinic_institution i ON i.id = c.institution_id
        WHERE i.region_id = %(region_id)s AND r.status = 'open' AND r.due_at <= now()
        ORDER BY r.due_at, r.id
        LIMIT 100
    """

    def compute(self, scope, filters):
        requests = reports.recognition_requests(viewer=scope.viewer, **_recognition_filters(filters))
        facts = reports.answer_facts(viewer=scope.viewer, **_recognition_filters(filters))
        if filters["rows"] == "overdue":
            summary = reports.timeliness_summary(facts=facts, requests=requests, now=scope.now)
            data = ReportData(rows=None, summary=summary)

            def page(offset, limit):
                data.count, rows = reports.overdue_page(requests=requests, now=scope.now, offset=offset, limit=limit)
                return rows

            data.rows, data.columns = page, OVERDUE_COLUMNS
            return data
        rows, summary = reports.timeliness(facts=facts, requests=requests, by=filters["group_by"], now=scope.now)
        data = ReportData(rows=rows, summary=summary)
        export = self.request.accepted_renderer.format
        if export != "csv":
            # CSV holds one table (the groups); ?rows=overdue exports the overdue list.
            limit = OVERDUE_IN_JSON if export == "json" else EXPORT_PAGE_SIZE
            count, listed = reports.overdue_page(requests=requests, now=scope.now, offset=0, limit=limit)
            data.extra["overdue_requests"] = {"count": count, "columns": _columns(OVERDUE_COLUMNS), "rows": listed}
        return data


class TurnaroundFilters(ReportFilterSerializer):
    group_by = ListParameter(
        child=serializers.ChoiceField(choices=list(reports.TURNAROUND_GROUPS)),
        required=False,
        help_text=_("Also count by kind of submission and/or by the committee's institution (always by review type)."),
    )
    decided_from = serializers.DateField(required=False, help_text=_("Decisions on or after this day."))
    decided_to = serializers.DateField(required=False, help_text=_("… on or before this day."))
    kind = choice_list(Submission.Kind.choices, _("One or more kinds of submission."))
    institution = serializers.IntegerField(
        required=False, min_value=1, help_text=_("Only this institution's committee.")
    )
    date_ranges = (("decided_from", "decided_to"),)


DAYS_HELP = _("Calendar days from the first submission to the decision, over decided submissions.")


class EthicsTurnaroundReport(ReportView):
    name = "ethics-turnaround"
    title = _("Ethics review turnaround")
    description = _(
        "Ethics submissions to the region's committees, from receipt (first submitted) to the committee's "
        "decision, per review type (full board, expedited): decisions, median, 90th percentile, mean and longest "
        "time in days, and the submissions in review now (not limited by the decision period)."
    )
    filter_serializer_class = TurnaroundFilters
    columns = (
        Column("review_type", "string", _("review type"), _("full_board or expedited.")),
        Column("review_type_label", "string", _("review type (label)")),
        Column("kind", "string", _("kind of submission"), _("When grouped by kind.")),
        Column("kind_label", "string", _("kind of submission (label)")),
        Column("institution_id", "integer", _("institution id"), _("When grouped by institution.")),
        Column("institution_name", "string", _("institution")),
        Column("decided", "integer", _("decisions")),
        Column("median_days", "number", _("median days"), DAYS_HELP),
        Column("p90_days", "number", _("90th percentile of days"), DAYS_HELP),
        Column("mean_days", "number", _("mean days"), DAYS_HELP),
        Column("max_days", "number", _("longest (days)"), DAYS_HELP),
        Column("in_review", "integer", _("in review now")),
    )
    summary_fields = (
        Column("decided", "integer", _("decisions")),
        Column("median_days", "number", _("median days")),
        Column("p90_days", "number", _("90th percentile of days")),
        Column("mean_days", "number", _("mean days")),
        Column("max_days", "number", _("longest (days)")),
        Column("in_review", "integer", _("in review now")),
    )
    bench_sql = """
        SELECT f.review_type,
               COUNT(*) FILTER (WHERE f.status = 'decided') AS decided,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY f.days) FILTER (WHERE f.status = 'decided') AS median_days,
               PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY f.days) FILTER (WHERE f.status = 'decided') AS p90_days,
               AVG(f.days) FILTER (WHERE f.status = 'decided') AS mean_days,
               MAX(f.days) FILTER (WHERE f.status = 'decided') AS max_days,
               COUNT(*) FILTER (WHERE f.status IN ('expedited_review', 'awaiting_meeting')) AS in_review
        FROM ethics_turnaroundfact f
        JOIN cgtclinic_institution i ON i.id = f.institution_id
        WHERE i.region_id = %(region_id)s
        GROUP BY GROUPING SETS ((f.review_type), ())
        ORDER BY f.review_type
    """

    def compute(self, scope, filters):
        filters["group_by"] = list(dict.fromkeys(filters.get("group_by") or ()))
        base, rows, decided = reports.turnaround(
            facts=reports.turnaround_facts(user=scope.user, region_id=scope.region_id),
            group_by=filters["group_by"],
            decided_from=filters.get("decided_from"),
            decided_to=filters.get("decided_to"),
            kinds=filters.get("kind", ()),
            institution_id=filters.get("institution"),
        )
        # The groups and their total in one statement (GROUPING SETS), as the grouped work is the report's cost.
        together = groups_and_total(rows)
        if together is None:
            return ReportData(rows=rows, summary=reports.turnaround_summary(base=base, decided=decided))
        groups, total = together
        if total is None:
            total = dict.fromkeys(("decided", "in_review"), 0) | dict.fromkeys(
                ("median_days", "p90_days", "mean_days", "max_days")
            )
        return ReportData(rows=groups, summary=reports.rounded_totals(total))

    def present(self, rows, scope, filters):
        for row in rows:
            row.setdefault("institution_id", None)
            row.setdefault("kind", None)
            row.setdefault("institution_name", None)
            row["review_type_label"] = str(Submission.ReviewType(row["review_type"]).label)
            row["kind_label"] = str(Submission.Kind(row["kind"]).label) if row["kind"] else None
            for name in ("median_days", "p90_days", "mean_days", "max_days"):
                row[name] = None if row[name] is None else round(row[name], 1)
        return rows


class SafetyFilters(ReportFilterSerializer):
    group_by = serializers.ChoiceField(
        choices=list(reports.SAFETY_GROUPS),
        required=False,
        default="institution",
        help_text=_("One row per institution of the site (default) or per trial, and per clock."),
    )
    started_from = serializers.DateField(required=False, help_text=_("Clocks started on or after this day."))
    started_to = serializers.DateField(required=False, help_text=_("… on or before this day."))
    clock = choice_list(SafetyClock.Kind.choices, _("One or more clocks."))
    institution = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this institution's sites."))
    trial = serializers.IntegerField(required=False, min_value=1, help_text=_("Only this trial."))
    date_ranges = (("started_from", "started_to"),)


SAFETY_HOURS_HELP = _("From the clock's start to the step that met it, over met clocks.")


class SafetyTimelinessReport(ReportView):
    name = "safety-timeliness"
    title = _("Safety reporting timeliness")
    description = _(
        "The clocks of SAE and SUSAR reports at the region's sites, per institution or per trial and per clock "
        "(investigator to sponsor, to the ethics committee, the sponsor's expedited SUSAR report and follow-up, "
        "the PI's and the committee's review): clocks started, met on time, met late, open, open past the "
        "deadline, and the median time taken in hours and days."
    )
    filter_serializer_class = SafetyFilters
    columns = (
        Column("group", "string", _("grouped by"), _("institution or trial.")),
        Column("group_id", "integer", _("institution or trial id")),
        Column("group_name", "string", _("institution or protocol number")),
        Column("kind", "string", pgettext_lazy("safety", "clock")),
        Column("kind_label", "string", _("clock (label)")),
        Column("clocks", "integer", _("clocks started")),
        Column("on_time", "integer", _("met on time")),
        Column("late", "integer", _("met late")),
        Column("open", "integer", _("open, within the deadline")),
        Column("open_overdue", "integer", _("open, past the deadline")),
        Column("on_time_share", "number", _("share met on time"), _("Of the met clocks, 0 to 1.")),
        Column("median_hours", "number", _("median time taken (hours)"), SAFETY_HOURS_HELP),
        Column("median_days", "number", _("median time taken (days)"), SAFETY_HOURS_HELP),
    )
    summary_fields = (
        Column("clocks", "integer", _("clocks started")),
        Column("on_time", "integer", _("met on time")),
        Column("late", "integer", _("met late")),
        Column("open", "integer", _("open, within the deadline")),
        Column("open_overdue", "integer", _("open, past the deadline")),
        Column("on_time_share", "number", _("share met on time")),
        Column("median_hours", "number", _("median time taken (hours)")),
        Column("median_days", "number", _("median time taken (days)")),
    )
    # What the report reads: the region's clocks from the index (region, institution, clock, time taken) alone, in
    # the groups' order, with the total in the same pass; then the page of groups, named.
    bench_sql = """
        SELECT c.site_institution_id, c.kind, COUNT(c.kind) AS clocks,
               COUNT(c.kind) FILTER (WHERE c.met_at IS NOT NULL AND NOT c.late) AS on_time,
               COUNT(c.kind) FILTER (WHERE c.met_at IS NOT NULL AND c.late) AS late,
               COUNT(c.kind) FILTER (WHERE c.met_at IS NULL AND c.due_at > now()) AS open,
               COUNT(c.kind) FILTER (WHERE c.met_at IS NULL AND c.due_at <= now()) AS open_overdue,
               PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY c.elapsed_hours)
                   FILTER (WHERE c.met_at IS NOT NULL) AS median_hours
        FROM ethics_safetyclock c
        WHERE c.region_id = %(region_id)s AND NOT c.cancelled
        GROUP BY GROUPING SETS ((c.region_id, c.site_institution_id, c.kind), ())
    """
    bench_sql_all_regions = bench_sql.replace("c.region_id = %(region_id)s AND ", "")

    def compute(self, scope, filters):
        clocks = reports.safety_clocks(
            viewer=scope.viewer,
            started_from=filters.get("started_from"),
            started_to=filters.get("started_to"),
            institution_id=filters.get("institution"),
            trial_id=filters.get("trial"),
            kinds=filters.get("clock", ()),
        )
        if vendor() == "postgresql":
            data = ReportData(rows=None, summary={})
            data.rows = reports.safety_timeliness_page(data, clocks=clocks, by=filters["group_by"], now=scope.now)
            return data
        rows, total = reports.safety_timeliness(clocks=clocks, by=filters["group_by"], now=scope.now)
        return ReportData(rows=rows, summary=total)

    def present(self, rows, scope, filters):
        for row in rows:
            row["kind_label"] = str(SafetyClock.Kind(row["kind"]).label)
        return rows
