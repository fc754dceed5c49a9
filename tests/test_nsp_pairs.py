"""NSP sentence pairs are built by a batched map over memory-mapped documents (no corpus in
memory): half the pairs are true next sentences, half take a sentence from another
document, and each document's pairs depend only on (seed, its index)."""

from __future__ import annotations

import datasets

from workbench.tasks.nsp import pair_documents, split_sentences

DOCS = [f"Doc {d} starts here. Doc {d} goes on. Doc {d} ends now." for d in range(60)] + ["Only one sentence."]


def test_pairs_are_true_next_sentences_or_from_other_documents() -> None:
    pairs = pair_documents(datasets.Dataset.from_dict({"text": DOCS}), "text", seed=3)
    assert len(pairs) == 60 * 2  # two pairs per 3-sentence document; a 1-sentence one gives none
    negatives = 0
    for a, b, label in zip(pairs["sentence_a"], pairs["sentence_b"], pairs["next_sentence_label"]):
        doc = a.split()[1]
        if label == 0:
            sentences = split_sentences(DOCS[int(doc)])
            assert sentences[sentences.index(a) + 1] == b
        else:
            negatives += 1
            assert not b.startswith(f"Doc {doc} ")
    assert 0.3 < negatives / len(pairs) < 0.7


def test_pairs_are_deterministic_for_a_seed_and_change_with_it() -> None:
    full = pair_documents(datasets.Dataset.from_dict({"text": DOCS}), "text", seed=3)
    again = pair_documents(datasets.Dataset.from_dict({"text": DOCS}), "text", seed=3)
    other_seed = pair_documents(datasets.Dataset.from_dict({"text": DOCS}), "text", seed=4)
    assert full.to_dict() == again.to_dict()
    assert full["next_sentence_label"] != other_seed["next_sentence_label"]
