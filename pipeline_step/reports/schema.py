"""The JSON Schema of every ``--json`` report, generated from the report models.

``python -m pipeline_step.reports.schema`` prints it; the committed copy is
docs/report-schema.json, and a test keeps the two equal. A report is told
apart by its ``command``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from pipeline_step.reports.classify import ClassifyReport
from pipeline_step.reports.gc import GcReport
from pipeline_step.reports.prune import PruneReport
from pipeline_step.reports.recover import RecoveryReport
from pipeline_step.reports.restore import RestoreReport
from pipeline_step.reports.usage import UsageReport

AnyReport = Annotated[
    Union[PruneReport, RecoveryReport, RestoreReport, UsageReport, GcReport, ClassifyReport],  # noqa: UP007
    Field(discriminator="command"),
]


def report_schema() -> dict[str, Any]:
    schema = TypeAdapter(AnyReport).json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "registry-prune report"
    schema["description"] = "The --json report of any registry-prune command; `command` tells which."
    return schema


def render() -> str:
    return json.dumps(report_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
