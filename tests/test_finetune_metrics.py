"""Task metrics against their references: seqeval (NER), SQuAD v1.1 hand cases, confusion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tasks.finetune.metrics import (
    classification_metrics,
    entity_metrics,
    exact_match,
    get_entities,
    normalize_answer,
    squad_metrics,
    token_f1,
)

seqeval_metrics = pytest.importorskip("seqeval.metrics")

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER", "S-LOC", "I-MISC"]


def seqeval_scores(gold, pred):
    return (
        seqeval_metrics.precision_score(gold, pred),
        seqeval_metrics.recall_score(gold, pred),
        seqeval_metrics.f1_score(gold, pred),
    )


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(TAGS), st.sampled_from(TAGS)), min_size=1, max_size=12), min_size=1, max_size=6))
def test_entity_metrics_equal_seqeval_on_random_tags(sentences):
    """Ill-formed sequences too (I- after O, type changes, BIOES mixed in): conlleval rules."""
    gold = [[g for g, _ in s] for s in sentences]
    pred = [[p for _, p in s] for s in sentences]
    ours = entity_metrics(gold, pred)
    precision, recall, f1 = seqeval_scores(gold, pred)
    assert ours["precision"] == pytest.approx(precision)
    assert ours["recall"] == pytest.approx(recall)
    assert ours["f1"] == pytest.approx(f1)


@pytest.mark.filterwarnings("ignore")
def test_per_type_f1_equals_seqeval_report():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-LOC", "O", "O"]]
    report = seqeval_metrics.classification_report(gold, pred, output_dict=True)
    ours = entity_metrics(gold, pred)["per_type_f1"]
    assert ours == {kind: pytest.approx(report[kind]["f1-score"]) for kind in ("LOC", "PER")}


def test_get_entities_conlleval_rules():
    assert get_entities(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5)]
    assert get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]


@pytest.mark.parametrize(
    "prediction, golds, em, f1",
    [
        ("the Denver Broncos", ["Denver Broncos"], 100.0, 100.0),  # article dropped
        ("Denver Broncos!", ["denver broncos"], 100.0, 100.0),  # punctuation and case
        ("Broncos", ["Denver Broncos"], 0.0, 100.0 * 2 * (1 * 0.5) / 1.5),  # P=1, R=1/2
        ("in the year 1066 AD", ["1066"], 0.0, 100.0 * 2 * 0.25 * 1 / 1.25),  # tokens in, year, 1066, ad: P=1/4
        ("Paris", ["London", "paris ", "Rome"], 100.0, 100.0),  # max over gold answers
        ("cat cat", ["cat"], 0.0, 100.0 * 2 * 0.5 * 1 / 1.5),  # common counts are multisets
        ("", ["something"], 0.0, 0.0),
    ],
)
def test_squad_hand_cases(prediction, golds, em, f1):
    result = squad_metrics([prediction], [golds])
    assert result["exact_match"] == pytest.approx(em)
    assert result["f1"] == pytest.approx(f1)


def test_squad_normalisation_and_averaging():
    assert normalize_answer("  The  Quick, brown fox!  ") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert exact_match("A theory", "theory") == 1.0
    assert token_f1("x b c", "b c d") == pytest.approx(2 / 3)
    both = squad_metrics(["Denver", "nothing"], [["Denver"], ["Paris"]])
    assert both == {"exact_match": 50.0, "f1": 50.0}
    assert squad_metrics([""], [[]])["exact_match"] == 100.0  # SQuAD v2 unanswerable, answered empty


def test_classification_metrics_confusion_and_macro_f1():
    gold = [0, 0, 1, 1, 2]
    pred = [0, 1, 1, 1, 0]
    result = classification_metrics(gold, pred, ["neg", "pos", "neutral"])
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # F1: neg P=1/2 R=1/2 -> 1/2; pos P=2/3 R=1 -> 0.8; neutral 0
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
