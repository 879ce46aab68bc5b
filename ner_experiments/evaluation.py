"""Word-level prediction over features, and scoring a split with it.

Features are run through the model in batches cut from the length-sorted order where they waste
the least on padding (:func:`cut_sorted_batches`); each word's label
is read from its first piece in the feature that owns it, so a sentence gets exactly one prediction
per word, however it was tokenized or windowed. Under torch.distributed each rank predicts a shard
and the shards are gathered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ner_experiments.features.builder import MODEL_INPUTS, count_windowed_sentences

if TYPE_CHECKING:
    from datasets import Dataset

PREDICTION_COLUMNS = ("sentence_id", "word_index", "length", "was_split")
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


WordPredictions = dict[int, dict[int, tuple[int, float]]]  # sentence id -> word -> (label id, probability)


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
    """Label ids (and their probabilities) per word, for every sentence of ``sentence_lengths``.

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
        for pos, w in enumerate(features["word_index"][i]):
            if w >= 0:
                slot[int(w)] = (int(best[k, pos]), float(best_p[k, pos]))


def _gather(predicted: WordPredictions, world: int) -> WordPredictions:
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, predicted)
    merged: WordPredictions = {}
    for part in gathered:
        for sid, words in part.items():
            merged.setdefault(sid, {}).update(words)
    return merged


def _per_sentence(
    predicted: WordPredictions, sentence_lengths: Sequence[int]
) -> tuple[list[list[int]], list[list[float]]]:
    labels, scores = [], []
    for sid, n_words in enumerate(sentence_lengths):
        words = predicted.get(sid, {})
        if len(words) != n_words:
            missing = sorted(set(range(n_words)) - set(words))[:5]
            raise RuntimeError(
                f"sentence {sid}: no prediction for words {missing}; this is a bug in windowing"
            )
        labels.append([words[w][0] for w in range(n_words)])
        scores.append([words[w][1] for w in range(n_words)])
    return labels, scores


def feature_columns(features: Dataset) -> dict[str, list]:
    """The columns prediction reads, as Python lists in one Arrow conversion (row access is slow)."""
    names = [c for c in (*MODEL_INPUTS, *PREDICTION_COLUMNS) if c in features.column_names]
    table = features.select_columns(names).with_format("arrow")[:]
    return {name: table.column(name).to_pylist() for name in names}


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
    """seqeval metrics of one split, plus how many sentences and words were scored and split.

    Always in the model's own precision (fp32), as the saved model is served and ``ner-evaluate`` scores it.
    """
    columns = feature_columns(features)
    lengths = [len(tags) for tags in gold_tag_ids]
    predicted, _ = predict_word_labels(
        model, columns, lengths, batch_size, pad_token_id, show_progress, description
    )
    return score_predictions(gold_tag_ids, predicted, label_names, columns, strict_iob2)


def score_predictions(
    gold_tag_ids: Sequence[Sequence[int]],
    predicted_tag_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
    columns: Mapping[str, list],
    strict_iob2: bool = False,
) -> dict[str, Any]:
    """seqeval metrics of word-level predictions, plus how many sentences and words were scored and split."""
    from ner_experiments.metrics import compute_ner_metrics  # seqeval imports scikit-learn: not for tagging

    gold = [[label_names[t] for t in tags] for tags in gold_tag_ids]
    pred = [[label_names[t] for t in tags] for tags in predicted_tag_ids]
    metrics = compute_ner_metrics(gold, pred, strict_iob2=strict_iob2)
    metrics.update(
        num_sentences=len(gold),
        num_words=sum(len(tags) for tags in gold),
        sentences_split=count_windowed_sentences(columns["sentence_id"], columns["was_split"]),
    )
    return metrics
