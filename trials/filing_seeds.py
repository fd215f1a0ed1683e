"""Demo IIT reviews, new-technology answers and research filings (seeds/demo/filings.yaml).

Called from ``trials.seeds.load_demo`` after the demo trials. Each filing's deadline is computed by
``trials.filings.compute_deadline`` from its ``basis`` day and the seeded policy periods, as in use; a filing with
``filed_on`` is recorded as filed (late or not by that deadline; an initial filing's number and date are the
trial's own, in trials.yaml), one without stays due, so the demo shows filings
due soon and overdue (the beat sweep then reminds and escalates them once).
"""

import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.seeding import DemoSeeds, check_keys, parse_date, read_rows, ref
from trials import filings
from trials.models import FilingObligation, Trial, TrialReview

FILE = "filings.yaml"


def load_demo_filings(demo: DemoSeeds) -> None:
    path = demo.directory / FILE
    if not path.exists():
        return
    rows = read_rows(
        path,
        required={"lead", "protocol_number"},
        optional={"reviews", "new_technology", "filings"},
        key=("lead", "protocol_number"),
        label="protocol_number",
    )
    for row in rows:
        lead = ref(row, "lead", demo.institutions, "institutions.yaml")
        trial = Trial.objects.filter(lead_institution=lead, protocol_number=row.data["protocol_number"]).first()
        if trial is None:
            raise row.error(_("No demo trial with this protocol number in trials.yaml."))
        for position, entry in enumerate(row.data.get("reviews") or []):
            part = row.part(_("review %(number)d") % {"number": position + 1}, entry)
            check_keys(part, required={"kind", "outcome", "date", "by"}, optional={"comments"})
            if entry["kind"] not in TrialReview.Kind.values or entry["outcome"] not in TrialReview.Outcome.values:
                raise part.error(_("Unknown review kind or outcome."))
            decided_on = parse_date(part, "date")
            TrialReview.objects.get_or_create(
                trial=trial,
                kind=entry["kind"],
                outcome=entry["outcome"],
                decided_on=decided_on,
                defaults={
                    "comments": entry.get("comments", ""),
                    "recorded_by": ref(part, "by", demo.people, "people.yaml"),
                    "recorded_at": datetime.datetime.combine(decided_on, datetime.time(17), tzinfo=_SH),
                },
            )
        answer = row.data.get("new_technology")
        if answer is not None:
            part = row.part("new_technology", answer)
            check_keys(part, required={"answer", "reason", "by"}, optional=set())
            Trial.objects.filter(pk=trial.pk).update(
                is_new_technology=bool(answer["answer"]),
                new_technology_reason=answer["reason"],
                new_technology_set_by=ref(part, "by", demo.people, "people.yaml"),
                new_technology_set_at=timezone.now(),
            )
        for position, entry in enumerate(row.data.get("filings") or []):
            part = row.part(_("filing %(number)d") % {"number": position + 1}, entry)
            check_keys(part, required={"kind", "key", "basis"}, optional={"filed_on", "number", "by", "sequence"})
            if entry["kind"] not in FilingObligation.Kind.values:
                raise part.error(_("Unknown filing kind."))
            basis = parse_date(part, "basis")
            deadline = filings.compute_deadline(trial, entry["kind"], basis, sequence=entry.get("sequence", 1))
            if not deadline:
                raise part.error(_("No policy period is in force on the basis day."))
            values = {"basis_on": basis, **deadline}
            if entry.get("filed_on"):
                filed_on = parse_date(part, "filed_on")
                values.update(
                    status=FilingObligation.Status.FILED,
                    filed_on=filed_on,
                    filing_number=str(entry.get("number", "")),
                    filed_by=ref(part, "by", demo.people, "people.yaml"),
                    filed_at=datetime.datetime.combine(filed_on, datetime.time(16), tzinfo=_SH),
                    late=datetime.datetime.combine(filed_on + datetime.timedelta(days=1), datetime.time(), tzinfo=_SH)
                    > deadline["due_at"],
                )
            FilingObligation.objects.update_or_create(
                trial=trial, kind=entry["kind"], source_key=str(entry["key"]), defaults=values
            )


_SH = datetime.timezone(datetime.timedelta(hours=8))
