"""lm-workbench: a terminal workbench for small language-model experiments.

The engine (``workbench.engine``), corpora, tasks and inspector never import Textual;
the TUI (``workbench.tui``) and the CLI (``workbench.cli``) are thin layers over them.
"""

__version__ = "0.1.0"
