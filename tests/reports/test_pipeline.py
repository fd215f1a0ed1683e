"""The pipeline report against counts made in the test from the sites the factories created."""

import datetime
from collections import defaultdict

import pytest
import time_machine

from tests.factories.trials import TrialFactory, TrialSiteFactory
from tests.reports.helpers import report
from trials.models import Trial, TrialSite

pytestmark = pytest.mark.django_db
T = Trial


@pytest.fixture
def pipeline_world(institution, neighbour, outsider):
    """Region trials: one led here with sites here and outside, one led outside with a site here, one only outside,
    a draft led here."""
    with time_machine.travel(datetime.datetime(2025, 3, 1, 10, tzinfo=datetime.UTC)):
        led_here = TrialFactory(
            lead_institution=institution, kind=T.Kind.IIT, therapy_category=T.TherapyCategory.IMMUNE_CELL
        )
    led_here.status = T.Status.ACTIVE
    led_here.save(update_fields=["status"])
    TrialSite.objects.filter(trial=led_here).update(
        submission_received_on=datetime.date(2025, 3, 2),
        ethics_approved_on=datetime.date(2025, 4, 1),
        site_initiated_on=datetime.date(2025, 6, 1),
    )
    TrialSiteFactory(trial=led_here, institution=neighbour, ethics_approved_on=datetime.date(2025, 5, 1))
    TrialSiteFactory(trial=led_here, institution=outsider, site_initiated_on=datetime.date(2025, 6, 2))

    with time_machine.travel(datetime.datetime(2025, 9, 1, 10, tzinfo=datetime.UTC)):
        led_outside = TrialFactory(
            lead_institution=outsider,
            kind=T.Kind.REGISTRATION,
            therapy_category=T.TherapyCategory.GENE_EDITING,
            status=T.Status.APPROVED,
        )
    TrialSiteFactory(
        trial=led_outside,
        institution=neighbour,
        contract_signed_on=datetime.date(2025, 10, 1),
        site_initiated_on=datetime.date(2025, 11, 1),
        first_patient_in_on=datetime.date(2025, 12, 1),
    )
    TrialFactory(lead_institution=outsider, status=T.Status.ACTIVE)  # only in the other region
    TrialFactory(lead_institution=neighbour, kind=T.Kind.OTHER, therapy_category=T.TherapyCategory.STEM_CELL)
    return led_here


def expected_rows(region, keys, *, only=lambda site: True):
    """Counts per group made directly from the rows: the sites in the region and the trials they belong to."""
    groups = defaultdict(lambda: {"trials": set(), "sites": 0, "lead_sites": 0, "initiated": 0, "first_patient": 0})
    for site in TrialSite.objects.select_related("trial", "institution"):
        if site.institution.region_id != region.pk or not only(site):
            continue
        values = {
            "status": site.trial.status,
            "kind": site.trial.kind,
            "therapy_category": site.trial.therapy_category,
            "institution": site.institution_id,
        }
        group = groups[tuple(values[key] for key in keys)]
        group["trials"].add(site.trial_id)
        group["sites"] += 1
        group["lead_sites"] += site.role == TrialSite.SiteRole.LEAD
        group["initiated"] += site.site_initiated_on is not None
        group["first_patient"] += site.first_patient_in_on is not None
    return {
        key: (len(g["trials"]), g["sites"], g["lead_sites"], g["initiated"], g["first_patient"])
        for key, g in groups.items()
    }


def actual_rows(data, keys):
    names = {"institution": "institution_id"}
    return {
        tuple(row[names.get(key, key)] for key in keys): (
            row["trials"],
            row["sites"],
            row["lead_sites"],
            row["sites_initiated"],
            row["sites_first_patient_in"],
        )
        for row in data["rows"]
    }


def test_by_stage_kind_and_category(pipeline_world, regulator, region):
    data = report(regulator, "pipeline")
    keys = ("status", "kind", "therapy_category")
    assert actual_rows(data, keys) == expected_rows(region, keys)
    sites_here = [s for s in TrialSite.objects.select_related("institution") if s.institution.region_id == region.pk]
    assert data["summary"]["sites"] == len(sites_here)
    assert data["summary"]["trials"] == len({s.trial_id for s in sites_here})
    assert data["summary"]["institutions"] == len({s.institution_id for s in sites_here})
    assert data["filters"]["group_by"] == list(keys)
    assert data["filters"]["region"] == region.code
    row = next(r for r in data["rows"] if r["kind"] == T.Kind.REGISTRATION)
    assert row["kind_label"] == str(T.Kind.REGISTRATION.label)
    assert row["institution_id"] is None


def test_by_institution_counts_every_site_there(pipeline_world, regulator, region, neighbour):
    data = report(regulator, "pipeline", group_by="institution")
    assert actual_rows(data, ["institution"]) == expected_rows(region, ["institution"])
    neighbour_row = next(r for r in data["rows"] if r["institution_id"] == neighbour.pk)
    # The neighbour hosts a site of the trial led here, of the one led outside, and leads a draft.
    assert neighbour_row["trials"] == 3
    assert neighbour_row["institution_name"] == neighbour.name_zh


def test_filters_narrow_the_trials(pipeline_world, regulator, region):
    data = report(regulator, "pipeline", status="active,approved", kind=T.Kind.IIT, group_by="status")
    assert actual_rows(data, ["status"]) == expected_rows(
        region, ["status"], only=lambda s: s.trial.status in ("active", "approved") and s.trial.kind == T.Kind.IIT
    )
    registered = report(regulator, "pipeline", registered_from="2025-08-01", registered_to="2025-12-31")
    assert {row["kind"] for row in registered["rows"]} == {T.Kind.REGISTRATION}
    assert registered["summary"]["trials"] == 1


def test_system_administrator_reads_every_region_or_one(pipeline_world, system_admin, region, other_region):
    everywhere = report(system_admin, "pipeline")
    assert everywhere["summary"]["sites"] == TrialSite.objects.count()
    assert everywhere["filters"]["region"] is None
    other = report(system_admin, "pipeline", region=other_region.code)
    assert actual_rows(other, ("status", "kind", "therapy_category")) == expected_rows(
        other_region, ("status", "kind", "therapy_category")
    )
