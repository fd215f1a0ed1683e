"""A region that grows by one hospital at a time, with something for every report: trials and sites with start-up
milestones, ledger entries, recognition requests, ethics submissions, subsidy claims and policy targets."""

import datetime
from decimal import Decimal

from cgtclinic.models import PolicyTarget
from cgtclinic.roles import Role
from ethics import rollups
from ethics.models import RecognitionRequest, Submission
from subsidies import services as subsidy_services
from tests.factories.cgtclinic import InstitutionFactory, PolicyTargetFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory, SubmissionFactory
from tests.factories.subsidies import completed_gene_trial, shanghai_program, startup_targets
from tests.factories.trials import FilingObligationFactory, TrialFactory, TrialSiteFactory, approve_site
from trials import enrolment
from trials.models import FilingObligation, Trial

D = datetime.date
SH = datetime.timezone(datetime.timedelta(hours=8))
# The day the world is built and read (tests travel to it).
TODAY = D(2026, 2, 10)
NOW = datetime.datetime(2026, 2, 10, 10, tzinfo=SH)


class RegionWorld:
    def __init__(self, region):
        self.region = region
        self.program = shanghai_program(region)
        startup_targets(region)
        PolicyTargetFactory(region=region, metric=PolicyTarget.Metric.NEW_TRIAL_APPROVALS, period_start=D(2024, 1, 1))
        PolicyTargetFactory(
            region=region,
            metric=PolicyTarget.Metric.NEW_CLINICAL_FILINGS,
            period_start=D(2025, 1, 1),
            deadline_year=2028,
        )
        self.alliance = AllianceFactory()
        self.hospitals = []

    def grow(self, hospitals: int) -> None:
        while len(self.hospitals) < hospitals:
            self._add_hospital()

    def _add_hospital(self) -> None:
        index = len(self.hospitals)
        hospital = InstitutionFactory(region=self.region)
        office = UserFactory(role=Role.RESEARCH_OFFICE, institution=hospital)
        committee = EthicsCommitteeFactory(institution=hospital)
        self.alliance.committees.add(committee, through_defaults={"joined_on": D(2025, 1, 1)})
        previous = self.hospitals[-1] if self.hospitals else None
        self.hospitals.append(hospital)

        # A completed gene-therapy trial with its ledger, claimed and under review.
        trial = completed_gene_trial(hospital, enrolled=2 + index, actor=office)
        site = trial.sites.get()
        site.submission_received_on = D(2024, 1, 5)
        site.contract_signed_on = D(2024, 2, 20)
        site.site_initiated_on = D(2024, 2, 25)
        site.first_patient_in_on = D(2024, 3, 11)
        site.save()
        enrolment.enrolment_report(site=site, actor=office, kind="screened", occurred_on=D(2024, 3, 5), count=4)
        enrolment.enrolment_report(site=site, actor=office, kind="completed", occurred_on=D(2025, 6, 1), count=1)
        claim = subsidy_services.claim_open(actor=office, program=self.program, year=2025)
        subsidy_services.claim_submit(claim=claim, actor=office)

        # An active trial led here with a site at the previous hospital, still starting up there.
        active = TrialFactory(
            lead_institution=hospital, status=Trial.Status.ACTIVE, nmpa_approved_on=D(2025, 3, 1 + index)
        )
        self._add_filings(active)
        if previous is not None:
            other = approve_site(
                TrialSiteFactory(trial=active, institution=previous, submission_received_on=D(2025, 9, 1)),
                D(2025, 10, 1),
            )
            received = NOW - datetime.timedelta(days=20)
            for status, due, hours in (
                (RecognitionRequest.Status.RECOGNISED, received + datetime.timedelta(days=3), Decimal("10.5")),
                (RecognitionRequest.Status.OPEN, NOW - datetime.timedelta(days=1), None),
            ):
                request = RecognitionRequest.objects.create(
                    alliance=self.alliance,
                    trial=active,
                    site=other,
                    committee=self.committee_of(previous),
                    subject=Submission.Kind.INITIAL,
                    status=status,
                    received_at=received,
                    remind_at=received,
                    due_at=due,
                    response_working_hours=hours,
                )
                # Made already answered, as recognition_respond would leave it: with its answer fact.
                rollups.refresh_recognition_fact(request.pk)

        # Ethics submissions: one decided, one in review.
        for status, review_type, decided in (
            (Submission.Status.DECIDED, Submission.ReviewType.FULL_BOARD, NOW - datetime.timedelta(days=3)),
            (Submission.Status.EXPEDITED_REVIEW, Submission.ReviewType.EXPEDITED, None),
        ):
            SubmissionFactory(
                trial=active,
                committee=committee,
                status=status,
                review_type=review_type,
                submitted_at=NOW - datetime.timedelta(days=30 + index),
                decided_at=decided,
            )

    @staticmethod
    def _add_filings(trial) -> None:
        """Filings due this year: filed on time, filed late, overdue, open; and a new-technology filing filed."""
        F = FilingObligation
        for status, due_in, late in (
            (F.Status.FILED, -30, False),
            (F.Status.FILED, -20, True),
            (F.Status.OPEN, -5, False),
            (F.Status.OPEN, 20, False),
        ):
            due = NOW + datetime.timedelta(days=due_in)
            FilingObligationFactory(
                trial=trial,
                basis_on=TODAY - datetime.timedelta(days=60),
                due_at=due,
                status=status,
                late=late,
                filed_on=(due + datetime.timedelta(days=3 if late else -3)).date()
                if status == F.Status.FILED
                else None,
            )
        FilingObligationFactory(
            trial=trial,
            kind=F.Kind.NEW_TECHNOLOGY,
            basis_on=D(2025, 6, 2),
            due_at=NOW - datetime.timedelta(days=40),
            status=F.Status.FILED,
            filed_on=D(2025, 6, 5),
        )

    @staticmethod
    def committee_of(hospital):
        return EthicsCommitteeFactory(institution=hospital)
