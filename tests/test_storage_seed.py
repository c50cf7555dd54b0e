"""The fast storage writer produces exactly what a real push produces."""

from __future__ import annotations

from pathlib import Path

from tests.support.images import Pusher, list_tags, resolve
from tests.support.registry import RegistryFactory
from tests.support.storage_seed import StorageWriter, tree


def test_writer_matches_a_real_push_byte_for_byte(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    pushed = registry_factory("pushed")
    with Pusher(pushed.url) as pusher:
        for n in range(1, 4):
            pusher.image("team/app", f"1.0.0-alpha.{n}")
        pusher.tag("team/app", "1.0.0-alpha.2", "latest")
        children = [pusher.image("team/app", None, label=f"c-{a}", architecture=a) for a in ("amd64", "arm64")]
        pusher.index("team/app", "multi", children)
    writer = StorageWriter(tmp_path / "written")
    for n in range(1, 4):
        writer.image("team/app", f"1.0.0-alpha.{n}")
    alpha2 = resolve(pushed.url, "team/app", "1.0.0-alpha.2")
    assert alpha2 is not None
    writer.tag("team/app", "latest", alpha2)
    written_children = [writer.image("team/app", None, label=f"c-{a}", architecture=a) for a in ("amd64", "arm64")]
    writer.index("team/app", "multi", written_children)
    assert tree(tmp_path / "written") == tree(pushed.storage)
    served = registry_factory("served", storage=tmp_path / "written")
    assert list_tags(served.url, "team/app") == ["1.0.0-alpha.1", "1.0.0-alpha.2", "1.0.0-alpha.3", "latest", "multi"]
    assert resolve(served.url, "team/app", "latest") == alpha2
