"""A small kustomize renderer: the subset of kustomize the manifests in deploy/ use.

    python deploy/render.py overlays/prod          # multi-document YAML on stdout
    python deploy/render.py deploy/k8s/overlays/dev
    python deploy/render.py kong --jwks jwks.json  # deploy/kong/kong.yaml + auth's keys

The `kustomize` binary is not on the build machines, so this renders with PyYAML alone.
It implements, with kustomize v5 semantics, only what deploy/ uses, and refuses any other
kustomization field instead of silently ignoring it:

- `resources` (files and directories holding a kustomization.yaml), `namespace`
- `labels` (`pairs`, `includeTemplates`; `includeSelectors: true` is refused)
- `images` (`name`, `newName`, `newTag`, `digest`)
- `patches` (strategic-merge or JSON 6902, inline or by `path`, with a `target` by kind,
  name and label selector, or matched by the patch's own kind and name)
- `configMapGenerator` (`literals`, `files`, `behavior`, `options`) with the content-hash
  name suffix and the rewriting of references to the generated name, and `generatorOptions`
- `replacements` (inline, `source` and `targets` with `fieldPaths` using `*`,
  `[key=value]`, and `options.delimiter`/`index`)

When `kubectl` is on the PATH (`kubectl kustomize` embeds kustomize), the deploy tests check
that both render the same objects.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

DEPLOY_DIR = Path(__file__).resolve().parent
K8S_DIR = DEPLOY_DIR / "k8s"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "resources",
        "namespace",
        "labels",
        "images",
        "patches",
        "configMapGenerator",
        "generatorOptions",
        "replacements",
    }
)
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "IngressClass",
    }
)
# kustomize's "legacy" output order: these kinds first, in this order, then the rest.
ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
# Workload kinds whose pod template sits at spec.template.
POD_TEMPLATE_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}
)
# Strategic-merge keys for lists of objects (the ones the Kubernetes API declares).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
# Generated objects carry this until the final hash suffix is applied.
_NEEDS_HASH = "x-render.paywall/needs-hash"
_ORIGINAL_NAME = "x-render.paywall/original-name"


class RenderError(Exception):
    """The kustomization uses something this renderer does not implement, or is broken."""


# --- loading -------------------------------------------------------------------------------


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise RenderError(f"{directory}: no kustomization.yaml")


def _load_docs(path: Path) -> list[Obj]:
    try:
        loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: {exc}") from exc
    docs = [d for d in loaded if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise RenderError(f"{path}: every document needs kind and metadata")
    return docs


def _load_patch(directory: Path, spec: Obj) -> Any:
    if "path" in spec:
        return yaml.safe_load((directory / spec["path"]).read_text(encoding="utf-8"))
    if "patch" in spec:
        return yaml.safe_load(spec["patch"])
    raise RenderError(f"{directory}: a patch needs path or patch")


# --- building --------------------------------------------------------------------------------


def build(directory: Path) -> list[Obj]:
    """The objects a kustomization directory yields, before the final hash suffixes."""
    directory = directory.resolve()
    kfile = _kustomization_file(directory)
    k: Obj = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(k) - SUPPORTED_FIELDS
    if unknown:
        raise RenderError(f"{kfile}: fields not supported by deploy/render.py: {sorted(unknown)}")

    objects: list[Obj] = []
    for entry in k.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(build(target))
        elif target.is_file():
            objects.extend(copy.deepcopy(_load_docs(target)))
        else:
            raise RenderError(f"{kfile}: resource {entry!r} not found")

    _generate_config_maps(directory, k, objects)
    for spec in k.get("patches", []):
        _apply_patch(directory, spec, objects)
    if "namespace" in k:
        _set_namespace(objects, k["namespace"])
    for spec in k.get("labels", []):
        _apply_labels(objects, spec)
    for spec in k.get("images", []):
        _apply_image(objects, spec)
    for spec in k.get("replacements", []):
        _apply_replacement(objects, spec)
    _check_unique(objects, kfile)
    return objects


def _key(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return (obj.get("apiVersion", ""), obj["kind"], meta.get("namespace", ""), meta["name"])


def _check_unique(objects: list[Obj], kfile: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = _key(obj)
        if key in seen:
            raise RenderError(f"{kfile}: duplicate object {key}")
        seen.add(key)


# --- configMapGenerator ----------------------------------------------------------------------


def _generate_config_maps(directory: Path, k: Obj, objects: list[Obj]) -> None:
    defaults: Obj = k.get("generatorOptions", {}) or {}
    for spec in k.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for literal in spec.get("literals", []):
            name, sep, value = str(literal).partition("=")
            if not sep:
                raise RenderError(f"{directory}: literal {literal!r} needs KEY=VALUE")
            data[name] = value
        for entry in spec.get("files", []):
            key, sep, rel = str(entry).partition("=")
            if not sep:
                key, rel = Path(entry).name, entry
            data[key] = (directory / rel).read_text(encoding="utf-8")
        if set(spec) - {"name", "literals", "files", "behavior", "options", "namespace"}:
            raise RenderError(f"{directory}: configMapGenerator fields beyond the subset")
        options = {**defaults, **(spec.get("options") or {})}
        behavior = spec.get("behavior", "create")
        name = spec["name"]
        existing = [
            o
            for o in objects
            if o["kind"] == "ConfigMap"
            and o["metadata"].get("annotations", {}).get(_ORIGINAL_NAME, o["metadata"]["name"])
            == name
        ]
        if behavior == "create":
            if existing:
                raise RenderError(f"{directory}: ConfigMap {name} already exists; use merge")
            cm: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
            if data:
                cm["data"] = data
            if spec.get("namespace"):
                cm["metadata"]["namespace"] = spec["namespace"]
            if options.get("labels"):
                cm["metadata"]["labels"] = dict(options["labels"])
            if options.get("annotations"):
                cm["metadata"]["annotations"] = dict(options["annotations"])
            if not options.get("disableNameSuffixHash", False):
                cm["metadata"].setdefault("annotations", {})[_NEEDS_HASH] = "true"
            objects.append(cm)
        elif behavior in ("merge", "replace"):
            if len(existing) != 1:
                raise RenderError(f"{directory}: ConfigMap {name} to {behavior} not found once")
            target = existing[0]
            target["data"] = {**target.get("data", {}), **data} if behavior == "merge" else data
            if options.get("labels"):
                target["metadata"].setdefault("labels", {}).update(options["labels"])
        else:
            raise RenderError(f"{directory}: configMapGenerator behavior {behavior!r}")


def _go_json(value: Any) -> str:
    """json.Marshal as Go writes it: sorted keys, no spaces, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def config_map_hash(cm: Obj) -> str:
    """kustomize's name suffix for a ConfigMap (api/hasher: sha256, first 10, no vowels).

    kustomize v5 looks the name up as the single field "metadata/name", finds nothing and
    hashes an empty name; a missing data map hashes as "". Both are copied here on purpose.
    """
    encoded: Obj = {"kind": "ConfigMap", "name": "", "data": cm.get("data", "")}
    if isinstance(cm.get("binaryData"), dict):
        encoded["binaryData"] = cm["binaryData"]
    digest = hashlib.sha256(_go_json(encoded).encode("utf-8")).hexdigest()
    table = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})
    return digest[:10].translate(table)


def _pod_specs(obj: Obj) -> Iterator[Obj]:
    spec = obj.get("spec", {})
    if obj["kind"] in POD_TEMPLATE_KINDS:
        yield spec.get("template", {}).get("spec", {})
    elif obj["kind"] == "CronJob":
        yield spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif obj["kind"] == "Pod":
        yield spec


def _finish_hashes(objects: list[Obj]) -> None:
    renames: dict[tuple[str, str], str] = {}
    for obj in objects:
        annotations = obj["metadata"].get("annotations", {})
        if annotations.pop(_NEEDS_HASH, None) is None:
            continue
        if not annotations:
            del obj["metadata"]["annotations"]
        old = obj["metadata"]["name"]
        new = f"{old}-{config_map_hash(obj)}"
        obj["metadata"]["name"] = new
        renames[(obj["metadata"].get("namespace", ""), old)] = new
    if not renames:
        return
    for obj in objects:
        namespace = obj["metadata"].get("namespace", "")
        for pod in _pod_specs(obj):
            for ref in _config_map_refs(pod):
                ref["name"] = renames.get((namespace, ref.get("name", "")), ref.get("name"))


def _config_map_refs(pod: Obj) -> Iterator[Obj]:
    for group in ("containers", "initContainers"):
        for container in pod.get(group, []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    yield ref
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    yield source["configMapRef"]
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            yield volume["configMap"]
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                yield source["configMap"]


# --- patches ---------------------------------------------------------------------------------


def _matches(obj: Obj, target: Obj) -> bool:
    meta = obj["metadata"]
    if "kind" in target and target["kind"] != obj["kind"]:
        return False
    if "name" in target and not re.fullmatch(target["name"], meta["name"]):
        return False
    if "namespace" in target and target["namespace"] != meta.get("namespace", ""):
        return False
    if "labelSelector" in target:
        labels = meta.get("labels", {})
        for term in str(target["labelSelector"]).split(","):
            key, sep, value = term.strip().partition("=")
            if not sep:
                raise RenderError(f"labelSelector {term!r}: only key=value terms are supported")
            if labels.get(key.strip()) != value.strip():
                return False
    unsupported = set(target) - {"kind", "name", "namespace", "labelSelector", "group", "version"}
    if unsupported:
        raise RenderError(f"patch target fields not supported: {sorted(unsupported)}")
    api_version = obj.get("apiVersion", "")
    group, _, version = api_version.rpartition("/")
    if "group" in target and target["group"] != group:
        return False
    return not ("version" in target and target["version"] != version)


def _apply_patch(directory: Path, spec: Obj, objects: list[Obj]) -> None:
    patch = _load_patch(directory, spec)
    if "target" in spec:
        targets = [o for o in objects if _matches(o, spec["target"])]
    elif isinstance(patch, dict):
        want = {"kind": patch["kind"], "name": re.escape(patch["metadata"]["name"])}
        targets = [o for o in objects if _matches(o, want)]
    else:
        raise RenderError(f"{directory}: a JSON 6902 patch needs a target")
    if not targets:
        raise RenderError(f"{directory}: patch {spec} matches nothing")
    for obj in targets:
        if isinstance(patch, list):
            _json6902(obj, patch)
        else:
            body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
            meta = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
            merged = strategic_merge(obj, {**body, "metadata": meta} if meta else body)
            obj.clear()
            obj.update(merged)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Strategic-merge `patch` into `base`: maps merge, keyed lists merge, null deletes."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    merge_key = MERGE_KEYS.get(field)
    if isinstance(base, list) and isinstance(patch, list) and merge_key:
        out_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = next(
                (i for i, b in enumerate(out_list) if b.get(merge_key) == item.get(merge_key)),
                None,
            )
            if match is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[match] = strategic_merge(out_list[match], item)
        return out_list
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _json6902(obj: Obj, ops: list[Obj]) -> None:
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if kind == "add":
                node.insert(index, copy.deepcopy(op["value"]))
            elif kind == "replace":
                node[index] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del node[index]
            else:
                raise RenderError(f"JSON 6902 op {kind!r} not supported")
        elif kind in ("add", "replace"):
            node[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[last]
        else:
            raise RenderError(f"JSON 6902 op {kind!r} not supported")


# --- namespace, labels, images -------------------------------------------------------------


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "ServiceAccount" and subject.get("namespace") in (
                    None,
                    "",
                    "default",
                ):
                    subject["namespace"] = namespace


def _apply_labels(objects: list[Obj], spec: Obj) -> None:
    if spec.get("includeSelectors"):
        raise RenderError("labels.includeSelectors: true is not supported (selectors are fixed)")
    pairs = {k: str(v) for k, v in spec["pairs"].items()}
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if not spec.get("includeTemplates"):
            continue
        templates: list[Obj] = []
        if obj["kind"] in POD_TEMPLATE_KINDS:
            templates.append(obj.get("spec", {}).get("template", {}))
        elif obj["kind"] == "CronJob":
            job = obj.get("spec", {}).get("jobTemplate", {})
            templates += [job, job.get("spec", {}).get("template", {})]
        for template in templates:
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


_IMAGE = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>.+))?$")


def _apply_image(objects: list[Obj], spec: Obj) -> None:
    for obj in objects:
        for pod in _pod_specs(obj):
            for group in ("containers", "initContainers"):
                for container in pod.get(group, []):
                    parsed = _IMAGE.match(container.get("image", ""))
                    if not parsed or parsed["name"] != spec["name"]:
                        continue
                    name = spec.get("newName", parsed["name"])
                    if spec.get("digest"):
                        container["image"] = f"{name}@{spec['digest']}"
                    elif spec.get("newTag"):
                        container["image"] = f"{name}:{spec['newTag']}"
                    else:
                        rest = f":{parsed['tag']}" if parsed["tag"] else ""
                        rest += f"@{parsed['digest']}" if parsed["digest"] else ""
                        container["image"] = f"{name}{rest}"


# --- replacements -----------------------------------------------------------------------------


def _path_segments(path: str) -> list[str]:
    return [s for s in re.findall(r"\[[^\]]*\]|[^.\[\]]+", path) if s]


def _walk(node: Any, segments: list[str], create: bool = False) -> Iterator[tuple[Any, Any]]:
    """Yield (container, key) for every field the path selects."""
    if not segments:
        return
    head, rest = segments[0], segments[1:]
    keys: list[Any]
    if head == "*":
        keys = list(range(len(node))) if isinstance(node, list) else list(node or {})
    elif head.startswith("[") and "=" in head:
        field, _, value = head[1:-1].partition("=")
        items = node if isinstance(node, list) else []
        keys = [
            i for i, v in enumerate(items) if isinstance(v, dict) and str(v.get(field)) == value
        ]
    elif isinstance(node, list) and head.isdigit():
        keys = [int(head)] if int(head) < len(node) else []
    elif isinstance(node, dict):
        if head not in node and create and rest:
            node[head] = {}
        keys = [head] if head in node or (create and not rest) else []
    else:
        keys = []
    for key in keys:
        if not rest:
            yield node, key
        else:
            yield from _walk(node[key], rest, create)


def _apply_replacement(objects: list[Obj], spec: Obj) -> None:
    source = spec["source"]
    sources = [o for o in objects if _matches(o, _selector(source))]
    if len(sources) != 1:
        raise RenderError(f"replacement source {source} matches {len(sources)} objects")
    found = list(_walk(sources[0], _path_segments(source.get("fieldPath", "metadata.name"))))
    if len(found) != 1:
        raise RenderError(f"replacement source field {source} not found")
    container, key = found[0]
    value = container[key]
    for target in spec["targets"]:
        selected = [o for o in objects if _matches(o, _selector(target["select"]))]
        rejected = [_selector(r) for r in target.get("reject", [])]
        options = target.get("options", {})
        for obj in selected:
            if any(_matches(obj, r) for r in rejected):
                continue
            for path in target["fieldPaths"]:
                found = list(_walk(obj, _path_segments(path), bool(options.get("create"))))
                if not found:
                    # As kustomize: a selected target must have the field (or `create`).
                    raise RenderError(f"replacement: {path} not found in {_key(obj)}")
                for node, field in found:
                    current = node[field] if field in _keys(node) else None
                    node[field] = _replace_part(current, value, options)


def _keys(node: Any) -> range | Any:
    return range(len(node)) if isinstance(node, list) else node


def _replace_part(current: Any, value: Any, options: Obj) -> Any:
    if "delimiter" not in options:
        return copy.deepcopy(value)
    parts = str(current or "").split(options["delimiter"])
    index = int(options.get("index", 0))
    if not 0 <= index < len(parts):
        raise RenderError(f"replacement index {index} out of range for {current!r}")
    parts[index] = str(value)
    return options["delimiter"].join(parts)


def _selector(spec: Obj) -> Obj:
    out = {k: v for k, v in spec.items() if k in ("kind", "namespace", "labelSelector", "group")}
    if "name" in spec:
        out["name"] = re.escape(spec["name"])
    if "version" in spec:
        out["version"] = spec["version"]
    return out


# --- output --------------------------------------------------------------------------------


def _sort_key(obj: Obj) -> tuple[int, str, str, str, str]:
    kind = obj["kind"]
    group_version = ""
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 2 + ORDER_LAST.index(kind)
    else:
        rank, group_version = len(ORDER_FIRST) + 1, obj.get("apiVersion", "")
    meta = obj["metadata"]
    return (rank, group_version, kind, meta.get("namespace", ""), meta["name"])


def render(path: str | Path) -> list[Obj]:
    """Every object a kustomization renders, sorted like kustomize's legacy order."""
    directory = resolve(path)
    objects = build(directory)
    _finish_hashes(objects)
    return sorted(objects, key=_sort_key)


def resolve(path: str | Path) -> Path:
    """A kustomization directory: as given, or relative to deploy/k8s, or to deploy/."""
    for candidate in (Path(path), K8S_DIR / path, DEPLOY_DIR / path):
        if candidate.is_dir():
            return candidate.resolve()
    raise RenderError(f"{path}: no such kustomization directory")


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(objects: list[Obj]) -> str:
    """Multi-document YAML, apiVersion/kind/metadata first in each document."""
    docs = []
    for obj in objects:
        head = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
        ordered = {**head, **{k: v for k, v in obj.items() if k not in head}}
        docs.append(yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, width=100))
    return "---\n".join(docs)


def kong_config(kong: Obj, jwks: Obj) -> Obj:
    """kong.yaml with one RS256 jwt_secret per signing key of the auth service's JWKS.

    Kong's OSS jwt plugin reads `kid` (key_claim_name) from the token header and verifies
    with the PEM of that key; keys rotate by publishing the new kid before signing with it.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    def number(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    secrets = []
    for key in jwks.get("keys", []):
        if key.get("kty") != "RSA" or key.get("use", "sig") != "sig":
            continue
        public = RSAPublicNumbers(number(key["e"]), number(key["n"])).public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        secrets.append({"key": key["kid"], "algorithm": "RS256", "rsa_public_key": pem})
    if not secrets:
        raise RenderError("the JWKS has no RSA signing key")
    out = copy.deepcopy(kong)
    (consumer,) = out["consumers"]
    consumer["jwt_secrets"] = secrets
    return out


def _main_kong(args: list[str]) -> int:
    if len(args) != 2 or args[0] != "--jwks":
        print("usage: python deploy/render.py kong --jwks JWKS.json", file=sys.stderr)
        return 2
    kong = yaml.safe_load((DEPLOY_DIR / "kong" / "kong.yaml").read_text(encoding="utf-8"))
    jwks = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    sys.stdout.write(yaml.dump(kong_config(kong, jwks), Dumper=_Dumper, sort_keys=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["kong"]:
            return _main_kong(args[1:])
        if len(args) != 1 or args[0] in ("-h", "--help"):
            print(__doc__, file=sys.stderr)
            return 2
        sys.stdout.write(to_yaml(render(args[0])))
    except RenderError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
