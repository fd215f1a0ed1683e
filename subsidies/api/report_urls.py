"""Regulator reports over subsidy claims, under /api/v1/reports/."""

from cgtclinic.api.reports import report_path
from subsidies.api import reports

urlpatterns = [
    report_path(reports.SubsidyClaimsReport),
    report_path(reports.SubsidyProjectsReport),
]
