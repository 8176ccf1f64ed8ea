"""Throwaway PostgreSQL schemas: every test, simulated run and live stack gets one of its own.

A run on a shared server works in a schema nobody else uses, so runs can go on side by side and
leave nothing behind.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

__all__ = ["create_schema", "drop_schema"]


def create_schema(url: str, prefix: str = "rt") -> str:
    """Create a uniquely named empty schema (`<prefix>_<16 hex>`) and return its name."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema


def drop_schema(url: str, schema: str) -> None:
    """Drop a schema and everything in it (waits at most 10 s for locks)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
