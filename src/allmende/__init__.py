"""Allmende driver: a thin, typed layer over ansible-runner for the allmende.cloud collection."""

__version__ = "0.1.0"
