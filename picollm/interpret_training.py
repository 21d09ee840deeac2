"""Scores over training (`interpret@<model>`): heads, in-context learning and copying at every snapshot.

Every snapshot that `train.snapshots` keeps is scored on the same validation stories, each read
from its start (after the end-of-text token that precedes every story in training):

- `val_loss`: the mean NLL of every scored token of those stories;
- `recurring_name_nats_per_token`: the same on the later mentions of a character's name
  (picollm/loss_classes.py), the loss that falls when a model learns to copy;
- the in-context learning score (picollm/interpret.py): loss late in a story minus early;
- Transformers only: every head's previous-token and induction score on repeated random tokens
  (the standard test of the circuit), the induction score on the stories themselves, and the
  strongest head of each.

The last snapshot is the trained model; its heads' induction scores on the stories are drawn as a
heatmap, and the strongest such head's attention on the first validation story with a recurring name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from picollm.checkpoint import load_checkpoint
from picollm.interpret import ICL_EARLY, ICL_LATE, ICL_WINDOW, head_scores, in_context_score, position_nll, strongest_head
from picollm.interpret_plots import INDUCTION_THRESHOLD, attention_picture, induction_heatmap
from picollm.loss_classes import NAME_REPEAT, document_token_classes
from picollm.models.base import LanguageModel
from picollm.models.loading import load_model
from picollm.tokenizer import Tokenizer

HEAD_PERIOD = 50  # tokens in each half of a repeated random sequence (shorter when the context is)
HEAD_SEQUENCES = 16
HEAD_SEED = 0
ROUND = 6


def head_period(model: LanguageModel) -> int:
    """The repeated half's length: HEAD_PERIOD, or what fits the context with the start token."""
    return min(HEAD_PERIOD, (model.max_context - 1) // 2)


@torch.inference_mode()
def text_induction_scores(model: LanguageModel, stories: list[list[int]], start_id: int) -> list[list[float]]:
    """The induction score on the validation stories themselves: for every token that occurred
    earlier in its story, the attention from it to the token right after that earlier occurrence,
    per layer and head, averaged over all such tokens. Random repeated tokens (the standard score)
    test the general circuit; this tests what the model does on its own text, where a head may
    find a name's continuation by its content rather than by position."""
    n_layer, n_head = model.config.n_layer, model.config.n_head
    total, count = torch.zeros(n_layer, n_head, dtype=torch.float64), 0
    for story in stories:
        ids = [start_id, *story][: model.max_context]
        last: dict[int, int] = {}
        pairs = []
        for q, token in enumerate(ids):
            if token != start_id and token in last and last[token] + 1 < q:
                pairs.append((q, last[token] + 1))
            last[token] = q
        if not pairs:
            continue
        _, maps = model.forward_with_attention(torch.tensor([ids]))
        queries, keys = torch.tensor([q for q, _ in pairs]), torch.tensor([k for _, k in pairs])
        total += maps[0][:, :, queries, keys].double().sum(dim=-1)
        count += len(pairs)
    return [[round(float(v), ROUND) for v in row] for row in (total / max(count, 1))]


def in_context_positions(model: LanguageModel) -> dict[str, int]:
    """Olsson's early and late positions scaled to these stories (picollm/interpret.py), with `late`
    moved inside the context of a model that reads a bounded one (a Transformer's block)."""
    late = ICL_LATE
    if model.family == "transformer":
        late = min(late, model.max_context - 1 - ICL_WINDOW)
    return {"early": ICL_EARLY, "late": late, "window": ICL_WINDOW}


def snapshot_row(model: LanguageModel, step: int, tokens: int, stories: list[list[int]], classes: list[list[int]],
                 tok: Tokenizer) -> dict:
    """The scores of one snapshot (see the module docstring)."""
    nll = position_nll(model, stories, start_id=tok.eot_id)
    scored = ~np.isnan(nll)
    name_mask = np.zeros_like(scored)
    for row, document in enumerate(classes):
        count = min(len(document), nll.shape[1])
        name_mask[row, :count] = np.asarray(document[:count]) == NAME_REPEAT
    name_mask &= scored
    row = {
        "step": step,
        "tokens": tokens,
        "val_loss": round(float(nll[scored].mean()), ROUND),
        "recurring_name_nats_per_token": round(float(nll[name_mask].mean()), ROUND) if name_mask.any() else None,
        "in_context": {**in_context_positions(model), **in_context_score(nll, **in_context_positions(model))},
    }
    if model.family == "transformer":
        heads = head_scores(model, tok.vocab_size, head_period(model), HEAD_SEQUENCES, HEAD_SEED,
                            exclude_ids=[tok.eot_id], start_id=tok.eot_id)
        layer, head, score = strongest_head(heads["induction"])
        heads["text_induction"] = text_induction_scores(model, stories, tok.eot_id)
        text_layer, text_head, text_score = strongest_head(heads["text_induction"])
        row.update(heads=heads, strongest_induction_head={"layer": layer, "head": head, "score": score},
                   max_induction_score=score, max_text_induction_score=text_score,
                   strongest_text_induction_head={"layer": text_layer, "head": text_head, "score": text_score})
    else:
        row["max_induction_score"] = row["max_text_induction_score"] = None
    return row


def interpret_snapshots(snapshots: list[Path], texts: list[str], tok: Tokenizer, names: frozenset[str]) -> dict:
    """Every snapshot's row, in training order, and what they were measured on."""
    stories = [tok.encode(text) for text in texts]
    classes = [document_token_classes(text, tok, names) for text in texts]
    rows = []
    for path in snapshots:
        payload = load_checkpoint(path, tokenizer_identity=tok.identity)
        model = load_model(path, tok)
        rows.append(snapshot_row(model, int(payload["step"]), int(payload["tokens_seen"]), stories, classes, tok))
    return {
        "stories": len(stories),
        "induction_threshold": INDUCTION_THRESHOLD,
        "snapshots": rows,
        "final": {k: v for k, v in rows[-1].items() if k != "heads"} if rows else None,
    }


def first_recurring_name(classes: list[list[int]], limit: int) -> tuple[int, int] | None:
    """(story, position) of the first recurring-name token within `limit` tokens of a story."""
    for story, document in enumerate(classes):
        for position, kind in enumerate(document[:limit]):
            if kind == NAME_REPEAT:
                return story, position
    return None


def draw_final_heads(name: str, model: LanguageModel, result: dict, texts: list[str], tok: Tokenizer,
                     names: frozenset[str], heatmap: Path, picture: Path) -> None:
    """The last snapshot's induction heatmap, and where its strongest induction head looks on a story."""
    final = result["snapshots"][-1]
    induction_heatmap(final["heads"]["text_induction"], heatmap,
                      title=f"{name}: induction score per head on the stories (end of training)",
                      previous_token=final["heads"]["previous_token"])
    classes = [document_token_classes(text, tok, names) for text in texts]
    found = first_recurring_name(classes, model.max_context - 1)
    if found is None:
        return
    story, _ = found
    ids = [tok.eot_id, *tok.encode(texts[story])][: model.max_context]
    with torch.inference_mode():
        _, maps = model.forward_with_attention(torch.tensor([ids]))
    strongest = final["strongest_text_induction_head"]
    attn = maps[0, strongest["layer"], strongest["head"]].double().tolist()
    # ids[0] is the end-of-text token, so story token p sits at index p + 1 and is predicted at index p.
    queries = [p for p, kind in enumerate(classes[story][: len(ids) - 1]) if kind == NAME_REPEAT][:3]
    attention_picture([tok.decode([t]) for t in ids], attn, queries, picture,
                      title=f"{name}: layer {strongest['layer']} head {strongest['head']} predicting a recurring name")
