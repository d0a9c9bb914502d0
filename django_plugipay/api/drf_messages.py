"""Messages of DRF that this API may answer with, and that DRF's own Indonesian catalog leaves
in English. They are marked here (never called) so this app's catalog carries their Indonesian:
Django looks a message up in every installed app's catalog, and DRF's has no entry for these."""

from django.utils.translation import gettext_noop

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
