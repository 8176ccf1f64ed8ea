"""Store fixtures, until `harness/pytest_plugin.py` registers `harness.pgtest` for everyone."""

from harness.pgtest import pg_database, pg_url, store, store_factory

__all__ = ["pg_database", "pg_url", "store", "store_factory"]
