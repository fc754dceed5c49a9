"""The Textual workbench. Everything Textual lives under this package; the engine never imports it."""
