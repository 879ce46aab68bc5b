"""Word-level prediction over features, and scoring a split with it.

Features are run through the model in batches cut from the length-sorted order where they waste
the least on padding (:func:`cut_sorted_batches`); each word's label
is read from its first piece in the feature that owns it, so a sentence gets exactly one prediction
per word, however it was tokenized or windowed. Under torch.distributed each rank predicts a shard
and the shards are gathered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from ner_experiments.features import count_split_sentences, read_columns
from ner_experiments.metrics import compute_ner_metrics

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
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


@torch.inference_mode()
def predict_word_labels(
    model: Any,
    features: Dataset,
    sentence_lengths: Sequence[int],
    batch_size: int = 64,
    pad_token_id: int = 0,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = False,
    description: str = "predict",
) -> tuple[list[list[int]], list[list[float]]]:
    """Label ids (and their probabilities) per word, for every sentence of ``sentence_lengths``.

    ``features`` must carry ``sentence_id`` (0-based, indexing ``sentence_lengths``) and ``word_index``.
    """
    rank, world = _dist()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    columns = [c for c in MODEL_INPUTS if c in features.column_names]
    # Whole columns in one Arrow conversion: indexing a Dataset column row by row is slow.
    data = read_columns(features, [*columns, "sentence_id", "word_index", "length"])
    lengths = np.asarray(data.pop("length"), dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    if world > 1:
        # Shard by sentence, so all windows of a sentence are predicted by one rank.
        sentence_ids = np.asarray(data["sentence_id"], dtype=np.int64)
        order = order[sentence_ids[order] % world == rank]
    predicted: dict[int, dict[int, tuple[int, float]]] = {}
    batches = cut_sorted_batches(lengths[order].tolist(), batch_size)
    for start, end in tqdm(batches, desc=description, disable=not show_progress or rank != 0, leave=False):
        idx = order[start:end].tolist()
        rows = {c: [data[c][i] for i in idx] for c in data}
        inputs = {c: _pad(rows[c], pad_token_id if c == "input_ids" else 0).to(device) for c in columns}
        if autocast_dtype is not None:
            with torch.autocast(device_type=device.type, dtype=autocast_dtype):
                logits = model(**inputs).logits
        else:
            logits = model(**inputs).logits
        probs = torch.softmax(logits.float(), dim=-1)
        best_p, best = probs.max(dim=-1)
        best, best_p = best.cpu().numpy(), best_p.cpu().numpy()
        for row, (sid, word_index) in enumerate(zip(rows["sentence_id"], rows["word_index"], strict=True)):
            slot = predicted.setdefault(int(sid), {})
            for pos, w in enumerate(word_index):
                if w >= 0:
                    slot[int(w)] = (int(best[row, pos]), float(best_p[row, pos]))
    if world > 1:
        gathered: list[Any] = [None] * world
        torch.distributed.all_gather_object(gathered, predicted)
        predicted = {}
        for part in gathered:
            for sid, words in part.items():
                predicted.setdefault(sid, {}).update(words)
    if was_training:
        model.train()
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


def evaluate_split(
    model: Any,
    features: Dataset,
    gold_tag_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
    batch_size: int,
    pad_token_id: int,
    strict_iob2: bool = False,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = False,
    description: str = "evaluate",
) -> dict[str, Any]:
    """seqeval metrics of one split, plus how many sentences and words were scored and split."""
    lengths = [len(tags) for tags in gold_tag_ids]
    predicted, _ = predict_word_labels(
        model, features, lengths, batch_size, pad_token_id, autocast_dtype, show_progress, description
    )
    return score_predictions(gold_tag_ids, predicted, label_names, features, strict_iob2)


def score_predictions(
    gold_tag_ids: Sequence[Sequence[int]],
    predicted_tag_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
    features: Dataset,
    strict_iob2: bool = False,
) -> dict[str, Any]:
    """seqeval metrics of word-level predictions, plus how many sentences and words were scored and split."""
    gold = [[label_names[t] for t in tags] for tags in gold_tag_ids]
    pred = [[label_names[t] for t in tags] for tags in predicted_tag_ids]
    metrics = compute_ner_metrics(gold, pred, strict_iob2=strict_iob2)
    metrics.update(
        num_sentences=len(gold),
        num_words=sum(len(tags) for tags in gold),
        sentences_split=count_split_sentences(features),
    )
    return metrics
