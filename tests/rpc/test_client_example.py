"""docs/examples/grpc_client.py (the README's Python client) works against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.conftest import REPO_ROOT, SHARED_DATA
from tests.workflows.conftest import PHOTO_A, PRODUCT_A

EXAMPLE = REPO_ROOT / "docs" / "examples" / "grpc_client.py"


async def _run(port: int, token: str, product: str) -> tuple[int, str]:
    # A subprocess awaited without blocking: the server under test runs on this event loop.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), f"127.0.0.1:{port}",
        str(SHARED_DATA / "pills" / PRODUCT_A / PHOTO_A), product,
        env={**os.environ, "VERITY_TOKEN": token, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_the_example_client(rpc_app, api_token):
    port = rpc_app.app.state.grpc.port
    code, out = await _run(port, api_token, PRODUCT_A)
    assert code == 0, out
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["health"] == "SERVING" and answer["dimension"] > 0
    assert answer["band"] in ("MATCH", "UNCERTAIN", "MISMATCH")
    code, out = await _run(port, api_token, "no-such-product")
    assert code == 1 and "NOT_FOUND VERITY-4200 retryable=false" in out, out
