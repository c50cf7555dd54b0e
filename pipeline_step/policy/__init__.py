"""Retention policy: configuration models, tag ordering and repository selection."""
