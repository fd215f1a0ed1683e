"""Parallel writers on PostgreSQL: no report is lost, a subject code is enrolled once, an entry reversed once.

Each thread has its own database connection (closed when it ends), so the transactions really overlap; a barrier
starts them together.
"""

import threading

import pytest
from django.db import connection

from cgtclinic.errors import DomainError
from tests.factories.trials import TrialSiteFactory, active_site, approve_site, days_ago
from trials import enrolment
from trials.models import EnrolmentEntry, EnrolmentSubject, SiteEnrolment

pytestmark = pytest.mark.django_db(transaction=True)
K = EnrolmentEntry.Kind
THREADS = 8
REPORTS_EACH = 10


def in_parallel(work, n: int = THREADS) -> list:
    """Run ``work(i)`` in n threads started together; each result is a return value or the exception raised."""
    start = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            start.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_parallel_reports_never_lose_a_count():
    site = active_site()
    pi = site.site_pi

    def write(i):
        for n in range(REPORTS_EACH):
            kind = K.SCREENED if n % 2 else K.ENROLLED
            enrolment.enrolment_report(site=site, actor=pi, kind=kind, occurred_on=days_ago(1 + n), note=f"{i}-{n}")

    assert in_parallel(write) == [None] * THREADS
    per_kind = THREADS * REPORTS_EACH // 2
    assert EnrolmentEntry.objects.filter(site=site).count() == THREADS * REPORTS_EACH
    cached = SiteEnrolment.objects.get(site=site)
    assert (cached.enrolled, cached.screened) == (per_kind, per_kind)
    assert enrolment.enrolled_as_of(site_ids=[site.pk])[site.pk] == per_kind
    rebuilt = enrolment.rebuild_site_counts(site)
    assert (rebuilt.enrolled, rebuilt.screened, rebuilt.last_enrolled_on) == (per_kind, per_kind, days_ago(1))


def test_parallel_enrolments_of_one_subject_code_let_exactly_one_through():
    site = active_site()

    def enrol(i):
        return enrolment.enrolment_report(
            site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(3), subject_code="RK-001"
        )

    results = in_parallel(enrol)
    assert sum(isinstance(r, EnrolmentEntry) for r in results) == 1
    refusals = [r for r in results if not isinstance(r, EnrolmentEntry)]
    assert all(isinstance(r, DomainError) and r.code == "subject_state" for r in refusals), refusals
    assert SiteEnrolment.objects.get(site=site).enrolled == 1
    assert EnrolmentSubject.objects.filter(code="RK-001").count() == 1


def test_one_subject_code_reported_at_two_sites_at_once_goes_to_one_of_them():
    lead = active_site()
    participating = approve_site(TrialSiteFactory(trial=lead.trial), days_ago(150), days_ago(-100))
    sites = [lead, participating]

    def enrol(i):
        site = sites[i % 2]
        return enrolment.enrolment_report(
            site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(3), subject_code="RK-777"
        )

    results = in_parallel(enrol)
    winners = [r for r in results if isinstance(r, EnrolmentEntry)]
    assert len(winners) == 1
    assert all(isinstance(r, DomainError) for r in results if r not in winners), results
    subject = EnrolmentSubject.objects.get(code="RK-777")
    assert subject.site_id == winners[0].site_id
    assert sum(SiteEnrolment.objects.filter(site__in=sites).values_list("enrolled", flat=True)) == 1


def test_parallel_reversals_of_one_entry_let_exactly_one_through():
    site = active_site()
    entry = enrolment.enrolment_report(site=site, actor=site.site_pi, kind=K.ENROLLED, occurred_on=days_ago(3), count=2)

    def reverse(i):
        return enrolment.enrolment_reverse(entry=entry, actor=site.site_pi, reason=f"重复录入 {i}")

    results = in_parallel(reverse)
    assert sum(isinstance(r, EnrolmentEntry) for r in results) == 1
    assert all(r.code == "already_reversed" for r in results if isinstance(r, DomainError))
    assert SiteEnrolment.objects.get(site=site).enrolled == 0
