"""Command palette (ctrl+p) entries for the workbench's main actions, and one per pane."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from workbench.tui.panes import PANES

BEFORE_PANES: tuple[tuple[str, str, str], ...] = (
    ("Start training", "start", "Train the spec of the Objective pane in this window"),
    ("Start detached run", "detach", "Run the spec as a separate `workbench run` process and attach to it"),
    ("Stop training (checkpoint)", "stop", "Finish the step, save a checkpoint and stop"),
    ("Pause / resume training", "pause", "Hold the training loop without losing state"),
)
AFTER_PANES: tuple[tuple[str, str, str], ...] = (
    ("Toggle smoothing", "toggle_chart('smoothing')", "Smooth the train loss curve"),
    ("Toggle log scale", "toggle_chart('log')", "Logarithmic loss axis"),
    ("Toggle x axis: steps / tokens", "toggle_chart('x')", "Plot against steps or tokens"),
    ("Overlay a previous run", "pick_overlay", "Draw another run's curves in grey"),
    ("Refresh runs", "refresh_runs", "Re-read the run root"),
    ("Keys (help)", "help", "Every key of the workbench"),
    ("Quit", "quit", "Stops a training run with a checkpoint first"),
)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    BEFORE_PANES
    + tuple((f"Go to {pane.name}", f"show_tab('{pane.id}')", pane.about) for pane in PANES)
    + AFTER_PANES
)
"""(title, app action, help) of each palette entry."""


class WorkbenchCommands(Provider):
    async def discover(self) -> Hits:
        for title, action, help_text in COMMANDS:
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
