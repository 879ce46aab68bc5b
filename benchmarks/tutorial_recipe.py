"""The tutorial's recipe as a plain script: the baseline (a) that ``run_benchmark.py`` measures against.

As the tutorial has it: a per-example loop aligning labels to first pieces, its collator, the ``Trainer``'s
defaults plus lr 2e-5, batch 16, weight decay 0.01, fp32, evaluation every epoch with seqeval on sub-word
labels. Changed only where today's libraries require it, and ``truncation=True`` (else it crashes on
WikiANN-en's 533-piece sentence). Added: training throughput, and F1 at word level (each word's first
piece; words cut by truncation count as "O"). Sentences are read as train.py reads them from its overrides.

    python -m benchmarks.tutorial_recipe --model DIR --out result.json \
        dataset=conll_files dataset.data_dir=../shared/data/bengali-news dataset.max_train_samples=300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from ner_experiments.cli import compose_config
from ner_experiments.data.readers import load_ner_data
from ner_experiments.metrics import compute_ner_metrics
from ner_experiments.throughput import CountingCollator, TrainThroughputCallback


def make_preprocessor(tokenizer: Any):
    """The tutorial's ``tokenize_and_align_labels`` (its ``ner_tags`` column is ``tags`` here)."""

    def tokenize_and_align_labels(examples):
        tokenized_inputs = tokenizer(examples["tokens"], truncation=True, is_split_into_words=True)
        labels = []
        for i, label in enumerate(examples["tags"]):
            word_ids = tokenized_inputs.word_ids(batch_index=i)
            previous_word_idx = None
            label_ids = []
            for word_idx in word_ids:  # the tutorial's label_all_tokens=False: first pieces only
                if word_idx is None or word_idx == previous_word_idx:
                    label_ids.append(-100)
                else:
                    label_ids.append(label[word_idx])
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
            [label_list[pr] for pr, la in zip(prediction, label, strict=True) if la != -100]
            for prediction, label in zip(predictions, labels, strict=True)
        ]
        true_labels = [[label_list[la] for la in label if la != -100] for label in labels]
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
        Path(args.out).parent / "recipe_run",
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
    """seqeval at word level: the first piece's prediction of each word; truncated words are "O"."""
    predicted_ids = np.argmax(trainer.predict(features).predictions, axis=2)
    gold, pred, truncated = [], [], 0
    for i, (words, tags) in enumerate(zip(sentences["tokens"], sentences["tags"], strict=True)):
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="the measurements (JSON); the Trainer's files go beside it")
    p.add_argument("data", nargs="+", metavar="KEY=VALUE", help="train.py's dataset overrides")
    args = p.parse_args(argv)
    data = load_ner_data(compose_config(args.data, validate=False).dataset)
    splits, label_list = data.splits, data.label_names
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    preprocess = make_preprocessor(tokenizer)
    tokenized = {k: ds.map(preprocess, batched=True, load_from_cache_file=False) for k, ds in splits.items()}
    trainer, collator, throughput = build_trainer(args, tokenized, tokenizer, label_list)
    trainer.train()
    collator.active = False
    start = time.perf_counter()
    subword_metrics = trainer.evaluate()
    result = {
        "eval_seconds": {"validation": round(time.perf_counter() - start, 3)},
        "train": throughput.summary(),
        "subword_validation": {k: v for k, v in subword_metrics.items() if isinstance(v, int | float)},
    }
    for split in ("validation", "test"):
        result[split] = word_level_f1(trainer, tokenizer, tokenized[split], splits[split], label_list)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
