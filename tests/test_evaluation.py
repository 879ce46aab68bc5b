"""Word-level prediction and scoring: one prediction per word (windows included), seqeval metrics."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from ner_experiments.config import ModelConfig, TinyModelConfig
from ner_experiments.data.contract import NerData
from ner_experiments.evaluation import (
    cut_sorted_batches,
    evaluate_split,
    feature_columns,
    predict_word_labels,
)
from ner_experiments.features import FeatureBuilder, FeatureSettings
from ner_experiments.features.build import build_features
from ner_experiments.labels import b_to_i_label_ids
from ner_experiments.metrics import compute_ner_metrics, format_metrics_table
from ner_experiments.model import load_for_training

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
L = {name: i for i, name in enumerate(LABELS)}

WORDS = (
    "রবীন্দ্রনাথ ঠাকুর কলকাতায় জন্মগ্রহণ করেন । ঢাকা বাংলাদেশের রাজধানী প্রতিদ্বন্দ্বিতাপূর্ণ "
    "John Smith lives in Paris . Acme Corp hired Mary Antidisestablishmentarianism the of"
).split()


def _sentences(n: int, seed: int, min_len: int = 1, max_len: int = 12) -> list[tuple[list[str], list[int]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(min_len, max_len))]
        out.append((words, [rng.randrange(len(LABELS)) for _ in words]))
    return out


# A mix of short sentences and long ones that must be windowed at max_length 24.
SENTENCES = _sentences(20, seed=1) + _sentences(3, seed=2, min_len=60, max_len=90)
LENGTHS = [len(w) for w, _ in SENTENCES]


def _data(sentences) -> NerData:
    def ds(rows):
        return Dataset.from_dict({"tokens": [w for w, _ in rows], "tags": [t for _, t in rows]})

    return NerData(splits={"train": ds(sentences[:5]), "validation": ds(sentences)}, label_names=LABELS)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("feature_cache")


def _validation_features(sentences, tokenizer, max_length: int, all_subwords: bool, cache_dir):
    """The validation split's features as training builds them (through the cache)."""
    settings = FeatureSettings.per_split(max_length, 6, all_subwords)
    return build_features(_data(sentences), tokenizer, settings, cache_dir)[0]["validation"]


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    """model=tiny as training loads it (the shipped tokenizer), made smaller; random weights, seed 0."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        name="tiny",
        source="tiny",
        tiny=TinyModelConfig(hidden_size=32, num_hidden_layers=1, intermediate_size=64),
    )
    tokenizer, model = load_for_training(cfg, LABELS)
    assert len(tokenizer) == len(tiny_tokenizer)
    return model


@pytest.fixture(scope="module")
def split_at_24(tiny_tokenizer) -> int:
    """How many of SENTENCES are longer than 24 pieces (the 3 long ones and a few short ones)."""
    pieces = [
        len(ids) for ids in tiny_tokenizer([w for w, _ in SENTENCES], is_split_into_words=True)["input_ids"]
    ]
    assert all(n > 24 for n in pieces[-3:])
    return sum(n > 24 for n in pieces)


@pytest.fixture(scope="module")
def features(tiny_tokenizer, cache_dir):
    return {
        (max_length, all_subwords): _validation_features(
            SENTENCES, tiny_tokenizer, max_length, all_subwords, cache_dir
        )
        for max_length in (24, 512)
        for all_subwords in (False, True)
    }


@pytest.mark.parametrize("max_length", [24, 512])
def test_every_sentence_gets_one_prediction_per_word(model, features, max_length):
    feats = features[(max_length, False)]
    assert any(feats["was_split"]) == (max_length == 24)
    labels, scores = predict_word_labels(model, feature_columns(feats), LENGTHS, batch_size=4, pad_token_id=0)
    assert [len(s) for s in labels] == LENGTHS
    assert [len(s) for s in scores] == LENGTHS
    assert all(0 <= x < len(LABELS) for s in labels for x in s)
    assert all(0 < p <= 1 for s in scores for p in s)


def test_batch_size_and_order_do_not_change_predictions(model, features):
    columns = feature_columns(features[(24, False)])
    one, _ = predict_word_labels(model, columns, LENGTHS, batch_size=3, pad_token_id=0)
    many, _ = predict_word_labels(model, columns, LENGTHS, batch_size=64, pad_token_id=0)
    assert one == many


def test_builder_output_predicts_as_the_cached_features_do(model, features, tiny_tokenizer):
    """Prediction (ner-predict) builds features in memory; evaluation reads them from the cache: same words."""
    builder = FeatureBuilder(tiny_tokenizer, FeatureSettings(24, 6), b_to_i_label_ids(LABELS))
    in_memory = builder({"tokens": [w for w, _ in SENTENCES], "tags": [t for _, t in SENTENCES]}, range(23))
    direct = predict_word_labels(model, in_memory, LENGTHS, batch_size=8, pad_token_id=0)
    cached = predict_word_labels(
        model, feature_columns(features[(24, False)]), LENGTHS, batch_size=8, pad_token_id=0
    )
    assert direct == cached


def test_a_missing_word_prediction_is_an_error_not_a_silent_drop(model, features):
    lengths = list(LENGTHS)
    lengths[0] += 1  # a word no feature carries
    with pytest.raises(RuntimeError, match="sentence 0: no prediction for words"):
        predict_word_labels(
            model, feature_columns(features[(512, False)]), lengths, batch_size=8, pad_token_id=0
        )


@pytest.mark.parametrize("max_length", [24, 512])
def test_evaluation_is_the_same_with_and_without_label_all_subwords(model, features, max_length, split_at_24):
    gold = [t for _, t in SENTENCES]
    off = evaluate_split(model, features[(max_length, False)], gold, LABELS, batch_size=8, pad_token_id=0)
    on = evaluate_split(model, features[(max_length, True)], gold, LABELS, batch_size=8, pad_token_id=0)
    assert on == off
    assert off["num_sentences"] == len(SENTENCES)
    assert off["num_words"] == sum(LENGTHS)
    assert off["sentences_split"] == (split_at_24 if max_length == 24 else 0)


def test_evaluation_runs_in_fp32_and_leaves_the_model_in_training_mode(model, features):
    """Scores are the saved fp32 model's, whatever precision training used; a model that was training
    goes on training after an evaluation."""
    gold = [t for _, t in SENTENCES]
    model.train()
    first = evaluate_split(model, features[(24, False)], gold, LABELS, batch_size=8, pad_token_id=0)
    assert model.training
    model.eval()
    assert evaluate_split(model, features[(24, False)], gold, LABELS, batch_size=8, pad_token_id=0) == first
    assert next(model.parameters()).dtype == torch.float32


class _LookupModel(torch.nn.Module):
    """Predicts, for each piece, a fixed label of its input id: lets a test know the right answer."""

    def __init__(self, label_of_id: dict[int, int], vocab_size: int) -> None:
        super().__init__()
        table = torch.full((vocab_size, len(LABELS)), -10.0)
        table[:, 0] = 10.0  # everything else: O
        for token_id, label in label_of_id.items():
            table[token_id] = -10.0
            table[token_id, label] = 10.0
        self.table = torch.nn.Parameter(table, requires_grad=False)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return SimpleNamespace(logits=self.table[input_ids])


def test_word_level_scores_are_exact_through_windows(tiny_tokenizer, cache_dir, split_at_24):
    """Gold tags defined by each word's first piece; a model that predicts from that piece scores 1.0.

    If any word were dropped, read from a wrong piece, or predicted twice, this would not be 1.0.
    """
    first_piece = {w: tiny_tokenizer([[w]], is_split_into_words=True)["input_ids"][0][1] for w in WORDS}
    rng = random.Random(3)
    label_of_id = {tid: rng.randrange(1, len(LABELS)) for tid in set(first_piece.values())}
    sentences = [(words, [label_of_id[first_piece[w]] for w in words]) for words, _ in SENTENCES]
    feats = _validation_features(sentences, tiny_tokenizer, 24, True, cache_dir)
    lookup = _LookupModel(label_of_id, len(tiny_tokenizer))
    result = evaluate_split(lookup, feats, [t for _, t in sentences], LABELS, batch_size=5, pad_token_id=0)
    assert result["overall_f1"] == 1.0
    assert result["overall_accuracy"] == 1.0
    assert result["sentences_split"] == split_at_24


def test_all_o_predictions_give_the_word_level_accuracy(tiny_tokenizer, features):
    """Accuracy counts words, not pieces: with every prediction O it is the share of O words."""
    lookup = _LookupModel({}, len(tiny_tokenizer))
    gold = [t for _, t in SENTENCES]
    result = evaluate_split(lookup, features[(24, True)], gold, LABELS, batch_size=8, pad_token_id=0)
    words = [t for s in gold for t in s]
    assert result["overall_accuracy"] == pytest.approx(sum(t == 0 for t in words) / len(words))
    assert (
        result["overall_f1"] == 0.0 and result["overall_precision"] == 0.0 and result["overall_recall"] == 0.0
    )


def test_evaluate_split_passes_strict_iob2_through(tiny_tokenizer, cache_dir):
    """A model that tags 'John' I-PER (no B-): the lenient default accepts the entity, strict IOB2 does not."""
    john = tiny_tokenizer([["John"]], is_split_into_words=True)["input_ids"][0][1]
    sentences = [(["John", "lives", "in", "Paris"], [L["B-PER"], 0, 0, 0])]
    feats = _validation_features(sentences, tiny_tokenizer, 24, False, cache_dir)
    lookup = _LookupModel({john: L["I-PER"]}, len(tiny_tokenizer))
    gold = [t for _, t in sentences]
    lenient = evaluate_split(lookup, feats, gold, LABELS, batch_size=4, pad_token_id=0)
    strict = evaluate_split(lookup, feats, gold, LABELS, batch_size=4, pad_token_id=0, strict_iob2=True)
    assert lenient["overall_f1"] == 1.0
    assert strict["overall_f1"] == 0.0
    assert lenient["overall_accuracy"] == strict["overall_accuracy"] == 0.75


# --- compute_ner_metrics against hand-computed seqeval results -------------------------------------


def test_metrics_match_hand_computed_values():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # gold entities: PER(0-1), LOC(3), ORG(0); predicted: PER(0-1), ORG(0), LOC(1) → 2 of 3 right each way
    m = compute_ner_metrics(gold, pred)
    assert m["overall_precision"] == pytest.approx(2 / 3)
    assert m["overall_recall"] == pytest.approx(2 / 3)
    assert m["overall_f1"] == pytest.approx(2 / 3)
    assert m["overall_accuracy"] == pytest.approx(4 / 6)  # words: 3 of 4 and 1 of 2 right
    assert m["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }


def test_partial_entity_overlap_counts_as_wrong():
    gold = [["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]]
    pred = [["B-ORG", "I-ORG", "O", "O", "B-PER"]]
    m = compute_ner_metrics(gold, pred)
    # ORG span is cut short: 1 of 2 predicted right (P=0.5), 1 of 2 gold found (R=0.5)
    assert (m["overall_precision"], m["overall_recall"], m["overall_f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert m["overall_accuracy"] == pytest.approx(4 / 5)
    assert m["per_type"]["ORG"]["f1"] == 0.0 and m["per_type"]["PER"]["f1"] == 1.0


def test_strict_iob2_rejects_an_entity_started_with_i():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    lenient = compute_ner_metrics(gold, pred)
    # Default (conlleval-like): I-PER I-PER opens a PER entity, which matches the gold span.
    assert (lenient["overall_precision"], lenient["overall_recall"], lenient["overall_f1"]) == (1.0, 1.0, 1.0)
    strict = compute_ner_metrics(gold, pred, strict_iob2=True)
    # Strict IOB2: no entity without B-; only LOC is predicted: P = 1/1, R = 1/2, F1 = 2/3.
    assert strict["overall_precision"] == 1.0
    assert strict["overall_recall"] == 0.5
    assert strict["overall_f1"] == pytest.approx(2 / 3)
    assert strict["per_type"]["PER"]["f1"] == 0.0 and lenient["per_type"]["PER"]["f1"] == 1.0
    assert strict["overall_accuracy"] == lenient["overall_accuracy"] == pytest.approx(4 / 5)


def test_strict_iob2_ends_an_entity_at_a_type_change():
    gold = [["B-PER", "I-PER", "O"]]
    pred = [["B-PER", "I-LOC", "O"]]
    lenient = compute_ner_metrics(gold, pred)
    strict = compute_ner_metrics(gold, pred, strict_iob2=True)
    # Lenient: PER(0) and LOC(1) predicted, neither matches PER(0-1). Strict: only PER(0), wrong too.
    assert lenient["overall_f1"] == strict["overall_f1"] == 0.0
    assert set(lenient["per_type"]) == {"PER", "LOC"} and set(strict["per_type"]) == {"PER"}


def test_no_entities_at_all_scores_zero_without_errors():
    m = compute_ner_metrics([["O", "O"]], [["O", "O"]])
    assert (m["overall_f1"], m["overall_accuracy"], m["per_type"]) == (0.0, 1.0, {})


@pytest.mark.parametrize("strict", [False, True])
def test_metrics_agree_with_seqeval_on_random_tag_sequences(strict):
    """Our one-pass scores are seqeval's own classification_report / f1_score / accuracy_score numbers."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    kwargs = {"mode": "strict", "scheme": IOB2} if strict else {}
    rng = random.Random(7)
    for _ in range(60):
        gold = [[rng.choice(LABELS) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 12))]
        pred = [[t if rng.random() < 0.6 else rng.choice(LABELS) for t in s] for s in gold]
        m = compute_ner_metrics(gold, pred, strict_iob2=strict)
        assert m["overall_precision"] == pytest.approx(precision_score(gold, pred, zero_division=0, **kwargs))
        assert m["overall_recall"] == pytest.approx(recall_score(gold, pred, zero_division=0, **kwargs))
        assert m["overall_f1"] == pytest.approx(f1_score(gold, pred, zero_division=0, **kwargs))
        assert m["overall_accuracy"] == pytest.approx(accuracy_score(gold, pred))
        report = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
        expected = {k: v for k, v in report.items() if not k.endswith(" avg")}
        assert set(m["per_type"]) == set(expected)
        for name, row in expected.items():
            got = m["per_type"][name]
            assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(
                (row["precision"], row["recall"], row["f1-score"])
            )
            assert got["support"] == row["support"]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="every word needs exactly one prediction"):
        compute_ner_metrics([["O", "B-PER"]], [["O"]])
    with pytest.raises(ValueError):
        compute_ner_metrics([["O"], ["O"]], [["O"]])


def test_metrics_table_lists_types_and_overall():
    m = compute_ner_metrics([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]])
    table = format_metrics_table("validation", m)
    assert table.splitlines()[0] == "validation"
    assert any(line.startswith("PER") for line in table.splitlines())
    assert any(line.startswith("overall") and line.rstrip().endswith("2") for line in table.splitlines())


def _computed_positions(lengths: list[int], cuts: list[tuple[int, int]]) -> int:
    return sum((end - start) * lengths[start] for start, end in cuts)


def test_eval_batches_cover_the_sorted_order_and_waste_little_on_a_long_tail():
    rng = random.Random(0)
    lengths = sorted((min(512, int(rng.lognormvariate(3.5, 0.7))) for _ in range(100)), reverse=True)
    cuts = cut_sorted_batches(lengths, max_rows=32)
    assert [i for start, end in cuts for i in range(start, end)] == list(range(100))
    assert all(0 < end - start <= 32 for start, end in cuts)
    fixed = [(i, min(i + 32, 100)) for i in range(0, 100, 32)]
    real = sum(lengths)
    assert 1 - real / _computed_positions(lengths, fixed) > 0.3  # fixed batches of 32: mostly padding
    assert 1 - real / _computed_positions(lengths, cuts) < 0.1


def test_eval_batches_of_equal_lengths_are_as_few_as_the_cap_allows():
    cuts = cut_sorted_batches([7] * 70, max_rows=32)
    assert len(cuts) == 3 and sorted(end - start for start, end in cuts) == [6, 32, 32]
    assert cut_sorted_batches([], max_rows=8) == []
