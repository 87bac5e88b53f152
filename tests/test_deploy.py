"""Deployment files: every Kubernetes manifest under deploy/k8s/ validates, and the
serving ones and the Dockerfile keep the rules docs/serving.md states.

Schemas come from the kubernetes-validate package (the Kubernetes OpenAPI
schemas, strict: unknown fields are errors), so no cluster or kubectl is
needed. Every ``*.yaml``/``*.yml`` under ``deploy/k8s/`` is found recursively:
a new folder of manifests is covered without touching this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def serving(kind: str) -> dict:
    found = [d for p in (K8S / "serving").glob("*.yaml") for d in documents(p) if d["kind"] == kind]
    assert len(found) == 1, f"one {kind} in deploy/k8s/serving, found {len(found)}"
    return found[0]


def flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name}=VALUE once in the container args"
    return values[0]


def test_manifests_are_found() -> None:
    assert len(MANIFESTS) >= 5
    assert any(p.parent.name == "serving" for p in MANIFESTS)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path}: no document"
    version = kubernetes_validate.latest_version()
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{path} ({doc.get('kind')} {doc.get('metadata', {}).get('name')}): {err}")


def test_a_broken_manifest_is_refused() -> None:
    # The check itself can fail: a misspelt field and a wrong type.
    deployment = serving("Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_serving_deployment_keeps_the_documented_rules() -> None:
    deployment = serving("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    drain, grace = float(flag(args, "drain-seconds")), float(flag(args, "grace-seconds"))
    assert pod["terminationGracePeriodSeconds"] > drain + grace
    port = int(flag(args, "port"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe
    # One CPU per worker process, requested and capped alike.
    workers = int(flag(args, "workers"))
    resources = container["resources"]
    assert float(resources["requests"]["cpu"]) == workers == float(resources["limits"]["cpu"])
    assert flag(args, "host") == "0.0.0.0"  # reachable from outside the pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["models"]["mountPath"] == flag(args, "model")
    assert mounts["models"]["readOnly"] is True


def test_service_is_headless_and_the_rest_select_the_pods() -> None:
    deployment = serving("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = serving("Service")
    assert service["spec"]["clusterIP"] == "None"  # DNS names every pod: client round_robin
    assert service["spec"]["selector"].items() <= labels.items()
    pdb = serving("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = serving("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2  # the PDB can then always let one go
    claim = serving("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+", text, flags=re.M)
    assert len(stages) >= 2
    final = text[text.rindex("\nFROM ") :]
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*sasrec\.serving\.health_probe", final, flags=re.M | re.S)
    assert "COPY --from=build" in final


def test_only_the_build_stage_has_a_compiler_and_it_builds_the_kernel() -> None:
    # The wheel stage compiles the scoring kernel (setup.py), so the image serves
    # with the compiled engine; the runtime stage installs wheels only.
    text = (REPO / "Dockerfile").read_text()
    build, final = text[: text.rindex("\nFROM ")], text[text.rindex("\nFROM ") :]
    assert re.search(r"apt-get install .*\bg\+\+", build, flags=re.S)
    assert re.search(r"^COPY .*\bsetup\.py\b", build, flags=re.M)
    assert "!setup.py" in (REPO / ".dockerignore").read_text().splitlines()
    assert not re.search(r"apt-get|\bg\+\+|gcc|build-essential", final)
