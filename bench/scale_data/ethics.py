"""Ethics: submissions with their timeline, expedited reviews and meetings, numbered decision letters, continuing
reviews, and mutual-recognition requests with their working-day deadlines (ethics.recognition.compute_deadline) and
effects."""

import datetime as dt
import itertools
from collections import defaultdict
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from bench.scale_data.world import (
    EV,
    ONE_DAY,
    OUT,
    RS,
    SK,
    SS,
    TZ,
    Committee,
    DecisionRow,
    RequestSim,
    TrialSim,
    pick,
)
from cgtclinic import workdays
from ethics.models import (
    AgendaItem,
    Alliance,
    Attendance,
    Decision,
    LetterCounter,
    Meeting,
    RecognitionEffect,
    RecognitionRequest,
    ReviewAssignment,
    Submission,
    SubmissionEvent,
)
from ethics.recognition import compute_deadline
from subsidies import evidence

# Share of the amendment requests that come from running trials' amendments of the last RECENT_DAYS days: a system
# in use has requests on their way (at national scale tens of thousands), for the deadline sweep to look through.
RECENT_AMENDMENTS = 0.6
RECENT_DAYS = 45
# The last amendment requests made (this share of all requests, at least one) are of the last PENDING_DAYS days and
# not yet answered: chance alone leaves none open in a small data set, and the sweeps' tests need one.
PENDING_SHARE = 0.005
PENDING_DAYS = 10


def _summary(kind: str, trial: TrialSim) -> str:
    return {SK.INITIAL: "首次伦理审查申请", SK.AMENDMENT: "方案修订申请"}.get(kind, "") + f"（{trial.protocol}）"


class EthicsPhase:
    meetings: dict

    def shared_alliance(self, lead: Committee, other: Committee) -> Alliance | None:
        shared = lead.alliances & other.alliances
        if not shared:
            return None
        return min((self.alliances[a] for a in shared), key=lambda a: (a.feedback_working_days, a.pk))

    def event(self, submission_id, kind, from_status, to_status, actor, at, note="") -> None:
        self.table(SubmissionEvent).add(
            submission_id=submission_id,
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            actor_id=actor,
            at=at,
            note=note,
        )

    def meeting(self, committee: Committee, earliest: dt.datetime) -> list:
        """The committee's monthly meeting (its weekday in the second week, 14:00) on or after ``earliest``:
        [id, items on its agenda so far]. Its row is written when it is first needed; held if it lies before now."""
        year, month = earliest.year, earliest.month
        while True:
            first = dt.date(year, month, 1)
            day = first + dt.timedelta(days=(committee.meeting_weekday - first.weekday()) % 7 + 7)
            when = dt.datetime.combine(day, dt.time(14), tzinfo=TZ)
            if when >= earliest:
                break
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        key = (committee.id, when)
        meeting = self.meetings.get(key)
        if meeting is None:
            held = when < self.now
            meeting = self.meetings[key] = [
                self.table(Meeting).add(
                    committee_id=committee.id,
                    scheduled_at=when,
                    location="行政楼第一会议室",
                    status=Meeting.Status.HELD if held else Meeting.Status.PLANNED,
                    quorum_met=True if held else None,
                ),
                0,
            ]
            if held:
                attendance = self.table(Attendance)
                for member_id, _medical in committee.members:
                    attendance.add(meeting_id=meeting[0], member_id=member_id)
        return meeting, when

    def review(
        self,
        *,
        trial: TrialSim,
        committee: Committee,
        kind: str,
        created_at: dt.datetime,
        by: int,
        full_board: bool,
        outcomes: dict,
        responds_to: int | None = None,
        summary: str = "",
    ) -> tuple[int, dt.datetime | None, DecisionRow | None]:
        """One application through intake, routing, expedited review or a meeting, to the decision and its letter,
        as far as it got by now. Returns (submission id, submitted at, decision or None)."""
        rng = self.rng
        sid = self.table(Submission).alloc()
        eo = committee.inst.eo
        row = {
            "id": sid,
            "trial_id": trial.id,
            "committee_id": committee.id,
            "kind": kind,
            "responds_to_id": responds_to,
            "status": SS.DRAFT,
            "summary": summary,
            "submitted_by_id": by,
            "created_at": created_at,
            "review_type": "",
            "routing_reason": "",
            "missing_items": [],
            "details": {},
            "declarations": {},
        }
        self.event(sid, EV.CREATED, "", SS.DRAFT, by, created_at)
        decision = None

        def move(event, to, actor, at, note=""):
            """A step; ``to`` empty for an event that does not change the status (as ethics.services writes it)."""
            if at > self.now:
                return False
            self.event(sid, event, row["status"] if to else "", to, actor, at, note)
            row["status"] = to or row["status"]
            return True

        def done():
            self.table(Submission).add(**row)
            return sid, row.get("submitted_at"), decision

        at = self.after(created_at, 0, 6)
        if not move(EV.SUBMITTED, SS.SUBMITTED, by, at):
            return done()
        row["submitted_at"] = at
        row["reference"] = f"{committee.prefix}受〔{at.year}〕{sid:05d}号"
        if rng.random() < 0.08:
            at = self.after(at, 1, 3)
            items = ["研究者简历（签名版）", "知情同意书版本号与方案不一致"][: rng.randint(1, 2)]
            if not move(EV.RETURNED, SS.RETURNED, eo, at, note="；".join(items)):
                return done()
            row["missing_items"] = items
            at = self.after(at, 3, 15)
            if not move(EV.SUBMITTED, SS.SUBMITTED, by, at):
                return done()
            row["submitted_at"] = at
            row["missing_items"] = []
        at = self.after(at, 1, 4)
        if not move(EV.ACCEPTED, SS.ACCEPTED, eo, at):
            return done()
        at = at + dt.timedelta(minutes=rng.randint(30, 600))
        review_type = Submission.ReviewType.FULL_BOARD if full_board else Submission.ReviewType.EXPEDITED
        to = SS.AWAITING_MEETING if full_board else SS.EXPEDITED_REVIEW
        reason = "首次审查，高风险细胞与基因治疗研究" if full_board else "不大于最小风险的修改或定期审查"
        if not move(EV.ROUTED, to, eo, at, note=reason):
            return done()
        row["review_type"], row["routing_reason"] = review_type, reason
        outcome = pick(rng, outcomes)
        meeting_id = votes = None
        if full_board:
            meeting, meeting_at = self.meeting(committee, at + dt.timedelta(days=7))
            scheduled = min(self.after(at, 1, 5), meeting_at - dt.timedelta(hours=20))
            if not move(EV.SCHEDULED, "", eo, max(scheduled, at + dt.timedelta(minutes=5))):
                return done()
            meeting[1] += 1
            self.table(AgendaItem).add(meeting_id=meeting[0], submission_id=sid, position=meeting[1])
            decided_at = meeting_at + dt.timedelta(minutes=rng.randint(30, 200))
            meeting_id = meeting[0]
            present = len(committee.members) - rng.randint(0, 2)
            against = rng.randint(0, 1)
            votes = (present - against, against)
        else:
            assigned = at + dt.timedelta(minutes=rng.randint(20, 300))
            if not move(EV.REVIEWER_ASSIGNED, "", eo, assigned):
                return done()
            medical = [m for m, is_medical in committee.members if is_medical]
            reviewers = rng.sample(medical, min(len(medical), rng.randint(1, 2)))
            opinion_at = self.after(assigned, 2, 10)
            for member_id in reviewers:
                recorded = opinion_at if opinion_at <= self.now else None
                self.table(ReviewAssignment).add(
                    submission_id=sid,
                    member_id=member_id,
                    assigned_at=assigned,
                    opinion=outcome if recorded else "",
                    risk_benefit_comment="风险受益比可接受" if recorded else "",
                    recorded_at=recorded,
                )
            if not move(EV.OPINION_RECORDED, "", eo, opinion_at):
                return done()
            decided_at = self.after(opinion_at, 0, 3)
        if not move(EV.DECIDED, SS.DECIDED, eo, decided_at, note=str(OUT(outcome).label)):
            return done()
        row["decided_at"] = decided_at
        text = {
            OUT.APPROVE_AFTER_MODIFICATION: "请按审查意见修改知情同意书中的风险描述后报送",
            OUT.MODIFY_AND_RESUBMIT: "剂量递增方案的安全性依据不足，请补充临床前数据后重新提交",
            OUT.DISAPPROVE: "研究的风险受益比不可接受",
        }.get(outcome, "")
        decision = DecisionRow(
            id=self.table(Decision).alloc(),
            submission_id=sid,
            committee=committee,
            outcome=outcome,
            decided_at=decided_at,
            decided_by=eo,
            kind=kind,
            meeting_id=meeting_id,
            votes=votes,
            requested_modifications=text,
        )
        if outcome == OUT.APPROVE and kind in (SK.INITIAL, SK.CONTINUING_REVIEW, SK.MODIFICATION_RESPONSE):
            decision.valid_until = decided_at.date() + relativedelta(months=committee.validity_months)
        self.letter_decisions.append(decision)
        self.event(sid, EV.LETTER_ISSUED, "", "", eo, decided_at + dt.timedelta(minutes=rng.randint(5, 90)))
        return done()

    def report(self, *, trial: TrialSim, committee: Committee, kind: str, at: dt.datetime, by: int, summary: str):
        """A report the committee acknowledges (SAE, closure) as far as it got by now."""
        sid = self.table(Submission).alloc()
        eo = committee.inst.eo
        created = at - dt.timedelta(days=self.rng.randint(0, 3), minutes=self.rng.randint(5, 600))
        events = [(EV.CREATED, "", SS.DRAFT, by, created), (EV.SUBMITTED, SS.DRAFT, SS.SUBMITTED, by, at)]
        accepted = self.after(at, 0, 3)
        events.append((EV.ACCEPTED, SS.SUBMITTED, SS.ACCEPTED, eo, accepted))
        events.append((EV.ACKNOWLEDGED, SS.ACCEPTED, SS.ACKNOWLEDGED, eo, self.after(accepted, 0, 5)))
        status = SS.DRAFT
        for kind_, from_status, to_status, actor, when in events:
            if when > self.now:
                break
            self.event(sid, kind_, from_status, to_status, actor, when)
            status = to_status
        self.table(Submission).add(
            id=sid,
            trial_id=trial.id,
            committee_id=committee.id,
            kind=kind,
            status=status,
            reference=f"{committee.prefix}报〔{at.year}〕{sid:05d}号" if status != SS.DRAFT else "",
            summary=summary,
            submitted_by_id=by,
            created_at=created,
            submitted_at=at if status != SS.DRAFT else None,
        )

    def approve_with_modifications(self, trial, committee, *, kind, created_at, by, full_board, outcomes):
        """An application and, while the committee asks for modifications, the applicant's responses.
        Returns (first submission's submitted at, the final decision or None, the first decision if it approves:
        the letter subsidies.evidence shows for the site)."""
        sid, submitted, decision = self.review(
            trial=trial, committee=committee, kind=kind, created_at=created_at, by=by, full_board=full_board,
            outcomes=outcomes, summary=_summary(kind, trial),
        )  # fmt: skip
        letter = decision if decision is not None and decision.outcome in evidence.APPROVING else None
        while decision is not None and decision.outcome in (OUT.APPROVE_AFTER_MODIFICATION, OUT.MODIFY_AND_RESUBMIT):
            full = decision.outcome == OUT.MODIFY_AND_RESUBMIT
            sid, _submitted, decision = self.review(
                trial=trial,
                committee=committee,
                kind=SK.MODIFICATION_RESPONSE,
                created_at=self.after(decision.decided_at, 5, 30),
                by=by,
                full_board=full,
                outcomes={OUT.APPROVE: 0.88, OUT.DISAPPROVE: 0.12} if full else {OUT.APPROVE: 1},
                responds_to=sid,
                summary="按审查意见修改后的回复及修订文件",
            )
            if decision is not None and decision.kind == SK.MODIFICATION_RESPONSE:
                decision.kind = SK.INITIAL if kind == SK.INITIAL else kind
        return submitted, decision, letter

    def validity_chain(self, trial: TrialSim, committee: Committee, decision: DecisionRow, end: dt.datetime):
        """Continuing reviews that keep an approval valid while the study runs; returns the last valid_until."""
        valid_until = decision.valid_until
        last = decision
        while True:
            due = last.decided_at.date() + relativedelta(months=committee.review_months)
            due = min(due, valid_until)
            created = self.office(due - dt.timedelta(days=self.rng.randint(25, 45)))
            if created > end or created > self.now:
                break
            _sid, _submitted, cr = self.review(
                trial=trial, committee=committee, kind=SK.CONTINUING_REVIEW, created_at=created, by=trial.pi,
                full_board=False, outcomes={OUT.APPROVE: 1}, summary="年度定期跟踪审查报告",
            )  # fmt: skip
            if cr is None:
                break
            valid_until = cr.valid_until
            last = cr
        if not trial.ended_at:
            last.next_review = last.decided_at.date() + relativedelta(months=committee.review_months)
        return valid_until

    # --- recognition requests ---------------------------------------------------------------------------------------

    def open_request(
        self, alliance, trial, site, decision: DecisionRow, subject: str, received_at, *, pending: bool = False
    ) -> RequestSim:
        """A request as requests_open_for_decision opens it, and the participating office's answer (if any yet;
        never when ``pending``)."""
        rng = self.rng
        deadline = compute_deadline(alliance, received_at, self.calendar)
        request = RequestSim(
            id=self.table(RecognitionRequest).alloc(),
            alliance_id=alliance.pk,
            trial_id=trial.id,
            site=site,
            lead_decision=decision,
            subject=subject,
            received_at=received_at,
            deadline=deadline,
        )
        due = deadline["due_at"]
        roll = rng.random()
        if roll < 0.015:
            request.withdrawn_at = self.after(received_at, 0, 2)
        elif roll < 0.83:
            # On time: somewhere between receipt and the deadline, mostly early.
            share = rng.random() ** 1.6 * 0.9
            request.responded_at = received_at + dt.timedelta(minutes=10) + (due - received_at) * share
        elif roll < 0.95:
            request.responded_at = due + dt.timedelta(hours=rng.uniform(1, 24 * 12))
        else:
            request.responded_at = due + dt.timedelta(days=rng.uniform(15, 90))
        if pending:
            request.withdrawn_at = None
            request.responded_at = max(request.responded_at or due, self.now) + dt.timedelta(days=1)
        answered = request.responded_at
        if answered and answered <= self.now:
            # An amendment to a study the site already recognised is recognised (declining would reopen the study).
            declined = 0.07 if subject == SK.INITIAL else 0
            request.status = rng.choices(
                [RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS, RS.DECLINED], weights=[0.78, 0.15, declined]
            )[0]
        elif request.withdrawn_at and request.withdrawn_at <= self.now:
            request.status = RS.WITHDRAWN
        else:
            request.status = RS.OPEN
            request.responded_at = None
        self.requests_made += 1
        self.requests_by_site[site.id].append(request)
        return request

    def fill_amendment_requests(self) -> None:
        """Amendments the lead committee approves ask the sites that recognised the trial again, until the
        number of requests asked for is reached."""
        rng = self.rng
        wanted = self.opts["recognition_requests"]
        remaining = wanted - self.requests_made
        recognised_statuses = (RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS)
        self.progress.start(_("recognition requests"), wanted, _("requests"))
        self.progress.advance(self.requests_made)
        candidates = [
            t
            for t in self.trials
            if t.approval is not None
            and t.active
            and any(r.status in recognised_statuses for s in t.sites[1:] for r in self.requests_by_site[s.id])
        ]
        attempts = 0
        pending_floor = max(1, round(wanted * PENDING_SHARE))
        any_running = any(t.active[-1][1] >= self.today - ONE_DAY for t in candidates)
        while remaining > 0 and candidates:
            attempts += 1
            if attempts > 50 * (wanted + 10):
                break
            trial = rng.choice(candidates)
            start, stop = trial.active[0][0], trial.active[-1][1]
            running = stop >= self.today - ONE_DAY
            pending = running and remaining <= pending_floor
            if pending:
                start = max(start, self.today - dt.timedelta(days=PENDING_DAYS))
            elif running and rng.random() < RECENT_AMENDMENTS:
                # A running trial's amendment of the last weeks: its requests are still being answered.
                start = max(start, self.today - dt.timedelta(days=RECENT_DAYS))
            when = self.office(start + dt.timedelta(days=rng.randint(0, max(0, (stop - start).days))))
            created = when - dt.timedelta(days=rng.randint(15, 30))
            recognised = [
                s
                for s in trial.sites[1:]
                if any(r.responded_at and r.responded_at < created and r.status in recognised_statuses
                       for r in self.requests_by_site[s.id])
            ]  # fmt: skip
            if not recognised:
                continue
            _sid, _submitted, decision = self.review(
                trial=trial, committee=trial.lead.committee, kind=SK.AMENDMENT, created_at=created, by=trial.pi,
                full_board=False, outcomes={OUT.APPROVE: 1}, summary="方案修订：增加剂量扩展队列，更新知情同意书",
            )  # fmt: skip
            if decision is None:
                continue
            # The last pending_floor requests are left for a recent amendment of a running trial.
            room = remaining if pending or not any_running else remaining - pending_floor
            if room <= 0:
                continue
            for site in recognised[:room]:
                alliance = self.shared_alliance(trial.lead.committee, site.inst.committee)
                self.open_request(alliance, trial, site, decision, SK.AMENDMENT, decision.decided_at, pending=pending)
            self.progress.advance(min(len(recognised), room))
            remaining -= min(len(recognised), room)
        if remaining > 0:
            raise CommandError(
                _(
                    "Only %(made)d recognition requests fit the generated trials; ask for fewer or for more "
                    "trials and sites."
                )
                % {"made": self.requests_made}
            )

    def finish_requests(self) -> None:
        """Supersede requests still open when the site's next one arrived; then deadlines' effects and rows."""
        table, effects = self.table(RecognitionRequest), self.table(RecognitionEffect)
        for requests in self.requests_by_site.values():
            requests.sort(key=lambda r: r.received_at)
            for request, following in itertools.pairwise(requests):
                if request.status == RS.WITHDRAWN:
                    continue
                if request.status == RS.OPEN or (request.responded_at and request.responded_at > following.received_at):
                    request.status = RS.SUPERSEDED
                    request.superseded_by_id = following.id
                    request.until = following.received_at
                    request.responded_at = None
        for request in sorted((r for rs in self.requests_by_site.values() for r in rs), key=lambda r: r.id):
            committee = request.site.inst.committee
            answered, withdrawn = request.responded_at, request.withdrawn_at
            until = request.until or answered or withdrawn or self.now
            if request.status == RS.WITHDRAWN:
                until = withdrawn
            row = {
                "id": request.id,
                "alliance_id": request.alliance_id,
                "trial_id": request.trial_id,
                "site_id": request.site.id,
                "committee_id": committee.id,
                "lead_decision_id": request.lead_decision.id,
                "subject": request.subject,
                "received_at": request.received_at,
                "status": request.status,
                "superseded_by_id": request.superseded_by_id,
                "local_review_id": request.local_review_id,
                **request.deadline,
            }
            still_open = request.status == RS.OPEN
            for kind, when in ((RecognitionEffect.Kind.REMINDER, row["remind_at"]),
                               (RecognitionEffect.Kind.ESCALATION, row["due_at"])):  # fmt: skip
                # An open request's effect due at the very end happened too, as a sweep at the end would make it.
                if (when < until and when <= self.now) or (still_open and when <= self.now):
                    effects.add(
                        request_id=request.id, kind=kind, due_at=row["due_at"], happened_at=self.soon_after(when)
                    )
                    if kind == RecognitionEffect.Kind.ESCALATION:
                        row["escalated_at"] = self.soon_after(when)
            if answered is not None:
                hours = workdays.working_hours_between(request.received_at, answered, calendar=self.calendar)
                row.update(
                    responded_at=answered,
                    responded_by_id=committee.inst.eo,
                    late=answered > row["due_at"],
                    response_working_hours=(Decimal(hours.total_seconds()) / 3600).quantize(Decimal("0.01")),
                    response_note={
                        RS.RECOGNISED_WITH_CONDITIONS: "认可，条件：本中心须使用本院版本的知情同意书",
                        RS.DECLINED: "本中心受试人群特殊，需进行完整的本地审查",
                    }.get(request.status, ""),
                )
            table.add(**row)
            request.deadline = None
        # What the claims read of a site's recognition: the first recognised answer (subsidies.evidence).
        for requests in self.requests_by_site.values():
            for request in requests:
                if request.status in (RS.RECOGNISED, RS.RECOGNISED_WITH_CONDITIONS) and request.responded_at:
                    site = request.site
                    if site.recognised is None or request.responded_at < site.recognised.responded_at:
                        site.recognised = request
        self.requests_by_site = defaultdict(list)

    # --- numbered letters -------------------------------------------------------------------------------------------

    def write_decisions(self) -> None:
        """Decisions numbered per committee and year in the order they were made, as ethics.services numbers
        letters, and the committees' letter counters."""
        decisions, counters = self.table(Decision), self.table(LetterCounter)
        sequence = defaultdict(int)
        self.letter_decisions.sort(key=lambda d: (d.committee.id, d.decided_at, d.id))
        for decision in self.letter_decisions:
            year = decision.decided_at.year
            sequence[(decision.committee.id, year)] += 1
            number = sequence[(decision.committee.id, year)]
            approving = decision.valid_until is not None
            decision.letter_number = f"{decision.committee.prefix}〔{year}〕{number:03d}号"
            decisions.add(
                id=decision.id,
                submission_id=decision.submission_id,
                committee_id=decision.committee.id,
                outcome=decision.outcome,
                decided_at=decision.decided_at,
                decided_by_id=decision.decided_by,
                meeting_id=decision.meeting_id,
                votes_for=decision.votes[0] if decision.votes else None,
                votes_against=decision.votes[1] if decision.votes else None,
                requested_modifications=decision.requested_modifications,
                valid_until=decision.valid_until,
                continuing_review_months=decision.committee.review_months if approving else None,
                next_continuing_review_due=decision.next_review if approving else None,
                letter_year=year,
                letter_sequence=number,
                letter_number=decision.letter_number,
            )
        for (committee_id, year), last in sorted(sequence.items()):
            counters.add(committee_id=committee_id, year=year, last_number=last)
        # Only the letters a site's evidence names are read after this (through SiteSim.approval).
        self.letter_decisions = []
