"""The ``registry-prune`` command line: argument parsing and output only.

Each command module turns flags into library calls; the work itself lives in
the rest of the package.
"""
