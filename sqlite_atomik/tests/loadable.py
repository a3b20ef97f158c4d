"""Load the built extension into /usr/bin/python3's sqlite3 module, as an
app would, and check values, errors, the pinned surface and a convergence
between two database files. Usage: loadable.py PATH_TO_LIBSQLITE_ATOMIK LIB_RS"""
import os
import re
import sqlite3
import sys
import tempfile

so, lib_rs = sys.argv[1], sys.argv[2]
declared = sorted(re.findall(r'\("(atomik_\w+)", (\d+)\)', open(lib_rs).read()))
declared = [(n, int(a)) for n, a in declared]


def connect(path):
    c = sqlite3.connect(path, isolation_level=None)
    c.enable_load_extension(True)
    c.load_extension(so)
    c.enable_load_extension(False)
    return c


def one(c, sql, *args):
    return c.execute(sql, args).fetchone()[0]


def fails(c, sql, want, *args):
    try:
        c.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        assert str(e) == want, f"{sql}: got {e!r}, want {want!r}"
        return
    raise AssertionError(f"{sql} did not fail")


tmp = tempfile.mkdtemp(prefix="atomik-py-")
a = connect(os.path.join(tmp, "device.db"))
hub = connect(os.path.join(tmp, "hub.db"))

got = sorted(a.execute(
    "SELECT name, narg FROM pragma_function_list WHERE name LIKE 'atomik%'").fetchall())
assert got == declared, f"surface {got} != declared {declared}"

assert one(a, "SELECT atomik_version()") != ""
assert one(a, "SELECT atomik_read(atomik_accum(atomik_add(40), 2))") == 42
assert one(a, "SELECT atomik_text(atomik_set(atomik_xor(1), 255))") == "xor:0x00000000000000ff;pending=0x00000000000000ff"
assert len(one(a, "SELECT atomik_add(1)")) == 17
assert one(a, "SELECT atomik_read(NULL)") is None
fails(a, "SELECT atomik_read(x'1100')", "atomik_read: argument 1: atomik value must be 17 bytes, got 2")
fails(a, "SELECT atomik_read('x')", "atomik_read: argument 1 must be an atomik value (a 17-byte BLOB), got TEXT")
fails(a, "SELECT atomik_apply(NULL)", "atomik_apply: argument 1 must be an atomik message (a BLOB), got NULL")

for c in (a, hub):
    c.executescript("""
        CREATE TABLE stock(sku TEXT PRIMARY KEY, qty BLOB);
        SELECT atomik_track('stock', 'qty');
    """)
a.execute("INSERT INTO stock VALUES ('apple', atomik_add(10)), ('pear', atomik_add(0))")
hub.execute("INSERT INTO stock VALUES ('apple', atomik_add(5))")
a.execute("UPDATE stock SET qty = atomik_accum(qty, -3) WHERE sku = 'apple'")

for _ in range(2):
    req = one(a, "SELECT atomik_sync_request()")
    resp = one(hub, "SELECT atomik_sync(?)", req)
    one(a, "SELECT atomik_sync_finish(?)", resp)
    # A duplicated response is a no-op.
    assert one(a, "SELECT atomik_sync_finish(?)", resp) == 0

rows = lambda c: c.execute("SELECT sku, qty FROM stock ORDER BY sku").fetchall()
assert rows(a) == rows(hub), (rows(a), rows(hub))
assert one(a, "SELECT atomik_read(qty) FROM stock WHERE sku = 'apple'") == 12
assert one(a, "SELECT atomik_digest('stock', 'qty')") == one(hub, "SELECT atomik_digest('stock', 'qty')")

# A bad batch changes nothing and names the problem.
before = rows(hub)
fails(hub, "SELECT atomik_sync(?)", "atomik_sync: expected an atomik v2 sync request message, got a v2 sync response message",
      resp)
fails(hub, "SELECT atomik_sync(?)", "atomik_sync: atomik message has wire format version 1; this call reads version 2 (protocol v2 sync messages)",
      b"AK\x13" + resp[3:])
assert rows(hub) == before
print("python loadable test: ok")
