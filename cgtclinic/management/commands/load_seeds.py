import unicodedata
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from cgtclinic.seeding import SEEDS_DIR, SeedError, SeedReport, load_seeds


def _cells(text: str) -> int:
    """Width in terminal cells: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _cells(text), 0)


class Command(BaseCommand):
    @property
    def help(self) -> str:
        # Built when the parser is, so it is translated; argparse cannot take lazy strings.
        return _(
            "Load the policy values from seeds/ (and with --demo the demo data set). Safe to run again: "
            "unchanged rows are left alone and edited values update their rows."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo",
            action="store_true",
            help=_(
                "Also load the demo data set: hospitals, sponsors, people and demo accounts, then each app's demo "
                "rows (trials; ethics committees and submissions; the enrolment ledger and subsidy claims)."
            ),
        )
        parser.add_argument(
            "--seeds-dir",
            type=Path,
            default=SEEDS_DIR,
            help=_("The seeds directory (with policy/ and demo/ inside). Default: %s") % SEEDS_DIR,
        )

    def handle(self, *args, demo: bool, seeds_dir: Path, **options):
        try:
            report = load_seeds(seeds_dir, demo=demo)
        except SeedError as exc:
            raise CommandError(
                _("The load stopped; nothing from that set of seed files was saved. %(error)s") % {"error": exc}
            ) from exc
        self._write_report(report)

    def _write_report(self, report: SeedReport) -> None:
        for model, tally in report.tallies.items():
            self.stdout.write(
                _("%(model)s: %(created)d created, %(updated)d updated, %(unchanged)d unchanged.")
                % {
                    "model": model._meta.verbose_name_plural,
                    "created": tally.created,
                    "updated": tally.updated,
                    "unchanged": tally.unchanged,
                }
            )
        if report.not_in_seeds:
            self.stdout.write(self.style.WARNING(_("In the database but not in the seed files (left as they are):")))
            for item in report.not_in_seeds:
                self.stdout.write(f"  {item}")
        if report.kept_trials:
            self.stdout.write(
                _("Demo trials moved on in the app since seeding keep their status: %(trials)s.")
                % {"trials": ", ".join(report.kept_trials)}
            )
        if report.new_accounts:
            self.stdout.write(
                self.style.SUCCESS(_("Demo accounts created. The passwords are shown only this once; note them now:"))
            )
            self._write_table(
                [(_("role"), _("hospital / region"), _("username"), _("password"))]
                + [(a.role, a.place or "—", a.username, a.password) for a in report.new_accounts]
            )
        if report.kept_accounts:
            self.stdout.write(
                _(
                    "These demo accounts already existed and keep their passwords: %(usernames)s. "
                    "To set a new one: manage.py changepassword <username>"
                )
                % {"usernames": ", ".join(report.kept_accounts)}
            )

    def _write_table(self, rows: list[tuple[str, ...]]) -> None:
        """A plain-text table with a header rule, columns aligned in terminal cells (Chinese names included)."""
        widths = [max(_cells(row[i]) for row in rows) for i in range(len(rows[0]))]
        rule = "  " + "  ".join("-" * width for width in widths)
        for number, row in enumerate(rows):
            cells = (_pad(cell, width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write(("  " + "  ".join(cells)).rstrip())
            if number == 0:
                self.stdout.write(rule)
