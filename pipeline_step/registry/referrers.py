"""The OCI referrers API: ``GET /v2/<name>/referrers/<digest>`` (distribution-spec 1.1).

A registry that offers it answers 200 with an image index of the manifests whose
``subject`` is ``<digest>``; one that does not answers 404 (the spec forbids a 404
from a registry that offers it), and then clients keep the referrers tag schema
instead (pipeline_step/registry/artifacts.py). Distribution 2.8 and 3.x do not
offer it. The list is not content-addressed: callers fetch each manifest it names
by digest, verified, and believe its own ``subject`` field, not the list.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urljoin, urlsplit

from pipeline_step.errors import RegistryProtocolError
from pipeline_step.registry import mediatypes
from pipeline_step.registry.client import MANIFEST_LIMIT, RegistryClient
from pipeline_step.registry.digest import is_digest
from pipeline_step.registry.http.errors import raise_for_status

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
MAX_PAGES = 100  # a subject with more referrers than 100 pages hold is hostile, not busy


def list_referrers(client: RegistryClient, repository: str, digest: str) -> list[str] | None:
    """The digests the registry lists as referrers of ``digest``; None when it offers no referrers API."""
    path: str | None = f"/v2/{quote(repository, safe='/')}/referrers/{digest}"
    found: list[str] = []
    pages = 0
    while path is not None:
        response = client.session.send(
            "GET",
            path,
            scope=f"repository:{repository}:pull",
            headers={"Accept": mediatypes.OCI_INDEX},
            max_body=MANIFEST_LIMIT,
        )
        if response.status == 404 and pages == 0:
            return None
        if response.status != 200:
            raise_for_status(response, f"list the referrers of {repository}@{digest}", client.session.endpoint)
        found.extend(_digests(response.body, repository, digest))
        pages += 1
        path = _next_page(client, response.header("link"))
        if pages >= MAX_PAGES and path is not None:
            raise RegistryProtocolError(f"the referrers of {repository}@{digest} run past {MAX_PAGES} pages")
    return sorted(dict.fromkeys(found))


def _digests(body: bytes, repository: str, digest: str) -> list[str]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryProtocolError(f"the referrers list of {repository}@{digest} is not valid JSON") from None
    entries = document.get("manifests") if isinstance(document, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise RegistryProtocolError(f"the referrers list of {repository}@{digest} has a non-list 'manifests'")
    listed = [entry.get("digest") for entry in entries if isinstance(entry, dict)]
    return [d for d in listed if isinstance(d, str) and is_digest(d) and d.startswith("sha256:")]


def _next_page(client: RegistryClient, link: str | None) -> str | None:
    match = _LINK_NEXT.search(link) if link else None
    if not match:
        return None
    target = urlsplit(urljoin(client.url + "/", match.group(1)))
    if target.netloc != client.host:
        raise RegistryProtocolError(f"the referrers list's next-page link points to another host: {target.netloc}")
    return f"{target.path}?{target.query}" if target.query else target.path
