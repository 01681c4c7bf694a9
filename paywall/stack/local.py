"""The local stack: start what the environment does not point at, record it, stop it.

State lives in `<root>/stack.json` (what was started, by PID) and `<root>/stack.env`
(the URLs it provides, read by the settings). `down` stops exactly what `up` started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from paywall.errors import PaywallError
from paywall.settings import Settings, reset_settings
from paywall.stack.component import Component, Running, StackContext
from paywall.stack.kafka import Kafka
from paywall.stack.postgres import Postgres
from paywall.stack.process import port_open, same_process, start_ticks
from paywall.stack.redis import Redis
from paywall.stack.s3 import S3
from paywall.stack.sink import Sink
from paywall.stack.stripe import Stripe

Progress = Callable[[str, str], None]


def default_components(kafka_storage: str = "s3") -> list[list[Component]]:
    """Start order, in waves: a wave starts in parallel; Kafka keeps its log in S3."""
    return [[Postgres(), Redis(), S3(), Stripe(), Sink()], [Kafka(kafka_storage)]]


@dataclass
class PartStatus:
    name: str
    mode: str  # "started" (by this stack), "external" (from the environment), "stopped"
    pid: int | None
    detail: str


class LocalStack:
    def __init__(self, root: Path, waves: list[list[Component]] | None = None) -> None:
        self.root = root
        self.waves = waves if waves is not None else default_components()
        self.state_file = root / "stack.json"
        self.env_file = root / "stack.env"

    @property
    def components(self) -> list[Component]:
        return [c for wave in self.waves for c in wave]

    def settings(self) -> Settings:
        return Settings(_env_file=self.env_file)  # type: ignore[call-arg]

    def up(self, progress: Progress | None = None) -> Settings:
        report = progress or (lambda name, msg: None)
        with self._locked():
            state = self._load()
            ctx = StackContext(self.root)
            started: list[Running] = []
            try:
                for wave in self.waves:
                    todo = []
                    for comp in wave:
                        running = state.get(comp.name)
                        if comp.external():
                            report(comp.name, "external (from environment)")
                        elif running and same_process(running.pid, running.ticks):
                            ctx.env.update(running.env)
                            report(comp.name, f"already running (pid {running.pid})")
                        else:
                            todo.append((comp, running.port if running else None))
                    for run in self._start_wave(ctx, todo, report):
                        started.append(run)
                        state[run.name] = run
                        ctx.env.update(run.env)
                    self._save(state)
            except BaseException:
                for run in reversed(started):
                    self._component(run.name).stop(run)
                    state.pop(run.name, None)
                self._save(state)
                raise
        reset_settings()
        return self.settings()

    def _start_wave(
        self, ctx: StackContext, todo: list[tuple[Component, int | None]], report: Progress
    ) -> list[Running]:
        def start(comp: Component, port: int | None) -> Running:
            # Reuse the last port so URLs stay stable, unless something else took it.
            if port is not None and port_open("127.0.0.1", port):
                port = None
            report(comp.name, "starting")
            try:
                run = comp.start(ctx, port)
            except PaywallError:
                raise
            except Exception as exc:
                raise PaywallError(f"{comp.name} failed to start: {exc}") from exc
            run.ticks = start_ticks(run.pid)
            report(comp.name, f"started (pid {run.pid}, port {run.port})")
            return run

        if not todo:
            return []
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            futures = [pool.submit(start, comp, port) for comp, port in todo]
            done, errors = [], []
            for fut in futures:
                try:
                    done.append(fut.result())
                except BaseException as exc:
                    errors.append(exc)
        if errors:
            for run in done:
                self._component(run.name).stop(run)
            raise errors[0]
        return done

    def down(self, progress: Progress | None = None) -> None:
        report = progress or (lambda name, msg: None)
        with self._locked():
            state = self._load()
            for comp in reversed(self.components):
                running = state.pop(comp.name, None)
                if running is None:
                    continue
                if same_process(running.pid, running.ticks):
                    comp.stop(running)
                    report(comp.name, f"stopped (pid {running.pid})")
                self._save(state)
        reset_settings()

    def stop(self, name: str) -> Running:
        """Stop one started server but keep its record, so `start` brings it back (faults)."""
        with self._locked():
            running = self._load().get(name)
            if running is None:
                raise PaywallError(f"{name} was not started by this stack")
            self._component(name).stop(running)
            return running

    def start(self, name: str) -> Running:
        """Start one recorded server again on the port it had, so clients reconnect."""
        with self._locked():
            state = self._load()
            running = state.get(name)
            if running is None:
                raise PaywallError(f"{name} was not started by this stack")
            ctx = StackContext(self.root, {k: v for r in state.values() for k, v in r.env.items()})
            run = self._component(name).start(ctx, running.port)
            run.ticks = start_ticks(run.pid)
            state[name] = run
            self._save(state)
            return run

    def restart(self, name: str) -> Running:
        self.stop(name)
        return self.start(name)

    def status(self) -> list[PartStatus]:
        state = self._load()
        out = []
        for comp in self.components:
            running = state.get(comp.name)
            if comp.external():
                out.append(PartStatus(comp.name, "external", None, "from environment"))
            elif running and same_process(running.pid, running.ticks):
                out.append(PartStatus(comp.name, "started", running.pid, _first_url(running)))
            else:
                out.append(PartStatus(comp.name, "stopped", None, ""))
        return out

    def _component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def _load(self) -> dict[str, Running]:
        if not self.state_file.exists():
            return {}
        raw = json.loads(self.state_file.read_text())
        return {name: Running(**item) for name, item in raw.items()}

    def _save(self, state: dict[str, Running]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in state.items()}, indent=2))
        tmp.replace(self.state_file)
        env = {k: v for run in state.values() for k, v in run.env.items()}
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _first_url(running: Running) -> str:
    return next(iter(running.env.values()), "")
