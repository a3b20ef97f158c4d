"""atomik for SQLite in Python: the loadable extension, bundled.

>>> import sqlite3, atomik_sqlite
>>> db = sqlite3.connect("app.db")
>>> atomik_sqlite.load(db)
>>> db.execute("SELECT atomik_version()").fetchone()

``load(conn)`` loads the extension into a ``sqlite3`` connection (and turns
extension loading off again); ``loadable_path()`` is the library's path
for other hosts (``.load`` in the sqlite3 shell, ``load_extension`` of
another driver).
"""

import os
import sqlite3

__all__ = ["load", "loadable_path", "__version__"]

__version__ = "0.1.0"

_LIBRARY = "libsqlite_atomik.so"


def loadable_path() -> str:
    """The path of the bundled extension library."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), _LIBRARY)


def load(conn: sqlite3.Connection) -> None:
    """Load atomik into ``conn``: every ``atomik_*`` function becomes
    available on that connection.

    Raises ``RuntimeError`` when this Python's ``sqlite3`` module was built
    without extension loading, and ``sqlite3.OperationalError`` when SQLite
    refuses the library.
    """
    path = loadable_path()
    if not os.path.exists(path):
        raise RuntimeError(f"atomik_sqlite: the extension library is missing at {path}")
    if not hasattr(conn, "enable_load_extension"):
        raise RuntimeError(
            "atomik_sqlite: this Python's sqlite3 module was built without "
            "extension loading, so no SQLite extension can be loaded into it "
            "(pyenv: rebuild Python with "
            "PYTHON_CONFIGURE_OPTS=--enable-loadable-sqlite-extensions; or use "
            "the system's Python)"
        )
    conn.enable_load_extension(True)
    try:
        conn.load_extension(path)
    finally:
        conn.enable_load_extension(False)
