"""Fine-tuning objectives: sentiment, ner, qa and generation, each on top of a ``--base``.

They are listed in the objective registry (``workbench.tasks``) and imported on first use.
"""
