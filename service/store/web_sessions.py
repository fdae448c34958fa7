"""Server-side sessions of the web app (table `web_session`, migration 0009).

The browser holds only a random id (signed, in a cookie); the table keys rows by the id's
SHA-256, so a copy of the table does not let anyone present a session. A pending row is an
authorization under way (state, PKCE verifier) and is taken exactly once by the callback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

State = Literal["pending", "active"]


@dataclass(frozen=True)
class SessionRow:
    state: State
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    data: dict[str, Any]


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create(
    conn: psycopg.AsyncConnection,
    session_id: str,
    state: State,
    data: dict[str, Any],
    lifetime: timedelta,
) -> None:
    await conn.execute(
        """INSERT INTO web_session (id_hash, state, expires_at, data)
           VALUES (%s, %s, now() + %s, %s)""",
        (id_hash(session_id), state, lifetime, Jsonb(data)),
    )


async def take_pending(conn: psycopg.AsyncConnection, session_id: str) -> dict[str, Any] | None:
    """The pending authorization's data, deleted as it is read: a callback works once."""
    cur = await conn.execute(
        """DELETE FROM web_session WHERE id_hash = %s AND state = 'pending'
           RETURNING data, expires_at > now() AS live""",
        (id_hash(session_id),),
    )
    row = await cur.fetchone()
    if row is None or not row[1]:
        return None
    return dict(row[0])


async def touch(
    conn: psycopg.AsyncConnection, session_id: str, idle: timedelta
) -> SessionRow | None:
    """The active session, its idle clock restarted; None when unknown, idle or past its end."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """UPDATE web_session SET last_seen_at = now()
           WHERE id_hash = %s AND state = 'active' AND expires_at > now()
             AND last_seen_at > now() - %s
           RETURNING state, created_at, last_seen_at, expires_at, data""",
        (id_hash(session_id), idle),
    )
    row = await cur.fetchone()
    return SessionRow(**row) if row else None


async def update_data(conn: psycopg.AsyncConnection, session_id: str, data: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE web_session SET data = %s WHERE id_hash = %s AND state = 'active'",
        (Jsonb(data), id_hash(session_id)),
    )


async def delete(conn: psycopg.AsyncConnection, session_id: str) -> None:
    await conn.execute("DELETE FROM web_session WHERE id_hash = %s", (id_hash(session_id),))


async def purge_expired(conn: psycopg.AsyncConnection, idle: timedelta) -> int:
    """Drop ended sessions (past their end, or idle too long); the count removed."""
    cur = await conn.execute(
        "DELETE FROM web_session WHERE expires_at <= now() OR last_seen_at <= now() - %s",
        (idle,),
    )
    return cur.rowcount
