"""Reusable widgets of the workbench (they carry their own DEFAULT_CSS)."""
