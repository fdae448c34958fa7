"""Render deploy/k8s with `kubectl kustomize` (in a copy, with freshly made secret files, as an
operator would) and validate the result against the Kubernetes schemas bundled by
kubernetes-validate; no cluster, no network."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes_validate import utils as kv

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# The Kubernetes version the manifests are checked against (bundled by kubernetes-validate).
K8S_VERSION = "1.34.0"
RENDER_TIMEOUT_S = 120


def write_secret_files(secrets: Path) -> None:
    """What an operator puts in an overlay's secrets/ folder: a database URL and a key."""
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "database-url").write_text("postgresql://verity@10.20.0.5:5432/verity")
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (secrets / "smart-private-key.pem").write_bytes(pem)


def copy_tree(workdir: Path) -> Path:
    """A private copy of deploy/k8s (with secret files in the example overlay)."""
    target = workdir / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("database-url", "*.pem"))
    write_secret_files(target / "overlays" / "example" / "secrets")
    return target


def render(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize FOLDER` as a list of resources; CalledProcessError when it fails."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed: see .ci/run"
    out = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        check=True,
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def schema_errors(resources: list[dict[str, Any]]) -> list[str]:
    """Strict schema validation of every resource (unknown fields are errors too)."""
    errors = []
    for res in resources:
        try:
            kv.validate(res, K8S_VERSION, strict=True)
        except (kv.ValidationError, kv.SchemaNotFoundError) as exc:
            where = f"{res.get('kind')}/{res.get('metadata', {}).get('name')}"
            errors.append(f"{where}: {getattr(exc, 'message', exc)}")
    return errors


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one kind by name (generated Secret/ConfigMap names keep their hash)."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_specs(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pod template spec of every workload, by workload name."""
    return {
        r["metadata"]["name"]: r["spec"]["template"]["spec"]
        for r in resources
        if r["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    }
