"""Start, stop and restart a docker-registry process by pid file.

This is the ``--restart-cmd`` of the end-to-end test and the demo, standing in
for ``docker restart registry`` or ``systemctl restart docker-registry``:

    python -m tests.support.registryctl restart --config CFG --pidfile PID --log LOG
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.support.registry import registry_binary, registry_env


def _url(config: Path) -> str:
    document = yaml.safe_load(config.read_text())
    scheme = "https" if document["http"].get("tls") else "http"
    return f"{scheme}://{document['http']['addr']}"


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent (the test process) to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def stop(pidfile: Path, timeout: float = 15.0) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the exit
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def start(config: Path, pidfile: Path, log: Path, timeout: float = 15.0, *, line: str = "2.8") -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [registry_binary(line), "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=registry_env(),
        )
    pidfile.write_text(str(process.pid))
    url = _url(config)
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=False, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"docker-registry exited with {process.returncode}; see {log}")
            try:
                if client.get(f"{url}/v2/").status_code in (200, 401):
                    return process.pid
            except httpx.TransportError:
                pass
            time.sleep(0.02)  # polling for readiness
    raise SystemExit(f"docker-registry not ready after {timeout}s; see {log}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registryctl")
    parser.add_argument("action", choices=("start", "stop", "restart"))
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--line", default="2.8", help="the registry line (tests.support.registry.LINES)")
    args = parser.parse_args(argv)
    if args.action in ("stop", "restart"):
        stop(args.pidfile)
    if args.action in ("start", "restart"):
        pid = start(args.config, args.pidfile, args.log, line=args.line)
        print(f"registry running as pid {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
