"""System checks: what the installation needs beyond Python packages, found before anyone relies on it."""

from django.core.checks import Error, register

from cgtclinic import pdf


@register()
def cjk_font_check(app_configs=None, **kwargs):
    """Decision and claim letters are in Chinese: without a CJK font they would print as empty boxes."""
    problem = pdf.cjk_font_problem()
    if problem is None:
        return []
    return [
        Error(
            f"PDF letters cannot be printed on this machine: {problem}",
            hint=f"On Debian: {pdf.INSTALL_COMMAND} libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 "
            "(make run installs them itself when run as root).",
            id="cgtclinic.E001",
        )
    ]
