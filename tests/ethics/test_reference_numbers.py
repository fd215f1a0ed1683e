"""受理号 (acceptance numbers): a sequence per committee and Beijing-time year, without gaps or repeats."""

import datetime
import threading

import pytest
import time_machine
from django.db import connection

from cgtclinic.errors import DomainError
from ethics import services
from ethics.models import Submission
from tests.ethics.conftest import attach_required_documents
from tests.factories.ethics import EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import TrialFactory

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
THREADS = 6


def complete_draft(committee):
    trial = TrialFactory(lead_institution=committee.institution)
    draft = services.submission_create(actor=trial.pi, trial=trial, kind=Submission.Kind.INITIAL, committee=committee)
    return attach_required_documents(draft, trial.pi)


def submit(draft):
    return services.submission_submit(submission=draft, actor=draft.trial.pi)


@pytest.mark.django_db
def test_numbers_run_per_committee_and_beijing_year_not_from_the_database_id(committee, office):
    other = EthicsCommitteeFactory(letter_prefix="他伦审")
    balanced_committee(other)
    drafts = [complete_draft(committee) for _ in range(3)] + [complete_draft(other)]
    # 2025-12-31 23:30 in Beijing is still 2025; 16:30 UTC on the same day is already 2026-01-01 in Beijing.
    with time_machine.travel(datetime.datetime(2025, 12, 31, 23, 30, tzinfo=SHANGHAI), tick=False):
        last_of_2025 = submit(drafts[0])
    with time_machine.travel(datetime.datetime(2025, 12, 31, 16, 30, tzinfo=datetime.UTC), tick=False):
        first_of_2026 = submit(drafts[1])
        elsewhere = submit(drafts[3])
        second_of_2026 = submit(drafts[2])

    assert last_of_2025.reference == "测伦审受〔2025〕00001"
    assert first_of_2026.reference == "测伦审受〔2026〕00001"
    assert second_of_2026.reference == "测伦审受〔2026〕00002"
    assert elsewhere.reference == "他伦审受〔2026〕00001"


@pytest.mark.django_db
def test_a_resubmission_keeps_its_number_and_takes_none(committee, office):
    first, second = complete_draft(committee), complete_draft(committee)
    first = submit(first)
    services.submission_return_incomplete(submission=first, actor=office, items=["签字页"])
    again = submit(first)
    assert again.reference == first.reference and again.reference.endswith("00001")
    assert submit(second).reference.endswith("00002")


@pytest.mark.django_db
def test_a_refused_submission_uses_no_number(committee, office):
    empty = services.submission_create(
        actor=(trial := TrialFactory(lead_institution=committee.institution)).pi,
        trial=trial,
        kind=Submission.Kind.INITIAL,
    )
    with pytest.raises(DomainError):  # incomplete: refused before a number is taken
        submit(empty)
    assert submit(complete_draft(committee)).reference.endswith("00001")


@pytest.mark.django_db(transaction=True)
def test_parallel_submissions_get_one_to_n_without_gaps_or_repeats(committee):
    drafts = [complete_draft(committee) for _ in range(THREADS)]
    start = threading.Barrier(THREADS)
    results: list = [None] * THREADS

    def run(i):
        try:
            start.wait(timeout=30)
            results[i] = submit(drafts[i]).reference
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    assert not [r for r in results if isinstance(r, Exception)], results
    numbers = sorted(
        int(reference[-6:-1]) if reference.endswith("号") else int(reference[-5:]) for reference in results
    )
    assert numbers == list(range(1, THREADS + 1))
    stored = Submission.objects.filter(committee=committee).values_list("reference", flat=True)
    assert sorted(stored) == sorted(results)
