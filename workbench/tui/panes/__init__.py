"""The workbench's panes, one per tab: corpus, objective & model, train, runs, inspector."""
