"""Regulator reports over ethics review, under /api/v1/reports/."""

from cgtclinic.api.reports import report_path
from ethics.api import reports

urlpatterns = [
    report_path(reports.RecognitionTimelinessReport),
    report_path(reports.EthicsTurnaroundReport),
    report_path(reports.SafetyTimelinessReport),
]
