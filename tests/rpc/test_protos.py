"""The committed generated code is what scripts/gen_protos.py makes from proto/ today."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_generated_code_matches_the_protos(tmp_path):
    out = tmp_path / "gen"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_protos.py"), "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    committed = REPO_ROOT / "service" / "rpc" / "gen"
    fresh = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    kept = sorted(
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == kept
    for rel in fresh:
        assert (out / rel).read_text() == (committed / rel).read_text(), (
            f"{rel} drifted: run scripts/gen_protos.py"
        )
