"""Choosing a sponsor or a hospital by typing: a text box whose suggestions come from the server as the PI types.

A national directory holds thousands of sponsors and two thousand hospitals; a drop-down of all of them made the
"new project" page send every name on each view. The box takes a name (Chinese or English) or a unified social
credit code, or a suggestion, which adds the code in brackets so that two namesakes stay apart. It works without
JavaScript too: a whole name or code is resolved on the server, and anything that does not name exactly one
choice is refused with what to type instead.
"""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _

from cgtclinic.models import Institution, Sponsor

# How many suggestions one keystroke brings back: enough to find a namesake, few enough to read.
SUGGESTIONS = 20
# The key in brackets after a suggestion's name: a credit code, or the record's number when it has none.
KEY_IN_BRACKETS = re.compile(r"^(?P<name>.*?)\s*[（(](?P<key>[^（()）]+)[)）]\s*$")
# A record number fits a bigint: more digits than 18 could not name a record and would overflow the query.
NUMBER_KEY = re.compile(r"^(?:No\.|编号)\s*(?P<pk>[0-9]{1,18})$", re.IGNORECASE)


def _typed(text: str) -> str:
    """The text as searched: spaces collapsed; empty when it holds a NUL, which PostgreSQL cannot compare."""
    return "" if "\x00" in text else " ".join(text.split())


def directory_queryset(directory: str, user):
    """The records of a directory the user may choose from (the lookup view's and the fields' one scope)."""
    if directory == "sponsors":
        return Sponsor.objects.visible_to(user)
    if directory == "institutions":
        return Institution.objects.visible_to(user).filter(is_active=True)
    raise Http404


def choice_label(obj) -> str:
    """What a suggestion shows and the box holds once chosen: the name in the interface's language and its key."""
    key = obj.credit_code or _("No. %(number)s") % {"number": obj.pk}
    return f"{obj.name}（{key}）"


def matching(queryset, text: str):
    """The records a typed text names: by its key in brackets, else by whole credit code or whole name."""
    text = _typed(text)
    if not text:
        return queryset.none()
    bracketed = KEY_IN_BRACKETS.match(text)
    if bracketed:
        key = bracketed["key"].strip()
        number = NUMBER_KEY.match(key)
        return queryset.filter(pk=number["pk"]) if number else queryset.filter(credit_code__iexact=key)
    return queryset.filter(Q(credit_code__iexact=text) | Q(name_zh=text) | Q(name_en__iexact=text))


def suggestions(queryset, text: str) -> tuple[list[str], bool]:
    """Up to SUGGESTIONS labels whose name or credit code contains the text, and whether there are more."""
    text = _typed(text)
    if not text:
        return [], False
    bracketed = KEY_IN_BRACKETS.match(text)
    if bracketed:  # a chosen suggestion typed on: search by its name
        text = bracketed["name"].strip() or text
    rows = list(
        queryset.filter(
            Q(name_zh__icontains=text) | Q(name_en__icontains=text) | Q(credit_code__istartswith=text)
        ).order_by("name_zh", "pk")[: SUGGESTIONS + 1]
    )
    return [choice_label(obj) for obj in rows[:SUGGESTIONS]], len(rows) > SUGGESTIONS


class DirectoryLookupInput(forms.TextInput):
    """A text box with a list of suggestions filled from the lookup URL (ethics/portal-lookup.js)."""

    template_name = "ethics/portal/widgets/lookup.html"

    def __init__(self, directory: str, attrs=None):
        self.directory = directory
        super().__init__({"autocomplete": "off", "class": "lookup", **(attrs or {})})

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        widget_attrs["data-lookup-url"] = str(reverse_lazy("ethics_portal:lookup", args=[self.directory]))
        widget_attrs["list"] = f"{widget_attrs.get('id') or name}_suggestions"
        return context


class DirectoryChoiceField(forms.ModelChoiceField):
    """A ModelChoiceField chosen by typing (DirectoryLookupInput) instead of from a drop-down of every record."""

    default_error_messages = {
        "invalid_choice": _(
            "No choice matches “%(value)s”. Type part of the name or the unified social credit code and pick one "
            "of the suggestions."
        ),
        "ambiguous": _(
            "More than one choice is named “%(value)s”. Pick one of the suggestions: each adds the unified social "
            "credit code."
        ),
    }

    def __init__(self, queryset, *, directory: str, **kwargs):
        kwargs.setdefault("widget", DirectoryLookupInput(directory))
        kwargs.setdefault("help_text", _("Type part of the name or the unified social credit code."))
        super().__init__(queryset, **kwargs)

    def prepare_value(self, value):
        """A record (or its number, as a form's initial data holds it) shows as its label; typed text as typed."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = self.queryset.filter(pk=value).first() or value
        if hasattr(value, "_meta"):
            return choice_label(value)
        return value

    def to_python(self, value):
        if value in self.empty_values or not str(value).strip():
            return None
        if hasattr(value, "_meta"):
            return value
        found = list(matching(self.queryset, str(value))[:2])
        if not found:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value})
        if len(found) > 1:
            raise ValidationError(self.error_messages["ambiguous"], code="ambiguous", params={"value": value})
        return found[0]

    def has_changed(self, initial, data):
        if self.disabled:
            return False
        try:
            chosen = self.to_python(data)
        except ValidationError:
            return True
        initial_pk = getattr(initial, "pk", initial)
        return str(initial_pk or "") != str(chosen.pk if chosen else "")
