"""Relay and consumers are restarted when they stop making progress, not only when their
process is gone: the liveness probe is `paywall probe heartbeat` on the file they touch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy import contract
from tests.deploy.conftest import OVERLAYS, by_kind, pod_spec
from tests.deploy.test_cli_contract import resolve

Objects = dict[str, list[dict[str, Any]]]


@pytest.mark.parametrize("env", OVERLAYS)
def test_workers_are_alive_while_they_make_progress(rendered: Objects, env: str) -> None:
    deployments = by_kind(rendered[env], "Deployment")
    checked = 0
    for name, args in contract.WORKERS.items():
        if "--heartbeat" not in args:
            continue
        spec = pod_spec(deployments[name])
        (app,) = [c for c in spec["containers"] if c["name"] == "app"]
        beat = Path(args[args.index("--heartbeat") + 1])
        probe = app["livenessProbe"]["exec"]["command"]
        assert probe[0] == "paywall"
        path, command = resolve(probe[1:])
        assert path == ("probe", "heartbeat") and command is not None, probe
        assert Path(probe[3]) == beat, f"{name}: the probe reads another file"
        max_age = float(probe[probe.index("--max-age") + 1])
        # The file is on a writable emptyDir (the root filesystem is read-only).
        (mount,) = [m for m in app["volumeMounts"] if beat.is_relative_to(m["mountPath"])]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mount["name"]]
        # Restarted only after missing beats for longer than max-age, not on one slow look.
        liveness = app["livenessProbe"]
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= max_age / 2
        checked += 1
    assert checked == 6  # the relay, the four consumers and the webhook delivery worker
