"""manage.py generate_scale_data: fill an empty database with the benchmark's data set (bench.scale_data)."""

import datetime as dt
import resource
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.translation import gettext as _

from bench.scale_data import SCALES, SIZES, sizes
from bench.scale_data.generator import Generator
from bench.scale_data.stream import Progress
from cgtclinic import rollups
from cgtclinic.models import Institution
from trials.models import Trial


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Fill an empty database with a realistic synthetic data set at provincial or national scale "
            "(institutions, trials, sites, ethics reviews, recognition requests, the enrolment ledger, research "
            "filings, safety reports and subsidy claims) for the benchmark, then rebuild the rollups. Loads the "
            "policy seeds and the holiday calendar first. Same --seed and --today, same data."
        )

    def add_arguments(self, parser):
        add = parser.add_argument
        add(
            "--scale",
            choices=sorted(SCALES),
            default="provincial",
            help=_("Named sizes: provincial (default) or national, ten times larger; a size given overrides it."),
        )
        add("--institutions", type=int, help=_("Institutions (provincial 200, national 2,000)."))
        add("--trials", type=int, help=_("Trials (provincial 5,000, national 50,000)."))
        add("--sites", type=int, help=_("Trial sites, lead sites included (provincial 15,000, national 150,000)."))
        add(
            "--enrolment-events",
            type=int,
            help=_("Enrolment ledger entries (provincial 500,000, national 5,000,000)."),
        )
        add(
            "--recognition-requests",
            type=int,
            help=_("Mutual-recognition requests (provincial 20,000, national 200,000)."),
        )
        add("--claims", type=int, help=_("Subsidy claims (provincial 2,000, national 20,000)."))
        add(
            "--research-filings",
            type=int,
            help=_(
                "Research filings owed by investigator-initiated trials, at most (provincial 8,000, national 80,000)."
            ),
        )
        add(
            "--safety-events",
            type=int,
            help=_("Safety reports (SAE and SUSAR) with their clocks (provincial 30,000, national 300,000)."),
        )
        add("--seed", type=int, default=1, help=_("Seed of the random generator (default 1)."))
        add(
            "--today",
            type=dt.date.fromisoformat,
            default=None,
            help=_("The day the data set ends (YYYY-MM-DD; default: today). Everything happened before it."),
        )
        add(
            "--progress-every",
            type=float,
            default=5.0,
            help=_("Seconds between progress lines on stderr (default 5)."),
        )

    def handle(self, *args, **options):
        options.update(sizes(options["scale"], options))
        for name in SIZES:
            if options[name] < 0:
                raise CommandError(_("--%(name)s cannot be negative.") % {"name": name.replace("_", "-")})
        if options["institutions"] < 2 and options["sites"] > options["trials"]:
            raise CommandError(_("Multi-centre trials need at least two institutions."))
        if options["sites"] < options["trials"]:
            raise CommandError(_("Every trial has a lead site: --sites must be at least --trials."))
        if Institution.objects.exists() or Trial.objects.exists():
            raise CommandError(
                _(
                    "The database already holds institutions or trials. generate_scale_data fills an empty "
                    "database: create one (createdb), migrate it and run the command there."
                )
            )
        started = time.monotonic()
        self.stdout.write(_("Loading the policy seeds and the holiday calendar…"))
        call_command("sync_calendar", stdout=_Silent())
        call_command("load_seeds", stdout=_Silent())
        self.stderr.style_func = None  # progress is not an error: no colour
        progress = Progress(self.stderr, every=options["progress_every"])
        with transaction.atomic():
            connection.ensure_connection()
            with connection.connection.cursor() as cursor:
                Generator(out=self.stdout, cursor=cursor, options=options, progress=progress).run()
        began = time.monotonic()
        written = rollups.rebuild()
        if written:
            self.stdout.write(
                _("Rollups rebuilt (%(rows)s rows) in %(seconds).1f s.")
                % {"rows": f"{sum(written.values()):,}", "seconds": time.monotonic() - began}
            )
        # A deployment's autovacuum would get there eventually; a benchmark run straight after (or on a copy, whose
        # activity counters start at zero so autovacuum never starts) would measure heap fetches on every
        # index-only scan and plans from rollup tables never analysed.
        began = time.monotonic()
        with connection.cursor() as cursor:
            # VACUUM cannot run in a transaction block: a caller holding one (the tests) gets the statistics only.
            cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)")
        self.stdout.write(_("Tables vacuumed and analysed in %(seconds).1f s.") % {"seconds": time.monotonic() - began})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.stdout.write(
            self.style.SUCCESS(
                _("Done in %(seconds).1f s (peak memory %(megabytes).0f MB).")
                % {"seconds": time.monotonic() - started, "megabytes": peak}
            )
        )


class _Silent:
    def write(self, *args, **kwargs):
        pass

    def flush(self):
        pass
