"""Every command the image and the manifests run is a real `paywall` command (or pending)."""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer

from paywall.cli import app
from tests.deploy import contract
from tests.deploy.conftest import OVERLAYS, ROOT, pod_spec, workloads
from transactional.services import SERVICES


def _cli() -> Any:
    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _is_group(command: Any) -> bool:
    # Typer may ship its own click; duck-type instead of isinstance(click.Group).
    return isinstance(getattr(command, "commands", None), dict)


def resolve(args: list[str]) -> tuple[tuple[str, ...], Any]:
    """Walk the command path in ARGS; (path, command) or (path, None) if it does not exist."""
    command = _cli()
    path: list[str] = []
    for word in args:
        if not _is_group(command) or word.startswith("-"):
            break
        path.append(word)
        sub = command.commands.get(word)
        if sub is None:
            return tuple(path), None
        command = sub
    return tuple(path), command


def _check_options(command: Any, args: list[str]) -> None:
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in args:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in options, f"{command.name}: no option {word}"


def test_pending_commands_do_not_exist_yet() -> None:
    for path in contract.PENDING_CLI_COMMANDS:
        _, command = resolve(list(path))
        assert command is None, f"`paywall {' '.join(path)}` exists: remove it from PENDING"


@pytest.mark.parametrize("env", OVERLAYS)
def test_manifest_commands_exist(rendered: dict[str, list[dict[str, Any]]], env: str) -> None:
    venv_bin = Path(sys.executable).parent
    checked = 0
    for obj in workloads(rendered[env]):
        for container in pod_spec(obj)["containers"]:
            if not container["image"].split("/")[-1].startswith("paywall"):
                continue  # Kong and other third-party images
            if "command" in container:
                exe = container["command"][0]
                assert exe in contract.OTHER_EXECUTABLES, exe
                assert (venv_bin / exe).exists() or shutil.which(exe), exe
                continue
            args = container["args"]
            path, command = resolve(args)
            name = obj["metadata"]["name"]
            if command is None:
                assert path in contract.PENDING_CLI_COMMANDS, f"{name}: `paywall {args}`"
                continue
            assert not _is_group(command), f"{name}: {args} names a group"
            _check_options(command, args[len(path) :])
            if path == ("serve",):
                assert args[args.index("--service") + 1] in SERVICES
            checked += 1
    assert checked >= len(SERVICES) + 3


def test_dockerfile_entrypoint_is_the_paywall_script() -> None:
    from tests.deploy.test_dockerfile import instructions

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "paywall" in scripts
    final = instructions()["runtime"]
    entrypoint = [v for k, v in final if k == "ENTRYPOINT"][-1]
    assert entrypoint == '["paywall"]'
    args = json.loads([v for k, v in final if k == "CMD"][-1])
    path, command = resolve(args)
    assert command is not None and path == ("serve",)
    _check_options(command, args[1:])
