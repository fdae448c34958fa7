"""A real Orthanc with the DICOMweb plugin, as a plain object for fixtures and bench/.

`start_orthanc(workdir)` writes a config (free HttpPort, `RemoteAccessAllowed: false`,
`DicomServerEnabled: false`, storage in `workdir`, the Debian `libOrthancDicomWeb.so`) and runs
`Orthanc config.json --verbose` (the Debian service does not start in containers), keeping the
log: `requests_seen()` reads the HTTP lines of that log (method + path; Orthanc does not log
the query string) to prove what was or was not requested. Orthanc 1.10 cannot bind one
address: it listens on every interface, and `RemoteAccessAllowed: false` makes it refuse any
client that is not loopback. Optional `users` turn on HTTP Basic (`RegisteredUsers`);
`bearer_token` installs a Lua `IncomingHttpRequestFilter` that answers 403 unless the request
carries `Authorization: Bearer <token>` (Orthanc has no bearer auth of its own).

Installed by `.ci/run` (apt-get install orthanc orthanc-dicomweb); a missing binary or plugin
is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.servers.servers import free_port

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc/plugins"))
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"
_HTTP_LINE = re.compile(r"\(http\) (GET|POST|PUT|DELETE|HEAD|OPTIONS) (\S+)")


def _plugin() -> Path:
    for folder in PLUGIN_DIRS:
        if (folder / DICOMWEB_PLUGIN).is_file():
            return folder / DICOMWEB_PLUGIN
    raise RuntimeError(
        "Orthanc DICOMweb plugin not found; install it: apt-get install orthanc-dicomweb"
    )


@dataclass
class OrthancServer:
    """One Orthanc process; stop()/start() keep its storage (a PACS going down and back)."""

    workdir: Path
    port: int
    users: dict[str, str] = field(default_factory=dict)
    bearer_token: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The DICOMweb base (QIDO-RS/WADO-RS/STOW-RS root)."""
        return f"{self.root}/dicom-web"

    def headers(self) -> dict[str, str]:
        """What an administrator's request carries to get past this instance's auth."""
        if self.bearer_token:
            return {"Authorization": f"Bearer {self.bearer_token}"}
        return {}

    def _auth(self) -> httpx.BasicAuth | None:
        if not self.users:
            return None
        user, password = next(iter(self.users.items()))
        return httpx.BasicAuth(user, password)

    def _config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        config: dict[str, Any] = {
            "Name": f"verity-test-{self.port}",
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": [str(_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{self.port}"},
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "HttpTimeout": 30,
        }
        if self.bearer_token:
            script = self.workdir / "bearer_filter.lua"
            script.write_text(
                "function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)\n"
                f"  return httpHeaders['authorization'] == 'Bearer {self.bearer_token}'\n"
                "end\n"
            )
            config["LuaScripts"] = [str(script)]
        return config

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        binary = shutil.which("Orthanc")
        if binary is None:
            raise RuntimeError("Orthanc not found; install it: apt-get install orthanc")
        config_path = self.workdir / "config.json"
        config_path.write_text(json.dumps(self._config(), indent=1))
        self.starts += 1
        log = self.workdir / f"orthanc-{self.starts}.log"
        with (self.workdir / "orthanc.stderr").open("ab") as stderr:
            self.proc = subprocess.Popen(
                [binary, str(config_path), "--verbose", f"--logfile={log}"],
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"Orthanc exited ({self.proc.returncode}): {tail}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(
                    f"{self.root}/system", auth=self._auth(), headers=self.headers(), timeout=1
                )
                if r.status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("Orthanc not ready after 30 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _client(self) -> httpx.Client:
        return httpx.Client(auth=self._auth(), headers=self.headers(), timeout=60)

    def stow(self, paths: Iterable[Path]) -> dict[str, Any]:
        """STOW-RS the files in one multipart/related request; Orthanc's DICOM JSON answer."""
        boundary = uuid.uuid4().hex
        body = bytearray()
        for path in paths:
            body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            body += path.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        with self._client() as http:
            r = http.post(
                f"{self.base_url}/studies",
                content=bytes(body),
                headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
            )
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        return answer

    def delete_all(self) -> None:
        """Remove every stored study (Orthanc's own REST API)."""
        with self._client() as http:
            for study_id in http.get(f"{self.root}/studies").raise_for_status().json():
                http.delete(f"{self.root}/studies/{study_id}").raise_for_status()

    def instance_tags(self, sop_uid: str) -> dict[str, Any]:
        """The stored instance's main tags as Orthanc keeps them (found by SOP Instance UID)."""
        with self._client() as http:
            found = http.post(
                f"{self.root}/tools/find",
                json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}, "Expand": True},
            ).raise_for_status()
            rows: list[dict[str, Any]] = found.json()
            if not rows:
                raise LookupError("instance not stored")
            tags: dict[str, Any] = (
                http.get(f"{self.root}/instances/{rows[0]['ID']}/simplified-tags")
                .raise_for_status()
                .json()
            )
            return tags

    def requests_seen(self) -> list[tuple[str, str]]:
        """(method, path) of every HTTP request this instance logged, oldest first."""
        seen: list[tuple[str, str]] = []
        for n in range(1, self.starts + 1):
            log = self.workdir / f"orthanc-{n}.log"
            if log.exists():
                seen += _HTTP_LINE.findall(log.read_text(errors="replace"))
        return seen


def start_orthanc(
    workdir: Path, *, users: dict[str, str] | None = None, bearer_token: str | None = None
) -> OrthancServer:
    """A running Orthanc on a free loopback port with its storage and log in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = OrthancServer(workdir, free_port(), dict(users or {}), bearer_token)
    server.start()
    return server
