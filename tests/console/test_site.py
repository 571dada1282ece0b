from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.policy import policy

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.django_db
def test_healthz_answers_200_with_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_answers_503_when_the_control_database_is_unreachable(tmp_path):
    # A real console process whose control database (PostgreSQL on a closed port) is down.
    code = (
        "from django.test import Client; r = Client().get('/healthz'); "
        "print(r.status_code, r.json()['status'])"
    )
    result = manage(
        "shell", "--no-imports", "-c", code,
        env={
            "ADMINPANEL_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://nobody@127.0.0.1:1/console",
            "ALLOWED_HOSTS": "testserver",
        },
    )
    assert result.stdout.split() == ["503", "unavailable"], result.stderr


@pytest.mark.django_db
def test_pages_carry_csp_and_no_store(client):
    response = client.get("/healthz")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    assert response["X-Frame-Options"] == "DENY"


def test_production_check_deploy_is_clean(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={
            "ADMINPANEL_ENV": "production",
            "SECRET_KEY": "k" * 64 + "production-secret-for-the-check",
            "ALLOWED_HOSTS": "console.example.com",
            "ADMINPANEL_DATA_DIR": str(tmp_path),
            "EMAIL_HOST": "smtp.example.com",
            "PUBLIC_BASE_URL": "https://console.example.com",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = manage(
        "check",
        env={"ADMINPANEL_ENV": "production", "ALLOWED_HOSTS": "x.example", "ADMINPANEL_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    env = {"ADMINPANEL_DATA_DIR": str(tmp_path), "SECRET_KEY": ""}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = manage("shell", "--no-imports", "-c", code, env=env)
    second = manage("shell", "--no-imports", "-c", code, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == second.stdout.strip() == (tmp_path / "secret_key").read_text().strip()
    assert len(first.stdout.strip()) >= 50
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_environment_switches_database_and_cache(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE']); print(s.CACHES['default']['BACKEND'])"
    )
    sqlite = manage("shell", "--no-imports", "-c", code, env={"ADMINPANEL_DATA_DIR": str(tmp_path)})
    assert sqlite.stdout.split() == [
        "django.db.backends.sqlite3", "django.core.cache.backends.db.DatabaseCache",
    ]
    pg = manage(
        "shell", "--no-imports", "-c", code,
        env={
            "ADMINPANEL_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u@db.example:5432/console",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        },
    )
    assert pg.stdout.split() == [
        "django.db.backends.postgresql", "django.core.cache.backends.redis.RedisCache",
    ]


def test_security_policy_numbers_and_argon2_first():
    from config import settings as real_settings

    p = policy()
    assert (p.staff_lockout_failures, p.staff_lockout_minutes) == (5, 15)
    assert (p.invitation_hours, p.recovery_minutes, p.magic_link_minutes) == (72, 60, 10)
    assert p.token_bytes * 8 >= 128
    assert real_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_production_refuses_to_start_without_a_mail_server(tmp_path):
    result = manage(
        "check",
        env={"ADMINPANEL_ENV": "production", "SECRET_KEY": "k" * 64, "ALLOWED_HOSTS": "x.example",
             "ADMINPANEL_DATA_DIR": str(tmp_path), "PUBLIC_BASE_URL": "https://x.example"},
    )
    assert result.returncode != 0
    assert "Set EMAIL_HOST" in result.stderr


def test_production_refuses_to_start_without_a_public_base_url(tmp_path):
    result = manage(
        "check",
        env={"ADMINPANEL_ENV": "production", "SECRET_KEY": "k" * 64, "ALLOWED_HOSTS": "x.example",
             "ADMINPANEL_DATA_DIR": str(tmp_path), "EMAIL_HOST": "smtp.example.com"},
    )
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL must be set" in result.stderr
