"""make bench's phases on tiny data: every admin and PI page it finds answers with a session, the sweeps run and
leave the data set as it was (the writers: test_bench_writes.py). Django's test client stands in for gunicorn and
wrk."""

import time
from urllib.parse import urlencode

import pytest
from django.test import Client

from bench import pages, sweeps
from cgtclinic.models import Notification
from ethics.models import RecognitionRequest

# The tiny data set generate_scale_data's own tests use, generated once for this module and rolled back after it.
from tests.test_generate_scale_data import generated, generated_once  # noqa: F401


def client_get(path: str, cookie: str) -> tuple[int, str, float]:
    client = Client()
    client.cookies.load(cookie)
    began = time.perf_counter()
    response = client.get(path)
    return response.status_code, response.content.decode(), time.perf_counter() - began


def client_load(path: str, cookie: str) -> dict:
    """wrk's figures, without the load: the warm-up GET already proved the page answers."""
    return {"requests": 1, "errors": 0, "api_p50": 1.0, "api_p95": 1.0, "rps": 1000.0}


@pytest.mark.usefixtures("generated")
def test_every_admin_and_pi_page_found_answers_to_its_viewer_with_a_session():
    results = pages.run(client_get, client_load)

    assert [r for r in results if r.get("error")] == []
    viewers = {r["viewer"].split(" (")[0] for r in results}
    assert viewers == {"system administrator", "research office", "ethics office", "PI"}
    labels = {r["page"] for r in results}
    assert {"trials.enrolmententry list", "ethics.submission list", "pi dashboard", "pi site enrolment"} <= labels
    # The heaviest models also get a search, a filter and a change page.
    assert any(label.endswith(" search") for label in labels)
    assert any(label.endswith(" filter") for label in labels)
    assert any(label.endswith(" change") for label in labels)


@pytest.mark.usefixtures("generated")
def test_only_the_pages_asked_for_are_measured_with_their_variants():
    results = pages.run(client_get, client_load, only=("safetyevent", "pi safety"))

    labels = {r["page"] for r in results}
    assert labels and all("safetyevent" in label or "pi safety" in label for label in labels)
    assert {"ethics.safetyevent list", "pi safety_list"} <= labels
    assert [r for r in results if r.get("error")] == []


@pytest.mark.usefixtures("generated")
def test_the_sweeps_run_each_beat_sweep_and_change_nothing():
    before = (Notification.objects.count(), list(RecognitionRequest.objects.values_list("pk", "status")))

    results = sweeps.run(runs=2)

    assert [r["sweep"] for r in results] == sweeps.beat_sweeps()
    assert "ethics.tasks.sweep_recognition_deadlines" in sweeps.beat_sweeps()
    assert all(r["runs"] == 2 and "error" not in r for r in results)
    # The deadline sweeps say how many open rows they looked through.
    by_name = {r["sweep"].rsplit(".", 1)[-1]: r for r in results}
    assert by_name["sweep_recognition_deadlines"]["open"] == RecognitionRequest.objects.open().count()
    assert by_name["sweep_safety_clocks"]["scanned"] == "safety clocks"
    assert by_name["sweep_filing_deadlines"]["open"] >= by_name["sweep_filing_deadlines"]["due"]
    # The measured call is the steady state: the catch-up call before it made every effect due, exactly once.
    for r in results:
        assert not (sum(r["did"].values()) if isinstance(r["did"], dict) else r["did"]), r
        assert "catch_up_mean" in r and "caught_up" in r
    assert (Notification.objects.count(), list(RecognitionRequest.objects.values_list("pk", "status"))) == before


def test_the_scale_chooses_the_database_and_the_generators_sizes():
    from bench.run import generator_sizes, parse_args

    national = parse_args(["--scale", "national", "--phases", "writes,sweeps"])
    assert national.database_url.endswith("/cgt_scale_national")
    assert national.output.name == "latest-national.md" and national.phases == ["writes", "sweeps"]
    assert "--enrolment-events=5000000" in generator_sizes(national)
    provincial = parse_args(["--trials", "100"])
    assert provincial.database_url.endswith("/cgt_scale") and generator_sizes(provincial) == ["--trials=100"]
    with pytest.raises(SystemExit):
        parse_args(["--phases", "reports,nothing"])


def test_the_search_variant_searches_the_first_rows_whole_first_word():
    """A decision's letter number matches only whole: a 12-character prefix found nothing, and the figure measured
    an empty search."""
    page = pages.Page("ethics office", "ethics.decision list", "/admin/ethics/decision/")
    body = (
        '<form><input type="text" size="40" name="q" value=""></form><table id="result_list"><thead></thead><tbody>'
        '<tr><th><a href="/admin/ethics/decision/7/change/">沪伦审〔2025〕科字第00012号</a></th></tr></tbody></table>'
    )

    (search,) = pages.changelist_variants(page, body)

    assert search.label == "ethics.decision list search"
    assert search.url == "/admin/ethics/decision/?" + urlencode({"q": "沪伦审〔2025〕科字第00012号"})
