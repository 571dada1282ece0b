"""The users list: sort by name and role (keyset pages, indexed), the range "26–35 of 35", and
"Some filters were ignored" for values the list does not understand."""

from __future__ import annotations

import re

import pytest

from tests.accounts.app_user_data import make_user

pytestmark = pytest.mark.django_db


def _emails(body: str) -> list[str]:
    return re.findall(r'class="cell-primary" href="/t/[a-z-]+/users/[0-9a-f-]+/">([^<]+)</a>', body)


def _range(body: str) -> str:
    count = re.search(r'id="users-count">(.*?)</div>', body, re.S).group(1)
    return re.sub(r"<[^>]+>", "", count).strip()


def _names(body: str) -> list[str]:
    return re.findall(r'<td class="truncate c-name">([^<]+)</td>', body)


def test_sort_by_name_and_role_across_pages(staff, acme):
    for i in range(35):
        make_user(acme, f"u{i:02d}@acme.test", name=f"{'zyxwvutsrqponmlkjihgfedcba'[i % 26]}name {i:02d}",
                  role="admin" if i % 5 == 0 else "user")
    client = staff("viewer")
    first = client.get("/t/acme/users/?sort=name&per_page=25").content.decode()
    names = _names(first)
    assert names == sorted(names, key=str.lower) and len(names) == 25
    assert _range(first) == "1–25 of 35 users"
    next_url = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get("/t/acme/users/" + next_url).content.decode()
    rest = _names(second)
    assert len(rest) == 10 and rest == sorted(rest, key=str.lower) and names[-1].lower() <= rest[0].lower()
    assert _range(second) == "26–35 of 35 users"

    by_role = client.get("/t/acme/users/?sort=-role&per_page=100").content.decode()
    roles = re.findall(r'<span class="role role-(\w+)">', by_role)
    assert roles == sorted(roles, reverse=True) and roles[0] == "user" and roles[-1] == "admin"


def test_bad_parameters_are_named_not_silently_dropped(staff, acme):
    make_user(acme, "ann@acme.test", name="Ann")
    body = staff("viewer").get("/t/acme/users/?status=bogus&created_from=not-a-date").content.decode()
    assert "Some filters were ignored" in body and "status" in body
    assert "ann@acme.test" in _emails(body)
    clean = staff("viewer").get("/t/acme/users/").content.decode()
    assert "Some filters were ignored" not in clean


@pytest.mark.postgres
def test_the_name_and_role_sorts_walk_an_index(acme):
    from django.db import connections

    from accounts.models import AppUser
    from tenants import db as tenant_db

    alias = tenant_db.using(acme)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [AppUser._meta.db_table])
        names = {row[0] for row in cursor.fetchall()}
    assert {"appuser_name_keyset", "appuser_role_keyset"} <= names


def test_column_choice_is_kept_per_staff_member(staff, acme):
    from accounts.models import User
    from audit.models import AuditEntry

    make_user(acme, "ann@acme.test", name="Ann")
    mine, theirs = staff("admin"), staff("viewer")
    response = mine.post("/t/acme/users/columns/", {"show": ["name", "status", "signin"],
                                                    "next": "/t/acme/users/?q=ann"})
    assert response.status_code == 302 and response["Location"] == "/t/acme/users/?q=ann"
    assert User.objects.get(email="admin@console.test").hidden_user_columns == "role,mfa,created"
    page = mine.get("/t/acme/users/").content.decode()
    assert 'class="table users hide-role hide-mfa hide-created"' in page
    assert 'class="table users"' in theirs.get("/t/acme/users/").content.decode()
    assert AuditEntry.objects.filter(event="staff.user_columns").count() == 1
    away = mine.post("/t/acme/users/columns/", {"show": ["name"], "next": "https://evil.example/"})
    assert away["Location"] == "/t/acme/users/"


def _ids(body: str) -> list[str]:
    return [u.replace("-", "") for u in re.findall(r'class="cell-primary" href="/t/[a-z-]+/users/([0-9a-f-]+)/"', body)]


def test_sort_by_status_across_pages_both_ways_with_a_ban_that_ran_out(staff, acme):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import AppUser
    from tenants import db as tenant_db

    now = timezone.now()
    expect = {}
    for i in range(12):
        expect[make_user(acme, f"active{i}@acme.test").pk.hex] = "active"
    for i in range(4):
        expect[make_user(acme, f"invited{i}@acme.test", email_confirmed_at=None, invited_at=now).pk.hex] = "invited"
    for i in range(3):
        expect[make_user(acme, f"unconf{i}@acme.test", email_confirmed_at=None, password="x").pk.hex] = "unconfirmed"
    for i in range(5):
        expect[make_user(acme, f"banned{i}@acme.test", banned_until=now + timedelta(days=1)).pk.hex] = "banned"
    expect[make_user(acme, "was-banned@acme.test", banned_until=now - timedelta(hours=1)).pk.hex] = "active"
    for i in range(3):
        expect[make_user(acme, f"gone{i}@acme.test", deleted_at=now).pk.hex] = "deleted"
    order = ("active", "invited", "unconfirmed", "banned", "deleted")
    client = staff("viewer")

    def walk(sort: str) -> list[str]:
        seen, url = [], f"/t/acme/users/?sort={sort}&per_page=25&status="
        pages = 0
        while url:
            body = client.get(url).content.decode()
            seen += _ids(body)
            more = re.search(r'rel="next" href="([^"]+)"', body)
            url = "/t/acme/users/" + more.group(1).replace("&amp;", "&") if more else None
            pages += 1
        assert pages == 2
        return seen

    ascending = walk("status")
    assert sorted(ascending) == sorted(expect) and len(ascending) == 28  # each user once
    ranks = [order.index(expect[e]) for e in ascending]
    assert ranks == sorted(ranks)  # the expired ban counts as active, as its badge says
    descending = walk("-status")
    ranks = [order.index(expect[e]) for e in descending]
    assert ranks == sorted(ranks, reverse=True) and sorted(descending) == sorted(expect)

    # Previous from the second page gives the first page back.
    first = client.get("/t/acme/users/?sort=status&per_page=25").content.decode()
    nxt = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get("/t/acme/users/" + nxt).content.decode()
    prev = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert _ids(client.get("/t/acme/users/" + prev).content.decode()) == _ids(first)
    # The column header sorts.
    assert 'href="?sort=status"' in client.get("/t/acme/users/").content.decode()
    assert AppUser.objects.using(tenant_db.using(acme)).count() == 28


@pytest.mark.postgres
def test_the_status_sort_reads_each_status_on_an_index(acme):
    from datetime import timedelta

    from django.db import connections
    from django.utils import timezone

    from accounts.app_users import selectors
    from accounts.models import AppUser
    from tenants import db as tenant_db
    from tests.accounts.app_user_data import make_users

    alias = tenant_db.using(acme)
    now = timezone.now()
    make_users(acme, 5000)
    make_users(acme, 20, prefix="banned", banned_until=now + timedelta(days=1))
    make_users(acme, 20, prefix="gone", deleted_at=now)
    make_users(acme, 20, prefix="invited", email_confirmed_at=None, invited_at=now)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"ANALYZE {AppUser._meta.db_table}")
    listed = selectors.app_user_queryset(tenant=acme).only(*selectors.LIST_FIELDS)
    for sort in ("status", "-status"):
        keyset = selectors._Keyset(sort)
        for segment in range(keyset.segments):
            page = keyset.order(listed.filter(keyset.segment_q(segment)), segment, backwards=False)[:51]
            plan = page.explain()
            assert "Seq Scan" not in plan, (sort, keyset.statuses[segment], plan)
            assert "Index" in plan, plan
