"""A PostgreSQL store: one pool shared by handles on several hosts (needs the ``postgres``
extra, psycopg 3). Open it wherever a store path is accepted, with a connection URI:
``ExampleIndex.open_or_create("postgresql://…", k=4)``."""

from .connect import is_dsn
from .store import PgWriteTransaction, PostgresStore

__all__ = ["PgWriteTransaction", "PostgresStore", "is_dsn"]
