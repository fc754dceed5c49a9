"""A lean GPT-2 for training from scratch: the same weights as ``GPT2LMHeadModel``, less code
per step.

Why: transformers' GPT-2 spends a large share of a GPU step outside the matrix multiplies
(mask building, head reshuffles, output dataclasses, hooks), enough that even under
``torch.compile`` it reaches about 31% MFU on an H200 where a minimal model of the same
shape reaches 44% (figures in the scale issue). This module is that minimal model: fused
qkv projection, ``scaled_dot_product_attention(is_causal=True)``, tied embeddings, and a
loss over packed blocks, nothing else.

It never owns weights of its own. ``LeanGPT2.sharing(hf_model)`` registers the *same*
``Parameter`` objects as a ``GPT2LMHeadModel``, in the same order and under the same
names, so:

- checkpoints, probes, reports and ``save_pretrained`` use the transformers model, and every
  run directory still loads with ``AutoModelForCausalLM.from_pretrained``;
- the optimizer state (indexed by parameter order) is the same whichever of the two
  trained, so a run started with one resumes with the other;
- initialisation is transformers' own (the transformers model is built first).

Only what packed causal-LM pre-training feeds it is supported: ``input_ids`` and
``labels`` with no padding mask. Anything else (padding, caches, generation) goes through
the transformers model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutput


class Conv1DWeights(nn.Module):
    """GPT-2's projection layout: ``weight`` is (in, out), so ``y = x @ weight + bias``."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out, device="meta"))
        self.bias = nn.Parameter(torch.empty(n_out, device="meta"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.t(), self.bias)  # one addmm with the bias fused in


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, resid_dropout: float):
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1DWeights(hidden, 3 * hidden)
        self.c_proj = Conv1DWeights(hidden, hidden)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.c_attn(x).split(hidden, dim=2)
        shape = (batch, length, self.heads, hidden // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(batch, length, hidden)))


class MLP(nn.Module):
    def __init__(self, hidden: int, inner: int, dropout: float):
        super().__init__()
        self.c_fc = Conv1DWeights(hidden, inner)
        self.c_proj = Conv1DWeights(inner, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))  # GPT-2's gelu_new


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float, attn_dropout: float, resid_dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden, eps=eps, device="meta")
        self.attn = Attention(hidden, heads, attn_dropout, resid_dropout)
        self.ln_2 = nn.LayerNorm(hidden, eps=eps, device="meta")
        self.mlp = MLP(hidden, inner, resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, config: Any):
        super().__init__()
        hidden = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, hidden, device="meta")
        self.wpe = nn.Embedding(config.n_positions, hidden, device="meta")
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(
            Block(hidden, config.n_head, config.n_inner or 4 * hidden, config.layer_norm_epsilon, config.attn_pdrop, config.resid_pdrop)
            for _ in range(config.n_layer)
        )
        self.ln_f = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon, device="meta")


class LeanGPT2(nn.Module):
    """Forward-and-loss only; build it with :meth:`sharing`."""

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)

    @classmethod
    def supports(cls, hf_model: Any) -> str | None:
        """Why ``hf_model`` cannot be mirrored, or None when it can."""
        config = getattr(hf_model, "config", None)
        if type(hf_model).__name__ != "GPT2LMHeadModel" or config is None:
            return "only GPT2LMHeadModel has a lean twin"
        checks = {
            "activation_function": (config.activation_function, "gelu_new"),
            "scale_attn_weights": (config.scale_attn_weights, True),
            "scale_attn_by_inverse_layer_idx": (config.scale_attn_by_inverse_layer_idx, False),
            "reorder_and_upcast_attn": (config.reorder_and_upcast_attn, False),
            "tie_word_embeddings": (config.tie_word_embeddings, True),
            "add_cross_attention": (config.add_cross_attention, False),
        }
        for name, (value, wanted) in checks.items():
            if value != wanted:
                return f"config {name}={value!r} (the lean model assumes {wanted!r})"
        return None

    def twin_note(self) -> str:
        """What a run training through this twin says about it."""
        return "Training with the lean GPT-2 (same weights and checkpoints as GPT2LMHeadModel)"

    @classmethod
    def sharing(cls, hf_model: Any) -> LeanGPT2:
        """A lean model whose parameters *are* ``hf_model``'s (same objects, same order)."""
        problem = cls.supports(hf_model)
        if problem:
            raise ValueError(problem)
        lean = cls(hf_model.config)
        for name, _ in list(lean.named_parameters()):
            owner_name, _, attribute = name.rpartition(".")
            setattr(lean.get_submodule(owner_name), attribute, hf_model.get_parameter(name))
        lean.train(hf_model.training)
        return lean

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **unsupported: Any) -> CausalLMOutput:
        if any(value is not None for value in unsupported.values()):
            raise TypeError(f"the lean GPT-2 takes input_ids and labels only, not {sorted(unsupported)}")
        length = input_ids.shape[1]
        if length > self.config.n_positions:
            raise ValueError(f"sequence of {length} tokens is longer than n_positions={self.config.n_positions}")
        t = self.transformer
        positions = torch.arange(length, device=input_ids.device)
        x = t.drop(t.wte(input_ids) + t.wpe(positions))
        for block in t.h:
            x = block(x)
        logits = F.linear(t.ln_f(x), t.wte.weight)  # tied output embedding
        loss = None
        if labels is not None:
            # Shift the labels, not the logits: no copy of the (batch, length, vocab) tensor.
            targets = F.pad(labels[:, 1:], (0, 1), value=-100)
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

