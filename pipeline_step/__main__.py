"""``python -m pipeline_step`` runs the ``registry-prune`` command line."""

from pipeline_step.cli.main import main

raise SystemExit(main())
