"""registry-prune: safe retention pruning and push recovery for Docker Registry v2.

The command line (``registry-prune``) is a thin layer over this package; the
same pieces can be imported::

    from pipeline_step import RegistryClient, load_config, build_plan
"""

from __future__ import annotations

__version__ = "0.1.0"

from pipeline_step.errors import ExitCode, PruneError
from pipeline_step.registry.client import RegistryClient

__all__ = ["ExitCode", "PruneError", "RegistryClient", "__version__"]
