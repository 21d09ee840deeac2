"""Evaluation: exact held-out loss, bits per byte, the gap to the entropy floor, and samples.

Every token of a split is scored exactly once, given its own document from the start: documents
are independent draws (a story's names are its own), story crops train on them that way, and the
entropy floor is the generator's per-document entropy, so a window that began in the middle of
the previous story would charge the model for context no one could have. Documents longer than
the context are scored in sliding windows (stride = half the context), with ample history. Bits
per byte divide the total NLL by the split's UTF-8 bytes, which makes models with different
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
def token_nll(model: LanguageModel, stream: TokenStream, block_size: int, eot_id: int | None,
              batch_windows: int = 8) -> np.ndarray:
    """NLL in nats of every prediction in the split (entry j: of token j+1 given what precedes it).

    With `eot_id`, what precedes it is its own document only, read from the end-of-text token
    that opens it (`TokenStream.windows`): documents are independent draws, training crops start
    at one, and the entropy floor is a per-document quantity. Without, the split is one stream.

    Windows are scored `batch_windows` at a time, right-padded to the longest (a causal model
    never sees the padding): a few at a time beat many on CPU, where every batch's
    (windows, T, vocab) logits are freshly mapped and page-faulted (docs/performance.md)."""
    block_size = min(block_size, model.max_context)
    stride = max(1, block_size // 2)
    out = np.zeros(max(len(stream) - 1, 0), dtype=np.float64)
    pending: list = []

    def flush() -> None:
        width = max(len(item[1]) for item in pending)
        x = torch.zeros(len(pending), width, dtype=torch.long)
        y = torch.zeros(len(pending), width, dtype=torch.long)
        for row, (_, inputs, targets, _) in enumerate(pending):
            x[row, : len(inputs)], y[row, : len(targets)] = inputs, targets
        # -log softmax(z)[y] = logsumexp(z) - z[y]: no (windows, T, vocab) log-probabilities.
        logits = model(x).float()
        nll = (torch.logsumexp(logits, dim=-1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)).numpy()
        for row, (start, inputs, _, first) in enumerate(pending):
            out[start + first : start + len(inputs)] = nll[row, first : len(inputs)]
        pending.clear()

    for window in stream.windows(block_size, stride, eot_id):
        pending.append(window)
        if len(pending) == batch_windows:
            flush()
    if pending:
        flush()
    return out


def eval_metrics(model, streams: dict[str, TokenStream], split_bytes: dict[str, int], block_size: int, floor_bpb, unigram,
                 val_classes: tuple[np.ndarray, int] | None = None, *, eot_id: int | None) -> dict:
    """Loss, perplexity and bpb per split, each document scored on its own (`token_nll`, with
    `eot_id`); with `val_classes` (each val prediction's class and the number of documents, see
    picollm/loss_classes.py) also where the val loss goes."""
    metrics: dict = {"params": model.num_params()}
    for split, stream in streams.items():
        nll = token_nll(model, stream, block_size, eot_id)
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
