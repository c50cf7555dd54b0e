"""Container images and a Docker-compatible API, for the container tests and ``demo.sh --container``.

No image can be pulled here, so each is built locally and cached:

* a minimal Debian made with debootstrap from the machine's own Debian mirror
  (python3, python3-venv, docker-registry, openssh-client), imported into podman;
* on it, a stand-in for ``registry:2`` built from Debian's docker-registry
  package (tests/support/registry-image/) and the tool's image (Containerfile).

podman runs as root with runc, host ulimits and the vfs driver (crun and the
overlay driver fail here), in its own storage under the tools cache
(``$REGISTRY_PRUNE_TOOLS``, default ``~/.cache/registry-prune/tools``), so a
second run reuses every image. ``podman system service`` gives the real
``docker`` CLI its API socket.

    python -m tests.support.containers images    # build (or find) every image; prints their names
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_step import __version__

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_IMAGE_DIR = ROOT / "tests" / "support" / "registry-image"
INSTALL_HINT = "install them with: sudo apt-get install -y podman buildah runc debootstrap (or run ./scripts/setup.sh)"
BASE_PACKAGES = ("python3", "python3-venv", "docker-registry", "openssh-client")
# Removed from the debootstrapped tree: apt's caches and lists, docs and translations are half of
# it, and with the vfs driver every container start copies the whole image.
TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


def tools_dir() -> Path:
    """The cache shared by tests, CI and the README's commands (the registry 3.x work keeps Go tools here)."""
    configured = os.environ.get("REGISTRY_PRUNE_TOOLS")
    return Path(configured) if configured else Path.home() / ".cache" / "registry-prune" / "tools"


def require(*programs: str) -> None:
    missing = [name for name in programs if shutil.which(name) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not on PATH; {INSTALL_HINT}")


def debian_suite() -> str:
    """This machine's Debian release, so the image's python3 matches the host's wheels."""
    text = Path("/etc/os-release").read_text(encoding="utf-8") if Path("/etc/os-release").exists() else ""
    found = re.search(r"^VERSION_CODENAME=\"?(\w+)", text, re.M)
    return found.group(1) if found else "bookworm"


def debian_mirror() -> str:
    """The mirror apt uses here (sources.list or deb822 .sources), else Debian's default."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            found = re.match(r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(https?://\S+)", line)
            if found and "security" not in found.group(1):
                return found.group(1)
    return "http://deb.debian.org/debian"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One builder at a time (two pytest workers may ask for the same image)."""
    tools_dir().mkdir(parents=True, exist_ok=True)
    with (tools_dir() / ".containers.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def say(line: str) -> None:
    print(f"containers: {line}", file=sys.stderr, flush=True)


@dataclass
class Podman:
    """podman and buildah with this project's configuration and storage."""

    home: Path = field(default_factory=lambda: tools_dir() / "podman")
    registries_conf: Path | None = None

    def __post_init__(self) -> None:
        require("podman", "buildah", "runc")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "containers.conf").write_text(
            "# runc and host ulimits: crun cannot set RLIMIT_NPROC here.\n"
            '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n',
            encoding="utf-8",
        )
        (self.home / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.home / "storage"}"\n'
            'runroot = "/run/registry-prune-podman"\n',
            encoding="utf-8",
        )
        if self.registries_conf is None:
            self.registries_conf = self.home / "registries.conf"
            self.registries_conf.write_text("unqualified-search-registries = []\n", encoding="utf-8")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.home / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.home / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
        }

    def run(self, program: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [program, *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

    def image_exists(self, name: str) -> bool:
        done = subprocess.run(["podman", "image", "exists", name], env=self.env(), check=False, timeout=120)
        return done.returncode == 0

    def build(self, name: str, context: Path, *build_args: str) -> None:
        args = [arg for pair in (("--build-arg", a) for a in build_args) for arg in pair]
        # buildah's RUN sets a nofile limit; above this process's own it is refused here.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.run(
            "buildah", "bud", "--runtime", "runc", "--ulimit", f"nofile={soft}:{hard}", "--network", "host",
            "--layers=false", *args, "-t", name, "-f", str(context / "Containerfile"), str(context),
        )  # fmt: skip


def _base_tarball(suite: str) -> tuple[Path, dict[str, str]]:
    """debootstrap once per suite and package list; returns the rootfs tarball and its package versions."""
    key = _digest(suite.encode(), ",".join(BASE_PACKAGES).encode(), ",".join(TRIM).encode())
    folder = tools_dir() / "debian"
    tarball = folder / f"{suite}-{key}.tar"
    meta = folder / f"{suite}-{key}.json"
    if tarball.exists() and meta.exists():
        return tarball, json.loads(meta.read_text(encoding="utf-8"))
    require("debootstrap")
    folder.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    say(f"debootstrap {suite} from {mirror} (about a minute, once)")
    with tempfile.TemporaryDirectory(dir=folder, prefix="rootfs-") as work:
        rootfs = Path(work) / "root"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", suite, str(rootfs), mirror],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
        status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text(encoding="utf-8")
        versions = dict(re.findall(r"^Package: (\S+)\n(?:[^\n]+\n)*?Version: (\S+)", status, re.M))
        versions["python"] = next(
            p.name for p in sorted((rootfs / "usr" / "bin").glob("python3.*")) if "-" not in p.name
        )
        for trimmed in TRIM:
            for entry in (rootfs / trimmed).glob("*"):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        partial = tarball.with_suffix(".tar.part")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=600)
        partial.rename(tarball)
    meta.write_text(json.dumps({name: versions[name] for name in (*BASE_PACKAGES, "python")}), encoding="utf-8")
    for stale in folder.glob(f"{suite}-*"):  # the tarballs of earlier package lists or trims
        if stale not in (tarball, meta):
            stale.unlink()
    return tarball, json.loads(meta.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Images:
    base: str
    registry: str
    tool: str
    versions: dict[str, str]


def ensure_base(podman: Podman) -> tuple[str, dict[str, str]]:
    suite = debian_suite()
    tarball, versions = _base_tarball(suite)
    name = f"localhost/registry-prune-debian:{suite}-{tarball.stem.rsplit('-', 1)[1]}"
    if not podman.image_exists(name):
        say(f"podman import {tarball.name} as {name}")
        podman.run("podman", "import", "--change", "CMD=/bin/sh", str(tarball), name)
    return name, versions


def ensure_registry_image(podman: Podman, base: str, versions: dict[str, str]) -> str:
    files = sorted(REGISTRY_IMAGE_DIR.iterdir())
    key = _digest(base.encode(), *(f.read_bytes() for f in files))
    version = re.sub(r"[^A-Za-z0-9_.-]", "_", versions["docker-registry"])
    name = f"localhost/registry-prune-registry:{version}-{key}"
    if not podman.image_exists(name):
        say(f"building {name} from Debian's docker-registry {versions['docker-registry']}")
        podman.build(name, REGISTRY_IMAGE_DIR, f"BASE={base}")
    return name


def _sources_digest() -> str:
    """What the tool image is built from. Not the README: it is only the wheel's long description,
    and rebuilding the image (a minute) for a documentation change would be waste."""
    paths = [ROOT / "Containerfile", ROOT / "setup.cfg", ROOT / "pyproject.toml"]
    paths += sorted((ROOT / "pipeline_step").rglob("*.py")) + sorted((ROOT / "pipeline_step").rglob("py.typed"))
    return _digest(*(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() for p in paths))


def build_dist(outdir: Path) -> Path:
    """``python -m build`` (wheel and sdist) into ``outdir``; returns the wheel."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        hint = "" if "No module named build" not in done.stderr else " (pip install build, or ./scripts/setup.sh)"
        raise RuntimeError(f"python -m build failed{hint}: {(done.stdout + done.stderr)[-2000:]}")
    return next(outdir.glob("registry_prune-*.whl"))


def _wheelhouse(wheel: Path, python: str) -> Path:
    """Wheels of the tool's dependencies for the image's Python, so the image builds offline."""
    host = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if python != host:
        raise RuntimeError(f"the image's {python} differs from this {host}: its wheels would not fit")
    requires = re.search(r"install_requires =\n((?:    .+\n)+)", (ROOT / "setup.cfg").read_text(encoding="utf-8"))
    assert requires is not None
    house = tools_dir() / "wheelhouse" / f"{python}-{_digest(requires.group(1).encode())}"
    if not (house / ".complete").exists():
        say(f"pip wheel: the dependencies for {python} into {house}")
        house.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(house),
             str(wheel)],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pip wheel failed: {done.stderr[-2000:]}")
        for own in house.glob("registry_prune-*"):
            own.unlink()
        (house / ".complete").touch()
    return house


def ensure_tool_image(podman: Podman, base: str, versions: dict[str, str]) -> str:
    name = f"localhost/registry-prune:{__version__}-{_digest(base.encode(), _sources_digest().encode())}"
    if podman.image_exists(name):
        return name
    with tempfile.TemporaryDirectory(prefix="registry-prune-image-") as work:
        context = Path(work)
        dist = context / "dist"
        say(f"building {name} (Containerfile, BASE={base})")
        wheel = build_dist(dist)
        for sdist in dist.glob("*.tar.gz"):
            sdist.unlink()
        for dep in _wheelhouse(wheel, versions["python"]).glob("*.whl"):
            shutil.copy2(dep, dist / dep.name)
        shutil.copy2(ROOT / "Containerfile", context / "Containerfile")
        podman.build(name, context, f"BASE={base}", "PACKAGES=", "PIP_ARGS=--no-index --find-links /tmp/dist")
    return name


def _remove_older(podman: Podman, keep: str) -> None:
    """Drop the images ``keep`` replaces (same repository, older key): with vfs each is a full copy
    of its rootfs, and every change to pipeline_step/ makes a new tool image. One still used by a
    container stays (podman refuses). Base images go after the images built on them."""
    repository = keep.rsplit(":", 1)[0]
    listed = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
        env=podman.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    stale = [image for image in listed.stdout.split() if image != keep and image.startswith(f"{repository}:")]
    if stale:
        say(f"removing the older images {' '.join(stale)}")
        subprocess.run(["podman", "rmi", *stale], env=podman.env(), capture_output=True, timeout=300, check=False)


def ensure_images(podman: Podman | None = None) -> Images:
    podman = podman or Podman()
    with _build_lock():
        base, versions = ensure_base(podman)
        registry = ensure_registry_image(podman, base, versions)
        tool = ensure_tool_image(podman, base, versions)
        for current in (tool, registry, base):  # children first: podman keeps a base with dependents
            _remove_older(podman, current)
    return Images(base, registry, tool, versions)


def _ping(sock: Path) -> bool:
    """GET /_ping on the API socket: what `docker` asks first."""
    connection = http.client.HTTPConnection("localhost", timeout=2)
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.sock.settimeout(2)
        connection.sock.connect(str(sock))
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class DockerApi:
    """``podman system service`` on a private socket; ``env`` makes the docker CLI use it.

    ``insecure`` lists the host:port registries pushes may reach over plain HTTP."""

    def __init__(self, workdir: Path, *, insecure: tuple[str, ...] = ()) -> None:
        require("docker")
        workdir.mkdir(parents=True, exist_ok=True)
        registries = workdir / "registries.conf"
        entries = "".join(f'\n[[registry]]\nlocation = "{host}"\ninsecure = true\n' for host in insecure)
        registries.write_text("unqualified-search-registries = []\n" + entries, encoding="utf-8")
        self.podman = Podman(registries_conf=registries)
        self.socket = workdir / "podman.sock"
        self.log = workdir / "podman-service.log"
        self.docker_config = workdir / "docker-config"
        self.docker_config.mkdir(exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """For the docker CLI (and anything that runs it, e.g. recover's commands)."""
        return {
            **self.podman.env(),
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.docker_config),
        }

    def __enter__(self) -> DockerApi:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                env=self.podman.env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not _ping(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"podman system service did not answer: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)  # polling interval, not a wait for readiness
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.socket.unlink(missing_ok=True)

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done


if __name__ == "__main__":
    if sys.argv[1:] != ["images"]:
        raise SystemExit("usage: python -m tests.support.containers images")
    built = ensure_images()
    print(f"registry image: {built.registry}\ntool image:     {built.tool}\nbase image:     {built.base}")
