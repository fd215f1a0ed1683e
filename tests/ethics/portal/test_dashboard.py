"""The PI's dashboard: trials, submissions, what is waiting on them, due dates; and the inbox."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from cgtclinic.models import Notification
from ethics.models import Decision, Submission
from tests.factories.ethics import DecisionFactory, EthicsCommitteeFactory, SubmissionFactory
from tests.factories.trials import TrialFactory
from trials.models import Trial

pytestmark = pytest.mark.django_db

S = Submission.Status
K = Submission.Kind


def make_world(pi, committee, n=1):
    """n of each situation a PI can be in."""
    today = timezone.localdate()
    window = committee.continuing_review_reminder_days
    rows = {"drafts": [], "returned": [], "modify": [], "due_soon": [], "due_later": [], "submitted": []}
    for _ in range(n):
        trial = TrialFactory(lead_institution=pi.institution, pi=pi)
        rows["drafts"].append(SubmissionFactory(trial=trial, committee=committee))
        trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.SUBMITTED)
        rows["returned"].append(
            SubmissionFactory(
                trial=trial,
                committee=committee,
                status=S.RETURNED,
                reference="伦审受〔2026〕00009",
                submitted_at=timezone.now(),
                missing_items=["主要研究者GCP证书", "保险凭证原件"],
            )
        )
        trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.UNDER_REVIEW)
        decided = SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED)
        rows["modify"].append(
            DecisionFactory(
                submission=decided,
                outcome=Decision.Outcome.APPROVE_AFTER_MODIFICATION,
                requested_modifications="请修改知情同意书第3节",
            )
        )
        for key, due in (
            ("due_soon", today + datetime.timedelta(days=window - 1)),
            ("due_later", today + datetime.timedelta(days=window + 30)),
        ):
            trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.ACTIVE)
            decided = SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED)
            rows[key].append(DecisionFactory(submission=decided, next_continuing_review_due=due, valid_until=due))
        trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.SUBMITTED)
        rows["submitted"].append(
            SubmissionFactory(
                trial=trial,
                committee=committee,
                status=S.SUBMITTED,
                reference="伦审受〔2026〕00042",
                submitted_at=timezone.now(),
            )
        )
    return rows


def waiting_section(page: str) -> str:
    end = page.index('id="due-title"') if 'id="due-title"' in page else page.index('id="trials-title"')
    return page[page.index('id="waiting-title"') : end]


def test_dashboard_shows_trials_submissions_and_what_is_waiting(pi_client, pi, committee, other_pi):
    rows = make_world(pi, committee)
    foreign = SubmissionFactory(trial=TrialFactory(lead_institution=pi.institution, pi=other_pi), committee=committee)
    Notification.objects.create(recipient=pi, topic="t", event_key="1", subject="请提交年度报告", body="…")
    Notification.objects.create(recipient=other_pi, topic="t", event_key="1", subject="别人的消息", body="…")

    page = pi_client.get(reverse("ethics_portal:dashboard")).content.decode()
    waiting = waiting_section(page)

    for trial in Trial.objects.filter(pi=pi):
        assert trial.protocol_number in page
    assert foreign.trial.protocol_number not in page
    assert "伦审受〔2026〕00042" in page  # a submission's reference
    # Draft to resume, returned with its missing items, modifications to answer, continuing review due soon.
    assert reverse("ethics_portal:project_edit", args=[rows["drafts"][0].trial_id, 1]) in waiting
    assert "主要研究者GCP证书" in waiting and "保险凭证原件" in waiting
    assert reverse("ethics_portal:respond", args=[rows["modify"][0].submission_id]) in waiting
    assert f"{rows['due_soon'][0].submission.trial.protocol_number} ·" in waiting
    assert f"{rows['due_later'][0].submission.trial.protocol_number} ·" not in waiting
    # Due dates list both continuing reviews.
    due = page[page.index('id="due-title"') : page.index('id="trials-title"')]
    assert rows["due_later"][0].next_continuing_review_due.isoformat() in due
    # One unread message of their own, linking to the inbox.
    assert reverse("ethics_portal:inbox") in page
    assert '<span class="badge"' in page and ">1</span>" in page


def test_continuing_review_filed_since_the_decision_is_no_longer_waiting(pi_client, pi, committee):
    rows = make_world(pi, committee)
    decision = rows["due_soon"][0]
    SubmissionFactory(
        trial=decision.submission.trial, committee=committee, kind=K.CONTINUING_REVIEW, status=S.SUBMITTED
    )
    waiting = waiting_section(pi_client.get(reverse("ethics_portal:dashboard")).content.decode())
    assert f"{decision.submission.trial.protocol_number} ·" not in waiting


def test_answered_modifications_are_no_longer_waiting(pi_client, pi, committee):
    rows = make_world(pi, committee)
    decided = rows["modify"][0].submission
    SubmissionFactory(
        trial=decided.trial, committee=committee, kind=K.MODIFICATION_RESPONSE, responds_to=decided, status=S.SUBMITTED
    )
    waiting = waiting_section(pi_client.get(reverse("ethics_portal:dashboard")).content.decode())
    assert reverse("ethics_portal:respond", args=[decided.pk]) not in waiting


def test_dashboard_queries_do_not_grow_with_rows(pi_client, pi, committee, django_assert_max_num_queries):
    make_world(pi, committee, n=1)
    # "Waiting on you" is read by bounded queries of its own (ethics.selectors.pi_waiting).
    with django_assert_max_num_queries(14) as small:
        pi_client.get(reverse("ethics_portal:dashboard"))
    make_world(pi, committee, n=6)
    with django_assert_max_num_queries(len(small.captured_queries)):
        pi_client.get(reverse("ethics_portal:dashboard"))


def test_dates_are_shown_in_shanghai_time(pi_client, pi, committee):
    trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.SUBMITTED)
    SubmissionFactory(
        trial=trial,
        committee=committee,
        status=S.SUBMITTED,
        submitted_at=datetime.datetime(2026, 3, 1, 20, 30, tzinfo=datetime.UTC),
    )
    page = pi_client.get(reverse("ethics_portal:dashboard")).content.decode()
    assert "2026-03-02 04:30" in page


def test_inbox_lists_and_marks_read(pi_client, pi, other_pi):
    mine = Notification.objects.create(
        recipient=pi, topic="t", event_key="1", subject="持续审查即将到期", body="请提交"
    )
    second = Notification.objects.create(recipient=pi, topic="t", event_key="2", subject="第二条", body="…")
    theirs = Notification.objects.create(recipient=other_pi, topic="t", event_key="1", subject="别人的消息", body="…")

    page = pi_client.get(reverse("ethics_portal:inbox")).content.decode()
    assert "持续审查即将到期" in page and "别人的消息" not in page

    pi_client.post(reverse("ethics_portal:notification_read", args=[mine.pk]))
    mine.refresh_from_db()
    second.refresh_from_db()
    assert mine.read_at is not None and second.read_at is None

    assert pi_client.post(reverse("ethics_portal:notification_read", args=[theirs.pk])).status_code == 404
    assert pi_client.get(reverse("ethics_portal:notification_read", args=[mine.pk])).status_code == 405

    pi_client.post(reverse("ethics_portal:notifications_read_all"))
    assert not Notification.objects.filter(recipient=pi, read_at=None).exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_a_committee_elsewhere_does_not_matter_to_the_dashboard(pi_client, pi):
    EthicsCommitteeFactory()
    assert pi_client.get(reverse("ethics_portal:dashboard")).status_code == 200


def test_dashboard_shows_the_newest_submissions_and_nearest_dates_and_says_so(
    pi_client, pi, committee, monkeypatch, django_assert_max_num_queries
):
    """A long-serving PI's whole history is not read on every visit: the newest submissions and the nearest dates,
    with a note saying where the rest are; a submission someone else filed for the PI's trial still shows."""
    from ethics.portal import views

    monkeypatch.setattr(views, "DASHBOARD_ROWS", 2)
    today = timezone.localdate()
    decisions = []
    for days in (30, 10, 20):
        trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=Trial.Status.ACTIVE)
        decided = SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED)
        decisions.append(DecisionFactory(submission=decided, valid_until=today + datetime.timedelta(days=days)))
    with django_assert_max_num_queries(14):
        response = pi_client.get(reverse("ethics_portal:dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    context = response.context
    newest = Submission.objects.filter(trial__pi=pi).order_by("-created_at", "-id")[:2]
    assert [s.pk for s in context["submissions"]] == [s.pk for s in newest]
    assert [row["date"] for row in context["due_dates"]] == [d.valid_until for d in (decisions[1], decisions[2])]
    page = response.content.decode()
    assert "The newest 2 submissions; each trial" in page
    assert "The nearest 2 dates" in page
