"""Scoring a saved model on any configured data set split, exactly as training scores it.

The data set comes from the repo's ``conf/`` composed with Hydra's compose API (``dataset=wikiann_bn
dataset.max_eval_samples=100``); without a ``dataset=`` override, a model saved by a run is scored on
its own training data set, with ``dataset.<key>=value`` overrides applied to the data set config as it
was composed (so ``dataset.language=de`` also changes the keys derived from it). Features, prediction
and scoring are training's own (:mod:`ner_experiments.features`, :mod:`ner_experiments.evaluation`;
one prediction pass also feeds the confusion matrix and the predictions file). Writes ``metrics.json``
(same shape as a training run's), ``predictions/<split>.conll``, ``confusion_matrix.json`` and
``confusion_matrix.png`` into a new folder: an earlier evaluation is never overwritten.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from ner_experiments.entity_errors import format_error_table
from ner_experiments.errors import ConfigError, DataError
from ner_experiments.metrics import format_metrics_table
from ner_experiments.predictions_file import predictions_path, write_predictions

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]  # metrics.json content
    confusion: dict[str, Any]
    output_dir: Path
    table: str
    predictions_file: Path
    strict_iob2: bool = False


def compose_eval_config(overrides: list[str], training_config: DictConfig | None = None) -> DictConfig:
    """The train config composed from ``conf/`` with Hydra-style overrides.

    Without a ``dataset=<name>`` override, the data set is the model's training data set (when known),
    as composed, with any ``dataset.<key>=value`` overrides merged in before interpolations resolve.
    """
    from ner_experiments.cli import compose_config
    from ner_experiments.config import DatasetConfig

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(
            f"{bad[0]!r} is not an override: use key=value, e.g. dataset=wikiann_bn (split: --split)"
        )
    group_set = any(o.lstrip("+~").split("=", 1)[0] == "dataset" for o in overrides)
    reuse = training_config is not None and "dataset" in training_config and not group_set
    dataset_keys = [o for o in overrides if reuse and o.lstrip("+").startswith("dataset.")]
    cfg = compose_config([*(o for o in overrides if o not in dataset_keys), "logger=none"], validate=False)
    if reuse:
        assert training_config is not None
        extra = OmegaConf.from_dotlist([o.lstrip("+").removeprefix("dataset.") for o in dataset_keys])
        try:
            dataset = OmegaConf.merge(OmegaConf.structured(DatasetConfig), training_config.dataset, extra)
        except Exception as err:
            raise ConfigError(f"invalid dataset override: {str(err).splitlines()[0]}") from None
        with open_dict(cfg):
            cfg.dataset = dataset
    return cfg


def default_output_dir(model_ref: str, model_dir: Path | None, cfg: DictConfig, split: str) -> Path:
    """``<run_dir>/evaluations/<dataset>-<split>`` for a run, else under ``paths.output_dir/evaluations``;
    ``-2``, ``-3``... appended when an earlier evaluation is there."""
    leaf = f"{cfg.dataset.name}-{split}"
    if model_dir is not None and model_dir.name == "model" and (model_dir.parent / "config.yaml").is_file():
        base = model_dir.parent / "evaluations" / leaf
    else:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_ref.strip("/")).strip("_") or "model"
        base = Path(cfg.paths.output_dir) / "evaluations" / safe / leaf
    candidate, n = base, 1
    while (candidate / "metrics.json").exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _gold_in_model_space(
    gold_ids: list[list[int]], data_labels: list[str], model_labels: list[str], where: str
) -> list[list[int]]:
    if data_labels == model_labels:
        return gold_ids
    index = {name: i for i, name in enumerate(model_labels)}
    unknown = sorted(set(data_labels) - set(index))
    if unknown:
        raise DataError(
            f"{where} has labels {unknown} that the model does not predict (model labels: {model_labels}): "
            "evaluate on a data set with the model's entity types"
        )
    remap = [index[name] for name in data_labels]
    return [[remap[t] for t in tags] for tags in gold_ids]


def evaluate_saved_model(
    model_ref: str,
    overrides: list[str] | None = None,
    split: str = "test",
    output_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    show_progress: bool = True,
) -> EvaluationResult:
    """Score a saved model (run dir, model folder or Hub id) on a split of a configured data set."""
    from ner_experiments.config import validate_config
    from ner_experiments.data.readers import load_ner_data
    from ner_experiments.model import NerModel, resolve_model_dir

    if split not in SPLIT_NAMES:
        raise ConfigError(f"split {split!r} is not valid: use one of {', '.join(SPLIT_NAMES)}")
    if output_dir is not None and (Path(output_dir) / "metrics.json").exists():
        raise ConfigError(f"--output-dir {output_dir} already holds an evaluation: give a new folder")
    started = time.time()
    model_dir = resolve_model_dir(model_ref)
    model = NerModel.load(model_ref, device=device)
    cfg = compose_eval_config(list(overrides or []), model.training_config)
    validate_config(cfg)
    data = load_ner_data(cfg.dataset, cfg.paths.cache_dir)
    metrics, confusion, predicted = _score_split(model, data, split, cfg, batch_size, show_progress)
    out_dir = Path(output_dir) if output_dir else default_output_dir(model_ref, model_dir, cfg, split)
    results = {split: metrics, "run": _run_record(model, data, cfg, split, overrides, started)}
    predictions_file = predictions_path(out_dir, split)
    write_predictions(predictions_file, data.splits[split]["tokens"], *predicted)
    _write_results(
        out_dir, results, confusion, f"{_model_name(model, model_dir)} on {cfg.dataset.name} {split}"
    )
    table = format_metrics_table(f"{split} ({metrics['num_sentences']} sentences, {data.source})", metrics)
    table += "\n\n" + format_error_table("entities by outcome (docs/evaluation.md)", metrics["errors"])
    strict = bool(cfg.metrics.strict_iob2)
    return EvaluationResult(results, confusion, out_dir, table, predictions_file, strict)


def _score_split(
    model: Any, data: Any, split: str, cfg: DictConfig, batch_size: int | None, show_progress: bool
) -> tuple[dict[str, Any], dict[str, Any], tuple[list[list[str]], list[list[str]]]]:
    """Word-level metrics, the entity-type confusion and the gold and predicted tags of one split, from
    one prediction pass."""
    from ner_experiments.data.contract import NerData
    from ner_experiments.evaluation import feature_columns, predict_split, score_predictions
    from ner_experiments.features import FeatureSettings
    from ner_experiments.features.build import build_features
    from ner_experiments.publishing.confusion import entity_confusion

    one = NerData({split: data.splits[split]}, data.label_names, data.language, data.source)
    settings = {split: FeatureSettings(model.max_length, model.window_stride)}
    columns = feature_columns(build_features(one, model.tokenizer, settings, cfg.paths.cache_dir)[0][split])
    gold = _gold_in_model_space(
        [list(t) for t in data.splits[split]["tags"]], data.label_names, model.label_names, data.source
    )
    pad_id = getattr(model.tokenizer, "pad_token_id", 0) or 0
    bs = batch_size or int(cfg.trainer.per_device_eval_batch_size)
    predicted = predict_split(
        model.model, columns, [len(t) for t in gold], bs, pad_id, show_progress, f"evaluate {split}"
    )
    names = model.label_names
    strict = bool(cfg.metrics.strict_iob2)
    metrics = score_predictions(gold, predicted.labels, names, columns, strict, predicted.pieces)
    gold_tags = [[names[t] for t in tags] for tags in gold]
    predicted_tags = [[names[t] for t in tags] for tags in predicted.labels]
    confusion = entity_confusion(gold_tags, predicted_tags, sorted({n[2:] for n in names if n != "O"}))
    return metrics, confusion, (gold_tags, predicted_tags)


def _run_record(model: Any, data: Any, cfg: DictConfig, split: str, overrides: Any, started: float) -> dict:
    from ner_experiments.hardware import describe_hardware

    return {
        "model": model.source,
        "dataset": data.source,
        "dataset_name": cfg.dataset.name,
        "split": split,
        "language": data.language,
        "label_names": model.label_names,
        "max_length": model.max_length,
        "strict_iob2": bool(cfg.metrics.strict_iob2),
        "hardware": describe_hardware(),
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "overrides": list(overrides or []),
    }


def _model_name(model: Any, model_dir: Path | None) -> str:
    if model_dir is None:
        return model.source
    return model_dir.parent.name if model_dir.name == "model" else model_dir.name


def _write_results(out_dir: Path, results: dict[str, Any], confusion: dict[str, Any], title: str) -> None:
    from ner_experiments.publishing.confusion import plot_confusion
    from ner_experiments.run_dirs import write_json_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "confusion_matrix.json", confusion)
    plot_confusion(confusion, out_dir / "confusion_matrix.png", f"entity types: {title}")
    write_json_atomic(out_dir / "metrics.json", results)  # last: the folder is complete from here on
