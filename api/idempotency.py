"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header) on POSTs of both surfaces and
the native PATCH/DELETE: the same key with the same request replays the stored answer (header
``Idempotent-Replayed: true``); with another request it is refused (422); while the first is
still running, 409. Answers 5xx and 429 are not stored (the client may retry)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from api.http import ApiError, error_response
from api.models import IdempotencyRecord
from core.api_paths import api_surface
from core.policy import policy
from credentials.services import hash_secret

_KEY_RE = re.compile(r"^[\x20-\x7e]{1,255}$")
LOCK = timedelta(seconds=60)
NOT_STORED = re.compile(r"/auth/v1/(?:admin/generate_link|logout)/?$")  # live links; idempotent anyway


def applies(request: HttpRequest) -> bool:
    if "Idempotency-Key" not in request.headers or NOT_STORED.search(request.path_info):
        return False
    native = api_surface(request.path_info) == "native"
    return request.method == "POST" or (native and request.method in ("PATCH", "DELETE"))


def _secret(request: HttpRequest) -> str:
    auth = request.headers.get("Authorization", "").strip()
    return request.headers.get("apikey", "").strip() or (auth[7:].strip() if auth[:7].lower() == "bearer " else "")


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(record.response_body, status=record.status or 200,
                            content_type=record.content_type or "application/json")
    if record.location:
        response["Location"] = record.location
    response["Idempotent-Replayed"] = "true"
    return response


def run(request: HttpRequest, get_response: Callable[[HttpRequest], HttpResponse]) -> HttpResponse:
    key = request.headers.get("Idempotency-Key", "")
    native = api_surface(request.path_info) == "native"
    if not _KEY_RE.match(key):
        return error_response(request, ApiError(400, "validation_failed",
                                                "Idempotency-Key must be 1 to 255 printable ASCII characters"))
    secret = _secret(request)
    if not secret:
        return get_response(request)  # refused by authentication anyway; nothing to remember
    scope = hash_secret(secret)
    digest = hashlib.sha256()
    for part in (request.method or "", request.get_full_path()):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(request.body)
    fingerprint = digest.hexdigest()
    now = timezone.now()
    IdempotencyRecord.objects.filter(
        scope=scope, key=key, created_at__lt=now - timedelta(hours=policy().api_idempotency_hours)
    ).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(scope=scope, key=key, fingerprint=fingerprint,
                                                      created_at=now, locked_until=now + LOCK)
    except IntegrityError:
        with transaction.atomic():
            record = IdempotencyRecord.objects.select_for_update().get(scope=scope, key=key)
            if record.fingerprint != fingerprint:
                return error_response(request, ApiError(
                    422, "idempotency_key_reused" if native else "validation_failed",
                    "This Idempotency-Key was used with another request"))
            if record.completed_at is not None:
                return _replay(record)
            if record.locked_until > now:
                return error_response(request, ApiError(
                    409, "idempotency_in_progress" if native else "conflict",
                    "A request with this Idempotency-Key is still in progress"))
            record.locked_until = now + LOCK  # the first attempt's worker died: take over
            record.save(update_fields=["locked_until"])
    response = get_response(request)
    if response.status_code >= 500 or response.status_code == 429 or getattr(response, "streaming", False):
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=response.status_code, response_body=response.content.decode("utf-8", "replace"),
        content_type=response.get("Content-Type", "")[:100], location=response.get("Location", "")[:500],
        completed_at=timezone.now(),
    )
    return response


def purge() -> int:
    cutoff = timezone.now() - timedelta(hours=policy().api_idempotency_hours)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
