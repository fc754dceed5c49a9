"""Experiments over several runs: comparing runs and sweeps, and fitting scaling laws.

Plain data and arithmetic (no Textual, no torch): ``compare`` reads run directories and
sweep folders into rows, ``scaling`` fits ``L = a * X^-b + c``. Both front ends (``workbench
compare`` and the TUI's Compare pane) call them.
"""
