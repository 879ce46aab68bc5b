"""A run that meets another process, a damaged checkpoint, a stop signal or a full disk: one line saying
what happened and what to do, a non-zero exit, nothing half-written left, nothing of another run overwritten.

Unit tests check each rule in-process; one ``train.py`` subprocess per user-visible path checks what a
user sees (exit code, the one line, the files).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ner_experiments import stopping
from ner_experiments.checkpoints import DAMAGED_PREFIX, checkpoint_damage, resumable_checkpoint
from ner_experiments.errors import ConfigError, DiskFullError, RunInUseError
from ner_experiments.run_lock import LOCK_FILE, claim_run_dir, release_run_dir
from tests.helpers import (
    TRAIN_PY,
    looks_complete,
    only_run_dir,
    run_dirs_under,
    run_train,
    script_command,
    script_env,
    snapshot,
)

QUICK = ("experiment=quickstart", "logger=none")


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr[-3000:]}"
    return lines[0]


def _ends_with_one_line(stderr: str) -> str:
    """After training has printed (library warnings included), the run ends with one line saying why."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    said = [line for line in lines if line.startswith(("error: ", "stopped: "))]
    assert len(said) == 1 and lines[-1] == said[0], f"expected one closing line, got:\n{stderr[-3000:]}"
    return said[0]


def _wait_for(condition, what: str, timeout: float = 240, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _start_train(*overrides: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        script_command(TRAIN_PY, *overrides),
        cwd=cwd,
        env=script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- the run dir lock ------------------------------------------------------------------------------


def _hold_lock(run_dir):
    """A separate process holding ``run_dir``'s lock until its stdin closes."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from ner_experiments.run_lock import claim_run_dir; "
            "claim_run_dir(Path(sys.argv[1]), 'x'); print('locked', flush=True); sys.stdin.read()",
            str(run_dir),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # What kill -9 leaves: the file with the dead owner's pid, no longer locked by anyone.
    (run_dir / LOCK_FILE).write_text(
        json.dumps({"pid": 999999, "host": "h", "started": "x"}), encoding="utf-8"
    )
    claim_run_dir(run_dir, "hydra.run.dir")
    assert json.loads((run_dir / LOCK_FILE).read_text(encoding="utf-8"))["pid"] == os.getpid()
    release_run_dir(run_dir)
    assert not (run_dir / LOCK_FILE).exists()

    holder = _hold_lock(run_dir)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError) as err:
            claim_run_dir(run_dir, "hydra.run.dir")
        assert str(err.value).startswith(f"hydra.run.dir={run_dir} is in use by process {holder.pid} on ")
        assert "wait for that run to end or stop it, or give another hydra.run.dir" in str(err.value)
    finally:
        holder.communicate("")
    claim_run_dir(run_dir, "hydra.run.dir")  # its owner exited: free again
    release_run_dir(run_dir)


def test_two_runs_with_the_same_hydra_run_dir(tmp_path):
    """The second is refused in one line while the first trains, and after it finished; the first's files
    are its own."""
    run_dir = tmp_path / "shared"
    first = _start_train(*QUICK, "trainer.num_train_epochs=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    _wait_for(lambda: (run_dir / LOCK_FILE).exists(), "the first run locked its dir", process=first)
    second = run_train(*QUICK, "seed=7", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=300)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]

    assert second.returncode == 2 and second.stdout == ""
    line = _one_line(second.stderr)
    assert line.startswith(f"error: hydra.run.dir={run_dir} is in use by process {first.pid} on ")
    assert (run_dir / "metrics.json").exists() and (run_dir / "model").is_dir()
    assert "seed=7" not in (run_dir / ".hydra" / "overrides.yaml").read_text(encoding="utf-8")
    assert "seed: 42" in (run_dir / "config.yaml").read_text(encoding="utf-8")
    assert not (run_dir / LOCK_FILE).exists()  # released when the first run ended

    before = snapshot(run_dir)
    again = run_train(*QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=300)
    assert again.returncode == 2 and again.stdout == ""
    assert _one_line(again.stderr) == (
        f"error: hydra.run.dir={run_dir} holds a finished run (metrics.json), which this run would overwrite: "
        "give a new folder, or leave hydra.run.dir out for a new dated one"
    )
    assert snapshot(run_dir) == before


# --- damaged checkpoints ---------------------------------------------------------------------------


def _fake_checkpoint(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(64, 64)}, folder / "model.safetensors")
    torch.save({"state": torch.zeros(64, 64)}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
    return folder


def _truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def test_checkpoint_damage_is_read_from_the_files(tmp_path):
    good = _fake_checkpoint(tmp_path / "checkpoint-1")
    assert checkpoint_damage(good) is None
    weights = _fake_checkpoint(tmp_path / "checkpoint-2")
    _truncate(weights / "model.safetensors")
    size = (weights / "model.safetensors").stat().st_size
    assert checkpoint_damage(weights) == f"model.safetensors is truncated: {size:,} of {2 * size:,} bytes"
    optimizer = _fake_checkpoint(tmp_path / "checkpoint-3")
    _truncate(optimizer / "optimizer.pt")
    assert checkpoint_damage(optimizer) == "optimizer.pt is truncated or unreadable"


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog):
    run_dir = tmp_path / "run"
    for step in (2, 4, 6):
        _fake_checkpoint(run_dir / "checkpoints" / f"checkpoint-{step}")
    _truncate(run_dir / "checkpoints" / "checkpoint-6" / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        assert resumable_checkpoint(run_dir) == run_dir / "checkpoints" / "checkpoint-4"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        f"{run_dir / 'checkpoints' / 'checkpoint-6'} is damaged (model.safetensors is truncated"
    )
    assert "resuming from checkpoint-4, the newest intact checkpoint" in warning
    assert (run_dir / "checkpoints" / f"{DAMAGED_PREFIX}checkpoint-6").is_dir()  # kept, out of the way

    for step in (2, 4):
        _truncate(run_dir / "checkpoints" / f"checkpoint-{step}" / "model.safetensors")
    with pytest.raises(
        ConfigError, match=r"no intact checkpoint in .*checkpoint-4: model.safetensors is trunc"
    ):
        resumable_checkpoint(run_dir)


def test_resume_true_with_a_damaged_newest_checkpoint_finishes_from_the_one_before(tmp_path):
    """A short run made to look killed (no metrics.json, no model/), its newest checkpoint cut in half."""
    output_dir = tmp_path / "outputs"
    overrides = (
        *QUICK,
        "trainer.max_steps=3",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=1",
        "run_test=false",
        f"paths.output_dir={output_dir}",
    )
    assert run_train(*overrides, cwd=tmp_path).returncode == 0
    run_dir = only_run_dir(output_dir)
    (run_dir / "metrics.json").unlink()
    shutil.rmtree(run_dir / "model")
    *_, before, newest = sorted(
        (run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:])
    )
    _truncate(newest / "model.safetensors")

    result = run_train(*overrides, "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"{newest} is damaged (model.safetensors is truncated: " in output
    assert f"resuming from {before.name}, the newest intact checkpoint" in output
    assert json.loads((run_dir / "metrics.json").read_text())["train"]["global_step"] == 3
    assert checkpoint_damage(newest) is None  # saved again by the resumed run


# --- SIGTERM / SIGINT ------------------------------------------------------------------------------


def test_sigterm_stops_at_a_step_with_a_checkpoint_and_prints_the_resume_command(tmp_path):
    output_dir = tmp_path / "outputs"
    overrides = (
        *QUICK,
        "trainer.max_steps=16",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=4",
        "run_test=false",
        f"paths.output_dir={output_dir}",
    )
    run = _start_train(*overrides, cwd=tmp_path)
    _wait_for(
        lambda: any(output_dir.glob("*/*/checkpoints/checkpoint-4/trainer_state.json")),
        "checkpoint-4",
        process=run,
    )
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 128 + signal.SIGTERM
    line = _ends_with_one_line(err)
    run_dir = only_run_dir(output_dir)
    step = int(line.split(" at step ")[1].split(" ")[0])
    assert 4 < step < 16
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{step}"
    assert line.startswith(
        f"stopped: SIGTERM at step {step} of 16, stopped cleanly; the newest checkpoint is {checkpoint}; "
    )
    assert checkpoint_damage(checkpoint) is None
    assert looks_complete(output_dir) == []
    command = line.split("resume with: ")[1]
    assert command == f"python {TRAIN_PY} {shlex.join(overrides)} resume={run_dir}"

    resumed = run_train(*shlex.split(command)[2:], cwd=tmp_path)  # the printed command, as it is
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == 16


def test_a_signal_outside_training_stops_at_once_and_names_what_was_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(stopping, "PROGRESS", stopping.RunProgress())
    assert stopping.interrupted_message(signal.SIGINT) == (
        "SIGINT before training saved a checkpoint: nothing was kept; start the run again"
    )
    run_dir = tmp_path / "run"
    _fake_checkpoint(run_dir / "checkpoints" / "checkpoint-3")
    monkeypatch.setattr(stopping, "PROGRESS", stopping.RunProgress(run_dir=run_dir, step=3, max_steps=9))
    monkeypatch.setattr(sys, "argv", ["train.py"])
    assert stopping.interrupted_message(signal.SIGTERM, "outside the training loop") == (
        f"SIGTERM at step 3 of 9, outside the training loop; the newest checkpoint is "
        f"{run_dir / 'checkpoints' / 'checkpoint-3'}; resume with: python train.py resume={run_dir}"
    )


# --- a full disk -----------------------------------------------------------------------------------


def test_enospc_becomes_one_line_naming_the_path_and_the_space(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _fake_checkpoint(run_dir / "checkpoints" / "checkpoint-2")
    partial = run_dir / "checkpoints" / "checkpoint-4"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 10)  # cut short by the full disk
    monkeypatch.setattr(
        stopping, "PROGRESS", stopping.RunProgress(run_dir=run_dir, checkpoint_bytes=3_500_000, step=4)
    )
    monkeypatch.setattr(stopping, "free_bytes", lambda path: 1_200_000)
    monkeypatch.setattr(sys, "argv", ["train.py"])
    written = partial / "optimizer.pt"
    try:
        raise OSError(errno.ENOSPC, "No space left on device", str(written))
    except OSError as raised:
        err = stopping.disk_full_error(raised)
    assert isinstance(err, DiskFullError) and err.exit_code == 2
    assert str(err) == (
        f"out of disk space writing {written}: a checkpoint of this model needs about 3.5 MB, 1.2 MB is left on "
        f"that disk; free space (or set paths.output_dir to a larger disk), then resume with: python train.py "
        f"resume={run_dir}"
    )
    assert not partial.exists() and (run_dir / "checkpoints" / "checkpoint-2").is_dir()

    # torch.save says only "iostream error": a full disk when the space left cannot hold a checkpoint.
    torch_error = RuntimeError(
        "[enforce fail at inline_container.cc:664] . unexpected pos; basic_ios::clear: iostream error"
    )
    assert isinstance(stopping.disk_full_error(torch_error), DiskFullError)
    monkeypatch.setattr(stopping, "free_bytes", lambda path: 10**12)
    assert stopping.disk_full_error(torch_error) is None
    assert stopping.disk_full_error(RuntimeError("CUDA out of memory")) is None


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize(
    "size, when",
    [("2m", "before training"), ("6m", "while saving the second checkpoint")],
)
def test_a_full_disk_end_to_end(tmp_path, size, when):
    """On a small tmpfs (root only): too small for one checkpoint and the model, refused before the first
    step; room for one checkpoint only, the second cut short is removed and the first kept for resume."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, size):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        output_dir = disk / "outputs"
        result = run_train(
            *QUICK,
            "trainer.max_steps=6",
            "trainer.eval_strategy=steps",
            "trainer.eval_steps=1",
            "run_test=false",
            f"paths.output_dir={output_dir}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        line = _one_line(result.stderr) if when == "before training" else _ends_with_one_line(result.stderr)
        assert looks_complete(output_dir) == []
        if when == "before training":
            assert line.startswith(f"error: not enough disk space for {output_dir}/")
            assert (
                "a checkpoint of this model and the final model need about " in line
                and " MB is left on" in line
            )
            assert list(output_dir.rglob("*")) == []
        else:
            run_dir = only_run_dir(output_dir)
            assert line.startswith(f"error: out of disk space writing {run_dir}/checkpoints/checkpoint-2")
            assert "a checkpoint of this model needs about " in line and " is left on that disk" in line
            assert line.endswith(f"resume={run_dir}")
            assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-1"]
            assert checkpoint_damage(run_dir / "checkpoints" / "checkpoint-1") is None
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_failed_start_never_deletes_a_hydra_run_dir_that_existed(tmp_path):
    folder = tmp_path / "my-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n", encoding="utf-8")
    result = run_train(
        *QUICK, f"hydra.run.dir={folder}", "trainer.learning_rate=0", cwd=tmp_path, timeout=300
    )
    assert result.returncode == 2
    assert _one_line(result.stderr).startswith("error: trainer.learning_rate=0.0 must be greater than 0")
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert not (folder / LOCK_FILE).exists()


def test_resume_of_a_run_another_process_is_training_is_refused(tmp_path):
    """``resume=`` of a run dir whose lock a live process holds: one line, exit 2, the run untouched."""
    run_dir = tmp_path / "outputs" / "2026-01-01" / "00-00-00_tiny-sample_bn"
    _fake_checkpoint(run_dir / "checkpoints" / "checkpoint-4")
    holder = _hold_lock(run_dir)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run_dir)
        result = run_train(
            *QUICK, f"paths.output_dir={tmp_path / 'outputs'}", f"resume={run_dir}", cwd=tmp_path, timeout=300
        )
        after = snapshot(run_dir)  # the holder's lock included
    finally:
        holder.communicate("")
    assert result.returncode == 2
    assert _ends_with_one_line(result.stderr).startswith(
        f"error: resume={run_dir} is in use by process {holder.pid} on "
    )
    assert after == before
    assert run_dirs_under(tmp_path / "outputs") == []  # the resumed launch's own dir is gone


def test_stop_exit_codes_are_128_plus_the_signal():
    from ner_experiments.errors import RunInterrupted

    assert RunInterrupted("x", signal.SIGTERM).exit_code == 143
    assert RunInterrupted("x", signal.SIGINT).exit_code == 130
    assert RunInterrupted("x", signal.SIGINT).prefix == "stopped"
