"""At home in its tools: Hydra's own flags and launchers, TensorBoard's HParams tab, W&B's offline notice,
a train.log that says what ran, progress bars only on a terminal, and a model card and model folder as
the Hub expects them."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from huggingface_hub import ModelCard

from ner_experiments.tracking import hparams_of, wandb_mode_and_reason
from ner_experiments.train.run_log import progress_bars_enabled
from tests.helpers import TRAIN_PY, only_run_dir, run_dirs_under, run_script, run_train

# --- Hydra -----------------------------------------------------------------------------------------


def test_shell_completion_passes_the_key_check_and_prints_the_script():
    result = run_train("-sc", "install=bash")
    assert result.returncode == 0, result.stderr
    assert "hydra_bash_completion" in result.stdout
    assert "unknown config key" not in result.stderr


def test_shell_completion_completes_our_keys():
    # What bash runs on <TAB> once the script is installed.
    line = "python train.py trainer.learning_r"
    result = run_train(
        "--shell-completion", "query=bash", env={"COMP_LINE": line, "COMP_POINT": str(len(line))}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["trainer.learning_rate="]


@pytest.mark.parametrize(
    "args",
    [
        ("--info", "defaults"),
        ("--hydra-help",),
        ("experiment=quickstart", "-c", "job", "-p", "trainer"),
    ],
)
def test_hydras_own_flags_work(args):
    result = run_train(*args)
    assert result.returncode == 0, result.stderr
    assert "error:" not in result.stderr


def test_local_parallel_launcher_runs_a_basic_multirun(tmp_path):
    # No ner_optuna sweeper: n_jobs must resolve without hydra.sweeper.n_jobs.
    result = run_script(
        TRAIN_PY, "-m", "experiment=quickstart", "trainer.learning_rate=1e-3,2e-3",
        "hydra/launcher=local_parallel", "trainer.num_train_epochs=1", "dataset.max_train_samples=32",
        "dataset.max_eval_samples=16", f"paths.output_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = run_dirs_under(tmp_path / "multirun")
    assert len(runs) == 2
    rates = sorted(yaml.safe_load((r / "config.yaml").read_text())["trainer"]["learning_rate"] for r in runs)
    assert rates == [1e-3, 2e-3]
    assert all((r / "metrics.json").is_file() for r in runs)
    assert "Joblib" in result.stdout + result.stderr  # Hydra's joblib launcher ran them


# --- TensorBoard and W&B ---------------------------------------------------------------------------


def test_tensorboard_run_has_hparams_and_test_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "out"
    result = run_train(
        "experiment=quickstart", "logger=tensorboard", "trainer.num_train_epochs=1",
        "dataset.max_train_samples=32", "dataset.max_eval_samples=16", "trainer.learning_rate=3e-3",
        f"paths.output_dir={out}", f"paths.cache_dir={tmp_path / 'cache'}",
        env={"WANDB_MODE": "offline"}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # WANDB_MODE=offline is set, but this run does not use W&B: no word about W&B's offline mode.
    assert "offline" not in (result.stdout + result.stderr).lower()
    events = EventAccumulator(str(only_run_dir(out) / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(
        content
    )
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["trainer.learning_rate"].number_value == pytest.approx(3e-3)
    assert hparams["model.name"].string_value == "tiny"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"final/validation_overall_f1", "final/test_overall_f1"} <= metric_tags
    scalars = set(events.Tags()["scalars"])
    assert {
        "test/overall_f1",
        "final/test_overall_f1",
        "final/validation_overall_f1",
        "eval/overall_f1",
    } <= scalars


def test_wandb_offline_reason_is_the_real_one(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode_and_reason("auto") == ("offline", "WANDB_MODE=offline is set")
    monkeypatch.delenv("WANDB_MODE")
    assert wandb_mode_and_reason("offline") == ("offline", "logger.mode=offline")
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    mode, reason = wandb_mode_and_reason("auto")
    assert mode == "offline" and reason.startswith("no W&B credentials")


def test_hparams_are_the_recipe_and_the_keys_set_on_the_command_line():
    config = {
        "trainer": {"learning_rate": 2e-5, "num_train_epochs": 3.0},
        "model": {"name": "x", "max_length": None},
    }
    found = hparams_of(config, ["trainer.num_train_epochs=3", "optuna.trial_number=1", "model=tiny"])
    assert found["trainer.learning_rate"] == 2e-5 and found["trainer.num_train_epochs"] == 3.0
    assert found["model.max_length"] == "None"
    assert not any(k.startswith("optuna") for k in found)


# --- train.log, progress bars ----------------------------------------------------------------------


def test_train_log_says_what_ran_how_training_went_and_how_long_it_took(tiny_training):
    log = (tiny_training.run_dir / "train.log").read_text(encoding="utf-8")
    messages = [line.split(" - ", 1)[1] for line in log.splitlines() if " - " in line]
    assert messages[0].startswith("command: train.py experiment=quickstart")
    assert messages[1].startswith("overrides: experiment=quickstart trainer.num_train_epochs=2")
    header = "\n".join(messages[:8])
    for expected in (
        "model: tiny",
        "data: sample_bn",
        "learning rate 0.001",
        "batch size 16",
        "precision: fp32",
    ):
        assert expected in header
    assert "training: 44 steps (2 epochs)" in log
    loss_lines = [m for m in messages if m.startswith("step ") and "loss" in m]
    assert len(loss_lines) == 4  # every trainer.logging_steps=10 of 44 steps
    step, _, rest = loss_lines[0].partition(":")
    assert step.startswith("step 10 epoch 0.")
    assert float(rest.split("loss ")[1].split(",")[0]) > 0
    assert float(rest.split("learning rate ")[1].split(",")[0]) > 0
    assert messages[-1].startswith("timings: set-up ") and "training " in messages[-1]


def test_progress_bars_off_when_output_is_not_a_terminal(tiny_training):
    output = tiny_training.result.stdout + tiny_training.result.stderr
    assert "it/s]" not in output and "\r" not in output
    assert "{'loss'" not in output  # the Trainer's dicts of strings are replaced by our log lines


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_bars_setting():
    assert progress_bars_enabled("auto", _Stream(tty=True))
    assert not progress_bars_enabled("auto", _Stream(tty=False))
    assert progress_bars_enabled("on", _Stream(tty=False))
    assert not progress_bars_enabled("off", _Stream(tty=True))


def test_unknown_progress_bars_value_is_refused(tmp_path):
    result = run_train(
        "experiment=quickstart", "trainer.progress_bars=sometimes", f"paths.output_dir={tmp_path}"
    )
    assert result.returncode == 2
    assert "trainer.progress_bars='sometimes' is not valid: use one of auto, on, off" in result.stderr


# --- the model card and the model folder -----------------------------------------------------------


def test_card_has_versions_validation_history_and_the_data_sets_name(tiny_run):
    card = ModelCard.load(tiny_run / "README.md")
    assert card.data.eval_results[0].dataset_name == "ner-experiments sample data"
    assert "### Framework versions" in card.text
    for package in ("transformers", "torch", "datasets", "ner-experiments"):
        assert f"- {package} " in card.text
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    history = metrics["train"]["validation_history"]
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    assert f"| 2 | {history[1]['step']} | " in card.text
    assert (tiny_run / "model" / "README.md").read_text() == (tiny_run / "README.md").read_text()


def test_saved_tokenizer_config_has_no_loading_flags_of_this_machine(tiny_run):
    for folder in (tiny_run / "model", tiny_run / "hub_upload"):
        config = json.loads((folder / "tokenizer_config.json").read_text())
        assert not {"is_local", "local_files_only", "cache_dir", "token"} & set(config)
