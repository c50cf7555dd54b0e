"""The acceptance repository most tests seed: team/app."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.images import Pushed, Pusher


@dataclass
class SeededApp:
    """team/app with 40 alphas, two releases, latest (on alpha.5), and a manifest list with two children."""

    repo: str
    alphas: dict[int, Pushed]
    releases: dict[str, Pushed]
    multi: Pushed
    children: list[Pushed]


def seed_app(url: str, repo: str = "team/app", count: int = 40) -> SeededApp:
    with Pusher(url) as pusher:
        alphas = {
            n: pusher.image(repo, f"3.3.0-alpha.{n}", created=f"2024-01-{1 + n % 28:02d}T00:00:00Z")
            for n in range(1, count + 1)
        }
        releases = {v: pusher.image(repo, v) for v in ("3.1.0", "3.2.0")}
        pusher.tag(repo, "3.3.0-alpha.5", "latest")
        children = [pusher.image(repo, None, label=f"multi-{arch}", architecture=arch) for arch in ("amd64", "arm64")]
        multi = pusher.index(repo, "multi", children)
    return SeededApp(repo, alphas, releases, multi, children)
