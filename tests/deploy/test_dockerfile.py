"""deploy/Dockerfile: multi-stage, locked install, non-root, paywall entrypoint."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


def _logical_lines() -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def stages() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(name, parent, own instructions) per stage, in order."""
    out: list[tuple[str, str, list[tuple[str, str]]]] = []
    for line in _logical_lines():
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            assert match, line
            out.append((match[2] or f"stage{len(out)}", match[1], []))
        elif out:
            out[-1][2].append((keyword, rest.strip()))
    return out


def instructions() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, including what it inherits from a parent stage."""
    effective: dict[str, list[tuple[str, str]]] = {}
    for name, parent, own in stages():
        effective[name] = [*effective.get(parent, []), *own]
    return effective


def test_stages_and_default_target() -> None:
    names = [name for name, _, _ in stages()]
    assert names[0] == "builder"
    assert {"spark", "runtime"} <= set(names)
    assert names[-1] == "runtime", "a plain `docker build` must build the runtime image"


def test_builder_installs_the_lock_without_dev_dependencies() -> None:
    runs = " ".join(v for k, v in instructions()["builder"] if k == "RUN")
    assert re.search(r'pip install "uv==\$\{UV_VERSION\}"', runs)
    assert runs.count("uv sync --frozen --no-dev --compile-bytecode") == 2
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in " ".join(
        v for k, v in instructions()["builder"] if k == "ENV"
    )


def test_runtime_targets_run_as_uid_10001_with_paywall_entrypoint() -> None:
    effective = instructions()
    for target in ("runtime", "spark"):
        steps = effective[target]
        users = [v for k, v in steps if k == "USER"]
        assert users[-1] == "10001:10001", target
        assert [v for k, v in steps if k == "ENTRYPOINT"][-1] == '["paywall"]'
        assert any(k == "HEALTHCHECK" for k, _ in steps), target
        assert any(k == "LABEL" and "org.opencontainers.image.title" in v for k, v in steps)
        env = " ".join(v for k, v in steps if k == "ENV")
        for var in ("HOME=/tmp", "PAYWALL_STATE_DIR=/tmp/paywall", "PYTHONDONTWRITEBYTECODE=1"):
            assert var in env, (target, var)
    assert json.loads([v for k, v in effective["runtime"] if k == "CMD"][-1]) == [
        "serve",
        "--service",
        "all",
    ]
    assert json.loads([v for k, v in effective["spark"] if k == "CMD"][-1]) == ["stream", "lake"]


def test_java_only_in_the_spark_target() -> None:
    effective = instructions()
    assert any("openjdk" in v for k, v in effective["spark"] if k == "RUN")
    assert not any("openjdk" in v for k, v in effective["runtime"] if k == "RUN")


def test_dockerignore_sits_next_to_the_dockerfile() -> None:
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".paywall", "tests"} <= set(ignored)
