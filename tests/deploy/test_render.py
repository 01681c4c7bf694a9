"""The kustomize subset in deploy/render.py: semantics that the manifests rely on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import OVERLAYS, by_kind


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_config_map_hash_matches_kustomize(render: ModuleType) -> None:
    # `kustomize build` of configMapGenerator {name: x, literals: [A=b]} names it x-b9t2424hkf.
    assert render.config_map_hash({"metadata": {"name": "x"}, "data": {"A": "b"}}) == "b9t2424hkf"


def test_generator_merge_hash_and_references(render: ModuleType, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [d.yaml]\n"
            "configMapGenerator: [{name: cfg, literals: [A=1, B=2]}]\n",
            "base/d.yaml": yaml.safe_dump(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "d", "labels": {"tier": "api"}},
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "app",
                                        "image": "img",
                                        "envFrom": [{"configMapRef": {"name": "cfg"}}],
                                        "resources": {"limits": {"cpu": "1"}},
                                    }
                                ]
                            }
                        }
                    },
                }
            ),
            "over/kustomization.yaml": "namespace: ns\nresources: [../base]\n"
            "configMapGenerator: [{name: cfg, behavior: merge, literals: [B=3]}]\n"
            "images: [{name: img, newName: reg/img, newTag: '1.2'}]\n"
            "labels: [{pairs: {env: x}, includeTemplates: true}]\n"
            "patches:\n"
            "  - target: {kind: Deployment, labelSelector: tier=api}\n"
            "    patch: |\n"
            "      {kind: Deployment, metadata: {name: any}, spec: {template: {spec:\n"
            "        {containers: [{name: app, resources: {limits: {memory: 1Gi}}}]}}}}\n",
        },
    )
    out = render.render(tmp_path / "over")
    cm = next(o for o in out if o["kind"] == "ConfigMap")
    assert cm["data"] == {"A": "1", "B": "3"}
    assert cm["metadata"]["name"] == f"cfg-{render.config_map_hash(cm)}"
    deployment = by_kind(out, "Deployment")["d"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    assert container["image"] == "reg/img:1.2"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert deployment["metadata"]["namespace"] == "ns"
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"env": "x"}


def test_unsupported_fields_are_refused(render: ModuleType, tmp_path: Path) -> None:
    _write(tmp_path, {"kustomization.yaml": "namePrefix: x-\n"})
    with pytest.raises(render.RenderError, match="namePrefix"):
        render.render(tmp_path)


def test_cli_prints_multi_document_yaml(render: ModuleType, capsys: Any) -> None:
    assert render.main(["overlays/prod"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert docs == render.render("overlays/prod")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("env", OVERLAYS)
def test_same_objects_as_kubectl_kustomize(
    render: ModuleType, rendered: dict[str, list[dict[str, Any]]], env: str
) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    out = subprocess.run(
        [kubectl, "kustomize", str(render.K8S_DIR / "overlays" / env)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert [d for d in yaml.safe_load_all(out) if d] == rendered[env]
