"""Train a tokenizer on the training corpus with the ``tokenizers`` library.

WordPiece (BERT-style, lowercased) for masked objectives, byte-level BPE (GPT-2 style) for
causal ones, and a character vocabulary for nanoGPT-style char experiments. The result is
a ``PreTrainedTokenizerFast`` so it saves with ``save_pretrained`` and reloads with
``AutoTokenizer``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from workbench.corpora import cache

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GPT_SPECIAL = "<|endoftext|>"


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def wordpiece_pipeline() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok


def continuation_tokens(texts: list[str], tok: Tokenizer) -> list[str]:
    """``##c`` for each character that can continue a word, sorted.

    The tokenizers library's WordPiece trainer makes these tokens as it meets them in hash-map
    order, and their ids break ties between equally frequent merges, so two trainings on the
    same text learn different vocabularies (huggingface/tokenizers#1794, fix open in #2066).
    Given up front, in sorted order, they get the same ids every time."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    normalized = set(tok.normalizer.normalize_str("".join(sorted(chars))))
    joins = [c for c in sorted(normalized) if len(tok.pre_tokenizer.pre_tokenize_str("a" + c)) == 1]
    return [f"##{c}" for c in joins]


def wordpiece_model(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A WordPiece tokenizer (``tokenizers`` only) whose vocabulary depends on the text alone."""
    texts = list(texts)
    scratch = wordpiece_pipeline()
    seeded = BERT_SPECIALS + continuation_tokens(texts, scratch)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=seeded, min_frequency=2, show_progress=False)
    scratch.train_from_iterator(_batches(texts), trainer=trainer)
    # A fresh tokenizer with the learned vocabulary (sorted, so ids do not depend on training
    # order) and only BERT's specials: the seeded ``##c`` tokens are ordinary pieces in it.
    learned = scratch.get_vocab()
    ordered = BERT_SPECIALS + sorted(t for t in learned if t not in BERT_SPECIALS)
    tok = wordpiece_pipeline()
    tok.model = models.WordPiece(vocab={t: i for i, t in enumerate(ordered)}, unk_token="[UNK]")
    tok.add_special_tokens(BERT_SPECIALS)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tok


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=wordpiece_model(texts, vocab_size),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def train_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[GPT_SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(_batches(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=GPT_SPECIAL,
        eos_token=GPT_SPECIAL,
        unk_token=GPT_SPECIAL,
        pad_token=GPT_SPECIAL,
        model_input_names=["input_ids", "attention_mask"],
    )


def train_char(texts: Iterable[str], masked: bool) -> PreTrainedTokenizerFast:
    """One token per character seen in the corpus (plus specials)."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    specials = BERT_SPECIALS if masked else [GPT_SPECIAL]
    vocab = {token: i for i, token in enumerate(specials + sorted(chars - set(specials)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=specials[1] if masked else GPT_SPECIAL))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    if masked:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]",
            model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=GPT_SPECIAL, eos_token=GPT_SPECIAL, unk_token=GPT_SPECIAL,
        pad_token=GPT_SPECIAL, model_input_names=["input_ids", "attention_mask"],
    )


def _train(kind: str, texts: list[str], vocab_size: int | None, masked: bool) -> PreTrainedTokenizerFast:
    if kind == "char":
        return train_char(texts, masked)
    if kind == "wordpiece":
        return train_wordpiece(texts, vocab_size)
    return train_bpe(texts, vocab_size)


def cache_root() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "lm-workbench"))


def load_cached(folder: Path, masked: bool) -> PreTrainedTokenizerFast:
    """A cache entry, or an exception saying why it cannot be used.

    Checked beyond loading: an entry missing its config would load without the special
    tokens the objective needs, and fail later, mid-run, instead of being rebuilt now.
    """
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    needed = ("pad_token", "cls_token", "sep_token", "mask_token") if masked else ("pad_token", "eos_token")
    missing = [name for name in needed if getattr(tokenizer, f"{name}_id", None) is None]
    if missing:
        raise ValueError(f"it has no {missing[0]}")
    if len(tokenizer) < 2 or not tokenizer("a b")["input_ids"]:
        raise ValueError("it has no vocabulary")
    return tokenizer


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None, masked: bool) -> PreTrainedTokenizerFast:
    """``kind`` is wordpiece, bpe or char (``auto`` is resolved by the caller); ``vocab_size``
    is None for char (its vocabulary is the characters seen).

    Trained tokenizers are cached by (kind, vocab size, masked, sha256 of the texts). Besides
    saving time, this makes runs on the same corpus share token ids without training again
    (WordPiece training itself is deterministic: ``continuation_tokens``). An entry that does
    not load is discarded and trained again, with a notice (``corpora.cache``): it is a cache,
    made from the corpus.
    """
    texts = list(texts)
    digest = hashlib.sha256(f"{kind}|{vocab_size}|{masked}|v2".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    folder = cache_root() / "tokenizers" / digest.hexdigest()[:24]
    if os.path.lexists(folder):
        try:
            return load_cached(folder, masked)
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on a schema-invalid file
            cache.discard(folder)
            cache.notice(f"Discarded an unreadable tokenizer cache entry ({folder.name}: {cache.reason(exc)}); training a new tokenizer")
    tokenizer = _train(kind, texts, vocab_size, masked)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, folder)
    except OSError:  # a read-only or full cache, or another process won: retrain next time
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer
