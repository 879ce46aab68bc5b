"""The word-embedding matrix updated only where AdamW changes it: the same training, less memory traffic.

A BERT step touches a few hundred of the vocabulary's rows (MiniLM: 30,522 x 384, 47 MB; mBERT:
119,547 x 768, 367 MB), yet the dense gradient of the embedding matrix is the whole matrix: every step
fills it with zeros, adds the batch's rows, reads it for the gradient norm, scales it for clipping and
runs AdamW over all of it. On a 2-core CPU, batches of 16 WikiANN sentences (``benchmarks/embedding_updates.py``):
an mBERT-sized model steps 1.48x as fast with row-sparse updates (1,464 -> 991 ms); MiniLM, whose
matrix is 8x smaller, 1.01x.

With :func:`use_sparse_embedding_gradient` the embedding returns its gradient as the batch's rows
(``nn.Embedding(sparse=True)``), :func:`clip_grad_norm_with_sparse` clips it as the dense gradient would
be clipped, and :class:`RowSparseAdamW` applies exactly AdamW's update:

- a row whose AdamW moments are both zero (never in a batch so far) only decays: its update is
  ``-lr * 0 / (sqrt(0) + eps) = 0``. Weight decay is applied to the whole matrix (one multiply);
- every row that has been in a batch gets the full update every step, whether or not it is in this one
  (its moments keep decaying and keep moving it), on a gathered copy of those rows;
- when those rows are more than ``dense_above`` of the matrix, the step is plain dense AdamW.

Optimizer state keeps the shapes of torch's AdamW (``step``, ``exp_avg``, ``exp_avg_sq`` of the full
matrix), so checkpoints resume either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam

# Above this fraction of rows in use, gathering them costs more than a dense step (measured on CPU).
DENSE_ABOVE = 0.35


def sparse_gradient_embedding(model: nn.Module) -> nn.Embedding | None:
    """The model's input word embedding if its gradient can be made row-sparse, else None.

    Not when the matrix is shared with another module (tied output embeddings): that module's gradient
    is dense anyway.
    """
    get_input = getattr(model, "get_input_embeddings", None)
    embedding = get_input() if callable(get_input) else None
    if not isinstance(embedding, nn.Embedding) or embedding.max_norm is not None:
        return None
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if output is not None and getattr(output, "weight", None) is embedding.weight:
        return None
    return embedding


def use_sparse_embedding_gradient(model: nn.Module, enabled: bool = True) -> bool:
    """Switch the input embedding's gradient to row-sparse (or back). Returns whether it is sparse now."""
    embedding = sparse_gradient_embedding(model)
    if embedding is None:
        return False
    embedding.sparse = enabled
    return enabled


def clip_grad_norm_with_sparse(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm) for gradients some of which are sparse.

    A sparse gradient is coalesced first (a row that occurs twice in a batch has one gradient, the sum)
    so its norm is the norm of the dense gradient it stands for. Returns the total norm before clipping.
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.tensor(0.0)
    dense: list[torch.Tensor] = []
    sparse: list[nn.Parameter] = []
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            sparse.append(p)
        else:
            dense.append(p.grad)
    norms = list(torch._foreach_norm(dense, 2.0)) if dense else []
    norms += [torch.linalg.vector_norm(p.grad._values(), 2.0) for p in sparse]
    total_norm = torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]), 2.0)
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    if dense:
        torch._foreach_mul_(dense, clip_coef.to(dense[0].device))
    for p in sparse:
        p.grad._values().mul_(clip_coef.to(p.grad.device))
    return total_norm


class RowSparseAdamW(torch.optim.AdamW):
    """torch's AdamW that also takes row-sparse gradients (of an embedding matrix), with the same result.

    Dense gradients go to torch's AdamW unchanged. See the module docstring for the sparse case.
    """

    def __init__(self, params: Any, *args: Any, dense_above: float = DENSE_ABOVE, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        if self.defaults.get("amsgrad") or self.defaults.get("maximize") or self.defaults.get("capturable"):
            raise ValueError("RowSparseAdamW supports neither amsgrad, maximize nor capturable")
        self.dense_above = dense_above
        # Rows with nonzero moments, per parameter: rebuilt from the state when it is loaded.
        self._rows_in_use: dict[torch.Tensor, torch.Tensor] = {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._rows_in_use.clear()

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        sparse_steps: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    sparse_steps.append((p, p.grad, group))
                    p.grad = None  # torch's AdamW rejects sparse gradients: it steps the others
        try:
            loss = super().step(closure)
            for p, grad, group in sparse_steps:
                self._sparse_step(p, grad, group)
        finally:
            for p, grad, _ in sparse_steps:
                p.grad = grad
        return loss

    def _state_for(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _rows_for(self, p: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        rows = self._rows_in_use.get(p)
        if rows is None:
            m, v = state["exp_avg"], state["exp_avg_sq"]
            rows = (m != 0).flatten(1).any(1) | (v != 0).flatten(1).any(1)
            self._rows_in_use[p] = rows
        return rows

    def _sparse_step(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        if p.dim() != 2 or grad.sparse_dim() != 1:
            raise ValueError("RowSparseAdamW takes sparse gradients of 2-D matrices only (embedding rows)")
        grad = grad.coalesce()
        state = self._state_for(p)
        in_use = self._rows_for(p, state)
        batch_rows = grad._indices()[0]
        in_use[batch_rows] = True
        rows = in_use.nonzero().squeeze(1)
        beta1, beta2 = group["betas"]
        hyper = dict(
            amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], eps=group["eps"], maximize=False
        )
        fused = bool(group.get("fused"))
        if rows.numel() > self.dense_above * p.shape[0]:
            adam(
                [p], [grad.to_dense()], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
                fused=fused, foreach=not fused, decoupled_weight_decay=True,
                weight_decay=group["weight_decay"], **hyper,
            )  # fmt: skip
            return
        # Decoupled weight decay touches every row; the Adam part only the rows with moments.
        if group["weight_decay"]:
            p.mul_(1 - group["lr"] * group["weight_decay"])
        row_grad = torch.zeros((rows.numel(), *p.shape[1:]), dtype=grad.dtype, device=grad.device)
        row_grad.index_add_(0, torch.searchsorted(rows, batch_rows), grad._values())
        p_rows = p.index_select(0, rows)
        m_rows = state["exp_avg"].index_select(0, rows)
        v_rows = state["exp_avg_sq"].index_select(0, rows)
        adam(
            [p_rows], [row_grad], [m_rows], [v_rows], [], [state["step"]],
            fused=fused, foreach=not fused, decoupled_weight_decay=True, weight_decay=0.0, **hyper,
        )  # fmt: skip
        p.index_copy_(0, rows, p_rows)
        state["exp_avg"].index_copy_(0, rows, m_rows)
        state["exp_avg_sq"].index_copy_(0, rows, v_rows)
