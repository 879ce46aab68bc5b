"""Length-bucketed training batches and training windows: what the model is fed, not how fast it runs."""

from __future__ import annotations

import random

import pytest
from datasets import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler

from ner_experiments.data.contract import NerData
from ner_experiments.features import FeatureSettings
from ner_experiments.features.build import build_features, read_columns
from ner_experiments.sampling import LengthBucketSampler


def _skewed_lengths(n: int, seed: int = 0) -> list[int]:
    """Mostly short sentences and a long tail, like WikiANN."""
    rng = random.Random(seed)
    return [min(512, int(rng.lognormvariate(2.5, 0.6)) + 2) for _ in range(n)]


def _padding_fraction(batches: list[list[int]], lengths: list[int]) -> float:
    real = sum(lengths[i] for b in batches for i in b)
    computed = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - real / computed


def _cut(indices: list[int], batch_size: int) -> list[list[int]]:
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def test_every_sentence_once_per_epoch_in_batches_of_near_equal_length():
    lengths = _skewed_lengths(3001)
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=1)
    indices = list(sampler)
    assert sorted(indices) == list(range(len(lengths))) and len(sampler) == len(lengths)
    batches = _cut(indices, 16)
    assert batches == sampler.batches()  # the DataLoader's cut is the sampler's batches
    assert all(len(b) == 16 for b in batches[:-1]) and len(batches[-1]) == 3001 % 16
    ours = _padding_fraction(batches, lengths)
    shuffled = list(range(len(lengths)))
    random.Random(0).shuffle(shuffled)
    random_batches = _padding_fraction(_cut(shuffled, 16), lengths)
    grouped = _padding_fraction(_cut(list(LengthGroupedSampler(16, lengths=lengths)), 16), lengths)
    assert ours < 0.08 < random_batches
    assert ours < grouped


def test_small_data_sets_are_bucketed_as_a_whole():
    # transformers' group_by_length sorts only 4 mega-batches on 300 sentences; one bucket holds them all.
    lengths = _skewed_lengths(300, seed=3)
    batches = LengthBucketSampler(lengths, batch_size=16, seed=0).batches()
    grouped = _cut(list(LengthGroupedSampler(16, lengths=lengths)), 16)
    assert _padding_fraction(batches, lengths) < _padding_fraction(grouped, lengths) / 2


def test_batch_order_is_random_longest_first_and_fixed_by_seed_and_epoch():
    lengths = _skewed_lengths(1600)
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=5, bucket_batches=100)
    first = sampler.batches()
    widths = [max(lengths[i] for i in b) for b in first]
    assert widths[0] == max(lengths)  # a memory error shows at the first step
    assert widths[1:] != sorted(widths[1:]) and widths[1:] != sorted(widths[1:], reverse=True)
    assert LengthBucketSampler(lengths, 16, seed=5).batches() == first  # a resumed run sees the same
    sampler.set_epoch(1)
    assert sampler.batches() != first
    sampler.set_epoch(0)
    assert sampler.batches() == first


def test_training_windows_are_shorter_only_when_asked():
    def train(window):
        return FeatureSettings.per_split(512, 128, True, window)["train"]

    assert train(None) == FeatureSettings(512, 128, True)
    assert train(1024) == FeatureSettings(512, 128, True)
    assert train(128) == FeatureSettings(128, 32, True)  # the stride shrinks so windows still advance
    assert FeatureSettings.per_split(512, 16, False, 128)["train"] == FeatureSettings(128, 16, False)
    # Evaluation reads whole sentences at max_length and labels first pieces only, whatever training does.
    for split in ("validation", "test"):
        assert FeatureSettings.per_split(512, 128, True, 128)[split] == FeatureSettings(512, 128, False)


def test_training_windows_apply_to_the_train_split_only(tiny_tokenizer, tmp_path):
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]

    def split(n: int) -> Dataset:
        tokens = [[rng.choice(vocab) for _ in range(rng.choice([5, 8, 60, 90]))] for _ in range(n)]
        return Dataset.from_dict({"tokens": tokens, "tags": [[0] * len(t) for t in tokens]})

    data = NerData(
        splits={"train": split(30), "validation": split(10), "test": split(10)},
        label_names=["O", "B-PER", "I-PER"],
        source="generated",
    )
    features, _ = build_features(
        data, tiny_tokenizer, FeatureSettings.per_split(512, 128, False, 32), tmp_path
    )
    train = read_columns(features["train"], ["sentence_id", "labels", "word_index", "length", "was_split"])
    validation = read_columns(features["validation"], ["length", "was_split"])
    assert max(train["length"]) <= 32 < max(validation["length"])
    assert not any(validation["was_split"]) and any(train["was_split"])
    # Every training word is still labelled exactly once, in the window that owns it.
    owned = {}
    for sid, labels, index in zip(train["sentence_id"], train["labels"], train["word_index"], strict=True):
        for label, w in zip(labels, index, strict=True):
            if w >= 0:
                assert (sid, w) not in owned and label != -100
                owned[(sid, w)] = label
    assert len(owned) == sum(len(t) for t in data.splits["train"]["tokens"])
    # Changing the window rebuilds the training features only.
    _, again = build_features(data, tiny_tokenizer, FeatureSettings.per_split(512, 128, False, 48), tmp_path)
    assert again.splits == {"train": "miss", "validation": "hit", "test": "hit"}


@pytest.mark.parametrize("value", [0, 8])
def test_too_short_training_window_fails_at_start_up(value):
    from omegaconf import OmegaConf

    from ner_experiments.config import TrainConfig, validate_config
    from ner_experiments.errors import ConfigError

    cfg = OmegaConf.structured(TrainConfig)
    cfg.dataset.name, cfg.dataset.source, cfg.model.name, cfg.model.source = (
        "sample",
        "sample",
        "tiny",
        "tiny",
    )
    cfg.trainer.train_window_length = value
    with pytest.raises(ConfigError, match="trainer.train_window_length=.* use at least 16"):
        validate_config(cfg)
