"""``ner-data check`` / ``ner-data fix`` and the start-up check training shares with them.

The end-to-end tests run the console script as a subprocess (``python -m ner_experiments.data.cli``)
and read what a user reads: the exit code, the report, the files written.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from datasets import Dataset

from ner_experiments.config import DatasetConfig
from ner_experiments.data.check import check_data, labels_seen_in_training, unseen_labels_warning
from ner_experiments.data.cli import compose_config
from ner_experiments.data.contract import NerData
from ner_experiments.data.fix import fix_files
from ner_experiments.data.readers import read_conll
from ner_experiments.errors import ConfigError, DataError
from tests.helpers import REPO_ROOT, make_conll_dir, make_jsonl_dir, run_script, run_train

SAMPLE_BN = REPO_ROOT / "ner_experiments" / "sample_data" / "bn"
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def run_ner_data(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``ner-data <args>`` in a subprocess (offline, see tests.helpers.run_script)."""
    return run_script("ner_experiments.data.cli", *args, cwd=cwd, timeout=300)


def ner_data(words_and_tags: dict[str, list[tuple[list[str], list[str]]]], labels=LABELS) -> NerData:
    """NerData straight from sentences given as tag names."""
    index = {name: i for i, name in enumerate(labels)}
    splits = {
        split: Dataset.from_dict(
            {"tokens": [w for w, _ in rows], "tags": [[index[t] for t in ts] for _, ts in rows]}
        )
        for split, rows in words_and_tags.items()
    }
    return NerData(splits=splits, label_names=list(labels), source="mem")


# --- A messy Bengali-like CoNLL file ----------------------------------------------------------------


def write_messy_bengali(folder: Path, n_sentences: int = 120) -> dict[str, list[int]]:
    """Sample Bengali sentences as CoNLL with a BOM, CRLF line ends, many bare ``TIM`` tags, empty tokens
    (``<TAB>O``) and lines without a tag; the other splits are clean. Returns the problem lines by kind."""
    make_conll_dir(folder, {"validation": _sample("validation", 20), "test": _sample("test", 20)})
    lines: list[str] = []
    expected: dict[str, list[int]] = {"bare_tag": [], "empty_token": [], "no_tag": []}
    for i, (words, tags) in enumerate(_sample("train", n_sentences)):
        for j, (word, tag) in enumerate(zip(words, tags, strict=True)):
            lines.append(f"{word}\t{tag}")
            if j == 0 and i % 4 == 1:
                lines.append("\tO")
                expected["empty_token"].append(len(lines))
        if i % 3 == 0:
            for word in ("গত", "সোমবার"):  # "last Monday": one time expression in bare IO tags
                lines.append(f"{word}\tTIM")
                expected["bare_tag"].append(len(lines))
        if i in (7, 23):
            lines.append("হয়")
            expected["no_tag"].append(len(lines))
        lines.append("")
    (folder / "train.conll").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return expected


def _sample(split: str, n: int) -> list[tuple[list[str], list[str]]]:
    rows = [
        json.loads(line) for line in (SAMPLE_BN / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return [(row["tokens"], row["ner_tags"]) for row in rows[:n] if len(row["tokens"]) <= 40]


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[Path, dict[str, list[int]]]:
    folder = tmp_path_factory.mktemp("messy")
    return folder, write_messy_bengali(folder)


def test_check_names_every_problem_line_of_a_messy_file_in_one_run(messy):
    folder, expected = messy
    overrides = ["dataset=conll_files", f"dataset.data_dir={folder}"]
    result = run_ner_data("check", *overrides, "--all-lines")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    train = folder / "train.conll"
    n_bare, n_empty, n_no_tag = (len(expected[k]) for k in ("bare_tag", "empty_token", "no_tag"))
    total = n_bare + n_empty + n_no_tag
    assert f"{folder}: {total} data problems (line without a tag {n_no_tag}, empty token {n_empty}, " in out
    assert f"  tag without B-/I- ({n_bare}): 'TIM' {n_bare}" in out
    for line in expected["empty_token"]:
        assert f"    {train}:{line}: '\\tO'" in out
    for line in expected["no_tag"]:
        assert f"    {train}:{line}: 'হয়'" in out
    for line in expected["bare_tag"]:
        assert f"    {train}:{line}: 'TIM' (word " in out
    assert "    ... and " not in out
    assert f"{train}: starts with a UTF-8 byte order mark (BOM): ignored" in out
    assert f"{train}: Windows line ends (CRLF): read as plain line ends" in out
    capped = run_ner_data("check", *overrides).stdout  # without --all-lines: 20 lines per kind, then a count
    assert (
        f"    ... and {n_bare - 20} more" in capped and f"{train}:{expected['bare_tag'][-1]}: " not in capped
    )
    assert out.rstrip().endswith(
        f"NOT TRAINABLE: {total} problems to fix first; ner-data fix --out DIR --bare-tags=IO|B can fix {n_bare + n_empty} of them"
    )


def test_fix_then_train_on_the_cleaned_copy(messy, tmp_path):
    folder, expected = messy
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    fixed = tmp_path / "fixed"
    result = run_ner_data(
        "fix", "dataset=conll_files", f"dataset.data_dir={folder}", "--out", str(fixed), "--bare-tags=IO"
    )
    assert result.returncode == 1, result.stderr  # the lines without a tag need a person
    out = result.stdout
    lines = lambda kind: ", ".join(str(n) for n in expected[kind][:10])  # noqa: E731
    assert (
        f"  line with an empty token dropped ({len(expected['empty_token'])}): lines {lines('empty_token')}"
        in out
    )
    assert f"  B-/I- added to a bare tag ({len(expected['bare_tag'])}): lines {lines('bare_tag')}" in out
    assert "  byte order mark removed" in out and "  CRLF line ends written as LF" in out
    for line in expected["no_tag"]:
        assert f"    {folder / 'train.conll'}:{line}: 'হয়'" in out
    assert "left out of the copy: 2 sentences with the problems above (fix them in the input)" in out
    assert f"wrote {fixed} (train 118, validation 20, test 20 sentences)" in out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the input is untouched
    copy = (fixed / "train.conll").read_bytes()
    assert not copy.startswith(b"\xef\xbb\xbf") and b"\r" not in copy and b"\tTIM" not in copy
    tokens, tags = read_conll(fixed / "train.conll")
    assert tokens[0][-2:] == ["গত", "সোমবার"] and tags[0][-2:] == ["B-TIM", "I-TIM"]

    check = run_ner_data("check", "dataset=conll_files", f"dataset.data_dir={fixed}")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "labels in validation/test that the train split never has" not in check.stdout
    trained = run_train(
        "experiment=quickstart",
        "dataset=conll_files",
        f"dataset.data_dir={fixed}",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]


def test_fix_needs_to_be_told_what_bare_tags_mean(messy, tmp_path):
    folder, expected = messy
    result = run_ner_data(
        "fix", "dataset=conll_files", f"dataset.data_dir={folder}", "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {len(expected['bare_tag'])} tags without B-/I- ('TIM' {len(expected['bare_tag'])}): say what they "
        "mean with --bare-tags=IO if a run of words with the same bare tag is one entity: TIM TIM -> B-TIM I-TIM; "
        "--bare-tags=B if every word with a bare tag is an entity of its own: TIM TIM -> B-TIM B-TIM. Nothing written"
    )
    assert not (tmp_path / "out").exists()


# --- ner-data check on clean data ------------------------------------------------------------------


def test_check_prints_an_aligned_table_and_exits_0(tmp_path):
    make_conll_dir(tmp_path / "data")
    result = run_ner_data("check", "dataset=conll_files", f"dataset.data_dir={tmp_path / 'data'}")
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.splitlines()
    assert table[1].split() == ["train", "validation", "test"]
    assert table[2].split() == ["sentences", "4", "4", "4"]
    assert table[3].split() == ["words", "24", "24", "24"]
    assert table[5].split() == ["LOC", "2", "2", "2"]
    assert len({len(row) for row in table[2:6]}) == 1  # right-aligned columns: every row equally long
    assert "4 of 4 validation sentences (100.0%) also appear in train, word for word" in result.stdout
    assert (
        "entity types with fewer than 10 training examples: LOC 2, ORG 1, PER 3: expect low scores"
        in result.stdout
    )
    assert result.stdout.rstrip().endswith("OK: the data can be trained on (3 warnings above)")


def test_check_with_a_model_counts_pieces_and_windowed_sentences():
    result = run_script("ner_experiments.data.cli", "check", "dataset=sample", "model=tiny")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pieces per sentence (tiny)" in result.stdout
    # model=tiny reads 64 pieces: the sample's long Bengali news sentences are windowed, in every split
    row = next(line for line in result.stdout.splitlines() if "split into windows (> 64 pieces)" in line)
    assert all(int(n) > 0 for n in row.split()[-3:]), row


def test_check_a_bad_override_is_one_line_and_exit_2():
    result = run_ner_data("check", "dataset=nope")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "error: In 'train': Could not find 'dataset/nope'; options in 'dataset': "
    )
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_ner_data("check", "dataset.data_dri=x")
    assert result.returncode == 2
    assert "unknown config key 'dataset.data_dri': did you mean dataset.data_dir?" in result.stderr


def test_check_missing_data_dir_is_exit_2(tmp_path):
    result = run_ner_data("check", "dataset=conll_files", f"dataset.data_dir={tmp_path / 'nope'}")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: dataset.data_dir={tmp_path / 'nope'} does not exist: give a folder with train/validation/test files"
    )


# --- The check training runs at start -----------------------------------------------------------------


def test_labels_unseen_in_training_are_named_with_their_counts():
    data = ner_data(
        {
            "train": [(["Bob", "runs"], ["B-PER", "O"])],
            "validation": [(["Dhaka", "city"], ["B-LOC", "I-LOC"])],
            "test": [(["in", "Dhaka"], ["O", "B-LOC"]), (["Ann", "Lee"], ["B-PER", "I-PER"])],
        }
    )
    assert labels_seen_in_training(data) == ["O", "B-PER"]
    assert unseen_labels_warning(data) == (
        "labels in validation/test that the train split never has: I-PER (test 1); B-LOC (validation 1, test 1); "
        "I-LOC (validation 1): the model cannot learn them, so their words count as errors"
    )


def test_report_logs_warnings_and_raises_for_problems(caplog):
    clean = ner_data({s: [(["Bob", "runs"], ["B-PER", "O"])] for s in ("train", "validation", "test")})
    report = check_data(clean)
    assert report.can_train and report.problems == []
    with caplog.at_level(logging.WARNING):
        report.ensure_trainable()
    assert "data: 1 of 1 validation sentences (100.0%) also appear in train" in caplog.text

    only_o = ner_data({"train": [(["a"], ["O"])], "validation": [(["b"], ["O"])], "test": []})
    report = check_data(only_o)
    assert not report.can_train
    with pytest.raises(DataError) as err:
        report.ensure_trainable()
    assert (
        str(err.value).splitlines()[0]
        == "mem: 2 data problems (empty split 1, no entities to learn 1), listed by kind with the fix:"
    )
    assert "    mem train: 1 sentences, every tag O" in str(err.value)


def test_iob1_style_starts_are_a_warning_not_a_problem():
    data = ner_data(
        {
            s: [(["Bob", "Lee", "and", "Ann"], ["I-PER", "I-PER", "O", "I-PER"])]
            for s in ("train", "validation", "test")
        }
    )
    report = check_data(data)
    assert report.can_train
    assert report.figures["train"].entities["PER"] == 2
    assert any(
        w.startswith("I- tags that start an entity, with no B- before them (train 2, validation 2, test 2)")
        for w in report.warnings
    )


# --- fix, unit by unit ----------------------------------------------------------------------------------


def _fix(tmp_path: Path, train: str, bare_tags: str | None = None, **kwargs) -> tuple[list, str]:
    data = make_conll_dir(tmp_path / "in")
    (data / "train.conll").write_text(train, encoding="utf-8")
    results = fix_files(
        DatasetConfig(name="t", source="files", data_dir=str(data), **kwargs), tmp_path / "out", bare_tags
    )
    return results, (tmp_path / "out" / "train.conll").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("bare_tags", "expected"),
    [("IO", ["B-TIM", "I-TIM", "O", "B-TIM"]), ("B", ["B-TIM", "B-TIM", "O", "B-TIM"])],
)
def test_bare_tag_modes(tmp_path, bare_tags, expected):
    _, copy = _fix(tmp_path, "Mon\tTIM\nnight\tTIM\nand\tO\nTue\tTIM\n", bare_tags)
    assert [line.split("\t")[1] for line in copy.splitlines() if line] == expected


def test_fix_rewrites_other_schemes_and_iob1_starts_as_token_tab_tag(tmp_path):
    results, copy = _fix(
        tmp_path, "New NNP U-LOC\nYork NNP I-LOC\n\nBig JJ B-ORG\nCorp NNP L-ORG\n\nAnn NNP I-PER\n"
    )
    assert copy.splitlines() == [
        "New\tB-LOC",
        "York\tI-LOC",
        "",
        "Big\tB-ORG",
        "Corp\tI-ORG",
        "",
        "Ann\tB-PER",
    ]
    assert [p.kind for p in results[0].fixed] == ["other_scheme", "other_scheme", "iob1_start"]


def test_fix_leaves_out_sentences_it_cannot_fix(tmp_path):
    results, copy = _fix(tmp_path, "Bob\tB-PER\nlonely\n\nAnn\tB-PER\n\nSue\tB_PER\n", label_names=None)
    assert read_conll(tmp_path / "out" / "train.conll") == ([["Ann"]], [["B-PER"]])
    assert [(p.kind, p.where.rsplit(":", 1)[1]) for p in results[0].unfixable] == [
        ("no_tag", "2"),
        ("invalid_tag", "6"),
    ]
    assert results[0].left_out == 2


def test_fix_jsonl_drops_empty_tokens_and_rewrites_tags(tmp_path):
    data = make_jsonl_dir(
        tmp_path / "in",
        {s: [(["", "Mon", "night"], ["O", "TIM", "TIM"])] for s in ("train", "validation", "test")},
    )
    results = fix_files(DatasetConfig(name="t", source="files", data_dir=str(data)), tmp_path / "out", "IO")
    assert read_conll(tmp_path / "out" / "train.conll") == ([["Mon", "night"]], [["B-TIM", "I-TIM"]])
    assert [p.kind for p in results[0].fixed] == ["empty_token", "bare_tag", "bare_tag"]


def test_fix_never_writes_into_the_input_folder(tmp_path):
    data = make_conll_dir(tmp_path)
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    with pytest.raises(ConfigError, match="is the input folder: give a new folder"):
        fix_files(DatasetConfig(name="t", source="files", data_dir=str(data)), tmp_path, None, force=True)
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before


def test_fix_refuses_a_folder_with_files_unless_forced(tmp_path):
    """A stale train.jsonl beside the new train.conll would be read instead of it: refused, nothing written;
    with --force the old split files go and other files stay."""
    data = make_conll_dir(tmp_path / "in")
    out = make_jsonl_dir(tmp_path / "out")
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cfg = DatasetConfig(name="t", source="files", data_dir=str(data))
    with pytest.raises(ConfigError) as err:
        fix_files(cfg, out, None)
    assert str(err.value) == (
        f"--out {out} is not empty (notes.txt, test.jsonl, train.jsonl, validation.jsonl): give a new or empty "
        "folder, or add --force to replace its train/validation/test files"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    fix_files(cfg, out, None, force=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "test.conll",
        "train.conll",
        "validation.conll",
    ]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine\n"


def test_fix_usage_errors_exit_2_in_one_line_and_write_nothing(tmp_path):
    """What docs/data.md promises for ner-data fix: exit 2 and one line for --out = the input folder, an --out
    folder with files in it, and a data set that is not files."""
    data = make_conll_dir(tmp_path / "in")
    out = make_conll_dir(tmp_path / "out", {"train": [(["Old"], ["O"])]})
    before = {p: p.read_bytes() for p in [*data.iterdir(), *out.iterdir()]}
    base = ["fix", "dataset=conll_files", f"dataset.data_dir={data}", "--out"]
    cases = {
        str(data): "is the input folder: give a new folder",
        str(out): "is not empty (train.conll): give a new or empty folder, or add --force",
    }
    for target, words in cases.items():
        result = run_ner_data(*base, target)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and words in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
    assert {p: p.read_bytes() for p in [*data.iterdir(), *out.iterdir()]} == before
    result = run_ner_data("fix", "dataset=sample", "--out", str(tmp_path / "new"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: ner-data fix works on files (dataset.source=files), not dataset.source=sample: use "
        "dataset=conll_files dataset.data_dir=DIR"
    )
    assert not (tmp_path / "new").exists()


def test_compose_config_takes_train_overrides_and_fails_in_one_line(tmp_path):
    cfg = compose_config(["dataset=conll_files", f"dataset.data_dir={tmp_path}", "model=tiny"])
    assert cfg.dataset.source == "files" and cfg.model.source == "tiny"
    with pytest.raises(ConfigError) as err:
        compose_config(["trainer.learning_rate=abc"])
    assert str(err.value) == (
        "Error merging override trainer.learning_rate=abc: Value 'abc' of type 'str' could not be converted to Float"
    )
    with pytest.raises(ConfigError, match="dataset.data_dir is not set"):
        compose_config(["dataset=conll_files"])


def test_fix_leaves_out_a_sentence_with_a_line_that_is_not_utf8(tmp_path):
    data = make_conll_dir(tmp_path / "in")
    (data / "train.conll").write_bytes(
        "Bob\tB-PER\n\nJos\xe9\tB-PER\nruns\tO\n\nAnn\tB-PER\n".encode("latin-1")
    )
    results = fix_files(DatasetConfig(name="t", source="files", data_dir=str(data)), tmp_path / "out", None)
    assert [(p.kind, p.where.rsplit(":", 1)[1], p.text) for p in results[0].unfixable] == [
        ("not_utf8", "3", "b'Jos\\xe9\\tB-PER'")
    ]
    assert read_conll(tmp_path / "out" / "train.conll") == ([["Bob"], ["Ann"]], [["B-PER"], ["B-PER"]])
