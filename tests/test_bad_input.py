"""Bad input, end to end through ``python train.py``: one clear error printed once, exit code 2, and
nothing left behind (a failed start removes the run dir Hydra made for it).

Each case is a separate ``train.py`` process (several seconds of start-up each), so all of them are
started together by one module fixture and each test then checks its own result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import (
    looks_complete,
    make_conll_dir,
    make_jsonl_dir,
    run_dirs_under,
    run_train,
    snapshot,
)

PER_ONLY = [(["John", "Smith", "runs"], ["B-PER", "I-PER", "O"]), (["Mary", "sings"], ["B-PER", "O"])]


@dataclass
class Case:
    """One bad invocation: its overrides (``{data}`` = the case's data folder) and what stderr must say."""

    overrides: list[str]
    expect: list[str]  # words the error must contain: the key or file, and the fix
    prepare: Callable[[Path], None] | None = None  # writes the case's data folder
    hydra_error: bool = False  # reported by Hydra itself (several lines, no "error:" prefix)
    marks: list = field(default_factory=list)
    same_run_as: str | None = None  # check another case's run instead of starting the same command again
    # paths.output_dir ({data} = the case's data folder); default: its own; "": set by the case's overrides,
    # and nothing may appear in the case's folder (the cwd) or at the file-system root
    output_dir: str | None = None


def _files(path: Path) -> None:
    make_conll_dir(path)


def _malformed(path: Path) -> None:
    make_conll_dir(path)
    (path / "validation.conll").write_text("John\tB-PER\nSmith\tI-PER\nlonely\n\n", encoding="utf-8")


def _length_mismatch(path: Path) -> None:
    make_jsonl_dir(path)
    good = json.dumps({"tokens": ["a"], "ner_tags": ["O"]})
    bad = json.dumps({"tokens": ["Bob", "Smith"], "ner_tags": ["B-PER"]})
    (path / "train.jsonl").write_text(f"{good}\n{bad}\n", encoding="utf-8")


def _invalid_tag(path: Path) -> None:
    make_conll_dir(path)
    (path / "test.conll").write_text("Bob\tO\n\nAlice\tPERSON\n", encoding="utf-8")


def _empty_split(path: Path) -> None:
    make_conll_dir(path)
    (path / "validation.conll").write_text("-DOCSTART- -X- -X- O\n\n\n", encoding="utf-8")


def _latin1(path: Path) -> None:
    make_conll_dir(path)
    (path / "train.conll").write_bytes("Bob\tB-PER\n\nJos\xe9\tB-PER\n".encode("latin-1"))


def _missing_split(path: Path) -> None:
    make_conll_dir(path)
    (path / "test.conll").unlink()


def _file_where_a_folder_should_be(path: Path) -> None:
    make_conll_dir(path)
    (path / "a_file").write_text("not a folder\n", encoding="utf-8")


def _model_without_tokenizer(path: Path) -> None:
    make_conll_dir(path)
    model = path / "model"
    model.mkdir()
    config = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")


CASES: dict[str, Case] = {
    "unknown_config_group_option": Case(
        ["model=bert_huge"],
        ["Could not find 'model/bert_huge'", "options in 'model': local, mbert_cased", "tiny"],
        _files,
    ),
    "unknown_config_key": Case(
        ["trainer.learnin_rate=0.1"],
        [
            "unknown config key 'trainer.learnin_rate'",
            "did you mean trainer.learning_rate?",
            "valid keys under trainer:",
        ],
        _files,
    ),
    "unknown_added_key": Case(
        ["+trainer.learning_rat=5"],
        ["unknown config key 'trainer.learning_rat'", "did you mean trainer.learning_rate?"],
        _files,
    ),
    "wrong_value_type": Case(
        ["trainer.num_train_epochs=abc"],
        ["override trainer.num_train_epochs=abc", "'abc'", "could not be converted to Float"],
        _files,
    ),
    "objective_not_a_metric": Case(
        ["objective=validation.overall_f2"],
        ["objective=validation.overall_f2 is not a metric", "overall_f1, overall_precision, overall_recall"],
        _files,
    ),
    "test_objective_without_test": Case(
        ["objective=test.overall_f1", "run_test=false"],
        ["objective=test.overall_f1 needs the test scores", "run_test=false", "set run_test=true"],
        _files,
    ),
    "empty_output_dir": Case(
        ["paths.output_dir="], ["paths.output_dir is empty", "e.g. paths.output_dir="], _files, output_dir=""
    ),
    "hydra_run_dir_under_a_file": Case(
        ["hydra.run.dir={data}/a_file/run"],
        [
            "hydra.run.dir=",
            "/a_file/run cannot be written (Not a directory)",
            "give a folder you can write to",
        ],
        _file_where_a_folder_should_be,
    ),
    "learning_rate_zero": Case(
        ["trainer.learning_rate=0"],
        ["trainer.learning_rate=0", "must be greater than 0", "e.g. trainer.learning_rate="],
        _files,
    ),
    "data_dir_not_set": Case(
        ["dataset.data_dir=null"], ["dataset.data_dir is not set", "dataset.data_dir=path/to/dir"]
    ),
    "missing_data_dir": Case(
        ["dataset.data_dir={data}/nope"], ["dataset.data_dir=", "/nope does not exist", "give a folder"]
    ),
    "missing_split_file": Case(
        [], ["no test file in", "expected test.conll / .jsonl", "dataset.test_file"], _missing_split
    ),
    "malformed_conll_line": Case([], ["validation.conll:3:", "'lonely'", "token<TAB>tag"], _malformed),
    "length_mismatch": Case(
        [], ["train.jsonl:2:", "2 tokens but 1 tags", "every token needs one tag"], _length_mismatch
    ),
    "tag_outside_label_set": Case(
        ["dataset.label_names=[O,B-PER,I-PER]"],
        ["train.conll:5:", "'B-LOC'", "tag not in dataset.label_names", "add it to dataset.label_names"],
        _files,
    ),
    "invalid_tag_name": Case([], ["test.conll:3:", "'PERSON'", "O, B-<TYPE> or I-<TYPE>"], _invalid_tag),
    "empty_split": Case(
        [], ["the validation split has no sentences", "every split needs at least one sentence"], _empty_split
    ),
    "non_utf8_file": Case([], ["train.conll:3:", "not UTF-8", "-t UTF-8"], _latin1),
    "output_dir_under_a_file": Case(
        [],
        ["paths.output_dir=", "/a_file/outputs cannot be written", "give a folder you can write to"],
        _file_where_a_folder_should_be,
        output_dir="{data}/a_file/outputs",
    ),
    "local_model_folder_missing": Case(
        ["model=local", "model.name_or_path={data}/missing"],
        ["model.name_or_path=", "/missing is not a folder: give a saved model directory"],
        _files,
    ),
    "resume_true_without_an_unfinished_run": Case(
        ["resume=true"],
        [
            "resume=true: no unfinished run with a checkpoint and the same overrides under",
            "start without resume",
        ],
        _files,
    ),
    "model_folder_without_tokenizer": Case(
        ["model=local", "model.name_or_path={data}/model"],
        ["model folder", "/model has no tokenizer", "tokenizer.save_pretrained"],
        _model_without_tokenizer,
    ),
}


@dataclass
class Outcome:
    result: subprocess.CompletedProcess[str]
    output_dir: Path
    data_dir: Path


def _run_case(root: Path, name: str, case: Case) -> Outcome:
    data_dir = root / name / "data"
    output_dir = (
        Path(case.output_dir.replace("{data}", str(data_dir))) if case.output_dir else root / name / "outputs"
    )
    data_dir.mkdir(parents=True)
    if case.prepare:
        case.prepare(data_dir)
    overrides = [o.replace("{data}", str(data_dir)) for o in case.overrides]
    base = ["logger=none", "model=tiny", "dataset=conll_files", f"dataset.data_dir={data_dir}"]
    if case.output_dir != "":
        base.append(f"paths.output_dir={output_dir}")
    else:
        output_dir = root / name / "cwd"  # what the run may not write to: its working dir
        output_dir.mkdir()
    result = run_train(
        *base, *overrides, cwd=output_dir if case.output_dir == "" else root / name, timeout=400
    )
    return Outcome(result, output_dir, data_dir)


def _run_resume_case(root: Path) -> tuple[Outcome, Path, str]:
    """A short run on PER-only data, made to look unfinished, then resumed on data with more labels."""
    per_dir = make_conll_dir(root / "resume" / "per", {s: PER_ONLY for s in ("train", "validation", "test")})
    other_dir = make_conll_dir(root / "resume" / "per_org_loc")
    output_dir = root / "resume" / "outputs"
    first = run_train(
        "logger=none",
        "model=tiny",
        "dataset=conll_files",
        f"dataset.data_dir={per_dir}",
        f"paths.output_dir={output_dir}",
        "trainer.max_steps=2",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=1",
        "run_test=false",
        cwd=root / "resume",
        timeout=400,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = run_dirs_under(output_dir)
    # What a killed run leaves: checkpoints, but no metrics.json and no final model/.
    (run_dir / "metrics.json").unlink()
    shutil.rmtree(run_dir / "model")
    saved_config = (run_dir / "config.yaml").read_text(encoding="utf-8")
    second = run_train(
        "logger=none",
        "model=tiny",
        "dataset=conll_files",
        f"dataset.data_dir={other_dir}",
        f"paths.output_dir={output_dir}",
        "trainer.max_steps=4",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=1",
        "run_test=false",
        f"resume={run_dir}",
        cwd=root / "resume",
        timeout=400,
    )
    return Outcome(second, output_dir, other_dir), run_dir, saved_config


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, object]:
    """Run every case (and the resume case) in parallel subprocesses; map case name → outcome."""
    root = tmp_path_factory.mktemp("bad_input")
    workers = max(2, min(6, (os.cpu_count() or 2) * 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        resume = pool.submit(_run_resume_case, root)  # the longest: start it first
        futures = {n: pool.submit(_run_case, root, n, c) for n, c in CASES.items() if not c.same_run_as}
        done: dict[str, object] = {name: future.result() for name, future in futures.items()}
        done["resume"] = resume.result()
    return done


def _check_one_clear_error(outcome: Outcome, case: Case, leaves_nothing: bool = True) -> str:
    """Non-zero exit, no traceback, the expected words; for our own errors one ``error:`` line, printed once
    (no log ERROR line repeating it), exit code 2; and, unless told otherwise, nothing under the output dir."""
    stdout, stderr = outcome.result.stdout, outcome.result.stderr
    assert outcome.result.returncode != 0, f"exit code 0 for bad input; stderr:\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, f"a traceback instead of one clear error:\n{stderr[-4000:]}"
    assert looks_complete(outcome.output_dir) == [], "a failed run must not leave metrics.json or model/"
    if leaves_nothing:
        left = sorted(outcome.output_dir.rglob("*")) if outcome.output_dir.is_dir() else []
        assert left == [], f"a failed start must leave no run dir behind, found {left}"
    if case.hydra_error:
        message = stderr
        assert stderr.strip(), "Hydra printed nothing"
    else:
        lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, f"expected exactly one 'error: ...' line in stderr, got:\n{stderr[-3000:]}"
        all_lines = stderr.splitlines()
        start = all_lines.index(lines[0])
        message = "\n".join(all_lines[start:])  # data problems are listed on the lines below it
        assert outcome.result.returncode == 2
        body = lines[0].removeprefix("error: ")
        assert (stdout + stderr).count(body) == 1, f"the error is printed more than once:\n{stdout[-3000:]}"
        assert "[ERROR]" not in stdout + stderr, f"a log ERROR line besides the error:\n{stdout[-3000:]}"
    for words in case.expect:
        assert words in message, f"{words!r} not in the error:\n{message}"
    return message


@pytest.mark.parametrize("name", [pytest.param(n, marks=c.marks) for n, c in CASES.items()])
def test_bad_input_gives_one_clear_error(outcomes, name):
    case = CASES[name]
    _check_one_clear_error(outcomes[case.same_run_as or name], case)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["trainer.learning_rate=-1e-5"], "trainer.learning_rate"),
        (["trainer.learning_rate=nan"], "trainer.learning_rate"),
        (["trainer.learning_rate=inf"], "trainer.learning_rate"),
        (["trainer.learning_rate=-0.0"], "trainer.learning_rate"),
        (["trainer.num_train_epochs=0"], "trainer.num_train_epochs"),
        (["trainer.num_train_epochs=nan"], "trainer.num_train_epochs"),
        (["trainer.num_train_epochs=-1"], "trainer.num_train_epochs"),
        (["trainer.max_steps=0", "trainer.num_train_epochs=0"], "trainer.num_train_epochs"),
        (["trainer.per_device_train_batch_size=0"], "trainer.per_device_train_batch_size"),
        (["trainer.weight_decay=nan"], "trainer.weight_decay"),
        (["trainer.eval_strategy=steps"], "trainer.eval_steps"),
        (["trainer.evals_per_epoch=0"], "trainer.evals_per_epoch"),
        (
            ["trainer.evals_per_epoch=2", "trainer.eval_strategy=steps", "trainer.eval_steps=10"],
            "trainer.evals_per_epoch",
        ),
        (["trainer.precision=fp8"], "trainer.precision"),
        (["model.max_length=4"], "model.max_length"),
        (["objective=f1"], "objective"),
    ],
)
def test_bad_values_are_caught_by_validate_config(overrides, key):
    """The same checks in-process (no start-up cost): every bad value, each reported as ``key=value ...``
    with an example or a way out. The end-to-end cases run one of them (trainer.learning_rate=0) through
    train.py, and each bad value takes that same path."""
    from hydra import compose, initialize_config_dir

    from ner_experiments.cli import CONFIG_DIR
    from ner_experiments.config import validate_config
    from ner_experiments.errors import ConfigError

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=quickstart", *overrides])
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(key + "=") or str(err.value).startswith(key + " ")
    assert "e.g." in str(err.value) or "use " in str(err.value)


def test_resume_with_a_different_label_set(outcomes):
    outcome, run_dir, saved_config = outcomes["resume"]
    case = Case(
        [], ["cannot resume from", "its label set ['O', 'B-PER', 'I-PER'] differs from the data's", "B-LOC"]
    )
    message = _check_one_clear_error(outcome, case, leaves_nothing=False)
    assert "start a new run without resume" in message
    assert run_dirs_under(outcome.output_dir) == [run_dir]  # the resumed launch's own dir is gone
    # The resumed run is left as it was: still unfinished, still with its own config.
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model").exists()
    assert (run_dir / "config.yaml").read_text(encoding="utf-8") == saved_config


@pytest.mark.parametrize(
    "name",
    [
        "output_dir_under_a_file",
        "hydra_run_dir_under_a_file",
        "empty_output_dir",
        "unknown_config_group_option",
        "wrong_value_type",
        "objective_not_a_metric",
        "test_objective_without_test",
    ],
)
def test_refused_at_start_up_in_one_line_and_nothing_else(outcomes, name):
    """Caught before Hydra makes the run dir or training logs anything: the error line is all the output."""
    result = outcomes[name].result
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout.strip() == "", result.stdout[-2000:]


def test_empty_output_dir_writes_nothing_at_the_file_system_root(outcomes):
    """``paths.output_dir=`` once wrote the run to /<date>/... : nothing may appear at / now."""
    outcome = outcomes["empty_output_dir"]
    assert outcome.result.returncode == 2
    started = outcome.output_dir.stat().st_mtime
    new_at_root = [
        p for p in Path("/").iterdir() if p.is_dir() and p.stat().st_mtime >= started and p.name[:2] == "20"
    ]
    assert new_at_root == []


def test_resume_of_a_finished_run_is_refused_and_leaves_it_untouched(run_copy, tmp_path):
    before = snapshot(run_copy)
    output_dir = tmp_path / "outputs"
    result = run_train(
        "experiment=quickstart", f"resume={run_copy}", f"paths.output_dir={output_dir}", timeout=400
    )
    case = Case([], [f"resume={run_copy}", "already finished", "start a new run without resume"])
    _check_one_clear_error(Outcome(result, output_dir, tmp_path), case)
    assert snapshot(run_copy) == before
