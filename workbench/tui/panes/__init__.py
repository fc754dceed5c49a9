"""The workbench's panes, one per tab, in one table: ``PANES``.

The app builds its tabs, the keys ``1``..``N`` that show them (which the command palette
and the help screen list with every other key) and the help screen's sections from this table, so adding a pane is one entry here
(plus its module and, if it has one, its ``.tcss`` file next to it, which the app loads).
Each pane gets what it needs through its constructor (``PaneContext``) and talks back with
messages; no pane reaches into the app or into another pane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.widget import Widget

from workbench.tui.panes.compare import ComparePane
from workbench.tui.panes.corpus import CorpusPane
from workbench.tui.panes.inspector import InspectorPane
from workbench.tui.panes.objective import ObjectivePane
from workbench.tui.panes.runs import RunsPane
from workbench.tui.panes.train import TrainPane


@dataclass(frozen=True)
class PaneContext:
    """What the app hands down to every pane factory."""

    run_root: Path
    corpora: list[str]
    runs_poll_seconds: float = 1.0
    """Seconds between two looks at the run root for new or changed runs (0: none)."""


@dataclass(frozen=True)
class PaneEntry:
    id: str
    """The tab's id; the pane widget's id is ``<id>-pane``."""
    title: str
    """Tab label (after its key) and the footer/help description of its key."""
    name: str
    """Longer name: the key's help line and palette entry say "Go to <name>: <about>"."""
    tooltip: str
    """The pane's heading in the help screen (after its key)."""
    about: str
    """What the pane is for (after its name in the key's help line)."""
    factory: Callable[[PaneContext, str], Widget]
    """``(context, widget_id) -> pane``."""

    @property
    def pane_id(self) -> str:
        return f"{self.id}-pane"


PANES: tuple[PaneEntry, ...] = (
    PaneEntry("corpus", "Corpus", "Corpus", "Corpus pane", "Choose a corpus and see its stats",
              lambda ctx, pane_id: CorpusPane(ctx.corpora, id=pane_id)),
    PaneEntry("objective", "Objective", "Objective & model", "Objective & model pane",
              "Objective, base or size, hyperparameters", lambda ctx, pane_id: ObjectivePane(ctx.run_root, id=pane_id)),
    PaneEntry("train", "Train", "Train", "Train pane (live curves)", "Live loss curves",
              lambda ctx, pane_id: TrainPane(id=pane_id)),
    PaneEntry("runs", "Runs", "Runs", "Runs pane (history)", "Run history",
              lambda ctx, pane_id: RunsPane(ctx.run_root, poll_seconds=ctx.runs_poll_seconds, id=pane_id)),
    PaneEntry("inspector", "Inspector", "Inspector", "Inspector pane", "Base vs fine-tuned predictions",
              lambda ctx, pane_id: InspectorPane(ctx.run_root, id=pane_id)),
    PaneEntry("compare", "Compare", "Compare", "Compare pane (runs, sweeps, scaling)", "Runs and sweeps side by side, scaling fit",
              lambda ctx, pane_id: ComparePane(ctx.run_root, poll_seconds=ctx.runs_poll_seconds, id=pane_id)),
)


def pane_css_paths() -> list[str]:
    """The panes' own ``.tcss`` files, relative to the app's module (for ``CSS_PATH``)."""
    folder = Path(__file__).parent
    return [f"{folder.name}/{path.name}" for path in sorted(folder.glob("*.tcss"))]
