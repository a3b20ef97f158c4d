"""The installed atomik-sqlite wheel, in a fresh venv, with the standard
library's sqlite3: it loads, two database files converge through a sync,
the feed reads the hub's log, and extension loading is off again after
`load`. Run by python/test.sh; exits non-zero on the first failure."""

import os
import sqlite3
import sys
import tempfile

import atomik_sqlite

assert os.path.isfile(atomik_sqlite.loadable_path()), atomik_sqlite.loadable_path()
assert "site-packages" in atomik_sqlite.loadable_path(), "imported from the installed wheel"


def connect(path):
    db = sqlite3.connect(path, isolation_level=None)
    atomik_sqlite.load(db)
    return db


with tempfile.TemporaryDirectory() as tmp:
    device = connect(os.path.join(tmp, "device.db"))
    hub = connect(os.path.join(tmp, "hub.db"))
    (version,) = device.execute("SELECT atomik_version()").fetchone()
    assert version == atomik_sqlite.__version__, (version, atomik_sqlite.__version__)
    for db in (device, hub):
        db.execute("CREATE TABLE stock(sku INTEGER PRIMARY KEY, qty BLOB)")
        db.execute("SELECT atomik_track('stock', 'qty')")
    device.execute("INSERT INTO stock VALUES (7, atomik_add(-2)), (9, atomik_add(5))")
    hub.execute("INSERT INTO stock VALUES (7, atomik_add(40))")
    for _ in range(2):
        request = device.execute("SELECT atomik_sync_request()").fetchone()[0]
        response = hub.execute("SELECT atomik_sync(?)", (request,)).fetchone()[0]
        device.execute("SELECT atomik_sync_finish(?)", (response,))
    rows = [
        db.execute("SELECT group_concat(sku || '=' || atomik_read(qty), ' ') FROM stock").fetchone()[0]
        for db in (device, hub)
    ]
    assert rows == ["7=38 9=5"] * 2, rows
    digests = {db.execute("SELECT atomik_digest('stock', 'qty')").fetchone()[0] for db in (device, hub)}
    assert len(digests) == 1, digests
    feed = hub.execute("SELECT tbl, key, delta FROM atomik_feed(0) ORDER BY position, key").fetchall()
    assert ("stock", 7, -2) in feed and ("stock", 9, 5) in feed, feed
    # load() turned extension loading off again: SQL cannot load a library.
    try:
        device.execute("SELECT load_extension(?)", (atomik_sqlite.loadable_path(),))
    except sqlite3.OperationalError as e:
        assert "not authorized" in str(e), e
    else:
        sys.exit("load_extension() from SQL worked after atomik_sqlite.load()")

print(f"atomik-sqlite {atomik_sqlite.__version__} on SQLite {sqlite3.sqlite_version}: ok")
