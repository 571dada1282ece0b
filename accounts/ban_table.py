"""The table of set bans (``accounts_appuserban``), kept by triggers on ``accounts_appuser``.

``AppUser.banned_until`` stays the truth every read uses (a ban runs out with time: whether a
user is banned is always ``banned_until > now``). The side table holds one row per user whose
``banned_until`` is set, with its index, so that the "banned" filter, count and sort segment read
a small index while no index of the user table names ``banned_until``: a ban is then a HOT
update of the user row (PostgreSQL rewrites no index entry of the 13 when the page has room).

Triggers, not application code, keep it: every writer of ``banned_until`` (services, batches,
jobs, the GoTrue update, ``COPY``, raw SQL) is covered, in the writer's own statement and
transaction. SQLite drops a table's triggers when Django rebuilds it (an ``ALTER`` SQLite cannot
do in place), so ``ensure`` re-creates them after every migration of a tenant database; a test
checks that they exist and agree after all migrations.
"""

from __future__ import annotations

POSTGRES_INSTALL = [
    """CREATE OR REPLACE FUNCTION accounts_appuser_ban_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM accounts_appuserban WHERE user_id = OLD.id;
    ELSIF NEW.banned_until IS NULL THEN
        DELETE FROM accounts_appuserban WHERE user_id = NEW.id;
    ELSE
        INSERT INTO accounts_appuserban (user_id, banned_until) VALUES (NEW.id, NEW.banned_until)
        ON CONFLICT (user_id) DO UPDATE SET banned_until = EXCLUDED.banned_until;
    END IF;
    RETURN NULL;
END $$""",
    "CREATE OR REPLACE TRIGGER appuser_ban_insert AFTER INSERT ON accounts_appuser FOR EACH ROW "
    "WHEN (NEW.banned_until IS NOT NULL) EXECUTE FUNCTION accounts_appuser_ban_sync()",
    "CREATE OR REPLACE TRIGGER appuser_ban_update AFTER UPDATE OF banned_until ON accounts_appuser FOR EACH ROW "
    "WHEN (OLD.banned_until IS DISTINCT FROM NEW.banned_until) EXECUTE FUNCTION accounts_appuser_ban_sync()",
    "CREATE OR REPLACE TRIGGER appuser_ban_delete AFTER DELETE ON accounts_appuser FOR EACH ROW "
    "WHEN (OLD.banned_until IS NOT NULL) EXECUTE FUNCTION accounts_appuser_ban_sync()",
    "INSERT INTO accounts_appuserban (user_id, banned_until) "
    "SELECT id, banned_until FROM accounts_appuser WHERE banned_until IS NOT NULL "
    "ON CONFLICT (user_id) DO UPDATE SET banned_until = EXCLUDED.banned_until",
    # Room on each page for a ban's new row version (HOT); applies to pages written from now on.
    "ALTER TABLE accounts_appuser SET (fillfactor = 80)",
]
POSTGRES_REMOVE = [
    "ALTER TABLE accounts_appuser RESET (fillfactor)",
    "DROP TRIGGER IF EXISTS appuser_ban_insert ON accounts_appuser",
    "DROP TRIGGER IF EXISTS appuser_ban_update ON accounts_appuser",
    "DROP TRIGGER IF EXISTS appuser_ban_delete ON accounts_appuser",
    "DROP FUNCTION IF EXISTS accounts_appuser_ban_sync()",
]

SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS appuser_ban_insert AFTER INSERT ON accounts_appuser
    WHEN NEW.banned_until IS NOT NULL BEGIN
        INSERT OR REPLACE INTO accounts_appuserban (user_id, banned_until) VALUES (NEW.id, NEW.banned_until);
    END""",
    """CREATE TRIGGER IF NOT EXISTS appuser_ban_update AFTER UPDATE OF banned_until ON accounts_appuser
    WHEN OLD.banned_until IS NOT NEW.banned_until BEGIN
        DELETE FROM accounts_appuserban WHERE user_id = NEW.id AND NEW.banned_until IS NULL;
        INSERT OR REPLACE INTO accounts_appuserban (user_id, banned_until)
            SELECT NEW.id, NEW.banned_until WHERE NEW.banned_until IS NOT NULL;
    END""",
    """CREATE TRIGGER IF NOT EXISTS appuser_ban_delete AFTER DELETE ON accounts_appuser
    WHEN OLD.banned_until IS NOT NULL BEGIN
        DELETE FROM accounts_appuserban WHERE user_id = OLD.id;
    END""",
]
SQLITE_SYNC = [
    "DELETE FROM accounts_appuserban WHERE user_id NOT IN "
    "(SELECT id FROM accounts_appuser WHERE banned_until IS NOT NULL)",
    "INSERT OR REPLACE INTO accounts_appuserban (user_id, banned_until) "
    "SELECT id, banned_until FROM accounts_appuser WHERE banned_until IS NOT NULL",
]
TRIGGERS = ("appuser_ban_insert", "appuser_ban_update", "appuser_ban_delete")
SQLITE_INSTALL = [*SQLITE_TRIGGERS, *SQLITE_SYNC]
SQLITE_REMOVE = [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS]


def installed(connection) -> set[str]:
    """The names of the ban triggers present in ``connection``'s database."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'accounts_appuser'")
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts_appuser'::regclass "
                           "AND NOT tgisinternal")
        return {name for (name,) in cursor.fetchall()} & set(TRIGGERS)


def ensure(connection) -> bool:
    """Re-create the SQLite triggers a table rebuild dropped (and bring the table in step with the
    users while none was there). True when something was missing. PostgreSQL keeps a table's
    triggers through every ``ALTER TABLE``: nothing to do there."""
    if connection.vendor != "sqlite":
        return False
    if "accounts_appuserban" not in connection.introspection.table_names():
        return False  # before migration 0012
    if installed(connection) == set(TRIGGERS):
        return False
    with connection.cursor() as cursor:
        for sql in SQLITE_INSTALL:
            cursor.execute(sql)
    return True
