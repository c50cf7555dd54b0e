"""Writing JSON reports: redacted value by value, atomic, and streamed where they can be huge.

Every ``--json FILE`` goes through here: to stdout for ``-``, else to a
temporary file renamed into place, so a reader never sees half a report. List
fields named in ``streamed`` are written one item per line without building
the whole document in memory (a 100,000-tag plan has 100,000 entries).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from pydantic import BaseModel

from pipeline_step.errors import UsageError
from pipeline_step.support.redact import redact_values


def _item(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def dump(model: BaseModel, handle: TextIO, *, streamed: Iterable[str] = ()) -> None:
    """Indented JSON of ``model``; the ``streamed`` list fields come last, an item per line."""
    streamed = tuple(streamed)
    head = json.dumps(redact_values(model.model_dump(mode="json", exclude=set(streamed))), indent=2)
    if not streamed:
        handle.write(head + "\n")
        return
    handle.write(head[: head.rindex("}")].rstrip())
    for name in streamed:
        items = getattr(model, name)
        handle.write(f',\n  "{name}": [')
        for index, item in enumerate(items):
            handle.write(("," if index else "") + "\n    " + json.dumps(redact_values(_item(item))))
        handle.write("\n  ]" if items else "]")
    handle.write("\n}\n")


def write(
    model: BaseModel, target: str | Path | None, *, streamed: Iterable[str] = (), stdout: TextIO | None = None
) -> None:
    """Write ``model`` to ``target``: ``-`` is stdout, None does nothing, a path is written atomically."""
    if target is None or target == "":
        return
    if str(target) == "-":
        dump(model, stdout or sys.stdout, streamed=streamed)
        return
    path = Path(target)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            dump(model, handle, streamed=streamed)
        temporary.replace(path)
    except OSError as exc:
        raise UsageError(
            f"--json {target}: cannot write it: {exc.strerror or exc}", hint="give a writable path, or - for stdout"
        ) from None
