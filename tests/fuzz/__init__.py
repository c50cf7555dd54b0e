"""Fuzz targets (atheris): each runs as ``python -m tests.fuzz.NAME [libFuzzer arguments]``, see scripts/fuzz.sh."""
