"""Executing plans: the executor and its deletion backends."""
