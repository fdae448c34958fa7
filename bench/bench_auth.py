"""Added latency of inbound token checking: the same tiny endpoint with and without
`require_scopes`, in one run, with a real token from the test authorization server (JWKS
cached after the first request). Needs `bash tests/servers/install.sh` first.

    python bench/bench_auth.py --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` beside `service`

from service.auth.deps import require_scopes  # noqa: E402
from service.auth.tokens import Principal, TokenValidator  # noqa: E402
from service.config import AuthSettings  # noqa: E402
from tests.servers.servers import start_auth_server  # noqa: E402


def _app(settings: AuthSettings) -> FastAPI:
    app = FastAPI()
    app.state.token_validator = TokenValidator(settings)
    need = Depends(require_scopes("Verification.c"))

    @app.get("/open")
    async def open_() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/protected")
    async def protected(who: Principal = need) -> dict[str, Any]:
        return {"ok": True}

    return app


async def _timed(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.get(path, headers=headers)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    return out


def _row(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p50, p95 = xs[len(xs) // 2], xs[int(len(xs) * 0.95)]
    mean = statistics.fmean(xs)
    us = [x * 1e6 for x in (p50, p95, mean)]
    return f"  {name:<18} p50 {us[0]:6.0f} us  p95 {us[1]:6.0f} us  mean {us[2]:6.0f} us"


async def main(n: int) -> None:
    auth = start_auth_server(Path(tempfile.mkdtemp(prefix="bench-auth-")))
    try:
        settings = AuthSettings(issuer=auth.issuer, audience=auth.api_audience)
        app = _app(settings)
        token = auth.mint_token(
            "api-caller", scope="system/Verification.c", resource=auth.api_audience
        )["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://verity.bench"
        ) as client:
            await _timed(client, "/protected", bearer, 50)  # warm up: discovery + JWKS fetch
            await _timed(client, "/open", {}, 50)
            open_t, prot_t = [], []
            for _ in range(4):  # interleave so drift hits both alike
                open_t += await _timed(client, "/open", {}, n // 4)
                prot_t += await _timed(client, "/protected", bearer, n // 4)
        validator: TokenValidator = app.state.token_validator
        direct = []
        for _ in range(n):
            t = time.perf_counter()
            await validator.validate(token)
            direct.append(time.perf_counter() - t)
        await validator.aclose()
        print(
            f"inbound token check, {n} requests each (in-process ASGI, RS256 token, cached JWKS):"
        )
        print(_row("no auth", open_t))
        print(_row("require_scopes", prot_t))
        print(_row("validate() alone", direct))
        added = statistics.median(prot_t) - statistics.median(open_t)
        print(
            f"  added per request (p50 difference): {added * 1e6:.0f} us; "
            f"JWKS fetches during the run: {validator.jwks_fetches}"
        )
    finally:
        auth.server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
