"""Counts in messages agree with their nouns: "1 tag", never "1 tags" or "tag(s)"."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from pipeline_step.operations.usage import RepositoryUsage, Usage
from pipeline_step.support.units import plural

ROOT = Path(__file__).resolve().parent.parent
# An interpolated count followed by a plural noun, or a "(s)" plural, inside pipeline_step's strings.
COUNTED = re.compile(r"\{[^{}]+\} (?:tags|manifests|repositories|blobs|attempts|images)\b|\w\(s\)")


def test_no_message_pluralises_a_count_by_hand() -> None:
    hits = []
    for path in sorted((ROOT / "pipeline_step").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            # Branches that only ever see more than one ("if count == 1 else", "attempts > 1") are fine.
            guarded = re.search(r"== 1 else|> 1 else|if retried", line)
            if COUNTED.search(line) and not guarded and "http(s)" not in line and "certificate(s)" not in line:
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert hits == [], "use pipeline_step.support.units.plural():\n" + "\n".join(hits)


def test_plural() -> None:
    assert plural(1, "tag") == "1 tag" and plural(2, "tag") == "2 tags" and plural(0, "tag") == "0 tags"
    assert plural(1, "repository", "repositories") == "1 repository"
    assert plural(3, "repository", "repositories") == "3 repositories"


def test_usage_message_for_one_repository_with_one_tag() -> None:
    row = RepositoryUsage("team/app", tags=1, manifests=1, referenced_bytes=10, reclaimable_bytes=0,
                          tags_to_delete=0, selected=True)  # fmt: skip
    usage = Usage(datetime.now(timezone.utc), ["team/app"], exact=False, repositories=[row], tags=1, manifests=1)
    assert usage.outcome().message.startswith("1 repository, 1 tag, ")
