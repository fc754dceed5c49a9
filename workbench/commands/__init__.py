"""Typer commands, one module each: thin wrappers over engine/corpora/inspector functions."""
