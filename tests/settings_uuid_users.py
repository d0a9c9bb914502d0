"""The test settings with a custom user model: a UUID primary key and e-mail login."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.uuid_users"]  # noqa: F405
AUTH_USER_MODEL = "uuid_users.User"
