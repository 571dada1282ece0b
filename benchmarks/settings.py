"""Benchmark settings: the real settings plus a stock Django admin over the benchmark tenant."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
TENANTS_CREATE_DEFAULT_ON_MIGRATE = False
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
