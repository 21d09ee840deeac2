"""Evaluation: exact held-out loss, bits per byte, the gap to the entropy floor, and samples.

Every token of a split is scored exactly once, with sliding windows (stride = half the
context), so documents longer than the context are still scored with ample history. Bits per
byte divide the total NLL by the split's UTF-8 bytes, which makes models with different
tokenizers comparable to each other and to the generator's entropy floor.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from picollm.data.tokens import TokenStream
from picollm.loss_classes import loss_by_class
from picollm.models.base import LanguageModel

LN2 = math.log(2.0)


@torch.inference_mode()
def token_nll(model: LanguageModel, stream: TokenStream, block_size: int, batch_windows: int = 4) -> np.ndarray:
    """NLL in nats of every prediction in the split (entry j: of token j+1 given what precedes it).

    Windows are scored `batch_windows` at a time: a few at a time beat many on CPU, where every
    batch's (windows, T, vocab) logits are freshly mapped and page-faulted (docs/performance.md)."""
    block_size = min(block_size, model.max_context)
    stride = max(1, block_size // 2)
    out = np.zeros(max(len(stream) - 1, 0), dtype=np.float64)
    pending: list = []

    def flush() -> None:
        # Windows of equal length batch together; the last short one runs alone.
        by_len: dict[int, list] = {}
        for item in pending:
            by_len.setdefault(len(item[1]), []).append(item)
        for items in by_len.values():
            x = torch.stack([i[1] for i in items])
            y = torch.stack([i[2] for i in items])
            # -log softmax(z)[y] = logsumexp(z) - z[y]: no (windows, T, vocab) log-probabilities.
            logits = model(x).float()
            nll = torch.logsumexp(logits, dim=-1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
            for row, (start, _, _, first) in enumerate(items):
                out[start + first : start + nll.size(1)] = nll[row, first:].numpy()
        pending.clear()

    for start, x, y, first in stream.windows(block_size, stride):
        pending.append((start, x, y, first))
        if len(pending) == batch_windows:
            flush()
    flush()
    return out


def eval_metrics(model, streams: dict[str, TokenStream], split_bytes: dict[str, int], block_size: int, floor_bpb, unigram,
                 val_classes: tuple[np.ndarray, int] | None = None) -> dict:
    """Loss, perplexity and bpb per split; with `val_classes` (each val prediction's class and the
    number of documents, see picollm/loss_classes.py) also where the val loss goes."""
    metrics: dict = {"params": model.num_params()}
    for split, stream in streams.items():
        nll = token_nll(model, stream, block_size)
        total = float(nll.sum())
        metrics[f"{split}_loss"] = round(total / len(nll), 6)
        metrics[f"{split}_ppl"] = round(math.exp(total / len(nll)), 4)
        metrics[f"{split}_bpb"] = round(total / LN2 / split_bytes[split], 6)
        if split == "val" and val_classes is not None:
            classes, documents = val_classes
            metrics["val_nats_per_doc"] = round(total / documents, 3)
            metrics["val_loss_by_class"] = loss_by_class(nll, classes, documents)
    metrics["unigram_val_bpb"] = round(unigram, 6)
    metrics["entropy_floor_bpb"] = floor_bpb
    if floor_bpb:
        metrics["floor_gap_bpb"] = round(metrics["val_bpb"] - floor_bpb, 6)
        metrics["floor_gap_pct"] = round(100.0 * (metrics["val_bpb"] / floor_bpb - 1.0), 3)
    return metrics
