"""The base every cgtclinic model admin uses: rows scoped by ``visible_to``, edits by ``editable_by``,
history visible but never revertible (a revert would bypass the services)."""

from functools import reduce
from operator import or_

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.db.models import F, Func, IntegerField, Q, QuerySet, Subquery
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from cgtclinic.errors import DomainError
from cgtclinic.paging import CappedPaginator


class CappedCountAdmin:
    """Lists that never count a whole table: the paginator stops counting at its cap and the "N total" link
    (a second, unfiltered COUNT(*)) is off. Every model admin of cgtclinic starts from this."""

    paginator = CappedPaginator
    list_per_page = 50
    show_full_result_count = False
    # Facets count every choice of every filter over the filtered list: a cost that grows with the history.
    show_facets = admin.ShowFacets.NEVER


class KeyedSearchAdmin:
    """Search for admins of big tables: ``keyed_search`` maps a foreign key of the big table to fields of the (much
    smaller) table it points at, ``icontains`` unless a field names its lookup (``code__exact``,
    ``institution__name_zh``). The term is looked up in those tables first and the keys found are passed as
    literal lists, so PostgreSQL ORs the big table's own foreign-key indexes (a BitmapOr) instead of joining every
    row to test a LIKE; a key two tables away (``submission__trial``) is carried through the middle table's keys
    the same way. A path through a one-to-many relation (``lines__trial``) becomes a semi-join on the rows
    under it (``pk IN (SELECT claim_id …)``), so a row with two matching children is listed once, without DISTINCT.
    ``exact_search`` names the big table's own indexed fields matched exactly; ``term_search(term)`` may add a
    match of the admin's own (a reference parsed into its key). ``search_fields`` only shows the search box."""

    keyed_search: dict[str, tuple[str, ...]] = {}
    exact_search: tuple[str, ...] = ()
    # Past this many keys a lookup stays a subquery: still right, no longer a short literal list.
    keyed_search_limit = 2000

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = [Q(**{field: term}) for field in self.exact_search]
        own = self.term_search(term)
        if own is not None:
            matches.append(own)
        for path, fields in self.keyed_search.items():
            related = get_fields_from_path(self.model, path)[-1].related_model
            lookups = [Q(**{field if "__" in field else f"{field}__icontains": term}) for field in fields]
            found = related._default_manager.filter(reduce(or_, lookups)).order_by().values_list("pk", flat=True)
            keys = self._key_list(found)
            if keys:
                matches.append(self._keys_match(path, keys))
        if not matches:
            return queryset.none(), False
        return queryset.filter(reduce(or_, matches)), False

    def term_search(self, term: str) -> Q | None:
        """A match the admin derives from the term itself (none by default)."""
        return None

    def _key_list(self, found):
        keys = list(found[: self.keyed_search_limit + 1])
        return found if len(keys) > self.keyed_search_limit else keys

    def _keys_match(self, path: str, keys) -> Q:
        first, _, rest = path.partition("__")
        if not rest:
            return Q(**{f"{path}__in": keys})
        relation = self.model._meta.get_field(first)
        children = relation.related_model._default_manager.filter(**{f"{rest}__in": keys}).order_by()
        if relation.one_to_many:
            return Q(pk__in=children.values(relation.field.attname))
        # A key two tables away (``submission__trial``): the middle table's keys are looked up too, so the big
        # table's own foreign-key index answers instead of a join walked in the list's order.
        return Q(**{f"{first}__in": self._key_list(children.values_list("pk", flat=True))})


class ScopedAdmin(CappedCountAdmin, SimpleHistoryAdmin):
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


def correlated_count(related: QuerySet) -> Subquery:
    """``COUNT(*)`` of ``related`` (filtered on an ``OuterRef``) as a per-row subquery: a list page counts the
    related rows of its own rows, where ``annotate(Count(...))`` groups the whole table before the page is cut."""
    counted = related.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Subquery(counted, output_field=IntegerField())


def correlated_max(related: QuerySet, field: str) -> Subquery:
    """``MAX(field)`` of ``related`` (filtered on an ``OuterRef``) as a per-row subquery, like ``correlated_count``."""
    return Subquery(related.order_by().annotate(m=Func(F(field), function="MAX")).values("m"))


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
