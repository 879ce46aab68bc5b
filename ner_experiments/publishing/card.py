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

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
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


def _eval_results(cfg: Any, results: dict[str, Any]) -> list[EvalResult]:
    test = results.get("test")
    if not test:
        return []
    common = {
        "task_type": "token-classification",
        "task_name": "Named-entity recognition",
        "dataset_type": _get(cfg, "dataset.hub_dataset_id") or _get(cfg, "dataset.name", "custom"),
        "dataset_name": _get(cfg, "dataset.name", "custom"),
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
    base_model = _get(cfg, "model.name_or_path") if _get(cfg, "model.source") == "hub" else None
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


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def build_card_body(
    cfg: Any,
    results: dict[str, Any],
    repo_id: str | None = None,
    widgets: list[str] | None = None,
    model_ref: str | None = None,
) -> str:
    """The card's Markdown body (everything under the YAML header)."""
    run = results.get("run", {})
    train = results.get("train", {})
    language = language_of(cfg, results)
    lang = language_name(language)
    types = entity_types(results)
    source = _get(cfg, "model.source")
    base = _get(cfg, "model.name_or_path")
    dataset_id = _get(cfg, "dataset.hub_dataset_id")
    dataset_name = _get(cfg, "dataset.name", "a custom data set")
    dataset_ref = (
        f"[{dataset_id}](https://huggingface.co/datasets/{dataset_id})" if dataset_id else f"`{dataset_name}`"
    )
    if _get(cfg, "dataset.config_name") and dataset_id:
        dataset_ref += f" (config `{_get(cfg, 'dataset.config_name')}`)"
    title = repo_id or run.get("run_name") or "NER model"
    ref = model_ref or repo_id or "path/to/run/model"
    t = cfg.trainer if isinstance(cfg, DictConfig) and "trainer" in cfg else {}

    out: list[str] = [f"# {title}", ""]
    if source == "tiny" or run.get("random_init_model"):
        what = "a small **randomly initialised** BERT (a test model, not a pretrained encoder) trained"
    elif source == "hub" and base:
        what = f"[{base}](https://huggingface.co/{base}) fine-tuned"
    else:
        what = f"the local model `{base}` fine-tuned" if base else "a fine-tuned encoder"
    out += [
        f"A named-entity recognition (token classification) model for {lang}: {what} on {dataset_ref}.",
        f"It tags {', '.join(types) if types else 'the data set’s entity types'} in IOB2 "
        f"(labels: {', '.join(run.get('label_names') or []) or 'see config.json'}).",
        "",
    ]
    if source == "tiny" or run.get("random_init_model"):
        out += [
            "> **Test model.** This is the framework's quickstart/test model: a tiny BERT with random initial",
            "> weights and a tokenizer trained on the training words. Its scores only show that the pipeline",
            "> works; do not use it for real predictions.",
            "",
        ]
    out += ["## Results", ""]
    if "test" in results:
        out += [
            f"Test split (`{_get(cfg, 'dataset.test_split', 'test')}`), entity level (seqeval), at word level:",
            "",
            _table(results["test"]),
            "",
        ]
    if "validation" in results:
        out += [
            f"Validation split (`{_get(cfg, 'dataset.validation_split', 'validation')}`), used to pick the best checkpoint:",
            "",
            _table(results["validation"]),
            "",
        ]
    example = (
        widgets[0] if widgets else ("সিডনি ক্রিকেট গ্রাউন্ড" if language == "bn" else "Sydney Cricket Ground")
    )
    out += [
        "## Usage",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'ner = pipeline("token-classification", model="{ref}", aggregation_strategy="first")',
        f'print(ner("{example}"))',
        "```",
        "",
        "The model was trained and scored on words (first sub-word piece of each word). For word-level",
        "predictions exactly as in evaluation, with long inputs split into overlapping windows:",
        "",
        "```bash",
        f'ner-predict --model {ref} "{example}"',
        "```",
        "",
        "## Training",
        "",
    ]
    rows = [
        ("data", f"{dataset_ref}, {train.get('num_sentences', '?')} training sentences"),
        ("learning rate", _get(t, "learning_rate") if isinstance(t, DictConfig) else None),
        (
            "batch size (per device)",
            _get(t, "per_device_train_batch_size") if isinstance(t, DictConfig) else None,
        ),
        (
            "gradient accumulation",
            _get(t, "gradient_accumulation_steps") if isinstance(t, DictConfig) else None,
        ),
        ("epochs (configured)", _get(t, "num_train_epochs") if isinstance(t, DictConfig) else None),
        ("epochs trained / steps", f"{train.get('epochs', '?')} / {train.get('global_step', '?')}"),
        ("weight decay", _get(t, "weight_decay") if isinstance(t, DictConfig) else None),
        ("warmup ratio", _get(t, "warmup_ratio") if isinstance(t, DictConfig) else None),
        ("scheduler", _get(t, "lr_scheduler_type") if isinstance(t, DictConfig) else None),
        ("optimizer", _get(t, "optim") if isinstance(t, DictConfig) else None),
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
    out += ["| Setting | Value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in rows if v is not None and v != ""]
    out.append("")
    out.append(
        "Every setting of the run (the resolved training config) is in `training_config.yaml` in this "
        "repository."
    )
    if run.get("wandb_url"):
        out += ["", f"Training curves: [Weights & Biases run]({run['wandb_url']})."]
    out += [
        "",
        "## Limitations",
        "",
        f"- Trained on {dataset_ref} only: expect lower scores on text from other domains or styles, "
        f"and on languages other than {lang}.",
        f"- It knows only the entity types {', '.join(types) if types else 'of its training data'}; "
        "anything else is tagged `O`.",
        "- Input is split into words before tagging (the scores above are at word level); a different word "
        "splitting than the data set's can change the predictions.",
        "- The Hugging Face `pipeline` truncates inputs longer than the model's maximum length; "
        "`ner-predict` splits them into overlapping windows instead.",
    ]
    if (_get(cfg, "dataset.hub_dataset_id") or "").endswith("wikiann"):
        out.append(
            "- WikiANN's tags were produced automatically from Wikipedia links (silver standard), "
            "so the test scores measure agreement with that annotation, not with human judgement."
        )
    if _get(cfg, "dataset.license"):
        out.append(f"- The training data is licensed {_get(cfg, 'dataset.license')}.")
    out += ["", "*Generated by ner-experiments from the run's config and metrics.*", ""]
    return "\n".join(out)


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
    data = build_card_data(cfg, results, repo_id, widgets)
    body = build_card_body(cfg, results, repo_id, widgets, model_ref)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_model_card(
    run_dir: Path, cfg: DictConfig, results: dict[str, Any], repo_id: str | None = None
) -> Path:
    """Write ``<run_dir>/README.md``; called by training at the end of every run (before ``metrics.json``).

    The usage snippet names ``hub.repo_id`` when set, else the run's ``model/`` folder.
    """
    run_dir = Path(run_dir)
    repo_id = repo_id or _get(cfg, "hub.repo_id")
    card = build_model_card(cfg, results, repo_id=repo_id, model_ref=repo_id or str(run_dir / "model"))
    path = run_dir / CARD_FILE
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(str(card), encoding="utf-8")
    tmp.replace(path)
    log.info("Model card written to %s", path)
    return path
