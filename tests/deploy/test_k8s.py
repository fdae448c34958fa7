"""deploy/k8s renders (kubectl kustomize), validates against the Kubernetes schemas
(kubernetes-validate, strict), and keeps what the operator relies on: probes on /health/*,
non-root read-only pods, secrets only from Secrets (the SMART key as a file), settings that
Verity knows, egress only where it must go."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from tests.deploy.k8s_render import by_kind, copy_tree, pod_specs, render, schema_errors

SECRET_WORDS = ("PASSWORD", "PRIVATE_KEY", "TOKEN", "DATABASE_URL", "DB__URL")
NOT_VERITY = {"MALLOC_ARENA_MAX"}  # glibc, see deploy/verity.env.example
EGRESS_PORTS = {53, 5432, 443}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="module")
def example(tree: Path) -> list[dict[str, Any]]:
    return render(tree / "overlays" / "example")


@pytest.mark.parametrize("folder", ["base", "overlays/example"])
def test_renders_and_validates_against_the_kubernetes_schemas(tree: Path, folder: str) -> None:
    resources = render(tree / folder)
    assert schema_errors(resources) == []
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Job", "Service", "HorizontalPodAutoscaler", "NetworkPolicy",
            "PodDisruptionBudget", "ConfigMap", "ServiceAccount"} <= kinds  # fmt: skip


def test_a_broken_manifest_fails_validation(example: list[dict[str, Any]]) -> None:
    api = copy.deepcopy(by_kind(example, "Deployment")["verity-api"])
    api["spec"]["replicas"] = "two"
    assert schema_errors([api])
    typo = copy.deepcopy(by_kind(example, "Deployment")["verity-api"])
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert schema_errors([typo]), "strict validation must refuse an unknown field"
    hpa = copy.deepcopy(by_kind(example, "HorizontalPodAutoscaler")["verity-api"])
    del hpa["spec"]["maxReplicas"]
    assert schema_errors([hpa])


def test_a_broken_file_fails_to_render_or_validate(tree: Path, tmp_path: Path) -> None:
    broken = copy_tree(tmp_path)
    job = broken / "base" / "migrate-job.yaml"
    job.write_text(job.read_text().replace("backoffLimit: 3", "backoffLimit: three"))
    assert any("three" in e for e in schema_errors(render(broken / "base")))
    kust = broken / "base" / "kustomization.yaml"
    kust.write_text(kust.read_text().replace("- pdb.yaml", "- pdb-missing.yaml"))
    with pytest.raises(subprocess.CalledProcessError):
        render(broken / "base")


def test_the_overlay_sets_the_hospital_values(example: list[dict[str, Any]]) -> None:
    config = by_kind(example, "ConfigMap")["verity-config"]["data"]
    assert config["VERITY_FHIR__CLIENT_ID"] == "verity-prod"  # merged over the base's value
    assert config["VERITY_FHIR__PRIVATE_KEY_FILE"].startswith("/var/run/secrets/")  # kept
    assert {r["metadata"].get("namespace") for r in example if r["kind"] != "Namespace"} == {
        "verity"
    }
    assert by_kind(example, "HorizontalPodAutoscaler")["verity-api"]["spec"]["maxReplicas"] == 6
    images = {c["image"] for spec in pod_specs(example).values() for c in spec["containers"]}
    assert images == {"registry.hospital.example/verity:0.1.0"}


def test_api_probes_and_port(example: list[dict[str, Any]]) -> None:
    config = next(iter(by_kind(example, "ConfigMap").values()))["data"]
    (api,) = pod_specs(example)["verity-api"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["startupProbe"]["httpGet"]["path"] == "/health/live"
    (port,) = api["ports"]
    assert port["containerPort"] == int(config["VERITY_SERVER__PORT"])
    service = by_kind(example, "Service")["verity-api"]["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    labels = by_kind(example, "Deployment")["verity-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert env["VERITY_SERVER__HOST"] == "0.0.0.0" and config["VERITY_AUTH__ENABLED"] == "true"
    assert env["VERITY_OUTBOX__RELAY_ENABLED"] == env["VERITY_IMAGING__WORKER_ENABLED"] == "false"


def test_commands_hpa_and_disruption_budgets(example: list[dict[str, Any]]) -> None:
    specs = pod_specs(example)
    assert specs["verity-api"]["containers"][0]["args"] == ["serve"]
    assert specs["verity-worker"]["containers"][0]["args"] == ["worker"]
    assert specs["verity-migrate"]["containers"][0]["args"] == ["db", "upgrade"]
    assert specs["verity-migrate"]["restartPolicy"] == "Never"
    hpa = by_kind(example, "HorizontalPodAutoscaler")["verity-api"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "verity-api",
    }
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    deployments = by_kind(example, "Deployment")
    for name, pdb in by_kind(example, "PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        by_kind(example, "PodDisruptionBudget")["verity-api"]["spec"]["minAvailable"]
        < hpa["minReplicas"]
    )


def test_every_pod_is_non_root_read_only_without_capabilities(
    example: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(example).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            for writable in ("/tmp", "/var/lib/verity"):
                assert "emptyDir" in volumes[mounts[writable]], (name, writable)
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), name
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), name


def test_secrets_come_only_from_secrets_and_the_smart_key_is_a_file(
    example: list[dict[str, Any]],
) -> None:
    config = next(iter(by_kind(example, "ConfigMap").values()))["data"]
    secrets = by_kind(example, "Secret")
    assert not [k for k in config if any(w in k for w in SECRET_WORDS) and not k.endswith("_FILE")]
    for name, spec in pod_specs(example).items():
        c = spec["containers"][0]
        env = {e["name"]: e for e in c.get("env", [])}
        assert not [k for k, e in env.items() if any(w in k for w in SECRET_WORDS) and "value" in e]
        ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]]["data"], name
    api = pod_specs(example)["verity-api"]
    key_file = Path(config["VERITY_FHIR__PRIVATE_KEY_FILE"])
    mounts = {m["mountPath"]: m["name"] for m in api["containers"][0]["volumeMounts"]}
    volume = {v["name"]: v for v in api["volumes"]}[mounts[str(key_file.parent)]]
    assert volume["secret"]["secretName"] in secrets
    assert key_file.name in secrets[volume["secret"]["secretName"]]["data"]
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "the key must not be world-readable"


def _is_setting(name: str) -> bool:
    if name == "DATABASE_URL" or name in NOT_VERITY:
        return True
    if not name.startswith("VERITY_"):
        return False
    section, _, field = name.removeprefix("VERITY_").lower().partition("__")
    if not field:
        return section in Settings.model_fields
    info = Settings.model_fields.get(section)
    return info is not None and field in info.annotation.model_fields  # type: ignore[union-attr]


def test_every_setting_named_is_one_verity_knows(example: list[dict[str, Any]]) -> None:
    """Settings ignore unknown variables: a misspelt name would silently be the default."""
    config = next(iter(by_kind(example, "ConfigMap").values()))["data"]
    names = set(config)
    for spec in pod_specs(example).values():
        names |= {e["name"] for e in spec["containers"][0].get("env", [])}
    assert [n for n in names if not _is_setting(n)] == []
    assert not _is_setting("VERITY_FHIR__BASE_URI") and not _is_setting("VERITY_FIHR__BASE_URL")


def test_network_policy_denies_by_default_and_allows_only_the_four_services(
    example: list[dict[str, Any]],
) -> None:
    policies = by_kind(example, "NetworkPolicy")
    deny = policies["verity-default-deny"]["spec"]
    assert (
        deny["policyTypes"] == ["Ingress", "Egress"]
        and "ingress" not in deny
        and "egress" not in deny
    )
    rules = [rule for p in policies.values() for rule in p["spec"].get("egress", [])]
    assert rules and all(rule.get("to") and rule.get("ports") for rule in rules), (
        "no allow-all rule"
    )
    assert {port["port"] for rule in rules for port in rule["ports"]} == EGRESS_PORTS
    blocks = [t["ipBlock"]["cidr"] for rule in rules for t in rule["to"] if "ipBlock" in t]
    assert len(blocks) == 4 and "0.0.0.0/0" not in blocks
    ingress = policies["verity-api-ingress"]["spec"]
    assert ingress["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    assert [p["port"] for rule in ingress["ingress"] for p in rule["ports"]] == [8420]
