"""Row-sparse embedding updates train exactly as dense AdamW with gradient clipping does."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification

from ner_experiments.embedding_updates import (
    RowSparseAdamW,
    clip_grad_norm_with_sparse,
    sparse_gradient_embedding,
    use_sparse_embedding_gradient,
)
from tests.conftest import SHARED_DATA
from tests.helpers import run_side_by_side_benchmark, run_train

VOCAB = 300


def _tiny_model() -> BertForTokenClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=5,
    )
    return BertForTokenClassification(config).train()


def _param_groups(model: torch.nn.Module) -> list[dict]:
    """The Trainer's grouping: weight decay everywhere but biases and layer norms."""
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    return [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]


def _batch(step: int) -> dict[str, torch.Tensor]:
    """Mostly frequent pieces, some rare ones: rows join, sit out steps, and most never occur."""
    g = torch.Generator().manual_seed(step)
    width = 6 + step % 5
    ids = torch.randint(1, 40, (4, width), generator=g)
    rare = torch.rand((4, width), generator=g) < 0.1
    ids[rare] = torch.randint(40, 120, (int(rare.sum()),), generator=g)
    ids[0, -2:] = 0  # padding
    mask = (ids != 0).long()
    labels = torch.randint(0, 5, ids.shape, generator=g)
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _train(model, optimizer, steps, sparse: bool, accumulate: int = 1, max_norm: float = 1.0, start: int = 0):
    norms = []
    for step in range(start, start + steps):
        for micro in range(accumulate):
            torch.manual_seed(1000 + step)  # the same dropout on both sides
            model(**_batch(step * accumulate + micro)).loss.backward()
        if sparse:
            norms.append(float(clip_grad_norm_with_sparse(model.parameters(), max_norm)))
        else:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)))
        optimizer.step()
        model.zero_grad()
    return norms


def _dense_and_sparse(lr=5e-3, fused=True, **sparse_kwargs):
    dense = _tiny_model()
    sparse = copy.deepcopy(dense)
    assert use_sparse_embedding_gradient(sparse)
    return (
        (dense, torch.optim.AdamW(_param_groups(dense), lr=lr, fused=fused)),
        (sparse, RowSparseAdamW(_param_groups(sparse), lr=lr, fused=fused, **sparse_kwargs)),
    )


def _assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Equal up to float32 rounding: the gradient norm sums in another order, so the clipping factor
    can differ in its last bit (and attention key biases, whose true gradient is zero, move on noise)."""
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        atol = 1e-5 if "key.bias" in name else 1e-6
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=atol, msg=f"{name} differs")
    ea, eb = a.bert.embeddings.word_embeddings.weight, b.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(ea, eb, rtol=1e-5, atol=2e-7)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dense_above", [0.35, 0.0, 0.12], ids=["sparse-steps", "dense-steps", "switching"])
def test_same_parameters_and_gradient_norms_as_dense_adamw(fused, dense_above):
    (dense, dense_opt), (sparse, sparse_opt) = _dense_and_sparse(fused=fused, dense_above=dense_above)
    before = sparse.bert.embeddings.word_embeddings.weight.detach().clone()
    dense_norms = _train(dense, dense_opt, 12, sparse=False)
    sparse_norms = _train(sparse, sparse_opt, 12, sparse=True)
    assert max(dense_norms) > 1.0  # clipping happened
    assert sparse_norms == pytest.approx(dense_norms, rel=1e-5)
    _assert_same_parameters(dense, sparse)
    # Rows no batch contains: weight decay alone moved them, by the same factor as dense AdamW's.
    never_seen = sparse.bert.embeddings.word_embeddings.weight.detach()[200:]
    assert not torch.equal(never_seen, before[200:])
    torch.testing.assert_close(
        never_seen, dense.bert.embeddings.word_embeddings.weight[200:], rtol=1e-7, atol=0
    )


def test_same_result_with_gradient_accumulation_and_no_clipping():
    (dense, dense_opt), (sparse, sparse_opt) = _dense_and_sparse()
    _train(dense, dense_opt, 6, sparse=False, accumulate=3, max_norm=float("inf"))
    _train(sparse, sparse_opt, 6, sparse=True, accumulate=3, max_norm=float("inf"))
    _assert_same_parameters(dense, sparse)


def test_same_result_under_cpu_bf16_autocast():
    """precision=bf16 on CPU (autocast): the embedding stays fp32, its sparse gradient too."""
    (dense, dense_opt), (sparse, sparse_opt) = _dense_and_sparse()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _train(dense, dense_opt, 6, sparse=False)
        _train(sparse, sparse_opt, 6, sparse=True)
    _assert_same_parameters(dense, sparse)


def test_resumed_from_a_checkpoint_training_continues_the_same():
    """The state has torch AdamW's shapes: it resumes in RowSparseAdamW or in plain AdamW alike."""
    (dense, dense_opt), (sparse, sparse_opt) = _dense_and_sparse()
    _train(dense, dense_opt, 5, sparse=False)
    _train(sparse, sparse_opt, 5, sparse=True)
    saved_state = copy.deepcopy(sparse_opt.state_dict())
    saved_model = copy.deepcopy(sparse.state_dict())

    resumed = _tiny_model()
    resumed.load_state_dict(saved_model)
    use_sparse_embedding_gradient(resumed)
    resumed_opt = RowSparseAdamW(_param_groups(resumed), lr=5e-3, fused=True)
    resumed_opt.load_state_dict(copy.deepcopy(saved_state))  # load_state_dict keeps the step tensors
    as_dense = _tiny_model()
    as_dense.load_state_dict(saved_model)
    as_dense_opt = torch.optim.AdamW(_param_groups(as_dense), lr=5e-3, fused=True)
    as_dense_opt.load_state_dict(copy.deepcopy(saved_state))

    _train(dense, dense_opt, 5, sparse=False, start=5)
    _train(resumed, resumed_opt, 5, sparse=True, start=5)
    _train(as_dense, as_dense_opt, 5, sparse=False, start=5)
    _assert_same_parameters(dense, resumed)
    _assert_same_parameters(dense, as_dense)


def test_tied_or_unusual_embeddings_keep_dense_gradients():
    tied = BertForMaskedLM(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32))  # fmt: skip
    assert sparse_gradient_embedding(tied) is None
    assert not use_sparse_embedding_gradient(tied)
    assert not use_sparse_embedding_gradient(torch.nn.Linear(3, 3))


def test_unsupported_adamw_options_are_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        RowSparseAdamW(_tiny_model().parameters(), amsgrad=True)


def test_fast_preset_gives_the_same_model_with_and_without_sparse_updates(tmp_path):
    """End to end: trainer=fast on CPU uses it, and switching it off changes no score."""
    scores = {}
    for enabled in ("true", "false"):
        out = tmp_path / enabled
        result = run_train(
            "experiment=quickstart",
            "trainer=fast",
            "trainer.num_train_epochs=2",
            "run_test=false",
            f"trainer.sparse_embedding_updates={enabled}",
            f"paths.output_dir={out}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        (metrics_file,) = out.glob("**/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        assert metrics["speed"]["torch_settings"]["sparse_embedding_updates"] is (enabled == "true")
        scores[enabled] = metrics["validation"]
    for key in ("overall_f1", "overall_precision", "overall_recall", "overall_accuracy"):
        assert scores["true"][key] == pytest.approx(scores["false"][key], abs=1e-9)


@pytest.mark.skipif(not (SHARED_DATA / "wikiann").is_dir(), reason="../shared/data/wikiann is not here")
def test_side_by_side_benchmark_runs_and_reports_the_ratio():
    stdout = run_side_by_side_benchmark("embedding_updates.py")
    assert "| (b) row-sparse embedding |" in stdout
    difference = float(stdout.rsplit("largest parameter difference (a)-(b): ", 1)[1].split()[0])
    assert difference < 1e-4
