import time

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from cgtclinic import rollups


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Rebuild the rollups the regulator reports read (aggregates kept per site, trial and committee) from the "
            "raw data, or with --check compare them with a recomputation and list where they differ. Safe to run "
            "at any time: each rollup is rebuilt in one transaction."
        )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="ROLLUP", help=_("Only these rollups (default: all)."))
        parser.add_argument(
            "--check", action="store_true", help=_("Change nothing: list the differences, exit 1 when there are any.")
        )
        parser.add_argument(
            "--list", action="store_true", dest="list_only", help=_("List the rollups and what each keeps.")
        )

    def handle(self, *args, names: list[str], check: bool, list_only: bool, **options):
        try:
            chosen = rollups.selected(names)
        except KeyError as exc:
            known = ", ".join(rollup.name for rollup in rollups.registered())
            raise CommandError(
                _("Unknown rollup(s): %(names)s. Known: %(known)s.") % {"names": exc.args[0], "known": known}
            ) from exc
        if list_only:
            for rollup in chosen:
                self.stdout.write(f"{rollup.name}: {rollup.description}")
            return
        if check:
            found = rollups.differences([rollup.name for rollup in chosen])
            for name, rows in found.items():
                self.stdout.write(self.style.ERROR(_("%(name)s differs from the raw data:") % {"name": name}))
                for row in rows:
                    self.stdout.write(f"  {row}")
            if found:
                raise CommandError(_("Rollups differ from the raw data: run manage.py rebuild_rollups to repair them."))
            self.stdout.write(_("Every rollup agrees with the raw data."))
            return
        for rollup in chosen:
            started = time.monotonic()
            rows = rollups.rebuild([rollup.name])[rollup.name]
            self.stdout.write(
                _("%(name)s: %(rows)s rows in %(seconds).1f s")
                % {"name": rollup.name, "rows": rows, "seconds": time.monotonic() - started}
            )
