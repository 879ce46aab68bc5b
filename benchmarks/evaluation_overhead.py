"""What the error breakdown, ``subword_f1`` and the predictions file add to an evaluation, measured
side by side with the evaluation as it was before them (``evaluation.py`` at ``--baseline-rev``).

Both sides score the same features with the same model (the ``bench`` extra's MiniLM, with a new,
untrained head: its many wrong entities are the worst case for the error analysis), alternating, and
the medians are compared. The new side includes writing ``predictions/validation.conll``.

    python -m benchmarks.evaluation_overhead --sentences 3000 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIKIANN = REPO.parent / "shared" / "data" / "wikiann"
BASELINE_REV = "5c9535b"  # the last commit before predictions files, errors and subword_f1


def _baseline_module(rev: str, folder: Path):
    source = subprocess.run(
        ["git", "show", f"{rev}:ner_experiments/evaluation.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / "baseline_evaluation.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_evaluation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sentences", type=int, default=3000, help="WikiANN-en validation sentences (default 3000)"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--baseline-rev", default=BASELINE_REV)
    args = p.parse_args(argv)

    import datasets
    import torch
    from transformers import AutoModelForTokenClassification

    from benchmarks.run_benchmark import default_model
    from ner_experiments.data.contract import NerData
    from ner_experiments.evaluation import predict_and_score
    from ner_experiments.features import FeatureSettings
    from ner_experiments.features.build import build_features, read_columns
    from ner_experiments.model import load_tokenizer
    from ner_experiments.predictions_file import write_split_predictions

    torch.manual_seed(0)
    split = datasets.load_dataset(str(WIKIANN), "en", split="validation").select(range(args.sentences))
    labels = split.features["ner_tags"].feature.names
    split = split.rename_column("ner_tags", "tags").select_columns(["tokens", "tags"])
    model_dir = default_model()
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    ).eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        features = build_features(
            NerData({"validation": split}, labels),
            tokenizer,
            {"validation": FeatureSettings(256, 64)},
            folder,
        )[0]["validation"]
        gold = read_columns(split, ["tags"])["tags"]
        tokens = read_columns(split, ["tokens"])["tokens"]
        baseline = _baseline_module(args.baseline_rev, folder)
        pad = tokenizer.pad_token_id or 0

        def before() -> dict:
            return baseline.evaluate_split(model, features, gold, labels, args.batch_size, pad)

        def after() -> dict:
            scored = predict_and_score(model, features, gold, labels, args.batch_size, pad)
            write_split_predictions(folder, "validation", tokens, gold, scored.predicted, labels)
            return scored.metrics

        times: dict[str, list[float]] = {"before": [], "after": []}
        cpu: dict[str, list[float]] = {
            "before": [],
            "after": [],
        }  # process CPU time: steadier on a busy machine
        results = {}
        for r in range(args.repeats):
            for name, fn in (("before", before), ("after", after))[:: 1 if r % 2 == 0 else -1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                results[name] = fn()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        assert results["before"]["overall_f1"] == results["after"]["overall_f1"]
        # nervaluate's share: the SemEval-2013 scores of the last predictions, timed alone
        from ner_experiments.entity_errors import entity_types, semeval_scores
        from ner_experiments.metrics import decode_entities

        scored = predict_and_score(model, features, gold, labels, args.batch_size, pad)
        gold_entities = decode_entities([[labels[t] for t in s] for s in gold])
        pred_entities = decode_entities([[labels[t] for t in s] for s in scored.predicted])
        start = time.perf_counter()
        semeval_scores(gold_entities, pred_entities, entity_types(labels))
        nervaluate_s = time.perf_counter() - start
    b, a = statistics.median(times["before"]), statistics.median(times["after"])
    print(
        f"{args.sentences} WikiANN-en validation sentences, MiniLM-L6, batch {args.batch_size}, {args.repeats} repeats"
    )
    print(
        f"before (rev {args.baseline_rev}): median {b:.2f} s  (runs: {' '.join(f'{t:.2f}' for t in times['before'])})"
    )
    print(
        f"after  (this tree):       median {a:.2f} s  (runs: {' '.join(f'{t:.2f}' for t in times['after'])})"
    )
    print(f"evaluation time ratio after/before: {a / b:.3f} ({100 * (a / b - 1):+.1f}%)")
    cb, ca = statistics.median(cpu["before"]), statistics.median(cpu["after"])
    print(
        f"process CPU time: before median {cb:.2f} s, after {ca:.2f} s, ratio {ca / cb:.3f} ({100 * (ca / cb - 1):+.1f}%)"
    )
    print(
        f"of which nervaluate (SemEval-2013 scores): {nervaluate_s:.3f} s ({100 * nervaluate_s / b:.1f}% of before)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
