"""Fine-tuning objectives: sentiment, ner, qa and generation, each on top of a ``--base``."""

from workbench.tasks import register
from workbench.tasks.finetune.generation import GenerationTask
from workbench.tasks.finetune.ner import NERTask
from workbench.tasks.finetune.qa import QATask
from workbench.tasks.finetune.sentiment import SentimentTask

register("sentiment", SentimentTask)
register("ner", NERTask)
register("qa", QATask)
register("generation", GenerationTask)
