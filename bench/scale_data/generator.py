"""The run: one seeded random generator through the phases, each app's data made by its own module.

registry (institutions, people, committees, sponsors, alliances) → trials (lifecycle, the lead committee's review,
participating sites) → ethics (reviews, meetings, decisions, recognition requests) → ledger (enrolment) → deadlines
(research filings, safety reports and their clocks) → claims.
Rows are written as they are made (stream.Writer); the phases keep only what a later phase reads.
"""

import datetime as dt
import math
import random
import time
from collections import defaultdict

from django.utils import timezone
from django.utils.translation import gettext as _

from bench.scale_data.claims import ClaimsPhase
from bench.scale_data.deadlines import DeadlinesPhase, policy_values_remembered
from bench.scale_data.ethics import EthicsPhase
from bench.scale_data.ledger import LedgerPhase
from bench.scale_data.registry import RegistryPhase
from bench.scale_data.stream import Progress, Table, Writer
from bench.scale_data.trials import TrialsPhase
from bench.scale_data.world import GIVEN, ONE_DAY, SURNAMES, TZ, YEARS_OF_HISTORY
from cgtclinic import workdays


class Generator(RegistryPhase, TrialsPhase, EthicsPhase, LedgerPhase, DeadlinesPhase, ClaimsPhase):
    def __init__(self, *, out, cursor, options: dict, progress: Progress):
        self.out = out
        self.opts = options
        self.progress = progress
        self.rng = random.Random(options["seed"])
        self.today = options["today"] or timezone.localdate()
        # Everything generated happened before the day begins, so nothing lies in the future whenever it is read.
        self.now = dt.datetime.combine(self.today, dt.time(0), tzinfo=TZ)
        self.start = dt.date(self.today.year - YEARS_OF_HISTORY, 1, 1)
        self.calendar = workdays.Calendar.load(self.start - ONE_DAY, self.today + dt.timedelta(days=120))
        self.writer = Writer(cursor)
        # Kept between phases: meetings by (committee, time) as [id, agenda items]; decisions until they are
        # numbered; recognition requests per site until their rows are written.
        self.meetings: dict[tuple, list] = {}
        self.letter_decisions: list = []
        self.requests_by_site: dict[int, list] = defaultdict(list)
        self.requests_made = 0
        self.safety_periods: dict[tuple, tuple] = {}
        self._phase_started = time.monotonic()

    # --- plumbing -------------------------------------------------------------------------------------------------

    def table(self, model) -> Table:
        return self.writer.table(model)

    def phase(self, label: str) -> None:
        now = time.monotonic()
        self.out.write(f"  {label}: {now - self._phase_started:.1f} s")
        self._phase_started = now

    def office(self, day: dt.date) -> dt.datetime:
        """A moment in office hours on a day (weekends too: hospitals report then, less often)."""
        return dt.datetime.combine(day, dt.time(self.rng.randint(8, 17), self.rng.randint(0, 59)), tzinfo=TZ)

    def after(self, moment: dt.datetime, low: float, high: float) -> dt.datetime:
        """A moment in office hours some days after ``moment`` (never before it)."""
        days = self.rng.uniform(low, high)
        later = self.office(moment.astimezone(TZ).date() + dt.timedelta(days=int(days)))
        if later <= moment:
            later = moment + dt.timedelta(minutes=self.rng.randint(15, 180))
        return later

    def lognormal_days(self, median: float, sigma: float) -> int:
        return max(1, int(self.rng.lognormvariate(math.log(median), sigma)))

    def name(self) -> str:
        given = self.rng.choice(GIVEN) + (self.rng.choice(GIVEN) if self.rng.random() < 0.7 else "")
        return self.rng.choice(SURNAMES) + given

    # --- the run ----------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.out.write(
            _("Simulating (seed %(seed)s, up to %(today)s):") % {"seed": self.opts["seed"], "today": self.today}
        )
        self.make_registry()
        self.phase(_("institutions, people, committees and sponsors"))
        self.make_alliances()
        self.make_trials()
        self.phase(_("trials, lifecycles and the lead committees' reviews"))
        self.make_participating_sites()
        self.fill_amendment_requests()
        self.finish_requests()
        self.phase(_("participating sites, local reviews and recognition requests"))
        self.make_enrolment()
        self.phase(_("enrolment ledger"))
        with policy_values_remembered():
            self.make_filings()
            self.phase(_("research filings"))
            self.make_safety_events()
            self.phase(_("safety reports and their clocks"))
        self.write_trials()
        self.write_decisions()
        self.phase(_("trials, sites and numbered decision letters"))
        self.make_claims()
        self.phase(_("subsidy claims"))
        self.out.write(_("Rows written with COPY:"))
        self.writer.finish(self.out)
        self.phase(_("foreign keys checked and tables analysed"))
        # Their API keys are issued when needed (make bench issues its own; an operator in the admin): keys are
        # stored only as digests, so a key made here could not be handed to anyone.
        self.out.write(
            _("Regulator accounts (no password; issue an API token in the admin): %(names)s")
            % {"names": ", ".join(f"scale-regulator-{r.code}" for r in self.regions)}
        )
