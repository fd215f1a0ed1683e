"""A realistic synthetic data set at provincial or national scale, written straight to PostgreSQL for the benchmark
(``manage.py generate_scale_data``, bench/run.py).

Every row is invented and follows the rules the services enforce, so the reports compute on data shaped like a
province's or a country's: trials of every kind, therapy category and status with their lifecycle history; sites with
start-up milestones in order; ethics submissions with their timeline, meetings and numbered decisions; continuing
reviews that keep approvals valid; alliances whose members answer recognition requests on time, late or not yet; an
append-only enrolment ledger with subject codes, aggregate reports and corrections, and SiteEnrolment equal to its
sums; subsidy claims of every status whose lines are computed by subsidies.rules, subsidies.eligibility and
subsidies.evidence.

One seeded random generator drives the simulation (the same --seed and --today give the same data); rows are
streamed with COPY in one transaction, a batch at a time. Historical tables (simple-history) are not filled.
"""

# Named sizes (--scale); an explicit size overrides its preset.
SCALES = {
    "provincial": {
        "institutions": 200,
        "trials": 5_000,
        "sites": 15_000,
        "enrolment_events": 500_000,
        "recognition_requests": 20_000,
        "claims": 2_000,
        "research_filings": 8_000,
        "safety_events": 30_000,
    },
    "national": {
        "institutions": 2_000,
        "trials": 50_000,
        "sites": 150_000,
        "enrolment_events": 5_000_000,
        "recognition_requests": 200_000,
        "claims": 20_000,
        "research_filings": 80_000,
        "safety_events": 300_000,
    },
}
SIZES = tuple(SCALES["provincial"])


def sizes(scale: str, given: dict) -> dict:
    """The sizes of a run: the preset of ``scale``, with the sizes given (not None) instead of its own."""
    return {name: given[name] if given.get(name) is not None else SCALES[scale][name] for name in SIZES}
