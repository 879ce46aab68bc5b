"""Word-level prediction over features, and scoring a split with it.

Features are run through the model in batches cut from the length-sorted order where they waste
the least on padding (:func:`cut_sorted_batches`); each word's label
is read from its first piece in the feature that owns it, so a sentence gets exactly one prediction
per word, however it was tokenized or windowed. Under torch.distributed each rank predicts a shard
and the shards are gathered.

The same pass keeps the label of every piece of the owned words, for ``subword_f1`` (the tutorial's
scoring, :func:`subword_metrics`); the word-level predictions are what a run writes to
``predictions/<split>.conll``. Layers: ``model`` → ``evaluation`` → ``features`` (never back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ner_experiments.features.builder import MODEL_INPUTS, count_windowed_sentences

if TYPE_CHECKING:
    from datasets import Dataset

PREDICTION_COLUMNS = ("sentence_id", "word_index", "piece_word", "length", "was_split")
# What a forward pass costs beyond its positions, in positions: cutting a batch early pays when it
# saves more padding than this. Small on purpose: on a CPU a pass costs little beyond its arithmetic.
BATCH_COST_POSITIONS = 32


def cut_sorted_batches(
    sorted_lengths: Sequence[int], max_rows: int, batch_cost: int = BATCH_COST_POSITIONS
) -> list[tuple[int, int]]:
    """``[start, end)`` batches of at most ``max_rows`` over lengths sorted longest first, minimising the
    positions computed (rows x the batch's first length, padding included) plus ``batch_cost`` per batch.

    Fixed-size batches of a sorted list still pad a lot where lengths fall steeply (the long tail):
    on 100 Bengali news sentences, batches of 32 are half padding; these cuts leave a few percent.
    """
    n = len(sorted_lengths)
    widths = np.asarray(sorted_lengths, dtype=np.float64)
    best = np.zeros(n + 1)
    start_of = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - max_rows), end)
        costs = best[starts] + (end - starts) * widths[starts] + batch_cost
        k = int(np.argmin(costs))
        best[end], start_of[end] = costs[k], starts[k]
    cuts: list[tuple[int, int]] = []
    end = n
    while end > 0:
        cuts.append((int(start_of[end]), end))
        end = int(start_of[end])
    return cuts[::-1]


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


# sentence id -> word -> (label id, probability, label ids of all its pieces: the first piece's first)
WordPredictions = dict[int, dict[int, tuple[int, float, list[int]]]]


@dataclass
class SplitPredictions:
    """What one pass predicted for every sentence: a label id and its probability per word, and the label
    ids of each word's pieces (``pieces[sentence][word]``, the first piece's first)."""

    labels: list[list[int]]
    scores: list[list[float]]
    pieces: list[list[list[int]]]


@torch.inference_mode()
def predict_word_labels(
    model: Any,
    features: Mapping[str, list],
    sentence_lengths: Sequence[int],
    batch_size: int = 64,
    pad_token_id: int = 0,
    show_progress: bool = False,
    description: str = "predict",
) -> tuple[list[list[int]], list[list[float]]]:
    """Label ids (and their probabilities) per word, for every sentence of ``sentence_lengths``."""
    predicted = predict_split(
        model, features, sentence_lengths, batch_size, pad_token_id, show_progress, description
    )
    return predicted.labels, predicted.scores


@torch.inference_mode()
def predict_split(
    model: Any,
    features: Mapping[str, list],
    sentence_lengths: Sequence[int],
    batch_size: int = 64,
    pad_token_id: int = 0,
    show_progress: bool = False,
    description: str = "predict",
) -> SplitPredictions:
    """Label ids per word and per piece, for every sentence of ``sentence_lengths``.

    ``features`` are the builder's columns (plain lists, see :func:`feature_columns`); ``sentence_id``
    is 0-based and indexes ``sentence_lengths``.
    """
    rank, world = _dist()
    was_training = model.training
    model.eval()
    lengths = np.asarray(features["length"], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    if world > 1:
        # Shard by sentence, so all windows of a sentence are predicted by one rank.
        sentence_ids = np.asarray(features["sentence_id"], dtype=np.int64)
        order = order[sentence_ids[order] % world == rank]
    batches = cut_sorted_batches(lengths[order].tolist(), batch_size)
    progress = tqdm(batches, desc=description, disable=not show_progress or rank != 0, leave=False)
    predicted: WordPredictions = {}
    for start, end in progress:
        _predict_batch(model, features, order[start:end].tolist(), pad_token_id, predicted)
    if world > 1:
        predicted = _gather(predicted, world)
    if was_training:
        model.train()
    return _per_sentence(predicted, sentence_lengths)


def _predict_batch(
    model: Any, features: Mapping[str, list], rows: list[int], pad_token_id: int, predicted: WordPredictions
) -> None:
    device = next(model.parameters()).device
    inputs = {
        c: _pad([features[c][i] for i in rows], pad_token_id if c == "input_ids" else 0).to(device)
        for c in MODEL_INPUTS
        if c in features
    }
    probs = torch.softmax(model(**inputs).logits.float(), dim=-1)
    best_p, best = (t.cpu().numpy() for t in probs.max(dim=-1))
    for k, i in enumerate(rows):
        slot = predicted.setdefault(int(features["sentence_id"][i]), {})
        labels, probabilities = best[k].tolist(), best_p[k].tolist()
        firsts = features["word_index"][i]
        for pos, w in enumerate(features["piece_word"][i]):
            if w < 0:
                continue
            if firsts[pos] >= 0:  # a word's first piece comes before its other pieces in the row
                slot[w] = (labels[pos], probabilities[pos], [labels[pos]])
            else:
                slot[w][2].append(labels[pos])


def _gather(predicted: WordPredictions, world: int) -> WordPredictions:
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, predicted)
    merged: WordPredictions = {}
    for part in gathered:
        for sid, words in part.items():
            merged.setdefault(sid, {}).update(words)
    return merged


def _per_sentence(predicted: WordPredictions, sentence_lengths: Sequence[int]) -> SplitPredictions:
    labels, scores, pieces = [], [], []
    for sid, n_words in enumerate(sentence_lengths):
        words = predicted.get(sid, {})
        if len(words) != n_words:
            missing = sorted(set(range(n_words)) - set(words))[:5]
            raise RuntimeError(
                f"sentence {sid}: no prediction for words {missing}; this is a bug in windowing"
            )
        row = [words[w] for w in range(n_words)]
        labels.append([r[0] for r in row])
        scores.append([r[1] for r in row])
        pieces.append([r[2] for r in row])
    return SplitPredictions(labels, scores, pieces)


def feature_columns(features: Dataset) -> dict[str, list]:
    """The columns prediction reads, as Python lists in one Arrow conversion (row access is slow)."""
    names = [c for c in (*MODEL_INPUTS, *PREDICTION_COLUMNS) if c in features.column_names]
    table = features.select_columns(names).with_format("arrow")[:]
    return {name: table.column(name).to_pylist() for name in names}


@dataclass
class ScoredSplit:
    """A split's metrics and the word-level label ids they were computed from (one pass)."""

    metrics: dict[str, Any]
    predicted: list[list[int]]


def evaluate_split(
    model: Any,
    features: Dataset,
    gold_tag_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
    batch_size: int,
    pad_token_id: int,
    strict_iob2: bool = False,
    show_progress: bool = False,
    description: str = "evaluate",
) -> dict[str, Any]:
    """The metrics of :func:`predict_and_score`."""
    return predict_and_score(
        model,
        features,
        gold_tag_ids,
        label_names,
        batch_size,
        pad_token_id,
        strict_iob2,
        show_progress,
        description,
    ).metrics


def predict_and_score(
    model: Any,
    features: Dataset,
    gold_tag_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
    batch_size: int,
    pad_token_id: int,
    strict_iob2: bool = False,
    show_progress: bool = False,
    description: str = "evaluate",
) -> ScoredSplit:
    """Predict a split once and score it: seqeval metrics, the error breakdown, ``subword_f1``, and how
    many sentences and words were scored and split.

    Always in the model's own precision (fp32), as the saved model is served and ``ner-evaluate`` scores it.
    """
    columns = feature_columns(features)
    lengths = [len(tags) for tags in gold_tag_ids]
    predicted = predict_split(model, columns, lengths, batch_size, pad_token_id, show_progress, description)
    metrics = score_predictions(
        gold_tag_ids, predicted.labels, label_names, columns, strict_iob2, predicted.pieces
    )
    return ScoredSplit(metrics, predicted.labels)


def subword_metrics(
    gold_tag_ids: Sequence[Sequence[int]],
    piece_labels: Sequence[Sequence[Sequence[int]]],
    label_names: Sequence[str],
) -> dict[str, Any]:
    """seqeval (default mode) over every sub-word piece, labelled as the tutorial labels them: each piece
    of a word carries the word's tag, continuation pieces repeating it (a ``B-`` word's pieces are all
    ``B-``), and each piece is scored by its own prediction. Comparable with the tutorial's F1, not with
    the word-level scores (a ``B-`` word of three pieces is three gold entities here)."""
    from ner_experiments.metrics import compute_ner_metrics

    gold, pred = [], []
    for tags, words in zip(gold_tag_ids, piece_labels, strict=True):
        gold.append([label_names[t] for t, pieces in zip(tags, words, strict=True) for _ in pieces])
        pred.append([label_names[p] for pieces in words for p in pieces])
    m = compute_ner_metrics(gold, pred)
    return {
        "precision": m["overall_precision"],
        "recall": m["overall_recall"],
        "f1": m["overall_f1"],
        "accuracy": m["overall_accuracy"],
        "pieces": sum(len(s) for s in gold),
    }


def score_predictions(
    gold_tag_ids: Sequence[Sequence[int]],
    predicted_tag_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
    columns: Mapping[str, list],
    strict_iob2: bool = False,
    piece_labels: Sequence[Sequence[Sequence[int]]] | None = None,
) -> dict[str, Any]:
    """seqeval metrics of word-level predictions, the ``errors`` block, how many sentences and words were
    scored and split, and (given each word's piece labels) ``subword_f1``."""
    # seqeval imports scikit-learn, nervaluate is only needed here: not for tagging
    from ner_experiments.entity_errors import entity_types, error_breakdown
    from ner_experiments.metrics import decode_entities, metrics_from_entities

    gold = [[label_names[t] for t in tags] for tags in gold_tag_ids]
    pred = [[label_names[t] for t in tags] for tags in predicted_tag_ids]
    gold_entities, pred_entities = decode_entities(gold, strict_iob2), decode_entities(pred, strict_iob2)
    metrics = metrics_from_entities(gold, pred, gold_entities, pred_entities)
    metrics.update(
        num_sentences=len(gold),
        num_words=sum(len(tags) for tags in gold),
        sentences_split=count_windowed_sentences(columns["sentence_id"], columns["was_split"]),
    )
    metrics["errors"] = error_breakdown(gold_entities, pred_entities, entity_types(label_names))
    if piece_labels is not None:
        subword = subword_metrics(gold_tag_ids, piece_labels, label_names)
        metrics["subword_f1"] = subword["f1"]
        metrics["subword"] = {**subword, "note": SUBWORD_NOTE}
    return metrics


SUBWORD_NOTE = (
    "subword_f1 is seqeval over every sub-word piece, continuation pieces repeating the word's tag: the "
    "tutorial's scoring, the number to compare with its validation 0.970 / test 0.967. overall_f1 (one "
    "prediction per word, as the data is annotated) is this project's headline."
)
