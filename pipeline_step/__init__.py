"""registry-prune: safe retention pruning and push recovery for Docker Registry v2 and OCI registries.

The command line (``registry-prune``) is a thin layer over this package; each
command is one library call, and the same pieces can be imported::

    from pipeline_step import load_configuration, open_backend, open_client, prune

    configuration = load_configuration(
        flags={"registry.url": "https://registry.example:5000", "repositories": ["team/app"], "policy.keep": 5}
    )
    with open_client(configuration.registry.url) as client:
        run = prune(open_backend(client=client), configuration, dry_run=True)
    print(run.outcome().message)

Names are imported on first use, so ``import pipeline_step`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExitCode": "pipeline_step.errors",
    "PruneError": "pipeline_step.errors",
    "RegistryClient": "pipeline_step.registry.client",
    "open_client": "pipeline_step.registry.http.choose",
    "load_configuration": "pipeline_step.policy.config",
    "build_plan": "pipeline_step.planning.build",
    "open_backend": "pipeline_step.backends",
    "prune": "pipeline_step.operations.prune",
}

__all__ = [
    "ExitCode",
    "PruneError",
    "RegistryClient",
    "__version__",
    "build_plan",
    "load_configuration",
    "open_backend",
    "open_client",
    "prune",
]

if TYPE_CHECKING:
    from pipeline_step.backends import open_backend
    from pipeline_step.errors import ExitCode, PruneError
    from pipeline_step.operations.prune import prune
    from pipeline_step.planning.build import build_plan
    from pipeline_step.policy.config import load_configuration
    from pipeline_step.registry.client import RegistryClient
    from pipeline_step.registry.http.choose import open_client


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline_step' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
