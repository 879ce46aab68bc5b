"""``NerTrainer``: the Trainer with word-level evaluation and our length-bucket sampler.

It overrides only what public hooks cannot do: ``evaluate`` scores words with seqeval from our features
(not sub-word logits), and ``_get_train_sampler`` serves ``trainer.train_sampling=length_buckets``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import Trainer

from ner_experiments.evaluation import ScoredSplit, predict_and_score
from ner_experiments.features.build import read_columns
from ner_experiments.sampling import LengthBucketSampler

log = logging.getLogger(__name__)

OVERALL_KEYS = ("overall_precision", "overall_recall", "overall_f1", "overall_accuracy")


@dataclass
class EvalSet:
    """A split ready for word-level evaluation: its features and the gold tag ids per sentence."""

    features: Dataset
    gold: list[list[int]]


def flatten_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """``{"overall_f1": .9, "per_type": {"PER": {"f1": .8}}}`` → ``{"eval_overall_f1": .9, "eval_PER_f1": .8}``."""
    flat = {f"{prefix}_{k}": float(metrics[k]) for k in OVERALL_KEYS}
    if "subword_f1" in metrics:
        flat[f"{prefix}_subword_f1"] = float(metrics["subword_f1"])
    for kind, row in metrics.get("per_type", {}).items():
        flat[f"{prefix}_{kind}_f1"] = float(row["f1"])
    return flat


class NerTrainer(Trainer):
    """A Trainer whose evaluation scores at word level (seqeval) from our features."""

    def __init__(
        self,
        *args: Any,
        eval_sets: dict[str, EvalSet],
        label_names: list[str],
        strict_iob2: bool,
        train_sampling: str = "random",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.eval_sets = eval_sets
        self.label_names = label_names
        self.strict_iob2 = strict_iob2
        self.train_sampling = train_sampling
        # global step -> (metrics, seconds) of each validation pass in this process, so the best
        # checkpoint's scores are not computed a second time after training; and its predictions.
        self.eval_history: dict[int, tuple[dict[str, Any], float]] = {}
        self.eval_predictions: dict[int, list[list[int]]] = {}

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.train_sampling != "length_buckets" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        return LengthBucketSampler(
            read_columns(dataset, ["length"])["length"],
            self.args.train_batch_size,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )

    def score(self, split: str) -> ScoredSplit:
        """Word-level metrics of the current model on ``validation`` or ``test``, and its predictions."""
        eval_set = self.eval_sets[split]
        return predict_and_score(
            self.model,
            eval_set.features,
            eval_set.gold,
            self.label_names,
            batch_size=self.args.per_device_eval_batch_size,
            pad_token_id=getattr(self.processing_class, "pad_token_id", 0) or 0,
            strict_iob2=self.strict_iob2,
            show_progress=not self.args.disable_tqdm,
            description=f"evaluate {split}",
        )

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        start = time.perf_counter()
        scored = self.score("validation")
        seconds = time.perf_counter() - start
        metrics = scored.metrics
        self.eval_history[self.state.global_step] = (metrics, seconds)
        self.eval_predictions[self.state.global_step] = scored.predicted
        f1, precision, recall = (metrics[f"overall_{k}"] for k in ("f1", "precision", "recall"))
        where = f"epoch {self.state.epoch or 0.0:.2f} step {self.state.global_step}"
        log.info("%s: validation F1 %.4f (precision %.4f, recall %.4f)", where, f1, precision, recall)
        flat = flatten_metrics(metrics, metric_key_prefix)
        flat[f"{metric_key_prefix}_runtime"] = round(seconds, 4)
        self.log(flat)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, flat)
        return flat

    def score_best_validation(self) -> tuple[ScoredSplit, float]:
        """Validation metrics and predictions of the model training ended with (the best checkpoint) and
        the seconds the pass took: reused from the evaluation that chose it when this process ran it,
        else computed."""
        best = self.state.best_model_checkpoint
        step = int(str(best).rsplit("-", 1)[-1]) if best else self.state.global_step
        if step in self.eval_history:
            metrics, seconds = self.eval_history[step]
            return ScoredSplit(dict(metrics), self.eval_predictions[step]), seconds
        start = time.perf_counter()
        scored = self.score("validation")
        return scored, time.perf_counter() - start
