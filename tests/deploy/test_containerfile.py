"""The Containerfile keeps its invariants (parsed, not grepped), and each rule catches a
Containerfile that breaks it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.deploy.containerfile_rules import context_sources, ignored, problems, stages

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "Containerfile").read_text()
IGNORE = [
    line.strip()
    for line in (REPO / ".containerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def test_the_containerfile_keeps_every_invariant() -> None:
    assert problems(TEXT) == []
    found = stages(TEXT)
    assert [s.name for s in found] == ["build", "runtime"]
    assert found[0].base == found[1].base == "${BASE}"  # the venv's python is the same in both


def test_what_the_build_copies_is_in_the_context_and_nothing_else_is() -> None:
    sources = context_sources(TEXT)
    assert sources, "the build copies nothing from the context"
    for src in sources:
        assert (REPO / src).exists(), src
        assert not ignored(src, IGNORE), f"{src} is copied but .containerignore drops it"
    for private in ("tests/conftest.py", ".git/HEAD", "bench/bench_verify.py", "docs/fhir.md"):
        assert ignored(private, IGNORE), f"{private} would be sent to the build"
    assert ignored("service/__pycache__/main.cpython-311.pyc", IGNORE)


def test_the_wheel_carries_the_bundled_models() -> None:
    """The image's models come from the wheel: its package-data must name them, and they exist."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["service"]
    assert "models/bundled/*.onnx" in patterns and "models/bundled/*.json" in patterns
    bundled = REPO / "service" / "models" / "bundled"
    assert {p.name for p in bundled.glob("*.onnx")} >= {
        "efficientnet-lite0.onnx",
        "pill-head-wccn.onnx",
    }
    for name in ("efficientnet-lite0.onnx", "pill-head-wccn.onnx", "pill-fusion.json"):
        assert name in TEXT, f"the image's model check does not name {name}"


def _replace(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new)


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (_replace("USER 10001:10001", "USER root"), "runs as root"),
        (_replace("USER 10001:10001\n", ""), "runs as root"),
        (_replace("/health/live", "/health/ready"), "no HEALTHCHECK"),
        (
            _replace("libgl1 libglib2.0-0", "libgl1 libglib2.0-0 build-essential"),
            "build tools installed",
        ),
        (_replace("libgl1 libglib2.0-0", "libgl1 libpq-dev"), "build tools installed"),
        (
            _replace("COPY --from=build /opt/verity /opt/verity", "COPY . /src"),
            "copies from the build context",
        ),
        (_replace("VERITY_AUTH__ENABLED=true", "VERITY_AUTH__ENABLED=false"), "auth is turned off"),
        (_replace('VOLUME ["/tmp", "/var/lib/verity"]', 'VOLUME ["/tmp"]'), "not declared"),
        (_replace('CMD ["serve"]', 'CMD ["demo"]'), "not `verity serve`"),
        (_replace("FROM ${BASE} AS runtime", "RUN true"), "not multi-stage"),
        (
            _replace(
                "COPY --from=build /opt/verity /opt/verity",
                "COPY --from=builder /opt/verity /opt/verity",
            ),
            "unknown stage",
        ),
    ],
)
def test_each_rule_catches_a_containerfile_that_breaks_it(broken: str, expected: str) -> None:
    assert any(expected in p for p in problems(broken)), problems(broken)


def test_a_pip_install_in_the_final_stage_is_refused() -> None:
    broken = TEXT.replace("ENTRYPOINT", "RUN python3 -m pip install requests\nENTRYPOINT")
    assert any("package installer" in p for p in problems(broken))
