"""make bench's writes phase: concurrent writers call the enrolment service and the ledger keeps none of it."""

import pytest

from bench import writes
from tests.factories.trials import active_site, days_ago
from trials import enrolment
from trials.models import EnrolmentEntry, SiteEnrolment


@pytest.mark.django_db(transaction=True)
def test_concurrent_enrolment_writers_call_the_service_and_keep_nothing():
    sites = [active_site(), active_site()]
    for site in sites:
        enrolment.enrolment_report(site=site, actor=site.site_pi, kind="screened", occurred_on=days_ago(1))
    before = (EnrolmentEntry.objects.count(), list(SiteEnrolment.objects.values_list("site_id", "screened")))

    result = writes.run(writers=2, seconds=0.5)

    assert "error" not in result
    assert result["calls"] >= 2 and sorted(result["sites"]) == sorted(s.pk for s in sites)
    assert result["p95"] >= result["p50"] > 0
    assert (EnrolmentEntry.objects.count(), list(SiteEnrolment.objects.values_list("site_id", "screened"))) == before
