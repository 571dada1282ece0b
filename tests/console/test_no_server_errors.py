"""No input produces a server error or unescaped output (SECURITY.md, "Everywhere").

One walk over every URL pattern of the console and the portal (the same enumeration as
test_default_deny), for an instance admin with a fresh TOTP (destructive gates pass), a tenant
``viewer``, an anonymous client and an app user signed in to the portal. Each URL gets:

- GET with hostile values in every query parameter a view reads (and a generic set);
- POST with the same values in every field of the view's forms (found by reading the view's
  source for form classes, one helper deep) plus a generic set, with and without a CSRF token;
- for the admin and the app user, a valid form with one field at a time made hostile, so the
  input gets past the syntax checks into the services;
- path parameters made hostile where the converter lets them through (a malformed UUID is a
  404 by its converter);
- bytes that are not UTF-8 in the query string and the body, hostile request headers (User-Agent,
  Referer, htmx's, proxy headers) and, for the anonymous client, hostile session cookies.

Before each URL the tenant row, the app users and the rate-limit counters are put back and the
staff are signed in again, so what one URL did (a ban, a delete, new settings, a lockout) does not
hide the next one.

On SQLite the walk sends the values whose handling depends on the database (SQLITE_VALUES), as
the instance admin and the app user; the PostgreSQL pass sends them all, as all four actors
(every other value and actor takes the same Python path on both).

No response may be a 5xx, no exception may escape, and an HTML response must never contain the
raw ``<script>alert(1)</script>``. Failures are collected and reported together, each with the
user, method, URL, payload and the traceback's last frames.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import re
import traceback
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from django import forms
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, get_resolver
from django.utils import timezone

from accounts.models import ActionToken, AppUser
from accounts.selectors import assignable_tenants
from accounts.tokens import token_issue
from core.api_paths import is_api_path
from tenants import db as tenant_db
from tenants import emails
from tenants.config import tenant_settings
from tenants.models import Tenant
from tests.conftest import STAFF_PASSWORD, login_verified
from tests.console.test_default_deny import CONVERTER_RE, _walk

SCRIPT = "<script>alert(1)</script>"
HOSTILE = [
    "\x00", "a" * 10_000, "\u202eevil", SCRIPT, "../../etc/passwd", "-1", "99999999999999999999",
    "2026-13-45", "%", "'", "Ω", "[]", "{}",
    # Values that pass the syntax of a date or a number and hit the edges behind it (a date
    # with an offset that leaves the calendar once converted to UTC).
    "9999-12-31", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00+14:00", "1e309",
]
# The hostile values sent in one-field-at-a-time mutations (each one multiplies the requests).
MUTATIONS = [
    "\x00", "a" * 10_000, "\u202eevil", SCRIPT, "-1", "99999999999999999999", "2026-13-45",
    "9999-12-31T23:59", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00+14:00", "0", "Ω", "{}",
]
# SQLite runs the walk with the values whose handling depends on the database (binding a huge
# integer, LIKE wildcards and quotes, NUL, length, case folding, a float out of range): every other
# value takes the same Python path on both databases, and the PostgreSQL pass (the stricter one:
# NUL, lengths and JSON it refuses) sends them all.
SQLITE_VALUES = {"\x00", "a" * 10_000, SCRIPT, "-1", "0", "99999999999999999999", "%", "'", "Ω", "1e309"}


def for_this_database(values: list[str]) -> list[str]:
    if connection.vendor == "sqlite":
        return [v for v in values if v in SQLITE_VALUES]
    return values


def for_this_database_path() -> list[str]:
    """HOSTILE_PATH on PostgreSQL; on SQLite the segments a database could handle differently
    (length, NUL, LIKE's %, a quote, non-ASCII)."""
    if connection.vendor == "sqlite":
        return ["x" * 500, "%00", "%25", "%27", quote("Ω")]
    return HOSTILE_PATH


# JSON that parses into what a database or a recursion limit refuses (fields named *metadata*).
JSON_MUTATIONS = [
    '{"a": 1e309}', '{"a": NaN}', '{"a": "\\u0000"}', '{"\\ud800": 1}', "[" * 5000,
    '{"a": ' * 3000 + "1" + "}" * 3000, '{"a": [' + "1," * 12000 + "1]}",
]
# A query string and a form body that are not UTF-8.
RAW_QUERY = "q=%FF%FE&status=%C0%AF&next=%E2%80&email=%00%FF"
# Path segments for str converters (already URL-encoded where needed).
HOSTILE_PATH = ["x" * 500, "%00", quote("\u202eevil"), quote(SCRIPT, safe=""), "..%2F..%2Fetc",
                "%25", "%27", quote("Ω"), "-1"]
HOSTILE_SLUGS = ["x" * 500, "-1"]

QUERY_NAMES = [
    # the generic set
    "q", "status", "role", "mfa", "sort", "per_page", "cursor", "created_from", "created_to",
    "signin_from", "signin_to", "next", "tenant", "page", "event", "actor", "target", "from", "to",
    "days", "kind",
    # what the views read besides (request.GET in adminpanel/ and portal/, AuditFilters)
    "date_from", "date_to", "impersonated", "action", "after", "before", "purged", "email",
    "method", "reason",
]
# Django's admin answers 400 to any unknown ``_to_field`` and redirects on unknown filters: its
# changelists get the parameters they read (search, ordering, page) and nothing else.
ADMIN_QUERY_NAMES = ["q", "o", "p"]
# Sent to an actor whose first answer was a refusal (sign-in page, 403): the gate reads no input,
# so a few values (long, NUL, markup) are enough to show it holds.
REFUSED = ["a" * 10_000, "\x00", SCRIPT]
# Django's admin is Django's code; what is ours there is the ModelAdmin configuration (search,
# ordering, list columns, forms), which a shorter list exercises as well.
ADMIN_HOSTILE = [*REFUSED, "\u202eevil", "-1", "99999999999999999999", "%", "'", "Ω"]
GENERIC_FIELDS = sorted({
    *QUERY_NAMES, "name", "password", "password1", "password2", "password_confirm", "current",
    "current_password", "code", "current_code", "new_code", "session", "session_id", "factor_id",
    "payload", "step", "value", "confirm", "confirm_slug", "mode", "duration", "until", "metadata",
    "user_metadata", "app_metadata", "slug", "scope", "ids", "sign_out", "subject", "body",
    "roles", "protected_roles", "default_role", "is_superuser", "is_active", "username",
})
STRONG_PASSWORD = "Quartz-Lantern-Meadow-71"
APP_PASSWORD = "plum-kettle-harbour-42"


# --- The world the walk runs in ----------------------------------------------------------------


@dataclass
class World:
    tenant: Tenant
    tenant_row: dict
    admin: object
    viewer: object
    target: object
    app_users: dict[str, dict]  # pk → fields, restored before every URL
    victim: AppUser
    portal_user: AppUser
    invited: AppUser
    mail_pk: str
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))


def _app_user(tenant: Tenant, email: str, *, name: str = "", confirmed: bool = True, **extra) -> AppUser:
    now = timezone.now()
    return AppUser.objects.using(tenant_db.using(tenant)).create(
        email=email, name=name or email.split("@")[0].title(), password=make_password(APP_PASSWORD),
        email_confirmed_at=now if confirmed else None, **extra,
    )


def _fields_of(user: AppUser) -> dict:
    return {f.attname: getattr(user, f.attname) for f in AppUser._meta.concrete_fields if f.attname != "id"}


@pytest.fixture
def world(make_tenant, staff_factory):
    from accounts.app_users import services as app_services

    cache.clear()
    tenant = make_tenant("acme")
    admin = staff_factory("root@console.test", superuser=True, tenants={tenant: "admin"})
    viewer = staff_factory("viewer@console.test", tenants={tenant: "viewer"})
    target = staff_factory("target@console.test", tenants={tenant: "support"})
    victim = _app_user(tenant, "victim@acme.test", name=SCRIPT,
                       user_metadata={"note": SCRIPT}, app_metadata={"plan": SCRIPT})
    portal_user = _app_user(tenant, "portal@acme.test")
    invited = _app_user(tenant, "invited@acme.test", confirmed=False, invited_at=timezone.now())
    _app_user(tenant, "other@acme.test", role="admin")
    # A mail in the outbox whose content carries markup (mail/<uuid>/ renders it).
    hostile = app_services.app_user_invite(actor=admin, tenant=tenant, email="markup@acme.test",
                                           name=SCRIPT, role="user", user_metadata={})
    from outbox.models import OutboxMessage

    mail = OutboxMessage.objects.order_by("-created_at").first()
    assert mail is not None
    users = [victim, portal_user, invited, hostile]
    tenant.refresh_from_db()
    yield World(
        tenant=tenant,
        tenant_row={k: v for k, v in Tenant.objects.filter(pk=tenant.pk).values()[0].items() if k != "id"},
        admin=admin, viewer=viewer, target=target,
        app_users={str(u.pk): _fields_of(u) for u in users}, victim=victim, portal_user=portal_user,
        invited=invited, mail_pk=str(mail.pk),
    )
    # Tenants the walk registered (htmx: the record only) may have got a database file on the
    # way (SQLite creates one on connect); their records go with the test's transaction.
    for other in Tenant.objects.exclude(pk=tenant.pk):
        tenant_db.drop_database(other)


def _restore(world: World) -> None:
    """Undo what the previous URL did (a ban, a delete, new settings): each URL starts equal."""
    cache.clear()  # lockout and rate-limit counters
    Tenant.objects.filter(pk=world.tenant.pk).update(**world.tenant_row)
    alias = tenant_db.using(world.tenant)
    for pk, fields in world.app_users.items():
        AppUser.objects.using(alias).update_or_create(pk=pk, defaults=fields)


# --- Clients -----------------------------------------------------------------------------------


@dataclass
class Actor:
    label: str
    client: Client
    csrf_client: Client
    sign_in: object  # callable: () -> None, run before every URL
    portal_only: bool = False


def _actors(world: World) -> list[Actor]:
    def staff(label, user):
        client = Client(raise_request_exception=True)
        csrf = Client(raise_request_exception=True, enforce_csrf_checks=True)
        csrf.cookies = client.cookies  # the same session, without the CSRF exemption

        def sign_in():
            client.logout()  # a new cookie jar: share it again
            user.refresh_from_db()  # the password may have changed (the session keeps its hash)
            login_verified(client, user)
            csrf.cookies = client.cookies

        return Actor(label, client, csrf, sign_in)

    anon = Client(raise_request_exception=True)
    anon_csrf = Client(raise_request_exception=True, enforce_csrf_checks=True)
    anon_csrf.cookies = anon.cookies

    app = Client(raise_request_exception=True)
    app_csrf = Client(raise_request_exception=True, enforce_csrf_checks=True)
    app_csrf.cookies = app.cookies

    def app_sign_in():
        app.cookies.clear()
        response = app.post(f"/p/{world.tenant.slug}/login/",
                            {"email": world.portal_user.email, "password": APP_PASSWORD})
        assert response.status_code == 302 and "account" in response["Location"], response

    admin = staff("instance admin", world.admin)
    app_user = Actor("app user (portal)", app, app_csrf, app_sign_in, portal_only=True)
    if connection.vendor == "sqlite":
        # The actors whose input reaches the services; a viewer's and a visitor's are answered by
        # the gates, the same Python on both databases (PostgreSQL walks them).
        return [admin, app_user]
    return [
        admin,
        staff("tenant viewer", world.viewer),
        Actor("anonymous", anon, anon_csrf, lambda: anon.cookies.clear()),
        app_user,
    ]


# --- Routes and their forms --------------------------------------------------------------------


def _unwrap(func):
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    return func


def _source_deep(func, depth: int = 1) -> str:
    func = _unwrap(func)
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return ""
    for name in re.findall(r"\b[A-Za-z_]\w*\b", source):
        obj = getattr(func, "__globals__", {}).get(name)
        if depth and inspect.isfunction(obj) and obj.__module__ == func.__module__ and obj is not func:
            source += _source_deep(obj, depth - 1)
    return source


def _forms_in(func, depth: int = 1) -> list[type[forms.BaseForm]]:
    """Form classes a view names in its source, and those named by the helpers it calls."""
    func = _unwrap(func)
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return []
    scope = {**getattr(func, "__globals__", {})}
    if func.__closure__:
        scope.update(zip(func.__code__.co_freevars, (c.cell_contents for c in func.__closure__), strict=False))
    found: list[type[forms.BaseForm]] = []
    for name in dict.fromkeys(re.findall(r"\b[A-Za-z_]\w*\b", source)):
        obj = scope.get(name)
        if isinstance(obj, type) and issubclass(obj, forms.BaseForm) and obj not in found:
            found.append(obj)
        elif depth and inspect.isfunction(obj) and obj.__module__ == func.__module__ and obj is not func:
            found.extend(f for f in _forms_in(obj, depth - 1) if f not in found)
    return found


def _form_instance(form_cls, world: World):
    """An unbound instance (choices filled in by ``__init__``), given the kwargs it asks for."""
    wanted = set()
    for klass in form_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            wanted |= set(inspect.signature(init).parameters)
    portal = form_cls.__module__.startswith("portal")
    available = {
        "settings": tenant_settings(world.tenant), "tenants": assignable_tenants(),
        "tenant": world.tenant, "user": world.portal_user if portal else world.admin,
    }
    kwargs = {k: v for k, v in available.items() if k in wanted}
    data = inspect.signature(form_cls.__init__).parameters.get("data")
    args = (None,) if data is not None and data.default is inspect.Parameter.empty else ()
    return form_cls(*args, **kwargs)


@dataclass
class Route:
    route: str
    pattern: URLPattern
    forms: list
    fields: list[str]

    @property
    def name(self) -> str:
        return self.pattern.name or self.route

    @property
    def query_names(self) -> list[str]:
        return ADMIN_QUERY_NAMES if self.route.startswith("admin/") else QUERY_NAMES

    @property
    def public(self) -> bool:
        return bool(getattr(self.pattern.callback, "staff_public", False))

    @property
    def hostile(self) -> list[str]:
        return ADMIN_HOSTILE if self.route.startswith("admin/") else for_this_database(HOSTILE)

    @property
    def uses_htmx(self) -> bool:
        """Whether the view answers htmx differently (a fragment, a client redirect)."""
        return "htmx" in _source_deep(self.pattern.callback)

    @property
    def reads_query(self) -> bool:
        """Whether the view (or a helper) reads the query string: where a GET view's form is bound."""
        return "request.GET" in _source_deep(self.pattern.callback)


def _routes() -> list[Route]:
    routes = []
    for route, pattern in _walk(get_resolver().url_patterns):
        if is_api_path("/" + route) or route.startswith("api/v1") or "/auth/v1" in route:
            continue  # the API (keys, JSON) has its own battery: tests/api
        found = _forms_in(pattern.callback)
        names = set(GENERIC_FIELDS)
        for form_cls in found:
            names |= set(form_cls.base_fields)
        admin = getattr(pattern.callback, "model_admin", None)
        if admin is not None:
            names |= {f.name for f in admin.model._meta.concrete_fields}
        routes.append(Route(route, pattern, found, sorted(names)))
    return routes


def _path_values(world: World, route: str) -> dict[str, str]:
    pk = str(world.target.pk)
    if route.startswith("mail/"):
        pk = world.mail_pk
    token = "x" * 43
    purposes = {"accept": (ActionToken.Purpose.INVITE, world.invited),
                "recover": (ActionToken.Purpose.RECOVERY, world.victim),
                "magic": (ActionToken.Purpose.MAGIC_LINK, world.victim)}
    for kind, (purpose, user) in purposes.items():
        if route.endswith(f"{kind}/<str:token>/"):  # a live link (earlier URLs used or revoked it)
            token = token_issue(tenant=world.tenant, user=user, purpose=purpose)[1]
    return {
        "slug": world.tenant.slug, "user_id": str(world.victim.pk), "pk": pk,
        "factor_id": str(uuid.uuid4()), "impersonation_id": str(uuid.uuid4()),
        "kind": "invite", "scope": "others", "verb": "nope", "key": "0" * 12, "token": token,
        "object_id": str(world.admin.pk), "uuid": str(uuid.uuid4()), "str": "x", "path": "x",
        "int": "1",
    }


def _fill(route: str, values: dict[str, str], override: dict[str, str] | None = None) -> str:
    override = override or {}

    def one(m: re.Match) -> str:
        conv, name = m.group("conv") or "str", m.group("name")
        if conv.startswith("regex"):
            return name.split(":", 1)[1]
        if name in override:
            return override[name]
        return values.get(name, values.get(conv, values["str"]))

    return "/" + CONVERTER_RE.sub(one, route)


def _hostile_paths(route: str, values: dict[str, str]) -> list[tuple[str, str]]:
    """(path, what was made hostile) for every parameter whose converter lets hostility in."""
    out = []
    for m in CONVERTER_RE.finditer(route):
        conv, name = m.group("conv") or "str", m.group("name")
        if conv in {"str", "path"}:
            out += [(_fill(route, values, {name: v}), f"{name}={v[:40]}") for v in for_this_database_path()]
        elif conv == "slug":
            out += [(_fill(route, values, {name: v}), f"{name}={v[:40]}") for v in HOSTILE_SLUGS]
        elif conv == "uuid":
            out.append((_fill(route, values, {name: "not-a-uuid"}), f"{name}=not-a-uuid"))
    return out


# --- Requests ----------------------------------------------------------------------------------


@dataclass
class Walk:
    failures: dict[tuple, str] = field(default_factory=dict)
    requests: int = 0

    def fail(self, key: tuple, message: str) -> None:
        self.failures.setdefault(key, message)


def _upload(value: str) -> SimpleUploadedFile:
    text = f"email,name,role\n{value},{value},{value}\nrow@example.com,{value},user\n=HYPERLINK(1),x,y\n"
    return SimpleUploadedFile("hostile.csv", text.encode("utf-8", "surrogatepass"), "text/csv")


def _body(fields: list[str], value, route: Route) -> dict:
    data: dict = {name: value for name in fields}
    data["ids"] = [value, value]
    for form_cls in route.forms:
        for name, f in form_cls.base_fields.items():
            if isinstance(f, forms.FileField):
                data[name] = _upload(str(value))
    return data


def _send(walk: Walk, actor: Actor, method: str, path: str, *, what: str, data=None, query=None,
          csrf: bool = True, headers: dict | None = None, expect=None):
    """One request; every problem is recorded. Returns the response (None when it raised)."""
    walk.requests += 1
    url = path + ("?" + urlencode(query, doseq=True) if query else "")
    client = actor.client if csrf else actor.csrf_client
    label = f"{actor.label} {method.upper()}{'' if csrf else ' (no CSRF token)'} {path[:120]}"
    try:
        with transaction.atomic():  # a database error must not poison the test's transaction
            response = getattr(client, method)(url, data=data or {}, **(headers or {}))
            content = b"".join(response.streaming_content) if response.streaming else response.content
    except Exception as exc:  # noqa: BLE001 - that is what the test looks for
        frames = "".join(traceback.format_exception(exc)[-6:])
        where = traceback.extract_tb(exc.__traceback__)[-1]
        walk.fail((actor.label, path, method, type(exc).__name__, where.filename, where.lineno),
                  f"{label} [{what}] raised {type(exc).__name__}: {str(exc)[:200]}\n{frames}")
        return None
    status = response.status_code
    if status >= 500:
        walk.fail((actor.label, path, method, status), f"{label} [{what}] answered {status}")
    if SCRIPT.encode() in content and response.get("Content-Type", "").startswith("text/html"):
        walk.fail((actor.label, path, method, "unescaped"), f"{label} [{what}] echoes {SCRIPT} unescaped")
    if expect is not None:
        problem = expect(response)
        if problem:
            walk.fail((path, method, "expect", actor.label), f"{label} [{what}]: {problem}")
    return response


def _headers(value: str) -> dict:
    """The request headers the code reads, hostile (as a server hands them over: latin-1)."""
    raw = value.encode("utf-8", "surrogatepass").decode("latin-1")
    return {"HTTP_USER_AGENT": raw, "HTTP_REFERER": raw, "HTTP_HX_CURRENT_URL": raw,
            "HTTP_ACCEPT_LANGUAGE": raw, "HTTP_X_FORWARDED_FOR": raw, "HTTP_X_REAL_IP": raw}


def _refused(response) -> bool:
    """The gate answered (sign-in page, 403): the view never read the input."""
    if response is None:
        return False
    if response.status_code == 403:
        return True
    return response.status_code == 302 and "login/" in response.get("Location", "")


def _csrf_expectation(actor: Actor):
    def check(response):
        status = response.status_code
        if status == 403:
            return None
        if actor.label == "anonymous" and status == 302 and response["Location"].startswith("/login/"):
            return None  # the default deny answers before the CSRF check: nothing ran
        return f"a POST without a CSRF token answered {status}, not 403 ({response.get('Location', '')[:80]})"

    return check


def _baseline(form, world: World) -> dict:
    """A submission the form accepts, so that one hostile field at a time reaches the service."""
    n = next(world.counter)
    named = {
        "email": f"probe{n}@example.com", "slug": world.tenant.slug, "confirm_slug": "not-the-slug",
        "password": STRONG_PASSWORD, "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD,
        "password_confirm": STRONG_PASSWORD, "current_password": STAFF_PASSWORD,
        "current": APP_PASSWORD, "code": "123456", "current_code": "123456", "new_code": "123456",
        "metadata": '{"plan": "gold"}', "user_metadata": '{"a": 1}', "app_metadata": '{"b": 2}',
        "roles": "user, admin", "protected_roles": "admin", "default_role": "user",
        "password_min_length": "12", "invitation_hours": "72", "recovery_minutes": "60",
        "magic_link_minutes": "10", "allowed_email_domains": "", "sender_name": "Acme",
        "subject": emails.DEFAULTS["invite"]["subject"], "body": emails.DEFAULTS["invite"]["body"],
        "reason": "Support ticket 42", "name": "Probe", "until": "2030-01-01T10:00",
        "confirm": "on", "ids": [str(world.victim.pk)],
    }
    data: dict = {}
    for name, f in form.fields.items():
        if name in named:
            data[name] = named[name]
        elif isinstance(f, forms.FileField):
            data[name] = _upload("probe")
        elif isinstance(f, forms.BooleanField):
            data[name] = "on"
        elif isinstance(f, forms.ModelChoiceField):
            first = f.queryset.first()
            if first is not None:
                data[name] = str(first.pk)
        elif isinstance(f, forms.ChoiceField):
            keys = [str(k) for k, _ in f.choices if k not in ("", None)]
            if keys:
                data[name] = keys[0]
        elif isinstance(f, forms.DateTimeField):
            data[name] = "2030-01-01T10:00"
        elif isinstance(f, forms.DateField):
            data[name] = "2030-01-01"
        elif isinstance(f, forms.EmailField):
            data[name] = f"probe{n}@example.com"
        else:
            data[name] = "Probe"
    return data


def _walk_one(walk: Walk, world: World, actor: Actor, route: Route) -> None:
    values = _path_values(world, route.route)
    path = _fill(route.route, values)
    admin = actor.label == "instance admin"
    # POST without the CSRF token first (before any POST below signs the actor out): refused.
    _send(walk, actor, "post", path, what="no CSRF token", data=_body(route.fields, SCRIPT, route),
          csrf=False, expect=_csrf_expectation(actor))
    # GET: every query parameter hostile at once, one value after the other.
    first = _send(walk, actor, "get", path, what="no query")
    for value in REFUSED if _refused(first) else route.hostile:
        query = {name: value for name in route.query_names}
        query["ids"] = [value, value]
        _send(walk, actor, "get", path, what=f"query={value[:40]!r}", query=query, headers=_headers(value))
    if admin and route.uses_htmx:  # the fragments htmx asks for
        for target in ("users-table", "audit-results", "tenant-create-form"):
            headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}
            _send(walk, actor, "get", path, what=f"htmx {target} query={SCRIPT!r}",
                  query={name: SCRIPT for name in route.query_names}, headers=headers)
    # POST: every field hostile at once.
    first = _send(walk, actor, "post", path, what="empty body")
    for value in REFUSED if _refused(first) else route.hostile:
        _send(walk, actor, "post", path, what=f"body={value[:40]!r}", data=_body(route.fields, value, route),
              query={"next": value}, headers=_headers(value))
    # Bytes that are not UTF-8, in the query string and in the body.
    _send(walk, actor, "get", path + "?" + RAW_QUERY, what="query not UTF-8")
    _send(walk, actor, "post", path + "?" + RAW_QUERY, what="body not UTF-8",
          data=RAW_QUERY.encode(), headers={"content_type": "application/x-www-form-urlencoded"})
    # Hostile cookies in place of the session ones (the staff session, the portal's two).
    if actor.label == "anonymous":
        for value in (REFUSED + ["%FF"] if route.route.startswith("p/") else []) + ["x" * 5000 + "=" * 100]:
            cookie = quote(value, safe="")
            jar = f"sessionid={cookie}; csrftoken={cookie}; portal_session={cookie}; portal_mfa={cookie}"
            _send(walk, actor, "get", path, what=f"cookies={value[:40]!r}", headers={"HTTP_COOKIE": jar})
            _send(walk, actor, "post", path, what=f"cookies={value[:40]!r}", headers={"HTTP_COOKIE": jar},
                  data={name: value for name in route.fields})
    if admin and route.uses_htmx:
        _send(walk, actor, "post", path, what="htmx body=<script>", data=_body(route.fields, SCRIPT, route),
              headers={"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "tenant-create-form"})
    # Hostile path parameters.
    limit = 4 if not admin or route.route.startswith("admin/") else None
    for hostile_path, what in _hostile_paths(route.route, values)[:limit]:
        _send(walk, actor, "get", hostile_path, what=what)
        _send(walk, actor, "post", hostile_path, what=what, data=_body(route.fields, SCRIPT, route))
    # A valid form, one field at a time made hostile (for the actors the view serves).
    if admin or actor.portal_only or (actor.label == "anonymous" and route.public):
        _mutations(walk, world, actor, route, path)


def _mutations(walk: Walk, world: World, actor: Actor, route: Route, path: str) -> None:
    # Registering a tenant without htmx also creates its database: htmx registers the record only.
    headers = {"HTTP_HX_REQUEST": "true"} if route.name == "tenants-create" else {}
    for form_cls in route.forms:
        form = _form_instance(form_cls, world)
        # A form read from the query string (filters) gets its values there.
        probe = _send(walk, actor, "post", path, what=f"{form_cls.__name__} valid",
                      data=_baseline(form, world), headers=headers)
        method = "get" if probe is not None and probe.status_code == 405 else "post"
        if method == "get" and not route.reads_query:
            continue  # a form the page only displays
        for name in form.fields:
            for value in for_this_database(MUTATIONS) + (JSON_MUTATIONS if "metadata" in name else []):
                data = _baseline(form, world)
                data[name] = [value, value] if name == "ids" else (
                    _upload(value) if isinstance(form.fields[name], forms.FileField) else value)
                what = f"{form_cls.__name__} valid but {name}={value[:40]!r}"
                if method == "get":
                    data = {k: v for k, v in data.items() if not isinstance(v, SimpleUploadedFile)}
                    _send(walk, actor, "get", path, what=what, query=data, headers=headers)
                else:
                    _send(walk, actor, "post", path, what=what, data=data, headers=headers)


@pytest.fixture
def quiet_refusals():
    """Thousands of 4xx answers are expected here: their warnings (with tracebacks) only cost
    time. Errors are still logged."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


# The walk itself is tests/walk/test_hostile_walk.py, in parts (every PARTS-th route) that a
# test run can spread over processes.
PARTS = 2


def test_the_walk_covers_the_console_the_portal_and_the_admin():
    routes = _routes()
    names = {route.name for route in routes}
    assert {"users-list", "users-ban", "tenants-create", "audit-instance", "tenant-settings"} <= names
    assert {"login", "accept", "sessions-end", "account"} <= names
    assert any(r.route.startswith("admin/") for r in routes)
    parts = [routes[part::PARTS] for part in range(PARTS)]
    assert sorted(r.route for part in parts for r in part) == sorted(r.route for r in routes)


# --- What the walk found, pinned -----------------------------------------------------------------


@pytest.mark.parametrize("before", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00+14:00"])
def test_mail_paging_cursor_off_the_calendar_shows_the_first_page(as_staff, staff_factory, before):
    client = as_staff(staff_factory("root@console.test", superuser=True))
    response = client.get("/mail/", {"before": before})
    assert response.status_code == 200


@pytest.mark.parametrize("metadata", ['{"a": 1e309}', '{"a": NaN}', '{"a": -Infinity}', '{"\\ud800": 1}'])
def test_tenant_metadata_that_no_database_stores_is_refused(as_staff, staff_factory, make_tenant, metadata):
    tenant = make_tenant("acme")
    client = as_staff(staff_factory("root@console.test", superuser=True))
    response = client.post(f"/tenants/{tenant.slug}/edit/", {"name": "Acme", "metadata": metadata})
    assert response.status_code == 400
    assert b"Tenant metadata" in response.content
    tenant.refresh_from_db()
    assert tenant.metadata == {}
    response = client.post("/tenants/new/", {"slug": "beta", "name": "Beta", "metadata": metadata})
    assert response.status_code == 400
    assert not Tenant.objects.filter(slug="beta").exists()


def test_a_refused_url_with_nul_is_audited_without_it(as_staff, staff_factory, make_tenant):
    """PostgreSQL's jsonb refuses NUL: the refusal's audit entry (with the path) was a 500 there."""
    from audit.models import AuditEntry

    tenant = make_tenant("acme")
    client = as_staff(staff_factory("viewer@console.test", tenants={tenant: "viewer"}))
    response = client.get(f"/t/{tenant.slug}/settings/emails/%00/")
    assert response.status_code == 403
    entry = AuditEntry.objects.filter(event="authz.refused").latest("timestamp")
    assert entry.additional_data["path"] == f"/t/{tenant.slug}/settings/emails/\ufffd/"
