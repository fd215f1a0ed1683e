from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from cgtclinic import workdays
from cgtclinic.errors import DomainError


class Command(BaseCommand):
    @property
    def help(self) -> str:
        # Built when the parser is, so it is translated; argparse cannot take lazy strings.
        return _(
            "Import the Chinese holiday schedules (holidays and make-up working days) for the years the "
            "chinese-calendar package knows. Safe to run again. Years the office entered in the admin are "
            "left alone unless --force is given."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--years", nargs="+", type=int, metavar="YEAR", help=_("Only these years (default: every year it knows).")
        )
        parser.add_argument(
            "--force", action="store_true", help=_("Also replace the years the office entered in the admin.")
        )

    def handle(self, *args, years: list[int] | None, force: bool, **options):
        try:
            report = workdays.sync_from_package(years=years, force=force)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        for label, found in (
            (_("Created: %(years)s."), report.created),
            (_("Updated: %(years)s."), report.updated),
            (_("Unchanged: %(years)s."), report.unchanged),
        ):
            if found:
                self.stdout.write(label % {"years": _years(found)})
        if report.kept_office:
            self.stdout.write(
                self.style.WARNING(
                    _("Entered by the office, left as they are (use --force to replace them): %(years)s.")
                    % {"years": _years(report.kept_office)}
                )
            )
        if report.kept_days:
            self.stdout.write(
                self.style.WARNING(
                    _("Already listed by the office under a neighbouring year, left as they are: %(dates)s.")
                    % {"dates": ", ".join(day.isoformat() for day in report.kept_days)}
                )
            )
        missing = workdays.years_needing_schedule()
        if missing:
            self.stdout.write(
                self.style.WARNING(
                    _(
                        "No holiday schedule yet for %(years)s: deadlines reaching into these years are provisional "
                        "until the office enters the State Council's schedule in the admin."
                    )
                    % {"years": _years(missing)}
                )
            )


def _years(years: list[int]) -> str:
    return ", ".join(map(str, years))
