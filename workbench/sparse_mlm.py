"""BERT's masked-LM loss scored at the masked positions only: the same weights and the same
loss as ``BertForMaskedLM`` / ``BertForPreTraining``, with the vocabulary projection run on
about 15% of the tokens instead of all of them.

Why: transformers' BERT heads project every position onto the vocabulary and then ignore the
85% whose label is -100. For the tiny default model that projection is most of the step
(on 2 CPU cores, 64 x 32 tokens: 140 ms a step with the full head, 60 ms with this one).
ModernBERT's "sparse prediction" does the same; transformers' BERT has no switch for it.

Like the lean GPT-2, it never owns weights: ``SparseMaskedLM.sharing(model)`` registers the
model's own ``bert`` and ``cls`` modules, so parameter names and order, checkpoints,
optimizer state and ``save_pretrained`` are exactly the transformers model's. The loss is the
same mean over masked tokens (a test checks loss and gradients against transformers').
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.bert.modeling_bert import BertForPreTrainingOutput

SUPPORTED = ("BertForMaskedLM", "BertForPreTraining")


class SparseMaskedLM(nn.Module):
    """Forward-and-loss only; build it with :meth:`sharing`."""

    def __init__(self, hf_model: Any):
        super().__init__()
        self.config = hf_model.config
        self.pretraining = type(hf_model).__name__ == "BertForPreTraining"
        self.mirrors = type(hf_model).__name__
        self.bert = hf_model.bert  # registered in the model's order: bert, then cls
        self.cls = hf_model.cls
        self.train(hf_model.training)

    @classmethod
    def supports(cls, hf_model: Any) -> str | None:
        """Why ``hf_model`` cannot be mirrored, or None when it can."""
        if type(hf_model).__name__ not in SUPPORTED:
            return f"only {' and '.join(SUPPORTED)} have a sparse masked-LM twin"
        extra = [name for name, _ in hf_model.named_children() if name not in ("bert", "cls")]
        return f"unexpected modules {extra}" if extra else None

    def twin_note(self) -> str:
        """What a run training through this twin says about it."""
        return f"Scoring masked positions only (same weights, loss and checkpoints as {self.mirrors})"

    @classmethod
    def sharing(cls, hf_model: Any) -> SparseMaskedLM:
        problem = cls.supports(hf_model)
        if problem:
            raise ValueError(problem)
        return cls(hf_model)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, next_sentence_label: torch.Tensor | None = None,
                **unsupported: Any) -> MaskedLMOutput | BertForPreTrainingOutput:
        if any(value is not None for value in unsupported.values()):
            raise TypeError(f"the sparse masked-LM twin takes input_ids, labels, masks and token types only, not {sorted(unsupported)}")
        if labels is None:
            raise TypeError("the sparse masked-LM twin computes the training loss: it needs labels")
        outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True)
        hidden = outputs.last_hidden_state
        masked = labels != -100
        # the mean over masked tokens, as CrossEntropyLoss(ignore_index=-100) over every position
        mlm_head = self.cls.predictions if self.pretraining else self.cls
        scores = mlm_head(hidden[masked])
        loss = F.cross_entropy(scores.float(), labels[masked])
        if not self.pretraining:
            return MaskedLMOutput(loss=loss)
        relationship = self.cls.seq_relationship(outputs.pooler_output)
        if next_sentence_label is not None:
            loss = loss + F.cross_entropy(relationship.float().view(-1, 2), next_sentence_label.view(-1))
        return BertForPreTrainingOutput(loss=loss, seq_relationship_logits=relationship)
