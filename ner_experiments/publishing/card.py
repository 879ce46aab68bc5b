"""The model card (``README.md``) of a run, generated from its resolved config and results.

The YAML metadata is built with ``huggingface_hub.ModelCardData`` (language, license, datasets,
base_model, tags, pipeline_tag, metrics, widget examples and a ``model-index`` with the test scores),
so the Hub reads it back exactly; the body says what the model is, how it was trained and how well
it does, per entity type.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from omegaconf import DictConfig, OmegaConf

from ner_experiments.redaction import (
    folder_name,
    is_machine_path,
    machine_paths_in,
    redact_text,
    replace_machine_paths,
)

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "bn": "Bengali",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fr": "French",
    "hi": "Hindi",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "mr": "Marathi",
    "ne": "Nepali",
    "nl": "Dutch",
    "pa": "Punjabi",
    "pt": "Portuguese",
    "ru": "Russian",
    "ta": "Tamil",
    "te": "Telugu",
    "tr": "Turkish",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
OVERALL_METRICS = (
    ("precision", "overall_precision"),
    ("recall", "overall_recall"),
    ("f1", "overall_f1"),
    ("accuracy", "overall_accuracy"),
)


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default) if isinstance(cfg, DictConfig) else default
    return default if value is None else value


def language_of(cfg: Any, results: dict[str, Any]) -> str | None:
    """The data set's language code: from the run's results, else the data set config."""
    return results.get("run", {}).get("language") or _get(cfg, "dataset.language")


def language_name(code: str | None) -> str:
    return LANGUAGE_NAMES.get(code or "", code or "an unspecified language")


def entity_types(results: dict[str, Any]) -> list[str]:
    """Entity types the model was trained on (from the labels seen in training, else its label names,
    else the scored types)."""
    run = results.get("run", {})
    names = run.get("labels_in_training") or run.get("label_names") or []
    types = sorted({n[2:] for n in names if n[:2] in ("B-", "I-")})
    if not types:
        for split in ("test", "validation"):
            types = sorted(results.get(split, {}).get("per_type", {}))
            if types:
                break
    return types


def base_model_of(cfg: Any) -> str | None:
    """The Hub id the model was fine-tuned from: ``model.base_model``, else a Hub model's own id."""
    declared = _get(cfg, "model.base_model")
    if declared:
        return str(declared)
    return _get(cfg, "model.name_or_path") if _get(cfg, "model.source") == "hub" else None


def dataset_display_name(cfg: Any) -> str:
    """The data set's name as people know it: ``dataset.pretty_name``, else its Hub id, else the data
    folder's name (never its path on this machine), else ``dataset.name``."""
    for key in ("dataset.pretty_name", "dataset.hub_dataset_id"):
        if _get(cfg, key):
            return str(_get(cfg, key))
    if _get(cfg, "dataset.source") == "files" and _get(cfg, "dataset.data_dir"):
        return folder_name(str(_get(cfg, "dataset.data_dir")))
    path = str(_get(cfg, "dataset.path", ""))
    if path and (is_machine_path(path) or Path(path).is_dir()):
        return folder_name(path)
    return str(_get(cfg, "dataset.name", "custom"))


def framework_versions() -> dict[str, str]:
    """Versions of the libraries a run used (recorded in metrics.json, shown on the card)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("ner-experiments", "transformers", "torch", "datasets", "tokenizers", "huggingface_hub"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found


def _history_table(rows: list[dict[str, Any]]) -> str:
    """The validation scores after each evaluation during training (per epoch by default)."""
    lines = [
        "| Epoch | Step | Training loss | Precision | Recall | F1 | Accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)

    for row in rows:
        values = [row.get(k) for k in ("training_loss", "precision", "recall", "f1", "accuracy")]
        lines.append(
            f"| {row.get('epoch', '-'):g} | {row.get('step', '-')} | " + " | ".join(map(cell, values)) + " |"
        )
    return "\n".join(lines)


def _eval_results(cfg: Any, results: dict[str, Any]) -> list[EvalResult]:
    test = results.get("test")
    if not test:
        return []
    common = {
        "task_type": "token-classification",
        "task_name": "Named-entity recognition",
        "dataset_type": _get(cfg, "dataset.hub_dataset_id") or _get(cfg, "dataset.name", "custom"),
        "dataset_name": dataset_display_name(cfg),
        "dataset_config": _get(cfg, "dataset.config_name"),
        "dataset_split": _get(cfg, "dataset.test_split", "test"),
        "dataset_revision": _get(cfg, "dataset.revision"),
    }
    out = [
        EvalResult(
            metric_type=kind, metric_name=f"Test {kind}", metric_value=round(float(test[key]), 4), **common
        )
        for kind, key in OVERALL_METRICS
    ]
    for type_name, row in sorted(test.get("per_type", {}).items()):
        for kind in ("precision", "recall", "f1"):
            out.append(
                EvalResult(
                    metric_type=kind,
                    metric_name=f"Test {kind} ({type_name})",
                    metric_config=type_name,
                    metric_value=round(float(row[kind]), 4),
                    **common,
                )
            )
    return out


def build_card_data(
    cfg: Any, results: dict[str, Any], repo_id: str | None = None, widgets: list[str] | None = None
) -> ModelCardData:
    """The card's YAML metadata."""
    language = language_of(cfg, results)
    run = results.get("run", {})
    random_init = bool(run.get("random_init_model", _get(cfg, "model.source") == "tiny"))
    base_model = base_model_of(cfg)
    dataset_id = _get(cfg, "dataset.hub_dataset_id")
    tags = ["token-classification", "ner", "ner-experiments"] + ([language] if language else [])
    if random_init:
        tags.append("random-init-test-model")
    eval_results = _eval_results(cfg, results)
    return ModelCardData(
        language=language,
        license=_get(cfg, "hub.license", "apache-2.0"),
        library_name="transformers",
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_model,
        tags=tags,
        pipeline_tag="token-classification",
        metrics=["precision", "recall", "f1", "accuracy"],
        model_name=(repo_id or run.get("run_name") or "ner-model") if eval_results else None,
        eval_results=eval_results or None,
        widget=[{"text": text} for text in widgets] if widgets else None,
    )


def _table(metrics: dict[str, Any]) -> str:
    lines = ["| Entity type | Precision | Recall | F1 | Support |", "|---|---:|---:|---:|---:|"]
    total = 0
    for name, row in sorted(metrics.get("per_type", {}).items()):
        total += int(row["support"])
        lines.append(
            f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
        )
    lines.append(
        f"| **overall** | **{metrics['overall_precision']:.4f}** | **{metrics['overall_recall']:.4f}** | "
        f"**{metrics['overall_f1']:.4f}** | {total} |"
    )
    lines.append("")
    lines.append(
        f"Token accuracy {metrics['overall_accuracy']:.4f}; {metrics.get('num_sentences', '?')} sentences, "
        f"{metrics.get('num_words', '?')} words"
        + (
            f" ({metrics['sentences_split']} longer than the model's input, scored in overlapping windows)"
            if metrics.get("sentences_split")
            else ""
        )
        + "."
    )
    return "\n".join(lines)


def _error_table(metrics: dict[str, Any]) -> str:
    """The entities of a split by outcome (docs/evaluation.md), one row per type and overall."""
    from ner_experiments.entity_errors import ERROR_KINDS

    errors = metrics["errors"]
    lines = [
        "| Entity type | " + " | ".join(k.replace("_", " ") for k in ERROR_KINDS) + " |",
        "|---|" + "---:|" * len(ERROR_KINDS),
    ]
    for name, counts in [*errors["per_type"].items(), ("**overall**", errors["overall"])]:
        lines.append(f"| {name} | " + " | ".join(str(counts[k]) for k in ERROR_KINDS) + " |")
    return "\n".join(lines)


def _error_section(results: dict[str, Any]) -> dict[str, Any] | None:
    split = next((s for s in ("test", "validation") if "errors" in (results.get(s) or {})), None)
    if split is None:
        return None
    subword = {
        s: results[s]["subword_f1"] for s in ("validation", "test") if "subword_f1" in (results.get(s) or {})
    }
    return {"split": split, "table": _error_table(results[split]), "subword": subword}


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _what(cfg: Any, run: dict[str, Any]) -> str:
    source, base = _get(cfg, "model.source"), _get(cfg, "model.name_or_path")
    if source == "tiny" or run.get("random_init_model"):
        return "a small **randomly initialised** BERT (a test model, not a pretrained encoder) trained"
    if source == "hub" and base:
        return f"[{base}](https://huggingface.co/{base}) fine-tuned"
    declared = _get(cfg, "model.base_model")
    if declared:
        return f"[{declared}](https://huggingface.co/{declared}) (from a local copy) fine-tuned"
    return f"the local model `{folder_name(str(base))}` fine-tuned" if base else "a fine-tuned encoder"


def _dataset_ref(cfg: Any) -> str:
    dataset_id = _get(cfg, "dataset.hub_dataset_id")
    if not dataset_id:
        return f"`{_get(cfg, 'dataset.name', 'a custom data set')}`"
    ref = f"[{dataset_id}](https://huggingface.co/datasets/{dataset_id})"
    config_name = _get(cfg, "dataset.config_name")
    return ref + (f" (config `{config_name}`)" if config_name else "")


def _settings(cfg: Any, results: dict[str, Any], dataset_ref: str) -> list[tuple[str, Any]]:
    run, train = results.get("run", {}), results.get("train", {})
    rows = [
        ("data", f"{dataset_ref}, {train.get('num_sentences', '?')} training sentences"),
        ("learning rate", _get(cfg, "trainer.learning_rate")),
        ("batch size (per device)", _get(cfg, "trainer.per_device_train_batch_size")),
        ("gradient accumulation", _get(cfg, "trainer.gradient_accumulation_steps")),
        ("epochs (configured)", _get(cfg, "trainer.num_train_epochs")),
        ("epochs trained / steps", f"{train.get('epochs', '?')} / {train.get('global_step', '?')}"),
        ("weight decay", _get(cfg, "trainer.weight_decay")),
        ("warmup ratio", _get(cfg, "trainer.warmup_ratio")),
        ("scheduler", _get(cfg, "trainer.lr_scheduler_type")),
        ("optimizer", _get(cfg, "trainer.optim")),
        ("max length (pieces)", run.get("max_length") or _get(cfg, "model.max_length")),
        ("window stride (pieces)", _get(cfg, "model.window_stride")),
        ("label all sub-words", _get(cfg, "label_all_subwords", False)),
        ("precision", run.get("precision")),
        ("seed", run.get("seed", _get(cfg, "seed"))),
        ("hardware", run.get("hardware")),
        ("training time", _duration(train.get("runtime_s"))),
        ("whole run", _duration(run.get("duration_s"))),
        ("started", run.get("started_at")),
    ]
    return [(k, v) for k, v in rows if v is not None and v != ""]


def card_context(
    cfg: Any, results: dict[str, Any], repo_id: str | None, widgets: list[str], model_ref: str | None
) -> dict[str, Any]:
    """Everything the card template (templates/model_card.md) fills in."""
    run = results.get("run", {})
    language = language_of(cfg, results)
    types = entity_types(results)
    dataset_ref = _dataset_ref(cfg)
    tables = [
        {
            "caption": caption.format(split=_get(cfg, f"dataset.{name}_split", name)),
            "table": _table(results[name]),
        }
        for name, caption in (
            ("test", "Test split (`{split}`), entity level (seqeval), at word level:"),
            ("validation", "Validation split (`{split}`), used to pick the best checkpoint:"),
        )
        if name in results
    ]
    return {
        "title": repo_id or run.get("run_name") or "NER model",
        "language": language_name(language),
        "what": _what(cfg, run),
        "dataset_ref": dataset_ref,
        "types_text": ", ".join(types) if types else "the entity types of its training data",
        "labels_text": ", ".join(run.get("label_names") or []) or "see config.json",
        "random_init": _get(cfg, "model.source") == "tiny" or bool(run.get("random_init_model")),
        "score_tables": tables,
        "errors": _error_section(results),
        "ref": model_ref or repo_id or "path/to/run/model",
        "example": widgets[0]
        if widgets
        else ("সিডনি ক্রিকেট গ্রাউন্ড" if language == "bn" else "Sydney Cricket Ground"),
        "settings": _settings(cfg, results, dataset_ref),
        "wandb_url": run.get("wandb_url"),
        "history_table": _history_table(results.get("train", {}).get("validation_history") or []),
        "has_history": bool(results.get("train", {}).get("validation_history")),
        "versions": sorted((run.get("framework_versions") or framework_versions()).items()),
        "wikiann": (_get(cfg, "dataset.hub_dataset_id") or "").endswith("wikiann"),
        "data_license": _get(cfg, "dataset.license"),
    }


def build_model_card(
    cfg: Any,
    results: dict[str, Any],
    repo_id: str | None = None,
    widgets: list[str] | None = None,
    model_ref: str | None = None,
) -> ModelCard:
    """A :class:`~huggingface_hub.ModelCard` for a run. ``widgets=None``: the run's own examples."""
    if widgets is None:
        widgets = list(results.get("run", {}).get("widget_examples") or [])
    card = ModelCard.from_template(
        build_card_data(cfg, results, repo_id, widgets),
        template_path=str(TEMPLATE),
        **card_context(cfg, results, repo_id, widgets, model_ref),
    )
    # Shareable as it is: no secret, and no path of this machine (a folder is named by its name).
    config = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else {}
    paths = [*machine_paths_in(config), results.get("run", {}).get("run_dir")]
    return ModelCard(replace_machine_paths(redact_text(str(card)), paths))


def local_model_ref(run_dir: Path) -> str:
    """How the card's usage snippet names a run's model folder without a repo id: relative to the
    working directory when the run is under it, else ``<run dir name>/model`` (no absolute path)."""
    model_dir = Path(run_dir) / "model"
    if not model_dir.is_absolute():
        return str(model_dir)
    try:
        return str(model_dir.relative_to(Path.cwd()))
    except ValueError:
        return f"{Path(run_dir).name}/model"


def write_model_card(
    run_dir: Path, cfg: DictConfig, results: dict[str, Any], repo_id: str | None = None
) -> Path:
    """Write ``<run_dir>/README.md``; called by training at the end of every run (before ``metrics.json``).

    The usage snippet names ``hub.repo_id`` when set, else the run's ``model/`` folder.
    """
    run_dir = Path(run_dir)
    repo_id = repo_id or _get(cfg, "hub.repo_id")
    card = build_model_card(cfg, results, repo_id=repo_id, model_ref=repo_id or local_model_ref(run_dir))
    path = run_dir / CARD_FILE
    # The model folder carries its card too, so model/ alone is a complete, shareable model.
    for target in (path, run_dir / "model" / CARD_FILE):
        if target.parent.is_dir():
            tmp = target.with_suffix(".md.tmp")
            tmp.write_text(str(card), encoding="utf-8")
            tmp.replace(target)
    log.info("Model card written to %s (and model/%s)", path, CARD_FILE)
    return path
