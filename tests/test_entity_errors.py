"""Where a model goes wrong: the six kinds of outcome on hand-made spans, the SemEval-2013 scores from
nervaluate, ``subword_f1`` against a hand computation of the tutorial's labelling, predictions files,
the paired bootstrap, and the layering model → evaluation → features."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from ner_experiments.data.contract import NerData
from ner_experiments.entity_errors import (
    GOLD_KINDS,
    classify_entities,
    entity_types,
    error_breakdown,
    format_error_table,
)
from ner_experiments.evaluation import predict_and_score
from ner_experiments.features import FeatureSettings
from ner_experiments.features.build import build_features
from ner_experiments.metrics import compute_ner_metrics, decode_entities
from ner_experiments.predictions_file import read_predictions, write_predictions
from ner_experiments.publishing.error_report import (
    format_error_examples,
    mark_entities,
    paired_bootstrap,
)

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
L = {name: i for i, name in enumerate(LABELS)}
PACKAGE = Path(__file__).resolve().parents[1] / "ner_experiments"


def _kinds(gold, predicted):
    return sorted((o.kind, o.gold, o.predicted) for o in classify_entities(gold, predicted))


# --- The six kinds on hand-made spans --------------------------------------------------------------


def test_each_kind_on_hand_made_spans():
    assert _kinds([("PER", 0, 2)], [("PER", 0, 2)]) == [("correct", ("PER", 0, 2), ("PER", 0, 2))]
    assert _kinds([("PER", 0, 2)], [("ORG", 0, 2)]) == [("wrong_type", ("PER", 0, 2), ("ORG", 0, 2))]
    assert _kinds([("LOC", 3, 5)], [("LOC", 3, 4)]) == [("wrong_boundary", ("LOC", 3, 5), ("LOC", 3, 4))]
    assert _kinds([("LOC", 3, 5)], [("ORG", 2, 4)]) == [("wrong_both", ("LOC", 3, 5), ("ORG", 2, 4))]
    assert _kinds([("PER", 0, 1)], []) == [("missed", ("PER", 0, 1), None)]
    assert _kinds([], [("PER", 4, 5)]) == [("spurious", None, ("PER", 4, 5))]
    assert _kinds([("PER", 0, 1)], [("PER", 1, 2)]) == [
        ("missed", ("PER", 0, 1), None),  # adjacent, not overlapping
        ("spurious", None, ("PER", 1, 2)),
    ]


def test_each_gold_and_each_prediction_is_matched_at_most_once():
    # One prediction covering two gold entities: one pair, the other gold entity is missed.
    assert _kinds([("LOC", 0, 1), ("LOC", 2, 3)], [("LOC", 0, 3)]) == [
        ("missed", ("LOC", 2, 3), None),
        ("wrong_boundary", ("LOC", 0, 1), ("LOC", 0, 3)),
    ]
    # A same-type overlap is preferred to a larger other-type one, and the leftover is spurious.
    assert _kinds([("PER", 0, 4)], [("ORG", 0, 3), ("PER", 3, 5)]) == [
        ("spurious", None, ("ORG", 0, 3)),
        ("wrong_boundary", ("PER", 0, 4), ("PER", 3, 5)),
    ]
    # An exact span wins over an overlap, whatever the type.
    assert _kinds([("PER", 0, 2)], [("ORG", 0, 2)]) == [("wrong_type", ("PER", 0, 2), ("ORG", 0, 2))]


def test_the_kinds_add_up_to_the_gold_and_predicted_entities_overall_and_per_type():
    rng = random.Random(7)
    gold_tags = [[rng.choice(LABELS) for _ in range(rng.randint(0, 15))] for _ in range(300)]
    pred_tags = [[t if rng.random() < 0.6 else rng.choice(LABELS) for t in s] for s in gold_tags]
    for strict in (False, True):
        gold, pred = decode_entities(gold_tags, strict), decode_entities(pred_tags, strict)
        errors = error_breakdown(gold, pred, entity_types(LABELS))
        overall = errors["overall"]
        assert sum(overall[k] for k in GOLD_KINDS) == errors["gold_entities"] == sum(map(len, gold))
        assert sum(overall[k] for k in (*GOLD_KINDS[:4], "spurious")) == errors["predicted_entities"]
        metrics = compute_ner_metrics(gold_tags, pred_tags, strict)
        for kind, row in metrics["per_type"].items():
            assert sum(errors["per_type"][kind][k] for k in GOLD_KINDS) == row["support"]
        # nervaluate's strict scheme is seqeval's entity-level score, and its correct count is ours
        strict_scores = errors["semeval"]["overall"]["strict"]
        assert strict_scores["f1"] == pytest.approx(metrics["overall_f1"])
        assert strict_scores["correct"] == overall["correct"]
        assert set(errors["semeval"]["overall"]) == {"strict", "exact", "partial", "type"}


def test_semeval_scores_on_a_hand_made_example():
    """SemEval-2013 (nervaluate): wrong type counts for exact and partial, a boundary error for type and
    half for partial."""
    gold = [[("PER", 0, 2), ("LOC", 3, 5)]]
    pred = [[("ORG", 0, 2), ("LOC", 3, 4)]]
    semeval = error_breakdown(gold, pred, ["LOC", "ORG", "PER"])["semeval"]["overall"]
    assert semeval["strict"]["correct"] == 0 and semeval["strict"]["incorrect"] == 2
    assert semeval["exact"]["correct"] == 1 and semeval["exact"]["incorrect"] == 1
    assert semeval["type"]["correct"] == 1 and semeval["type"]["incorrect"] == 1
    assert semeval["partial"]["correct"] == 1 and semeval["partial"]["partial"] == 1
    assert semeval["partial"]["f1"] == pytest.approx(0.75)


def test_sentences_right_in_full_count_as_correct_in_every_scheme():
    gold = [[("PER", 0, 2)], [("LOC", 1, 2)], []]
    errors = error_breakdown(gold, gold, ["LOC", "PER"])
    for scheme in errors["semeval"]["overall"].values():
        assert scheme["correct"] == 2 and scheme["f1"] == 1.0
    assert errors["semeval"]["per_type"]["LOC"]["strict"]["correct"] == 1
    assert "overall" in format_error_table("t", errors)


# --- subword_f1 against a hand computation ---------------------------------------------------------


class _LookupModel(torch.nn.Module):
    """Predicts, for each piece, a fixed label of its input id (O for every other id)."""

    def __init__(self, label_of_id: dict[int, int], vocab_size: int) -> None:
        super().__init__()
        table = torch.full((vocab_size, len(LABELS)), -10.0)
        table[:, 0] = 10.0
        for token_id, label in label_of_id.items():
            table[token_id] = -10.0
            table[token_id, label] = 10.0
        self.table = torch.nn.Parameter(table, requires_grad=False)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return SimpleNamespace(logits=self.table[input_ids])


def _score(tokenizer, sentences, max_length, tmp_path, label_of_piece):
    data = NerData(
        splits={
            "validation": Dataset.from_dict(
                {"tokens": [w for w, _ in sentences], "tags": [t for _, t in sentences]}
            )
        },
        label_names=LABELS,
    )
    settings = {"validation": FeatureSettings(max_length, 2)}
    features = build_features(data, tokenizer, settings, tmp_path)[0]["validation"]
    ids = {tokenizer.convert_tokens_to_ids(piece): L[tag] for piece, tag in label_of_piece.items()}
    model = _LookupModel(ids, len(tokenizer))
    return predict_and_score(model, features, [t for _, t in sentences], LABELS, batch_size=4, pad_token_id=0)


def test_subword_f1_is_the_tutorials_scoring_by_hand(tiny_tokenizer, tmp_path):
    """The tutorial labels every piece with its word's tag (a B- word's pieces all B-) and scores pieces.

    Acme = Ac ##me (gold B-ORG B-ORG: two entities; predicted B-ORG I-ORG: one, matching neither);
    Paris = P ##ar ##is (gold three B-LOC entities, predicted the same: three right). Pieces: gold 5
    entities, predicted 4, right 3: F1 = 2*3 / (5 + 4). At word level both words are right: F1 1.0.
    """
    assert tiny_tokenizer.tokenize("Acme") == ["Ac", "##me"]
    assert tiny_tokenizer.tokenize("Paris") == ["P", "##ar", "##is"]
    sentences = [
        (["Acme", "lives", "in", "."], [L["B-ORG"], 0, 0, 0]),
        (["in", "Paris"], [0, L["B-LOC"]]),
    ]
    pieces = {"Ac": "B-ORG", "##me": "I-ORG", "P": "B-LOC", "##ar": "B-LOC", "##is": "B-LOC"}
    scored = _score(tiny_tokenizer, sentences, 64, tmp_path, pieces)
    assert scored.metrics["overall_f1"] == 1.0
    assert scored.metrics["subword_f1"] == pytest.approx(6 / 9)
    assert scored.metrics["subword"]["precision"] == pytest.approx(3 / 4)
    assert scored.metrics["subword"]["recall"] == pytest.approx(3 / 5)
    assert scored.metrics["subword"]["pieces"] == 2 + 2 + 1 + 1 + 1 + 3
    assert scored.predicted == [[L["B-ORG"], 0, 0, 0], [0, L["B-LOC"]]]


def test_subword_f1_counts_each_piece_once_through_windows(tiny_tokenizer, tmp_path):
    """A sentence split into overlapping windows scores the same pieces as when it fits in one."""
    words = ["Acme", "lives", "in", "Paris", ".", "Mary", "lives", "in", "Paris", "."] * 3
    tags = [L["B-ORG"], 0, 0, L["B-LOC"], 0, L["B-PER"], 0, 0, L["B-LOC"], 0] * 3
    pieces = {"Ac": "B-ORG", "##me": "I-ORG", "P": "B-LOC", "##ar": "B-LOC", "M": "B-PER", "##ary": "I-PER"}
    whole = _score(tiny_tokenizer, [(words, tags)], 128, tmp_path, pieces).metrics
    windowed = _score(tiny_tokenizer, [(words, tags)], 12, tmp_path, pieces).metrics
    assert windowed["sentences_split"] == 1 and whole["sentences_split"] == 0
    assert windowed["subword"] == whole["subword"]
    assert (
        windowed["subword"]["pieces"]
        == len(tiny_tokenizer([words], is_split_into_words=True)["input_ids"][0]) - 2
    )


# --- Predictions files, examples, bootstrap --------------------------------------------------------


def test_predictions_file_round_trip(tmp_path):
    tokens = [["New York", "is", "big"], ["a\tb"]]
    gold = [["B-LOC", "O", "O"], ["O"]]
    pred = [["B-LOC", "O", "B-PER"], ["O"]]
    path = write_predictions(tmp_path / "predictions" / "test.conll", tokens, gold, pred)
    assert path.read_text(encoding="utf-8").splitlines()[:4] == [
        "New York\tB-LOC\tB-LOC",
        "is\tO\tO",
        "big\tO\tB-PER",
        "",
    ]
    back = read_predictions(path)
    assert back.tokens == [["New York", "is", "big"], ["a b"]]
    assert back.gold == gold and back.predicted == pred


def test_error_examples_mark_gold_and_predicted_spans(tmp_path):
    tokens = [["John", "Smith", "lives", "in", "New", "York"]]
    gold = [["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"]]
    pred = [["B-ORG", "I-ORG", "O", "O", "B-LOC", "O"]]
    file = read_predictions(write_predictions(tmp_path / "p.conll", tokens, gold, pred))
    text = format_error_examples(file, 2)
    assert 'wrong_type (1 in all):\n  sentence 1: gold PER "John Smith" -> predicted ORG "John Smith"' in text
    assert 'gold LOC "New York" -> predicted LOC "New"' in text
    assert "    gold: [John Smith]PER lives in [New York]LOC" in text
    assert "    pred: [John Smith]ORG lives in [New]LOC York" in text
    assert "missed (0 in all):\n  none" in text
    assert mark_entities(["a"], [("X", 0, 1)]) == "[a]X"


def test_paired_bootstrap_interval():
    rng = random.Random(0)
    n = 400
    gold = [rng.randint(1, 3) for _ in range(n)]
    tp_a = [rng.randint(0, g) for g in gold]
    tp_b = list(gold)  # B gets every entity right
    same = paired_bootstrap(tp_a, gold, tp_a, gold, gold, resamples=2000)
    assert same.difference == 0.0 and same.low == same.high == 0.0
    better = paired_bootstrap(tp_a, gold, tp_b, gold, gold, resamples=2000)
    assert better.difference > 0 and 0 < better.low < better.difference < better.high
    assert better.b_better == 1.0
    assert paired_bootstrap(tp_a, gold, tp_b, gold, gold, resamples=2000) == better  # fixed seed


# --- Layers: model → evaluation → features ---------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_layers_read_model_then_evaluation_then_features():
    features = [p for p in (PACKAGE / "features").glob("*.py")]
    for path in features:
        imported = _imports(path)
        assert "ner_experiments.model" not in imported, path
        assert "ner_experiments.evaluation" not in imported, path
    assert "ner_experiments.model" not in _imports(PACKAGE / "evaluation.py")


def test_decoding_is_seqevals_on_random_tags():
    """The default mode's fast decoder finds seqeval's get_entities chunks, invalid I- starts included."""
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(11)
    tags = [[rng.choice(LABELS) for _ in range(rng.randint(0, 12))] for _ in range(2000)]
    expected = [[(k, s, e + 1) for k, s, e in get_entities(sentence)] for sentence in tags]
    assert decode_entities(tags) == expected
    odd = [["B-PER", "E-PER", "S-LOC"], ["O", "S-ORG"]]  # other schemes: seqeval's own decoder
    assert decode_entities(odd) == [[(k, s, e + 1) for k, s, e in get_entities(x)] for x in odd]
