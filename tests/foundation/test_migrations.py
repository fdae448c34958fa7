import asyncio
import os
import subprocess
import sys

import psycopg

from service.store import migrate


async def test_fresh_upgrade_applies_every_file_in_order(make_database):
    url = make_database("mig")
    applied = await migrate.upgrade(url)
    files = migrate.discover()
    assert [m.version for m in applied] == [m.version for m in files]
    async with await psycopg.AsyncConnection.connect(url) as conn:
        states = await migrate.status(conn)
        assert all(s.applied_at is not None and not s.changed for s in states)
        ext = await (
            await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).fetchone()
        assert ext is not None
        tables = {
            r[0]
            for r in await (
                await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).fetchall()
        }
    assert {"product", "reference_image", "reference_embedding", "verification", "outbox"} <= tables


async def test_rerun_is_a_noop(make_database):
    url = make_database("mig")
    await migrate.upgrade(url)
    assert await migrate.upgrade(url) == []


async def test_concurrent_upgrades_record_each_migration_once(make_database):
    url = make_database("mig")
    env = {**os.environ, "DATABASE_URL": url, "VERITY_LOG_LEVEL": "WARNING"}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli.main",
            "db",
            "upgrade",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    outputs = sorted(out.decode() for out, _ in results)
    n = len(migrate.discover())
    # One process applied everything, the other found nothing to do.
    assert outputs[0].startswith("applied 0 migration(s)")
    assert outputs[1].startswith(f"applied {n} migration(s)")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (
            await conn.execute("SELECT version, count(*) FROM schema_migration GROUP BY version")
        ).fetchall()
    assert len(rows) == n and all(count == 1 for _, count in rows)


def test_status_command_reports_pending_then_applied(make_database):
    url = make_database("mig")
    env = {**os.environ, "DATABASE_URL": url}
    cmd = [sys.executable, "-m", "service.cli", "db", "status"]
    before = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert before.returncode == 1 and "pending" in before.stdout
    subprocess.run([*cmd[:-1], "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    after = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0 and "pending" not in after.stdout


def test_bad_migration_name_is_refused(tmp_path):
    (tmp_path / "1_oops.sql").write_text("SELECT 1;")
    try:
        migrate.discover(tmp_path)
    except ValueError as exc:
        assert "NNNN_name.sql" in str(exc)
    else:
        raise AssertionError("expected ValueError")
