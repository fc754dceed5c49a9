"""Modal screens: help, errors, pickers."""
