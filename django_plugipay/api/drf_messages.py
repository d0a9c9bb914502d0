"""Messages of DRF that this API may answer with, and that DRF's own Indonesian catalog leaves
in English. Those DRF translates are marked here (never called) so this app's catalog carries
their Indonesian: Django looks a message up in every installed app's catalog, and DRF's has no
entry for these. DRF's CSRF refusal is not translated at all: :func:`csrf_failure` says it."""

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

MESSAGES = (
    gettext_noop("Invalid cursor"),
    gettext_noop("Invalid page."),
    gettext_noop('Method "{method}" not allowed.'),
    gettext_noop("Invalid input."),
    gettext_noop("Malformed request."),
    gettext_noop("Not a valid string."),
    gettext_noop("A valid number is required."),
    gettext_noop("A valid biginteger is required."),
    gettext_noop("Must be a valid boolean."),
    gettext_noop("String value too large."),
    gettext_noop("Datetime value out of range."),
    gettext_noop("This dictionary may not be empty."),
    gettext_noop("Invalid data. Expected a dictionary, but got {datatype}."),
    gettext_noop("Surrogate characters are not allowed: U+{code_point:X}."),
)


#: DRF's session authentication refuses a request failing Django's CSRF check with
#: "CSRF Failed: <reason>", in English: the reasons Django gives, in this app's words
_CSRF_REASONS = (
    (
        re.compile(r"Origin checking failed - (?P<origin>.*) does not match any trusted origins\."),
        gettext_lazy("its origin, %(origin)s, is not one this site trusts"),
    ),
    (
        re.compile(
            r"Referer checking failed - (?P<referer>.*) does not match any trusted origins\."
        ),
        gettext_lazy("its Referer, %(referer)s, is not one this site trusts"),
    ),
    (re.compile(r"Referer checking failed - no Referer\."), gettext_lazy("it has no Referer")),
    (
        re.compile(r"Referer checking failed - Referer is malformed\."),
        gettext_lazy("its Referer is malformed"),
    ),
    (
        re.compile(r"Referer checking failed - Referer is insecure while host is secure\."),
        gettext_lazy("its Referer is insecure while this site is secure"),
    ),
    (re.compile(r"CSRF cookie not set\."), gettext_lazy("the CSRF cookie is not set")),
    (
        re.compile(r"CSRF token missing\."),
        gettext_lazy("the CSRF token is missing (send the csrftoken cookie in X-CSRFToken)"),
    ),
    (
        re.compile(
            r"CSRF token (from .+ )?(incorrect|has incorrect length|has invalid characters)\.?"
        ),
        gettext_lazy("the CSRF token is not the one of this session"),
    ),
)


def csrf_failure(detail: str) -> str | None:
    """The request's language's words for DRF's "CSRF Failed: …" ``detail``, or None when
    ``detail`` is not one."""
    prefix = "CSRF Failed: "
    if not detail.startswith(prefix):
        return None
    reason = detail.removeprefix(prefix).strip()
    for pattern, words in _CSRF_REASONS:
        found = pattern.fullmatch(reason)
        if found:
            reason = str(words) % found.groupdict()
            break
    reason = reason.removesuffix(".")
    return _("The request failed the CSRF check: %(reason)s.") % {"reason": reason}
