"""`verity demo`: start Verity on the embedded defaults and show that it is ready."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import uvicorn

from service.config import Settings
from service.main import create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def run_demo(settings: Settings) -> int:
    """Serve on a free loopback port, wait for readiness, print it, shut down."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(600):
                if task.done():
                    break
                try:
                    resp = await client.get("/health/ready")
                    if resp.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                resp = await client.get("/health/ready")
            if task.done():
                print("verity: the service failed to start; see the log above")
                return 1
            print(f"Verity is up at {base} (embedded database under {settings.data_dir})")
            print(f"GET /health/ready -> {resp.status_code}")
            print(json.dumps(resp.json(), indent=2))
            return 0 if resp.status_code == 200 else 1
    finally:
        server.should_exit = True
        try:
            await task
        except SystemExit:  # uvicorn exits this way when the app fails to start
            pass
