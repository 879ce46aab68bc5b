"""The tutorial's recipe as a plain script: the baseline that ``run_benchmark.py`` measures train.py against.

What the tutorial does, kept as it is: a per-example Python loop aligning labels to the first sub-word
(``tokenize_and_align_labels``), ``DataCollatorForTokenClassification``, the ``Trainer`` with its
defaults plus lr 2e-5, batch 16 (train and eval), weight decay 0.01, evaluation every epoch, fp32,
seqeval on sub-word labels as ``compute_metrics``. Modernised only where today's libraries require it
(``eval_strategy``, ``processing_class``) and with ``truncation=True``, without which it crashes on
sentences longer than the model's 512 positions (WikiANN-en has one of 533 pieces).

For an honest comparison it is also scored at word level: each word's label is read from its first
sub-word; words cut off by truncation count as predicted "O". The sentences are read with this
project's reader so both sides see exactly the same data; reading is not part of the timings.

    python -m benchmarks.tutorial_recipe --model DIR --dataset wikiann --data-dir ../shared/data/wikiann \
        --train-samples 3000 --eval-samples 1000 --epochs 1 --out result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from ner_experiments.config import DatasetConfig
from ner_experiments.data.readers import load_ner_data
from ner_experiments.metrics import compute_ner_metrics
from ner_experiments.throughput import CountingCollator, TrainThroughputCallback

DATASETS = {
    "wikiann": {"name": "wikiann_en", "source": "hub", "config_name": "en", "language": "en"},
    "bengali-news": {"name": "bengali_news", "source": "files"},
}


def load_data(dataset: str, data_dir: str, train_samples: int | None, eval_samples: int | None):
    """The splits (tags in the tutorial's ``ner_tags`` column) and label names, read by this project."""
    spec = dict(DATASETS[dataset], max_train_samples=train_samples, max_eval_samples=eval_samples)
    spec["path" if spec["source"] == "hub" else "data_dir"] = data_dir
    cfg = OmegaConf.merge(OmegaConf.structured(DatasetConfig), spec)
    data = load_ner_data(cfg)  # type: ignore[arg-type]
    splits = {k: ds.rename_column("tags", "ner_tags") for k, ds in data.splits.items()}
    return splits, data.label_names


def make_preprocessor(tokenizer, label_all_tokens: bool = False, tags_column: str = "ner_tags"):
    """The tutorial's preprocessing (+ truncation): a batched ``datasets.map`` function."""

    def tokenize_and_align_labels(examples):
        tokenized_inputs = tokenizer(examples["tokens"], truncation=True, is_split_into_words=True)
        labels = []
        for i, label in enumerate(examples[tags_column]):
            word_ids = tokenized_inputs.word_ids(batch_index=i)
            previous_word_idx = None
            label_ids = []
            for word_idx in word_ids:
                if word_idx is None:
                    label_ids.append(-100)
                elif word_idx != previous_word_idx:
                    label_ids.append(label[word_idx])
                else:
                    label_ids.append(label[word_idx] if label_all_tokens else -100)
                previous_word_idx = word_idx
            labels.append(label_ids)
        tokenized_inputs["labels"] = labels
        return tokenized_inputs

    return tokenize_and_align_labels


def make_compute_metrics(label_list: list[str]):
    """The tutorial's ``compute_metrics``: seqeval on the labelled sub-words."""

    def compute_metrics(p):
        predictions, labels = p
        predictions = np.argmax(predictions, axis=2)
        true_predictions = [
            [label_list[p] for (p, l) in zip(prediction, label, strict=True) if l != -100]  # noqa: E741 (the tutorial's code)
            for prediction, label in zip(predictions, labels, strict=True)
        ]
        true_labels = [
            [label_list[l] for (p, l) in zip(prediction, label, strict=True) if l != -100]  # noqa: E741
            for prediction, label in zip(predictions, labels, strict=True)
        ]
        m = compute_ner_metrics(true_labels, true_predictions)
        return {k: m[k] for k in ("overall_precision", "overall_recall", "overall_f1", "overall_accuracy")}

    return compute_metrics


def build_trainer(args: argparse.Namespace, tokenized: dict, tokenizer: Any, label_list: list[str]):
    """The tutorial's ``Trainer``, its collator wrapped to count tokens (measurement only)."""
    model = AutoModelForTokenClassification.from_pretrained(
        args.model,
        num_labels=len(label_list),
        id2label=dict(enumerate(label_list)),
        label2id={n: i for i, n in enumerate(label_list)},
    )
    training_args = TrainingArguments(
        args.output_dir,
        eval_strategy="epoch",
        learning_rate=2e-5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=16,
        num_train_epochs=args.epochs,
        weight_decay=0.01,
        seed=args.seed,
        report_to="none",
        save_strategy="no",  # the tutorial saves every 500 steps; a benchmark run stays below that
    )
    collator = CountingCollator(DataCollatorForTokenClassification(tokenizer))
    throughput = TrainThroughputCallback(collator)
    trainer = Trainer(
        model,
        training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(label_list),
        callbacks=[throughput],
    )
    return trainer, collator, throughput


def word_level_f1(trainer: Trainer, tokenizer: Any, features, sentences, label_list: list[str]) -> dict:
    """seqeval at word level: first sub-word's prediction per word; truncated words are "O"."""
    predicted_ids = np.argmax(trainer.predict(features).predictions, axis=2)
    gold, pred, truncated = [], [], 0
    for i, (words, tags) in enumerate(zip(sentences["tokens"], sentences["ner_tags"], strict=True)):
        word_ids = tokenizer(list(words), truncation=True, is_split_into_words=True).word_ids()
        labels = ["O"] * len(words)
        seen = set()
        for pos, w in enumerate(word_ids):
            if w is not None and w not in seen:
                seen.add(w)
                labels[w] = label_list[int(predicted_ids[i, pos])]
        truncated += len(seen) < len(words)
        gold.append([label_list[t] for t in tags])
        pred.append(labels)
    m = compute_ner_metrics(gold, pred)
    return {"overall_f1": m["overall_f1"], "sentences": len(gold), "sentences_truncated": truncated}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--train-samples", type=int, default=None)
    p.add_argument("--eval-samples", type=int, default=None)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--output-dir", default="benchmarks/results/recipe")
    p.add_argument("--out", required=True, help="where to write the measurements (JSON)")
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    splits, label_list = load_data(args.dataset, args.data_dir, args.train_samples, args.eval_samples)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenize_and_align_labels = make_preprocessor(tokenizer, label_all_tokens=False)

    start = time.perf_counter()
    tokenized = {
        k: ds.map(tokenize_and_align_labels, batched=True, load_from_cache_file=False)
        for k, ds in splits.items()
    }
    prep_seconds = time.perf_counter() - start
    n_sentences = sum(len(ds) for ds in splits.values())

    trainer, collator, throughput = build_trainer(args, tokenized, tokenizer, label_list)
    trainer.train()
    collator.active = False
    start = time.perf_counter()
    subword_metrics = trainer.evaluate()
    eval_seconds = time.perf_counter() - start

    result = {
        "preprocessing": {
            "seconds": round(prep_seconds, 3),
            "sentences": n_sentences,
            "sentences_per_second": round(n_sentences / prep_seconds, 1),
        },
        "train": throughput.summary(),
        "eval_seconds": {"validation": round(eval_seconds, 3)},
        "subword_validation": {k: float(v) for k, v in subword_metrics.items() if isinstance(v, int | float)},
        "optim": str(trainer.args.optim),
    }
    for split in ("validation", "test"):
        result[split] = word_level_f1(trainer, tokenizer, tokenized[split], splits[split], label_list)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
