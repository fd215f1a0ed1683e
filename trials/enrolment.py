"""The enrolment ledger: sites report events, corrections reverse them, counts are derived.

Every write locks the site row first (then the subject row), so two reports for one site run one after the
other: counts are checked and updated against what the ledger holds at that moment and none is ever lost.
"""

import datetime
import re
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from cgtclinic.errors import Conflict, DomainError
from cgtclinic.models import Institution, PolicyParameter, User
from cgtclinic.roles import Role
from trials import consent, gates, qualifications, rollups
from trials.models import (
    Delegation,
    DocumentVersion,
    Duty,
    EnrolmentEntry,
    EnrolmentSubject,
    SiteEnrolment,
    SubjectState,
    Trial,
    TrialSite,
    TrialStatusChange,
)

K = EnrolmentEntry.Kind
S = Trial.Status
# The national rule that bounds an approval's validity when the committee's letter gave none in this system.
REVIEW_INTERVAL_CODE = "continuing_review_interval_months"
# Events that put a subject in front of the protocol need the trial open and a valid approval on that day.
NEEDS_OPEN_TRIAL = frozenset({K.SCREENED, K.ENROLLED, K.SCREEN_FAILED})
# Exits are reported for subjects already enrolled, also after enrolment closed or during a suspension.
EXIT_STATUSES = frozenset({S.ACTIVE, S.ENROLMENT_CLOSED, S.SUSPENDED, S.COMPLETED, S.TERMINATED})
COUNT_FIELDS = tuple(K.values)
# A plausibility bound, not a policy value: no single event of a CGT trial concerns more subjects than this, and
# anything larger is a typing error (or an attempt to overflow the database's integer).
MAX_SUBJECTS_PER_ENTRY = 10_000
# Subject codes are pseudonyms: resident ID-card numbers (15 or 18 characters) and mobile numbers are refused.
PERSONAL_IDENTIFIER = re.compile(r"^(\d{15}|\d{17}[\dXx]|1[3-9]\d{9})$")


def may_report(actor: User, site: TrialSite) -> bool:
    """The site's PI, the trial's PI at the lead site, or the research office of the site's hospital."""
    if actor.is_superuser:
        return True
    if not actor.is_active:
        return False
    if actor.role == Role.RESEARCH_OFFICE:
        return actor.institution_id == site.institution_id
    if actor.role == Role.PI:
        return (
            site.site_pi_id == actor.pk
            or (site.role == TrialSite.SiteRole.LEAD and site.trial.pi_id == actor.pk)
            or Delegation.objects.filter(site=site, person=actor, duty=Duty.REPORT).exists()
        )
    return False


def ethics_valid_until(site: TrialSite) -> datetime.date | None:
    """The last day the site's ethics approval (or recognition) covers; None when it has none, or when it has no
    validity of its own and the national interval is not configured."""
    if site.ethics_approved_on is None:
        return None
    if site.ethics_valid_until is not None:
        return site.ethics_valid_until
    try:
        months = PolicyParameter.value_for(REVIEW_INTERVAL_CODE, on=site.ethics_approved_on)
    except PolicyParameter.DoesNotExist:
        return None
    return site.ethics_approved_on + relativedelta(months=int(months))


def trial_status_on(trial: Trial, day: datetime.date) -> str:
    """The lifecycle status the trial had at the end of a day, from its status history."""
    end_of_day = timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time()))
    changes = TrialStatusChange.objects.filter(trial=trial)
    last = changes.filter(at__lt=end_of_day).order_by("-at", "-id").values_list("to_status", flat=True).first()
    if last is not None:
        return last
    first = changes.order_by("at", "id").values_list("from_status", flat=True).first()
    # A trial recorded without a lifecycle history (an import) has only its current status to go by.
    return first if first is not None else trial.status


def _check_date(site: TrialSite, kind: str, occurred_on: datetime.date) -> None:
    if occurred_on > timezone.localdate():
        raise DomainError(_("The date cannot be in the future."), field="occurred_on")
    approved_on = site.ethics_approved_on
    if approved_on is None:
        raise DomainError(
            _("%(site)s has no ethics approval or recognition for this trial, so no enrolment can be reported there.")
            % {"site": site.institution},
            code="no_ethics_approval",
        )
    if occurred_on < approved_on:
        raise DomainError(
            _("The site's ethics approval dates from %(approved)s; nothing can be reported before it.")
            % {"approved": approved_on.isoformat()},
            code="no_ethics_approval",
            field="occurred_on",
        )
    status = trial_status_on(site.trial, occurred_on)
    if kind in NEEDS_OPEN_TRIAL:
        valid_until = ethics_valid_until(site)
        if valid_until is None:
            raise DomainError(
                _(
                    "The site's ethics approval has no recorded validity and the national continuing-review interval "
                    "is not configured; please ask the system administrator."
                ),
                code="ethics_validity_unknown",
            )
        if occurred_on > valid_until:
            raise DomainError(
                _(
                    "The site's ethics approval was valid until %(until)s; subjects screened or enrolled after "
                    "that need a continuing-review approval first."
                )
                % {"until": valid_until.isoformat()},
                code="ethics_approval_expired",
                field="occurred_on",
            )
        if status != S.ACTIVE:
            raise DomainError(
                _("On %(day)s the trial was “%(status)s”, not open for enrolment.")
                % {"day": occurred_on.isoformat(), "status": S(status).label},
                code="trial_not_enrolling",
                field="occurred_on",
            )
    elif status not in EXIT_STATUSES:
        raise DomainError(
            _("On %(day)s the trial was “%(status)s”; withdrawals and completions are reported once it has started.")
            % {"day": occurred_on.isoformat(), "status": S(status).label},
            code="trial_not_enrolling",
            field="occurred_on",
        )


def _ledger_totals(entries) -> dict[str, int]:
    """Net counts per event kind (corrections subtract) from a queryset of entries, in one query."""
    signed = Case(When(reverses__isnull=False, then=-1), default=Value(1), output_field=IntegerField())
    sums = entries.aggregate(
        **{kind: Sum(Case(When(kind=kind, then="count"), default=Value(0)) * signed) for kind in COUNT_FIELDS}
    )
    return {kind: sums[kind] or 0 for kind in COUNT_FIELDS}


def _check_counts(counts: dict[str, int]) -> None:
    """The invariants a site's ledger keeps after every entry."""
    if any(value < 0 for value in counts.values()):
        raise DomainError(_("This would make a count negative."), code="count_negative")
    if counts[K.SCREEN_FAILED] > counts[K.SCREENED]:
        raise DomainError(
            _("Screen failures (%(failed)d) cannot exceed subjects screened (%(screened)d).")
            % {"failed": counts[K.SCREEN_FAILED], "screened": counts[K.SCREENED]},
            code="count_inconsistent",
        )
    if counts[K.WITHDRAWN] + counts[K.COMPLETED] > counts[K.ENROLLED]:
        raise DomainError(
            _("Withdrawn and completed subjects (%(out)d) cannot exceed subjects enrolled (%(enrolled)d).")
            % {"out": counts[K.WITHDRAWN] + counts[K.COMPLETED], "enrolled": counts[K.ENROLLED]},
            code="count_inconsistent",
        )


# What a subject's own entries must show before each event, as (kind, required net count) pairs.
_SUBJECT_PRECONDITIONS = {
    K.SCREENED: {K.SCREENED: 0, K.ENROLLED: 0},
    K.ENROLLED: {K.ENROLLED: 0, K.SCREEN_FAILED: 0},
    K.SCREEN_FAILED: {K.SCREENED: 1, K.ENROLLED: 0, K.SCREEN_FAILED: 0},
    K.WITHDRAWN: {K.ENROLLED: 1, K.WITHDRAWN: 0, K.COMPLETED: 0},
    K.COMPLETED: {K.ENROLLED: 1, K.WITHDRAWN: 0, K.COMPLETED: 0},
}


def _subject_refusal(subject: EnrolmentSubject, kind: str, state: dict[str, int]) -> str | None:
    for needed_kind, needed in _SUBJECT_PRECONDITIONS[kind].items():
        if state[needed_kind] != needed:
            break
    else:
        return None
    if kind == K.ENROLLED and state[K.ENROLLED]:
        return _("Subject %(code)s is already enrolled in this trial; a code is enrolled only once.")
    if kind == K.SCREEN_FAILED and not state[K.SCREENED]:
        return _("Subject %(code)s has not been reported as screened.")
    if kind in (K.WITHDRAWN, K.COMPLETED) and not state[K.ENROLLED]:
        return _("Subject %(code)s is not enrolled.")
    return _("Subject %(code)s cannot be reported as “%(event)s” after what is already recorded for them.")


def _lock_site(site: TrialSite) -> TrialSite:
    return TrialSite.objects.select_for_update(of=("self",)).select_related("trial", "institution").get(pk=site.pk)


def _standing(entries):
    """Entries that stand: neither a correction nor reversed."""
    return entries.filter(reverses__isnull=True, reversed_by__isnull=True)


def _apply(site: TrialSite, entry: EnrolmentEntry) -> None:
    """Write the entry and move the site's counts and rollups by its signed count; the caller holds the site lock.

    The counts checked are the site's running totals (``SiteEnrolment``), which hold the ledger's sums: every entry
    is written here, under the site's lock, together with them (``manage.py rebuild_rollups --check`` compares them
    with the ledger). Summing the whole ledger of a busy site on every report cost most of the write at national
    scale. A site's first entry creates its row; an entry before it (a ledger written without the services) is
    counted from the ledger."""
    cached = SiteEnrolment.objects.filter(site=site).first()
    if cached is None:
        cached = SiteEnrolment(
            site=site, trial_id=site.trial_id, **_ledger_totals(EnrolmentEntry.objects.filter(site=site))
        )
        cached.last_enrolled_on = _last_enrolled_on(site)
    counts = {kind: getattr(cached, kind) for kind in COUNT_FIELDS}
    counts[entry.kind] += entry.signed_count
    _check_counts(counts)
    entry.save()
    for kind in COUNT_FIELDS:
        setattr(cached, kind, counts[kind])
    if entry.kind == K.ENROLLED:
        if entry.reverses_id is None:
            cached.last_enrolled_on = max(filter(None, [cached.last_enrolled_on, entry.occurred_on]))
        elif entry.occurred_on == cached.last_enrolled_on:
            # The reversed enrolment may have been the latest: the latest of those still standing.
            cached.last_enrolled_on = _last_enrolled_on(site)
    cached.save()
    rollups.add_to_month(entry)
    rollups.update_site_counts(site.pk, site.trial_id, counts, cached.last_enrolled_on)


def _last_enrolled_on(site: TrialSite) -> datetime.date | None:
    # The site's enrolments found latest first by the (site, kind, day) index.
    return _standing(EnrolmentEntry.objects.filter(site=site, kind=K.ENROLLED)).aggregate(last=Max("occurred_on"))[
        "last"
    ]


def enrolment_report(
    *,
    site: TrialSite,
    actor: User,
    kind: str,
    occurred_on: datetime.date,
    count: int = 1,
    subject_code: str = "",
    note: str = "",
    icf_version: DocumentVersion | None = None,
    consented_on: datetime.date | None = None,
) -> EnrolmentEntry:
    """Add one event to the site's ledger: ``count`` subjects screened, enrolled, failing screening, withdrawn
    or completing on a day, optionally for one pseudonymous subject code (then ``count`` is 1).

    The reporter holds the "report" duty on the day; screening and enrolment also need the trial's and site's
    gates met and the site PI's GCP certificate valid that day. An enrolment naming a subject records the approved
    ICF version the subject signed and the consent date (required once the trial has an approved ICF)."""
    if kind not in K.values:
        raise DomainError(_("Choose an event."), field="kind")
    if not isinstance(count, int) or count < 1:
        raise DomainError(_("The number of subjects must be a whole number of at least 1."), field="count")
    if count > MAX_SUBJECTS_PER_ENTRY:
        raise DomainError(
            _("One entry counts at most %(max)s subjects; report larger numbers as several entries.")
            % {"max": MAX_SUBJECTS_PER_ENTRY},
            field="count",
        )
    subject_code = (subject_code or "").strip()
    if subject_code and count != 1:
        raise DomainError(_("An entry for one subject code counts exactly one subject."), field="count")
    if PERSONAL_IDENTIFIER.match(subject_code):
        raise DomainError(
            _("This looks like an ID-card or mobile phone number. Use the subject's pseudonymous code, e.g. RK-001."),
            code="subject_code_personal",
            field="subject_code",
        )
    with transaction.atomic():
        locked = _lock_site(site)
        if not may_report(actor, locked):
            raise DomainError(_("You may not report enrolment for this site."), code="permission_denied")
        _check_date(locked, kind, occurred_on)
        qualifications.check_may_report(actor, locked, occurred_on)
        if kind in NEEDS_OPEN_TRIAL:
            action = _("report screening or enrolment at this site")
            gates.check(locked.trial, sites=[locked], on=occurred_on, action=action)
            qualifications.check_site_pi_qualified(locked, occurred_on, action=action)
        subject = None
        if subject_code:
            subject = _subject_for(locked, subject_code)
            state, last_standing = _subject_ledger(subject)
            refusal = _subject_refusal(subject, kind, state)
            if refusal:
                raise DomainError(
                    refusal % {"code": subject.code, "event": K(kind).label},
                    code="subject_state",
                    field="subject_code",
                )
        if kind == K.ENROLLED and subject is not None:
            _record_consent(subject, actor, icf_version, consented_on, occurred_on)
        elif icf_version is not None or consented_on is not None:
            raise DomainError(
                _("An ICF version and consent date are recorded with the enrolment of a named subject."),
                field="icf_version",
            )
        entry = EnrolmentEntry(
            site=locked,
            trial_id=locked.trial_id,
            kind=kind,
            occurred_on=occurred_on,
            count=count,
            subject=subject,
            note=note.strip(),
            reported_by=actor,
            reported_at=timezone.now(),
        )
        _apply(locked, entry)
        if subject is not None:
            state[kind] += count
            _record_subject_state(subject, state, max(filter(None, [last_standing, occurred_on])))
    return entry


def _record_consent(subject, actor, icf_version, consented_on, on) -> None:
    if icf_version is None and consented_on is None:
        if consent.approved_icf_versions(subject.trial_id).exists():
            raise DomainError(
                _("Record the approved ICF version subject %(code)s signed and the consent date.")
                % {"code": subject.code},
                code="consent_required",
                field="icf_version",
            )
        return
    if consented_on is None:
        raise DomainError(_("Please give the consent date."), field="consented_on")
    consent.record_at_enrolment(subject=subject, actor=actor, icf_version=icf_version, consented_on=consented_on, on=on)


def _subject_for(site: TrialSite, code: str) -> EnrolmentSubject:
    """The trial's subject row for a code (created on first use), locked; it must belong to this site."""
    candidate = EnrolmentSubject(trial_id=site.trial_id, site=site, code=code)
    try:
        candidate.clean_fields(exclude=["trial", "site"])
    except ValidationError as exc:
        raise DomainError(" ".join(exc.message_dict.get("code", exc.messages)), field="subject_code") from exc
    EnrolmentSubject.objects.get_or_create(trial_id=site.trial_id, code=code, defaults={"site": site})
    # Lock only the subject row: locking its site too would wait on another site's report while holding ours.
    subject = (
        EnrolmentSubject.objects.select_for_update(of=("self",))
        .select_related("site__institution")
        .get(trial_id=site.trial_id, code=code)
    )
    if subject.site_id != site.pk:
        raise DomainError(
            _("Subject code %(code)s belongs to %(site)s in this trial.")
            % {"code": code, "site": subject.site.institution},
            code="subject_other_site",
            field="subject_code",
        )
    return subject


def enrolment_reverse(*, entry: EnrolmentEntry, actor: User, reason: str) -> EnrolmentEntry:
    """Cancel an entry with a new, reversing one. The original stays in the ledger; each is reversed once."""
    if not reason.strip():
        raise DomainError(_("Please give the reason for the correction."), field="reason")
    with transaction.atomic():
        locked_site = _lock_site(entry.site)
        if not may_report(actor, locked_site):
            raise DomainError(_("You may not report enrolment for this site."), code="permission_denied")
        original = EnrolmentEntry.objects.select_related("subject").get(pk=entry.pk)
        if original.reverses_id is not None:
            raise DomainError(_("A correction cannot itself be reversed; report the event again instead."))
        if EnrolmentEntry.objects.filter(reverses=original).exists():
            raise Conflict(_("This entry has already been reversed."), code="already_reversed")
        if original.subject_id:
            subject = EnrolmentSubject.objects.select_for_update().get(pk=original.subject_id)
            state, last_standing = _subject_ledger(subject, excluding=original.pk)
            blocking = {
                K.SCREENED: (K.ENROLLED, K.SCREEN_FAILED),
                K.ENROLLED: (K.WITHDRAWN, K.COMPLETED),
            }.get(original.kind, ())
            if any(state[kind] for kind in blocking):
                raise DomainError(
                    _("Reverse the later entries for subject %(code)s first.") % {"code": subject.code},
                    code="subject_state",
                )
        correction = EnrolmentEntry(
            site=locked_site,
            trial_id=locked_site.trial_id,
            kind=original.kind,
            occurred_on=original.occurred_on,
            count=original.count,
            subject_id=original.subject_id,
            reverses=original,
            reason=reason.strip(),
            reported_by=actor,
            reported_at=timezone.now(),
        )
        _apply(locked_site, correction)
        if original.subject_id:
            state[original.kind] -= original.count
            _record_subject_state(subject, state, last_standing)
    return correction


def rebuild_site_counts(site: TrialSite) -> SiteEnrolment:
    """Recompute a site's cached counts from its ledger (repairs a cache edited outside the services)."""
    with transaction.atomic():
        locked = _lock_site(site)
        counts = _ledger_totals(EnrolmentEntry.objects.filter(site=locked))
        last = _last_enrolled_on(locked)
        cached, _created = SiteEnrolment.objects.update_or_create(
            site=locked, defaults={"trial_id": locked.trial_id, "last_enrolled_on": last, **counts}
        )
        rollups.update_site_counts(locked.pk, locked.trial_id, counts, last)
    return cached


def enrolled_as_of(*, site_ids, on: datetime.date | None = None, reported_by: datetime.datetime | None = None) -> dict:
    """Net enrolled subjects per site from the ledger itself, optionally counting only events up to ``on``
    and entries reported up to ``reported_by`` (what a frozen claim saw). One query."""
    entries = EnrolmentEntry.objects.filter(site_id__in=list(site_ids), kind=K.ENROLLED)
    if on is not None:
        entries = entries.filter(occurred_on__lte=on)
    if reported_by is not None:
        entries = entries.filter(reported_at__lte=reported_by)
    signed = Case(When(reverses__isnull=False, then=-1), default=Value(1), output_field=IntegerField())
    rows = entries.values("site_id").annotate(total=Sum(signed * Case(When(kind=K.ENROLLED, then="count"))))
    return {row["site_id"]: row["total"] or 0 for row in rows}


# --- progress (targets against actuals) --------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteProgress:
    site: TrialSite
    target: int
    enrolled: int
    on_study: int
    last_enrolled_on: datetime.date | None
    over_target: bool
    stalled: bool
    screened: int = 0
    screen_failed: int = 0
    withdrawn: int = 0
    completed: int = 0

    @property
    def percent(self) -> int | None:
        return round(self.enrolled * 100 / self.target) if self.target else None


STALLED_AFTER_DAYS = 90


def stalled_cutoff(today: datetime.date | None = None) -> datetime.date:
    return (today or timezone.localdate()) - datetime.timedelta(days=STALLED_AFTER_DAYS)


def site_progress(site: TrialSite, today: datetime.date | None = None) -> SiteProgress:
    """A site's enrolment against its target. Stalled: an enrolling trial's initiated site below target with
    no enrolment (or no initiation-to-enrolment) for ``STALLED_AFTER_DAYS`` days."""
    counts = getattr(site, "enrolment", None) if _has_cached(site) else None
    enrolled = counts.enrolled if counts else 0
    on_study = counts.on_study if counts else 0
    last = counts.last_enrolled_on if counts else None
    cutoff = stalled_cutoff(today)
    started = site.site_initiated_on
    stalled = (
        site.trial.status == S.ACTIVE
        and started is not None
        and enrolled < site.site_target
        and started < cutoff
        and (last is None or last < cutoff)
    )
    return SiteProgress(
        site=site,
        target=site.site_target,
        enrolled=enrolled,
        on_study=on_study,
        last_enrolled_on=last,
        over_target=bool(site.site_target) and enrolled > site.site_target,
        stalled=stalled,
        **{
            kind: getattr(counts, kind) if counts else 0
            for kind in (K.SCREENED, K.SCREEN_FAILED, K.WITHDRAWN, K.COMPLETED)
        },
    )


def _has_cached(site: TrialSite) -> bool:
    try:
        site.enrolment  # noqa: B018 - touching the reverse one-to-one is how Django tells if it exists
    except SiteEnrolment.DoesNotExist:
        return False
    return True


def stalled_sites_q(today: datetime.date | None = None) -> Q:
    """The stalled rule of ``site_progress`` as a filter on TrialSite, for lists and admin filters."""
    cutoff = stalled_cutoff(today)
    # A site without a target is never below it (as in site_progress), even before its first report.
    return (
        Q(trial__status=S.ACTIVE, site_initiated_on__lt=cutoff, site_target__gt=0)
        & (Q(enrolment__isnull=True) | Q(enrolment__enrolled__lt=F("site_target")))
        & (Q(enrolment__last_enrolled_on__isnull=True) | Q(enrolment__last_enrolled_on__lt=cutoff))
    )


def sites_matching_q(text: str) -> Q:
    """Sites whose trial (protocol number, title) or institution (name) contains ``text``: looked up in the trial
    and institution tables first, so a big list of sites is filtered by key rather than joined and scanned."""
    trials = Trial.objects.filter(
        Q(protocol_number__icontains=text) | Q(title_zh__icontains=text) | Q(title_en__icontains=text)
    ).values("pk")
    institutions = Institution.objects.filter(
        Q(name_zh__icontains=text) | Q(name_en__icontains=text) | Q(short_name__icontains=text)
    ).values("pk")
    return Q(trial__in=trials) | Q(institution__in=institutions)


def over_target_sites_q() -> Q:
    return Q(site_target__gt=0, enrolment__enrolled__gt=F("site_target"))


# --- selectors for the pages and the API -------------------------------------------------------------------------


def sites_reportable_by(actor: User) -> QuerySet[TrialSite]:
    """``may_report`` as a queryset: the sites the actor may report enrolment for, among those they may see."""
    sites = TrialSite.objects.visible_to(actor)
    if not actor.is_authenticated or actor.is_superuser:
        return sites
    if actor.role == Role.RESEARCH_OFFICE:
        return sites.filter(institution_id=actor.institution_id)
    if actor.role == Role.PI:
        return sites.filter(
            Q(site_pi_id=actor.pk)
            | Q(role=TrialSite.SiteRole.LEAD, trial__pi_id=actor.pk)
            | Exists(Delegation.objects.filter(site_id=OuterRef("pk"), person_id=actor.pk, duty=Duty.REPORT))
        )
    return sites.none()


def with_progress(sites: QuerySet[TrialSite]) -> QuerySet[TrialSite]:
    """Sites with what ``site_progress`` reads, loaded in the same query (no query per row)."""
    return sites.select_related("trial", "institution__region", "enrolment")


@dataclass(frozen=True)
class TrialProgress:
    """A trial's enrolment against the targets of the sites counted (those the viewer may see)."""

    trial: Trial
    sites: int
    target: int
    screened: int
    enrolled: int
    on_study: int
    last_enrolled_on: datetime.date | None
    over_target_sites: int
    stalled_sites: int

    @property
    def percent(self) -> int | None:
        return round(self.enrolled * 100 / self.target) if self.target else None

    @property
    def over_target(self) -> bool:
        return bool(self.target) and self.enrolled > self.target


def trial_progress(sites: QuerySet[TrialSite], today: datetime.date | None = None) -> list[TrialProgress]:
    """Per-trial totals summed over a (scoped) queryset of sites, ordered by protocol number. Two queries."""
    counts = {
        kind: Coalesce(Sum(f"enrolment__{kind}"), 0) for kind in (K.SCREENED, K.ENROLLED, K.WITHDRAWN, K.COMPLETED)
    }
    rows = list(
        sites.order_by()
        .values("trial_id")
        .annotate(
            n_sites=Count("pk"),
            target=Coalesce(Sum("site_target"), 0),
            last=Max("enrolment__last_enrolled_on"),
            over=Count("pk", filter=over_target_sites_q()),
            stalled=Count("pk", filter=stalled_sites_q(today)),
            **counts,
        )
    )
    trials = Trial.objects.select_related("lead_institution").in_bulk([row["trial_id"] for row in rows])
    progress = [
        TrialProgress(
            trial=trials[row["trial_id"]],
            sites=row["n_sites"],
            target=row["target"],
            screened=row[K.SCREENED],
            enrolled=row[K.ENROLLED],
            on_study=row[K.ENROLLED] - row[K.WITHDRAWN] - row[K.COMPLETED],
            last_enrolled_on=row["last"],
            over_target_sites=row["over"],
            stalled_sites=row["stalled"],
        )
        for row in rows
    ]
    return sorted(progress, key=lambda row: (row.trial.protocol_number, row.trial.pk))


def state_from_counts(net: dict[str, int]) -> SubjectState:
    """The latest stage a subject's net counts per event reach: completed, withdrawn, on study, screen failure,
    screened, else none (every entry reversed). ``trials.rollups`` recomputes it in SQL in the same order."""
    for kind, state in rollups.SUBJECT_PRECEDENCE:
        if net[kind] > 0:
            return SubjectState(state)
    return SubjectState.NONE


def subject_state(subject: EnrolmentSubject) -> SubjectState:
    """The subject's current state, as the enrolment services keep it on the row."""
    return SubjectState(subject.state)


def _subject_ledger(
    subject: EnrolmentSubject, *, excluding: int | None = None
) -> tuple[dict[str, int], datetime.date | None]:
    """The subject's net counts per event and the day of its latest standing entry other than ``excluding`` (an
    entry about to be reversed), from its own ledger entries in one query."""
    entries = subject.entries.all()
    standing = Q(reverses__isnull=True, reversed_by__isnull=True)
    if excluding is not None:
        standing &= ~Q(pk=excluding)
    signed = Case(When(reverses__isnull=False, then=-1), default=Value(1), output_field=IntegerField())
    sums = entries.aggregate(
        last=Max("occurred_on", filter=standing),
        **{kind: Sum(Case(When(kind=kind, then="count"), default=Value(0)) * signed) for kind in COUNT_FIELDS},
    )
    return {kind: sums[kind] or 0 for kind in COUNT_FIELDS}, sums["last"]


def _record_subject_state(subject: EnrolmentSubject, net: dict[str, int], last: datetime.date | None) -> None:
    """Keep the subject's state and latest standing day on its row (the caller holds the row's lock)."""
    subject.state, subject.last_event_on = state_from_counts(net), last
    subject.save(update_fields=["state", "last_event_on"])
