"""Provenance idempotency on the real test FHIR server: conditional create on `target=` (what
the builder does) against PUT to a client-assigned id, same pill write-back Bundles.

Each of N verifications is delivered 3 times (first delivery + 2 re-deliveries, as after lost
responses) each way, on a fresh server per way. Reports the time per delivery (first and
re-delivery), the Provenance resources and versions on the server afterwards. Needs
`bash tests/servers/install.sh` first.

    python bench/bench_provenance_idempotency.py --verifications 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` beside `service`

from tests.servers.servers import start_auth_server, start_fhir_server  # noqa: E402
from tests.writeback import sample  # noqa: E402
from tests.writeback.test_provenance_idempotency import (  # noqa: E402
    get,
    history_length,
    post,
    put_variant,
)

SYSTEM = "urn:verity:bench:provenance"


def run(fhir: Any, n: int, way: str) -> dict[str, float]:
    patient = f"Patient/{uuid.uuid4()}"
    first: list[float] = []
    again: list[float] = []
    for _ in range(n):
        write = sample.write_for(patient, SYSTEM)
        bundle = write.bundle if way == "conditional" else put_variant(write)[0]
        for k in range(3):
            t0 = time.perf_counter()
            post(fhir, bundle)
            (first if k == 0 else again).append((time.perf_counter() - t0) * 1000)
    provs = [
        e["resource"] for e in get(fhir, "Provenance", patient=patient, _count="1000")["entry"]
    ]
    versions = sum(history_length(fhir, p["id"]) for p in provs)
    return {
        "first_ms": statistics.median(first),
        "again_ms": statistics.median(again),
        "provenances": len(provs),
        "versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verifications", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prov-"))
    auth = start_auth_server(work)
    fhir = start_fhir_server(auth, work)
    try:
        print(f"{args.verifications} verifications x 3 deliveries, pill Bundle of 5 entries")
        for way in ("conditional", "put"):
            fhir.restart()  # empty server: the in-memory engine slows as it fills
            r = run(fhir, args.verifications, way)
            print(
                f"{way:12s} median first {r['first_ms']:.1f} ms, re-delivery {r['again_ms']:.1f}"
                f" ms; Provenance resources {r['provenances']:.0f}, versions {r['versions']:.0f}"
            )
    finally:
        fhir.stop()
        auth.server.stop()


if __name__ == "__main__":
    main()
