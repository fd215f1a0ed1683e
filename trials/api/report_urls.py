"""Regulator reports over trials, sites and enrolment, under /api/v1/reports/."""

from cgtclinic.api.reports import report_path
from trials.api import reports

urlpatterns = [
    report_path(reports.PipelineReport),
    report_path(reports.StartupReport),
    report_path(reports.EnrolmentReport),
    report_path(reports.PolicyTargetReport),
    report_path(reports.ResearchFilingsReport),
]
