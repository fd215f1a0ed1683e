"""The one spelling of the document-language parameter, for every download in the admin, the portal and the API.

Letters and exports take ``?language=en`` (or ``zh-hans``). The old admin spelling ``?lang=`` is refused with
the right name, rather than silently ignored, so a bookmarked link never downloads the wrong language unnoticed.
"""

from django.utils import translation
from django.utils.translation import gettext as _

from cgtclinic.errors import DomainError

LANGUAGE_PARAMETER = "language"
DOCUMENT_LANGUAGES = ("zh-hans", "en")


def requested_language(params, *, default: str | None = None) -> str:
    """The document language asked for in query parameters; else ``default``; else the request's language."""
    if "lang" in params and LANGUAGE_PARAMETER not in params:
        raise DomainError(
            _("The parameter is called “language” (e.g. ?language=en), not “lang”."), code="invalid", field="lang"
        )
    language = params.get(LANGUAGE_PARAMETER)
    if not language:
        if default:
            return default
        return "en" if (translation.get_language() or "").startswith("en") else "zh-hans"
    if language not in DOCUMENT_LANGUAGES:
        raise DomainError(
            _("Documents are available in %(languages)s.") % {"languages": ", ".join(DOCUMENT_LANGUAGES)},
            code="invalid",
            field=LANGUAGE_PARAMETER,
        )
    return language
