"""Compute only some output rows of a (possibly adapted) linear layer.

Multiple-choice scoring needs a handful of answer-token logits out of a 262k-row
output layer; computing only those rows is what makes scoring cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from .base_ops import base_rows


def rows_forward(module: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`module(x)[..., rows]`, computed without the other rows.

    Works on nn.Linear, Conv1D and every adapter layer of this package (which honour the
    current sampling mode exactly as their full forward does).
    """
    rows = torch.as_tensor(rows, dtype=torch.long, device=x.device)
    forward_rows = getattr(module, "forward_rows", None)
    if forward_rows is not None:
        return forward_rows(x, rows)
    return base_rows(module, x, rows)
