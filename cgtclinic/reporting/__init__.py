"""The reporting layer below the API: SQL helpers (``sql``), policy values (``policy``) and which database the
reports read (``database``: the replica while a report is computed, when one is configured), used by the apps'
report selectors (``<app>/reports.py``). The HTTP frame (scope, filters, formats, throttle, request log) is the
package ``cgtclinic.api.reports``."""
