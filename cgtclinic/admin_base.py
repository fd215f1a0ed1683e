"""The base every cgtclinic model admin uses: rows scoped by ``visible_to``, edits by ``editable_by``,
history visible but never revertible (a revert would bypass the services)."""

from django.contrib import admin
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from cgtclinic.errors import DomainError


class ScopedAdmin(SimpleHistoryAdmin):
    list_per_page = 50
    show_full_result_count = False  # a COUNT(*) over a large scoped list on every page view is wasted work

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if hasattr(queryset, "visible_to"):
            queryset = queryset.visible_to(request.user)
        return queryset

    def _editable(self, request, obj) -> bool:
        queryset = self.model._default_manager.all()
        if obj is None or not hasattr(queryset, "editable_by"):
            return True
        return queryset.editable_by(request.user).filter(pk=obj.pk).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._editable(request, obj)

    def _require_in_scope(self, request, object_id):
        if not self.get_queryset(request).filter(pk=object_id).exists():
            raise Http404

    def history_view(self, request, object_id, extra_context=None):
        self._require_in_scope(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._require_in_scope(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return True


class ServiceFormMixin:
    """Lets a ModelForm run a service's rule check in clean(), so a refusal shows on the form, not as a 500."""

    actor = None

    def run_check(self, check, **kwargs):
        try:
            check(actor=self.actor, **kwargs)
        except DomainError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc.message))


def with_actor(form_class, actor):
    """A subclass of the admin's form that knows who is editing."""
    return type(form_class.__name__, (form_class,), {"actor": actor})


admin.site.empty_value_display = "—"
