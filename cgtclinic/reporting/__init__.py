"""The reporting layer below the API: SQL helpers (``sql``) and policy values (``policy``) that the apps' report
selectors (``<app>/reports.py``) use. The HTTP frame (scope, filters, formats, throttle, request log) is in
``cgtclinic.api.reports``."""
