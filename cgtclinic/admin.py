from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from knox.models import AuthToken as KnoxAuthToken
from rest_framework.authtoken.models import TokenProxy

from cgtclinic import inbox, services, workdays
from cgtclinic.admin_base import CappedCountAdmin, ScopedAdmin, ServiceFormMixin, with_actor
from cgtclinic.models import (
    ApiToken,
    CalendarDay,
    Department,
    HolidaySchedule,
    Institution,
    Notification,
    NotificationWebhook,
    PolicyParameter,
    PolicyTarget,
    Region,
    ReportRequest,
    Sponsor,
    User,
)
from cgtclinic.roles import INSTITUTION_ROLES, Role, report_readers_q


@admin.register(Region)
class RegionAdmin(ScopedAdmin):
    list_display = ["code", "name_zh", "name_en"]
    search_fields = ["code", "name_zh", "name_en"]


class DepartmentInline(admin.TabularInline):
    model = Department
    fields = ["name_zh", "name_en"]
    extra = 0
    show_change_link = True


@admin.register(Institution)
class InstitutionAdmin(ScopedAdmin):
    list_display = ["name_zh", "name_en", "short_name", "region", "grade", "is_active"]
    list_filter = ["region", "grade", "is_active"]
    search_fields = ["name_zh", "name_en", "short_name", "credit_code"]
    list_select_related = ["region"]
    autocomplete_fields = ["region"]
    inlines = [DepartmentInline]

    def get_readonly_fields(self, request, obj=None):
        # A hospital's research office keeps its own record current but cannot move it to another region.
        return [] if request.user.is_superuser else ["region", "credit_code"]


@admin.register(Department)
class DepartmentAdmin(ScopedAdmin):
    list_display = ["name_zh", "name_en", "institution"]
    list_filter = ["institution__region"]
    search_fields = ["name_zh", "name_en", "institution__name_zh"]
    list_select_related = ["institution"]
    autocomplete_fields = ["institution"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "institution":
            kwargs["queryset"] = Institution.objects.editable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Sponsor)
class SponsorAdmin(ScopedAdmin):
    list_display = ["name_zh", "name_en", "kind", "region", "is_cgt_enterprise", "credit_code"]
    list_filter = ["region", "kind", "is_cgt_enterprise"]
    search_fields = ["name_zh", "name_en", "credit_code"]
    list_select_related = ["region"]
    autocomplete_fields = ["region"]


class PersonChangeForm(ServiceFormMixin, UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        self.run_check(services.check_person_fields, person=self.instance, data=cleaned)
        return cleaned


class PersonCreationForm(ServiceFormMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ["username", "full_name", "role", "institution", "department", "region", "email", "phone"]

    def clean(self):
        cleaned = super().clean()
        self.run_check(services.check_person_fields, person=None, data=cleaned)
        return cleaned


@admin.register(User)
class PersonAdmin(ScopedAdmin, DjangoUserAdmin):
    form = PersonChangeForm
    add_form = PersonCreationForm
    list_display = ["username", "full_name", "role", "institution", "department", "region", "is_active"]
    list_filter = ["role", "is_active", "institution__region"]
    search_fields = [
        "username",
        "full_name",
        "email",
        "institution__name_zh",
        "institution__name_en",
        "institution__short_name",
        "region__code",
        "region__name_zh",
        "region__name_en",
    ]
    list_select_related = ["institution", "department__institution", "region"]
    autocomplete_fields = ["institution", "department", "region"]
    ordering = ["username"]
    filter_horizontal = []
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("Person"), {"fields": ["full_name", "professional_title", "email", "phone", "language"]}),
        (_("Role"), {"fields": ["role", "institution", "department", "region"]}),
        (_("Access"), {"fields": ["is_active", "is_superuser", "last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["username", "usable_password", "password1", "password2"]}),
        (_("Person"), {"fields": ["full_name", "email", "phone"]}),
        (_("Role"), {"fields": ["role", "institution", "department", "region"]}),
    ]
    readonly_fields = ["last_login", "date_joined"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        # Research offices never see the switch that makes a system administrator.
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != "is_superuser"]}) for name, opts in fieldsets
        ]

    def get_form(self, request, obj=None, **kwargs):
        return with_actor(super().get_form(request, obj, **kwargs), request.user)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and not request.user.is_superuser:
            kwargs["choices"] = [(r.value, r.label) for r in Role if r in INSTITUTION_ROLES]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "institution" and not request.user.is_superuser:
            kwargs["queryset"] = Institution.objects.filter(pk=request.user.institution_id)
        if db_field.name == "department" and not request.user.is_superuser:
            kwargs["queryset"] = Department.objects.filter(institution_id=request.user.institution_id)
        if db_field.name == "region" and not request.user.is_superuser:
            kwargs["queryset"] = Region.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(PolicyParameter)
class PolicyParameterAdmin(ScopedAdmin):
    list_display = ["code", "name_zh", "region", "value", "unit", "effective_from", "effective_to", "source_clause"]
    list_filter = ["region", "unit", "source_document"]
    search_fields = ["code", "name_zh", "name_en", "source_clause", "source_quote"]
    list_select_related = ["region"]
    autocomplete_fields = ["region"]


@admin.register(PolicyTarget)
class PolicyTargetAdmin(ScopedAdmin):
    list_display = ["region", "metric", "target_value", "period_start", "deadline_year", "source_clause"]
    list_filter = ["region", "metric"]
    search_fields = ["source_clause", "source_quote"]
    list_select_related = ["region"]
    autocomplete_fields = ["region"]


@admin.register(NotificationWebhook)
class NotificationWebhookAdmin(ScopedAdmin):
    list_display = ["name", "institution", "kind", "topics", "is_active"]
    list_filter = ["kind", "is_active", "institution__region"]
    search_fields = ["name", "topics", "institution__name_zh"]
    list_select_related = ["institution"]
    autocomplete_fields = ["institution"]
    fields = ["institution", "name", "kind", "url", "secret", "topics", "is_active"]

    def get_form(self, request, obj=None, **kwargs):
        # The secret is kept when the form is saved unchanged, but never shown on screen.
        kwargs["widgets"] = {"secret": forms.PasswordInput(render_value=True)}
        return super().get_form(request, obj, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "institution":
            kwargs["queryset"] = Institution.objects.editable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # only https addresses are accepted anyway
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class CalendarDayInline(admin.TabularInline):
    model = CalendarDay
    fields = ["date", "kind", "name"]
    ordering = ["date"]
    extra = 3


class HolidayScheduleForm(forms.ModelForm):
    class Meta:
        model = HolidaySchedule
        fields = ["year", "notice", "published_on"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Whatever the office enters or corrects cites the State Council notice it comes from.
        for name in ("notice", "published_on"):
            if name in self.fields:  # absent when the user may only view
                self.fields[name].required = True


@admin.register(HolidaySchedule)
class HolidayScheduleAdmin(ScopedAdmin):
    form = HolidayScheduleForm
    list_display = ["year", "source", "notice", "published_on", "holiday_count", "workday_count", "entered_by"]
    list_filter = ["source"]
    search_fields = ["=year", "notice"]
    list_select_related = ["entered_by"]
    fields = ["year", "notice", "published_on", "source", "entered_by"]
    readonly_fields = ["source", "entered_by"]
    inlines = [CalendarDayInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                holidays=Count("days", filter=Q(days__kind=CalendarDay.Kind.HOLIDAY)),
                workdays=Count("days", filter=Q(days__kind=CalendarDay.Kind.WORKDAY)),
            )
        )

    @admin.display(description=_("holidays"), ordering="holidays")
    def holiday_count(self, obj):
        return obj.holidays

    @admin.display(description=_("make-up working days"), ordering="workdays")
    def workday_count(self, obj):
        return obj.workdays

    def changelist_view(self, request, extra_context=None):
        missing = workdays.years_needing_schedule()
        if missing:
            messages.warning(
                request,
                _(
                    "No holiday schedule for %(years)s: deadlines reaching into these years are provisional "
                    "(weekends and statutory holidays only). Enter the State Council's schedule as soon as it is "
                    "published; the deadlines are then recomputed."
                )
                % {"years": ", ".join(map(str, missing))},
            )
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        if not change or form.has_changed():
            obj.source = HolidaySchedule.Source.OFFICE
            obj.entered_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change or form.has_changed() or any(formset.has_changed() for formset in formsets):
            workdays.schedule_entered(schedule=form.instance, actor=request.user)

    def delete_model(self, request, obj):
        year = obj.year
        super().delete_model(request, obj)
        workdays.schedules_changed(years=[year])

    def delete_queryset(self, request, queryset):
        years = list(queryset.values_list("year", flat=True))
        super().delete_queryset(request, queryset)
        workdays.schedules_changed(years=years)


@admin.register(CalendarDay)
class CalendarDayAdmin(ScopedAdmin):
    """Every recorded day in one list, with its history; days are added and changed on their year's schedule."""

    list_display = ["date", "weekday", "kind", "name", "schedule"]
    list_filter = ["kind", "schedule__year", "name"]
    search_fields = ["name", "=schedule__year"]
    list_select_related = ["schedule"]
    date_hierarchy = "date"

    @admin.display(description=_("weekday"))
    def weekday(self, obj):
        return date_format(obj.date, "l")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        year = obj.schedule.year
        super().delete_model(request, obj)
        workdays.schedules_changed(years=[year])

    def delete_queryset(self, request, queryset):
        years = list(queryset.values_list("schedule__year", flat=True).distinct())
        super().delete_queryset(request, queryset)
        workdays.schedules_changed(years=years)


# --- API tokens and the report request log -------------------------------------------------------------------------

# DRF's plaintext tokens and knox's own model are replaced by cgtclinic.ApiToken (hashed): neither is edited here.
for unused in (TokenProxy, KnoxAuthToken):
    if admin.site.is_registered(unused):
        admin.site.unregister(unused)


def person_label(person: User) -> str:
    """Username, name, role and institution or region: enough to tell two regulators of different regions apart."""
    place = person.institution or person.region
    return " · ".join(
        str(part) for part in (person.username, person.full_name, person.get_role_display(), place) if part
    )


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return person_label(obj)


def _without_valid_token():
    return ~Exists(ApiToken.objects.valid().filter(user=OuterRef("pk")))


class TokenHolderAutocomplete(AutocompleteJsonView):
    """The people a report token may go to, searched by username, name, institution or region, fully labelled."""

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .filter(report_readers_q())
            .filter(_without_valid_token())
            .select_related("institution", "region")
            .order_by("region__code", "username")
        )

    def serialize_result(self, obj, to_field_name):
        return {"id": str(getattr(obj, to_field_name)), "text": person_label(obj)}


class TokenHolderSelect(AutocompleteSelect):
    def get_url(self):
        return reverse("admin:cgtclinic_apitoken_holders", current_app=self.admin_site.name)


class TokenIssueForm(ServiceFormMixin, forms.ModelForm):
    valid_days = forms.IntegerField(
        label=_("valid for (days)"),
        min_value=1,
        max_value=services.MAX_TOKEN_DAYS,
        initial=365,
        help_text=_("The token stops working after this many days; issue a new one before then."),
    )

    class Meta:
        model = ApiToken
        fields = ["user", "label"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("user") is not None:
            self.run_check(services.check_api_token, user=cleaned["user"])
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(CappedCountAdmin, admin.ModelAdmin):
    """API tokens: a system administrator issues them (regulators read the reports with theirs) and revokes one by
    deleting it. Only a digest is stored: the full key is shown once, when it is issued."""

    form = TokenIssueForm
    list_display = ["token_hint", "user", "role", "region", "institution", "label", "created", "expiry", "last_used_at"]
    list_filter = ["user__role", "user__region", "created", "expiry"]
    list_select_related = ["user__region", "user__institution"]
    search_fields = ["token_key", "user__username", "user__full_name", "user__region__name_zh", "label"]
    autocomplete_fields = ["user"]
    readonly_fields = ["token_hint", "created", "created_by", "expiry", "last_used_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "label", "valid_days"]
        return ["token_hint", "user", "label", "created", "created_by", "expiry", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        # A key belongs to one person and cannot be read back; to change anything, revoke it and issue a new one.
        return [*self.readonly_fields, "user", "label"] if obj else []

    def has_change_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, **kwargs):
        return with_actor(super().get_form(request, obj, **kwargs), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # Active people without a valid token; anyone else posted is refused by the service with the reason.
            kwargs["queryset"] = (
                User.objects.filter(is_active=True)
                .filter(_without_valid_token())
                .select_related("institution", "region")
            )
            kwargs["form_class"] = PersonChoiceField
            kwargs["widget"] = TokenHolderSelect(db_field, self.admin_site)
            kwargs["help_text"] = _(
                "Report tokens are for regulators and system administrators. Search by username, name, institution "
                "or region; each person is shown with their role and their institution or region."
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_urls(self):
        own = [
            path(
                "holders/",
                self.admin_site.admin_view(self.holders_view),
                name="cgtclinic_apitoken_holders",
            )
        ]
        return own + super().get_urls()

    def holders_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return TokenHolderAutocomplete.as_view(admin_site=self.admin_site)(request)

    def save_model(self, request, obj, form, change):
        token, key = services.api_token_issue(
            actor=request.user,
            user=form.cleaned_data["user"],
            valid_days=form.cleaned_data["valid_days"],
            label=form.cleaned_data.get("label", ""),
        )
        obj.pk, obj.digest, obj.token_key, obj.created, obj.expiry = (
            token.pk,
            token.digest,
            token.token_key,
            token.created,
            token.expiry,
        )
        obj._state.adding = False
        self._issued_key = key

    @admin.display(description=_("key"))
    def token_hint(self, obj):
        return f"{obj.token_key}…"

    @admin.display(description=_("role"), ordering="user__role")
    def role(self, obj):
        return obj.user.get_role_display()

    @admin.display(description=_("region"), ordering="user__region__code")
    def region(self, obj):
        return obj.user.region

    @admin.display(description=_("institution"))
    def institution(self, obj):
        return obj.user.institution

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            _(
                "A token was issued for %(user)s, valid until %(expiry)s. Its key is %(key)s: copy it now and hand it "
                "over securely; only a digest is stored, so it cannot be shown again. Deleting the token revokes it at "
                "once."
            )
            % {
                "user": obj.user,
                "expiry": date_format(timezone.localtime(obj.expiry), "DATE_FORMAT"),
                "key": self._issued_key,
            },
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:cgtclinic_apitoken_changelist"))


@admin.register(ReportRequest)
class ReportRequestAdmin(CappedCountAdmin, admin.ModelAdmin):
    """Every report request by a signed-in user, read-only: who asked for what, how it went, how long it took."""

    list_display = ["requested_at", "user", "report", "format", "status_code", "duration_ms", "rows", "filters"]
    list_filter = ["report", "format", "status_code", "user__role", "user__region"]
    search_fields = ["user__username", "user__full_name", "report"]
    list_select_related = ["user"]
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class UnreadFilter(admin.SimpleListFilter):
    title = _("read")
    parameter_name = "unread"

    def lookups(self, request, model_admin):
        return [("1", _("Unread")), ("0", _("Read"))]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(read_at__isnull=True)
        if self.value() == "0":
            return queryset.filter(read_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(CappedCountAdmin, admin.ModelAdmin):
    """Each person's inbox, read-only: their own notifications only; opening one marks it read."""

    list_display = ["subject_link", "topic", "created_at", "read_at"]
    list_display_links = None
    list_filter = [UnreadFilter, "topic"]
    search_fields = ["subject", "body"]
    fields = ["subject", "body", "link", "topic", "created_at", "read_at"]
    readonly_fields = fields
    actions = ["mark_read"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    # Everyone who works in the admin has an inbox; nobody adds, edits or deletes messages.
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        # Django hides actions without a change permission; marking one's own messages read needs none.
        return {"mark_read": self.get_action("mark_read")} if self.has_module_permission(request) else {}

    @admin.display(description=_("subject"), ordering="subject")
    def subject_link(self, obj):
        url = reverse("admin:cgtclinic_notification_open", args=[obj.pk])
        if obj.read_at is None:
            return format_html('<a href="{}"><strong>● {}</strong></a>', url, obj.subject)
        return format_html('<a href="{}">{}</a>', url, obj.subject)

    @admin.action(description=_("Mark the selected messages as read"))
    def mark_read(self, request, queryset):
        marked = queryset.filter(read_at__isnull=True).update(read_at=timezone.now())
        self.message_user(request, _("%(count)s messages marked as read.") % {"count": marked}, messages.SUCCESS)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/open/", view(self.open_view), name="cgtclinic_notification_open"),
            path("<int:pk>/read/", view(require_POST(self.read_view)), name="cgtclinic_notification_read"),
            path("read-all/", view(require_POST(self.read_all_view)), name="cgtclinic_notification_read_all"),
            *super().get_urls(),
        ]

    def _own(self, request, pk):
        if not self.has_module_permission(request):
            raise PermissionDenied
        return get_object_or_404(self.get_queryset(request), pk=pk)

    def _back(self, request):
        target = request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            return HttpResponseRedirect(target)
        return HttpResponseRedirect(reverse("admin:cgtclinic_notification_changelist"))

    def open_view(self, request, pk):
        """Mark the message read and go where it points (its own page when it points nowhere)."""
        notification = inbox.mark_read(notification=self._own(request, pk), actor=request.user)
        link = inbox.safe_link(notification)
        return HttpResponseRedirect(link or reverse("admin:cgtclinic_notification_change", args=[pk]))

    def read_view(self, request, pk):
        inbox.mark_read(notification=self._own(request, pk), actor=request.user)
        return self._back(request)

    def read_all_view(self, request):
        if not self.has_module_permission(request):
            raise PermissionDenied
        marked = inbox.mark_all_read(actor=request.user)
        self.message_user(request, _("%(count)s messages marked as read.") % {"count": marked}, messages.SUCCESS)
        return self._back(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        notification = self.get_queryset(request).filter(pk=object_id).first() if object_id.isdigit() else None
        if notification is not None and response.status_code == 200:
            inbox.mark_read(notification=notification, actor=request.user)
        return response
