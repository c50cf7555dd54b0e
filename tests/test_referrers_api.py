"""The OCI referrers API, where a registry offers it, and its absence where it does not.

Distribution 2.8 and 3.x do not offer ``GET /v2/<name>/referrers/<digest>``;
tests/support/referrers_proxy.py puts it in front of a real 2.8, so oras pushes
referrers that no tag names (it writes no referrers tag index once the registry
answers ``OCI-Subject``). Only the referrers API can find those.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import policy_args, run_cli
from tests.support.images import Pusher, list_tags, resolve
from tests.support.proxy import RecordingProxy
from tests.support.referrers_proxy import ReferrersProxy
from tests.support.registry import RegistryFactory
from tests.support.signing import Oras, flatten

REPO = "team/app"


def test_untagged_referrers_that_only_the_referrers_api_lists_go_with_their_subject(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    server = registry_factory()
    oras = Oras(tmp_path / "oras")
    with ReferrersProxy(server.url) as proxy:
        with Pusher(proxy.url) as pusher:
            images = {n: pusher.image(REPO, f"1.0.0-alpha.{n}", oci=True, label=f"a{n}") for n in range(1, 5)}
        sboms = {
            n: oras.attach(proxy.url, REPO, image.digest, b"{}", artifact_type="application/spdx+json", name="s.json")
            for n, image in images.items()
        }
        # A signature of alpha.1's SBOM: a referrer of a referrer.
        signed = oras.attach(
            proxy.url, REPO, sboms[1], b"sig", artifact_type="application/vnd.example.signature", name="sig"
        )
        assert not any(tag.startswith("sha256-") for tag in list_tags(server.url, REPO))  # no referrers tag index
        assert flatten(oras.discover(proxy.url, REPO, images[3].digest)) == {("application/spdx+json", sboms[3])}
        proxy.asked.clear()  # oras asked too

        plan = run_cli("plan", *policy_args(proxy.url, match="alpha", keep=2), "--json", str(tmp_path / "plan.json"))
        result = run_cli("prune", *policy_args(proxy.url, match="alpha", keep=2), "--json", str(tmp_path / "r.json"))
        assert plan.code == 0 and result.code == 0, result.output
        report = json.loads((tmp_path / "r.json").read_text())
        assert json.loads((tmp_path / "plan.json").read_text())["deleted"] == report["deleted"]
        for n in (1, 2):
            assert resolve(server.url, REPO, images[n].digest) is None
            assert resolve(server.url, REPO, sboms[n]) is None
        assert resolve(server.url, REPO, signed) is None
        for n in (3, 4):
            assert resolve(server.url, REPO, sboms[n]) == sboms[n]
        assert report["summary"]["attachment_kinds"] == {"signature": 1, "SBOM": 2}
        untagged = {e["digest"]: e for e in report["deleted"] if e["attachment"]}
        assert untagged[signed]["reason"] == "signature of deleted SBOM of 1.0.0-alpha.1"
        # Each deleted manifest was asked about once per run (plan, then prune): nothing else.
        deleted = {images[1].digest, images[2].digest, sboms[1], sboms[2], signed}
        assert set(proxy.asked) == deleted and set(proxy.asked.values()) == {2}


def test_a_registry_without_the_referrers_api_is_asked_once_per_run(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    server = registry_factory()
    with Pusher(server.url) as pusher:
        for n in range(1, 9):
            pusher.image(REPO, f"1.0.0-alpha.{n}", label=f"a{n}")
    with RecordingProxy(server.url) as proxy:
        result = run_cli("prune", *policy_args(proxy.url, match="alpha", keep=2), "--json", str(tmp_path / "r.json"))
        assert result.code == 0, result.output
        asked = [
            path for (method, path), count in proxy.counts().items() for _ in range(count) if "/referrers/" in path
        ]
    assert len(asked) == 1  # 6 deletions, one probe: its 404 says the API is not offered
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["manifests_deleted"] == 6
