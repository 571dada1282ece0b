"""Test settings: the real settings with a throw-away data directory and test-only names."""

import os
import tempfile

os.environ.setdefault("ADMINPANEL_DATA_DIR", tempfile.mkdtemp(prefix="adminpanel-test-"))
os.environ["ADMINPANEL_ENV"] = "development"

from config.settings import *  # noqa: E402, F403
from config.settings import DATA_DIR  # noqa: E402

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
# Tenant databases made by the tests carry this prefix; the suite drops them when it ends.
TENANT_DB_PREFIX = f"test_apt_{_worker}_"
TENANT_SQLITE_DIR = DATA_DIR / "tenants"
TENANTS_CREATE_DEFAULT_ON_MIGRATE = False
DEBUG = False
# Argon2 stays first in production (see test_settings); tests hash faster.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Links in mails use a fixed base in the tests (the "follow the request" default of development
# is tested on its own in tests/core/test_public_url.py).
PUBLIC_BASE_URL = "http://127.0.0.1:8000"
