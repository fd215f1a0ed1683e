"""The enrolment ledger: subjects screened, enrolled, failed, withdrawn and completed, reported per subject or as
daily counts, with corrections (reversals); SiteEnrolment equal to the ledger's sums (trials' data)."""

import datetime as dt
import hashlib
from collections import defaultdict

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from bench.scale_data.world import EK, ICF_TITLE, ONE_DAY, ORDER, SiteSim, TrialSim, apportion
from trials.models import (
    DocumentVersion,
    EnrolmentEntry,
    EnrolmentSubject,
    SiteEnrolment,
    SubjectConsent,
    TrialDocument,
)


class LedgerPhase:
    def make_enrolment(self) -> None:
        """Allocate the events over the sites that enrol, in proportion to target and time open, then report
        subjects (screened → enrolled or screen failure → withdrawn or completed) in date order."""
        rng = self.rng
        enrolling = []
        for trial in self.trials:
            for site in trial.sites:
                windows = self.site_windows(trial, site)
                if windows:
                    enrolling.append((site, windows))
        total = self.opts["enrolment_events"]
        if total and not enrolling:
            raise CommandError(_("No site was open for enrolment; ask for more trials or a later --today."))
        weights = [
            max(site.target, 3) * sum((b - a).days + 1 for a, b in windows) ** 0.5 for site, windows in enrolling
        ]
        budgets = apportion(total, weights) if enrolling else []
        self.entries, self.subjects = self.table(EnrolmentEntry), self.table(EnrolmentSubject)
        self.site_counts = self.table(SiteEnrolment)
        self.consents = self.table(SubjectConsent)
        self.progress.start(_("enrolment ledger"), total, _("entries"))
        for (site, windows), budget in zip(enrolling, budgets, strict=True):
            if budget:
                # One site in ten reports counts per day instead of one subject code per entry.
                self.enrol_site(site, windows, budget, aggregate=rng.random() < 0.1)
                self.progress.advance(budget)

    def icf_version(self, trial: TrialSim) -> int:
        """The trial's informed-consent form, version 1, uploaded by its PI when the trial was drafted (the row
        only: no file is written)."""
        if not trial.icf_version:
            document = self.table(TrialDocument).add(
                trial_id=trial.id, kind=TrialDocument.Kind.ICF, title=ICF_TITLE, created_at=trial.created_at
            )
            digest = hashlib.sha256(f"{trial.protocol} {ICF_TITLE} V1.0".encode()).hexdigest()
            trial.icf_version = self.table(DocumentVersion).add(
                document_id=document,
                number=1,
                version_label="V1.0",
                version_date=trial.created_at.date(),
                file=f"documents/{trial.id}/{digest[:2]}/{digest[:32]}.pdf",
                original_name=f"{trial.protocol}-知情同意书-V1.0.pdf",
                content_type="application/pdf",
                size=180_000 + trial.id % 90_000,
                sha256=digest,
                uploaded_by_id=trial.pi,
                uploaded_at=trial.created_at,
            )
        return trial.icf_version

    def site_windows(self, trial: TrialSim, site: SiteSim) -> list[list[dt.date]]:
        """The days a site may screen and enrol: the trial active, the site initiated, its approval valid."""
        if site.initiated is None:
            return []
        out = []
        for start, stop in trial.active:
            a, b = max(start, site.initiated, site.approved), min(stop, site.valid_until or stop)
            if a <= b:
                out.append([a, b])
        return out

    def subject_chain(self, days, day_set, last_open, exits_until) -> list[tuple[dt.date, str]]:
        rng = self.rng
        # Screening leans a little towards the first months (referrals waiting for the site to open).
        screened = days[min(len(days) - 1, int(len(days) * rng.random() ** 1.15))]
        chain = [(screened, EK.SCREENED)]
        enrolled = screened + dt.timedelta(days=rng.randint(3, 21))
        if rng.random() < 0.24:
            failed = screened + dt.timedelta(days=rng.randint(1, 14))
            chain.append((failed if failed in day_set else screened, EK.SCREEN_FAILED))
        elif enrolled in day_set:
            chain.append((enrolled, EK.ENROLLED))
            if rng.random() < 0.12:
                exit_day, exit_kind = enrolled + dt.timedelta(days=rng.randint(7, 300)), EK.WITHDRAWN
            else:
                exit_day, exit_kind = enrolled + dt.timedelta(days=rng.randint(90, 540)), EK.COMPLETED
            if exit_day <= exits_until:
                chain.append((exit_day, exit_kind))
        elif enrolled <= last_open or screened + dt.timedelta(days=21) < self.today:
            # The day the subject would have been enrolled fell outside the window: not enrolled after screening.
            chain.append((screened, EK.SCREEN_FAILED))
        return chain

    def enrol_site(self, site: SiteSim, windows, budget: int, aggregate: bool) -> None:
        """Exactly ``budget`` ledger entries for one site, its SiteEnrolment row equal to their sums."""
        rng = self.rng
        trial = site.trial
        days = []
        for a, b in windows:
            days.extend(a + dt.timedelta(days=k) for k in range((b - a).days + 1))
        day_set = set(days)
        last_open = windows[-1][1]
        exits_until = self.today - ONE_DAY
        if trial.ended_at:
            exits_until = min(exits_until, trial.ended_at.date())
        # About one entry in 150 is corrected; each correction is two entries (a reversal and its counterpart).
        corrections = min(budget // 10, int(budget / 150 + rng.random())) if budget >= 20 else 0
        main = budget - 2 * corrections
        events = []  # (date, order, kind, subject number)
        keys = set()
        subjects = 0
        while (len(keys) if aggregate else len(events)) < main:
            if aggregate and subjects > 10 * main:
                # Too few days open for that many daily counts: this site reports subject by subject after all.
                aggregate, events, keys, subjects = False, [], set(), 0
            subjects += 1
            chain = self.subject_chain(days, day_set, last_open, exits_until)
            if not aggregate:
                chain = chain[: main - len(events)]
            for day, kind in chain:
                events.append((day, ORDER[kind], kind, subjects))
                keys.add((day, ORDER[kind], kind))
        events.sort()
        if aggregate:
            grouped = defaultdict(int)
            for day, rank, kind, _subject in events:
                grouped[(day, rank, kind)] += 1
            # The earliest entries: every kept failure, enrolment or exit has its earlier events kept too.
            rows = [(day, kind, grouped[(day, rank, kind)], None) for day, rank, kind in sorted(grouped)[:main]]
        else:
            rows = [(day, kind, 1, subject) for day, _rank, kind, subject in events]
        reporters = (site.pi, site.inst.ro)
        last_reported = None
        subject_ids, previous_day, written, consented = {}, {}, [], {}
        for day, kind, count, subject in rows:
            reported = self.office(day + dt.timedelta(days=rng.choice((0, 0, 0, 1, 1, 2, 3))))
            if last_reported is not None and reported <= last_reported:
                reported = last_reported + dt.timedelta(seconds=rng.randint(30, 900))
            reported = min(reported, self.now - dt.timedelta(seconds=1))
            last_reported = reported
            subject_id = None
            if subject is not None:
                subject_id = subject_ids.get(subject)
                if subject_id is None:
                    subject_id = subject_ids[subject] = self.subjects.add(
                        trial_id=trial.id, site_id=site.id, code=f"{site.inst.code}-{subject:04d}", created_at=reported
                    )
                    # Consent is signed on the day of screening, on the trial's ICF, recorded with the screening.
                    consented[subject_id] = day
                    self.consents.add(
                        subject_id=subject_id,
                        icf_version_id=self.icf_version(trial),
                        consented_on=day,
                        recorded_by_id=site.pi,
                        recorded_at=reported,
                    )
            entry_id = self.entries.add(
                site_id=site.id,
                trial_id=trial.id,
                kind=kind,
                occurred_on=day,
                count=count,
                subject_id=subject_id,
                reported_by_id=rng.choice(reporters),
                reported_at=reported,
            )
            written.append([entry_id, day, kind, count, subject_id, reported, previous_day.get(subject)])
            if subject is not None:
                previous_day[subject] = day
        self.correct(site, written, corrections, day_set, exits_until, aggregate)
        counts = dict.fromkeys(EK.values, 0)
        live_enrolled = []
        for entry_id, day, kind, count, subject_id, _reported, _prev, *flags in written:
            counts[kind] += -count if "reversal" in flags else count
            if kind == EK.ENROLLED and not flags:
                live_enrolled.append((day, entry_id, count, subject_id))
        # The patients standing, in ledger order (what subsidies.evidence.patient_slots reads), for the claims.
        live_enrolled.sort()
        number_of = {subject_id: number for number, subject_id in subject_ids.items()}
        running = 0
        for day, _entry_id, count, subject_id in live_enrolled:
            running += count
            site.enrolled_days.append(day.toordinal())
            site.enrolled_running.append(running)
            site.enrolled_counts.append(count)
            site.enrolled_subjects.append(number_of.get(subject_id, 0))
            site.enrolled_consented.append(consented[subject_id].toordinal() if subject_id else 0)
        site.first_patient = live_enrolled[0][0] if live_enrolled else None
        self.site_counts.add(
            site_id=site.id,
            trial_id=trial.id,
            screened=counts[EK.SCREENED],
            enrolled=counts[EK.ENROLLED],
            screen_failed=counts[EK.SCREEN_FAILED],
            withdrawn=counts[EK.WITHDRAWN],
            completed=counts[EK.COMPLETED],
            last_enrolled_on=live_enrolled[-1][0] if live_enrolled else None,
            updated_at=max(row[5] for row in written),
        )

    def correct(self, site, written: list, corrections: int, day_set, exits_until, aggregate: bool) -> None:
        """Corrections as the ledger records them. An aggregate site reported a batch twice and reverses the
        duplicate; a site with subject codes reverses a subject's latest entry and reports it again on the day it
        really happened. ``written`` gets the new rows, flagged, and the reversed originals are flagged too."""
        if not corrections:
            return
        rng = self.rng
        trial = site.trial
        latest = {}
        for row in written:
            if row[4] is not None:
                latest[row[4]] = row
        if aggregate:
            pool = [row for row in written if row[2] in (EK.SCREENED, EK.ENROLLED)]
            chosen = [rng.choice(pool) for _k in range(corrections)]
        else:
            chosen = rng.sample(list(latest.values()), min(corrections, len(latest)))
        limit = self.now - dt.timedelta(seconds=1)
        for original in chosen:
            entry_id, day, kind, count, subject_id, reported, previous = original[:7]
            first_at = min(reported + dt.timedelta(minutes=rng.randint(2, 90)), limit)
            second_at = min(first_at + dt.timedelta(days=rng.randint(1, 6)), limit)
            common = {"site_id": site.id, "trial_id": trial.id, "kind": kind, "occurred_on": day, "count": count}
            if aggregate:
                duplicate = self.entries.add(
                    **common, note="重复录入", reported_by_id=site.inst.ro, reported_at=first_at
                )
                written.append([duplicate, day, kind, count, None, first_at, None, "reversed"])
                reversal = self.entries.add(
                    **common,
                    reverses_id=duplicate,
                    reason="同一批受试者重复录入，冲销重复条目",
                    reported_by_id=site.inst.ro,
                    reported_at=second_at,
                )
                written.append([reversal, day, kind, count, None, second_at, None, "reversal"])
                continue
            corrected = day - ONE_DAY
            open_needed = kind in (EK.SCREENED, EK.ENROLLED, EK.SCREEN_FAILED)
            if (previous is not None and corrected < previous) or (open_needed and corrected not in day_set):
                corrected = day
            reversal = self.entries.add(
                **common,
                subject_id=subject_id,
                reverses_id=entry_id,
                reason="受试者事件日期录入错误，冲销后按正确日期重新报告",
                reported_by_id=site.inst.ro,
                reported_at=first_at,
            )
            original.append("reversed")
            written.append([reversal, day, kind, count, subject_id, first_at, None, "reversal"])
            again = self.entries.add(
                **{**common, "occurred_on": corrected},
                subject_id=subject_id,
                note="更正日期",
                reported_by_id=site.inst.ro,
                reported_at=second_at,
            )
            written.append([again, corrected, kind, count, subject_id, second_at, None])
