"""Scores over training (`interpret@<model>`): heads, in-context learning and copying at every snapshot.

Every snapshot that `train.snapshots` keeps is scored on the same validation stories, each read
from its start (after the end-of-text token that precedes every story in training):

- `val_loss`: the mean NLL of every scored token of those stories;
- `recurring_name_nats_per_token`: the same on the later mentions of a character's name
  (picollm/loss_classes.py), the loss that falls when a model learns to copy;
- the in-context learning score (picollm/interpret.py): loss late in a story minus early;
- Transformers only: every head's previous-token and induction score on repeated random tokens
  (the standard test of the circuit), its induction and name-copy scores on the stories
  themselves (story_attention_scores), and the strongest head of each.

The last snapshot is the trained model: `attention_example` keeps where its strongest copying
head looks on the first validation story with a recurring name. Drawing is the `plots` stage's
(picollm/interpret_plots.py), so this stage never loads matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from picollm.checkpoint import load_checkpoint
from picollm.interpret import ICL_EARLY, ICL_LATE, ICL_WINDOW, head_scores, in_context_score, position_nll, strongest_head
from picollm.interpret_plots import INDUCTION_THRESHOLD
from picollm.loss_classes import NAME_REPEAT, document_token_classes
from picollm.models.base import LanguageModel
from picollm.models.loading import model_from_payload
from picollm.tokenizer import Tokenizer

HEAD_PERIOD = 50  # tokens in each half of a repeated random sequence (shorter when the context is)
HEAD_SEQUENCES = 16
HEAD_SEED = 0
ROUND = 6


def head_period(model: LanguageModel) -> int:
    """The repeated half's length: HEAD_PERIOD, or what fits the context with the start token."""
    return min(HEAD_PERIOD, (model.max_context - 1) // 2)


def story_attention_pairs(ids: list[int], classes: list[int], start_id: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (query, key) pairs both story scores average over, for one story read as `ids` (the
    start token, then the story; `classes[p]` is the class of story token p, i.e. of ids[p + 1]).

    - induction: every query whose token occurred earlier (not just before it), with the key right
      after its latest earlier occurrence;
    - name copy: every query whose next token is a recurring name token, with each earlier position
      that holds that very token (attention there is what lets a head copy the name forward)."""
    induction, copy = [], []
    seen: dict[int, list[int]] = {}  # token -> its positions so far (after the start token)
    for q, token in enumerate(ids):
        if token != start_id and token in seen and seen[token][-1] + 1 < q:
            induction.append((q, seen[token][-1] + 1))
        if q:
            seen.setdefault(token, []).append(q)
        if q + 1 < len(ids) and classes[q] == NAME_REPEAT:
            copy += [(q, k) for k in seen.get(ids[q + 1], ())]
    return induction, copy


class StoryAttention:
    """The two story scores of every head, summed batch by batch over the attention maps of the
    validation stories, each read from the start token (see `story_attention_scores`).

    The (query, key) pairs depend on the stories and the context only, so one instance serves
    every snapshot of a model: `reset` before each."""

    def __init__(self, model: LanguageModel, stories: list[list[int]], classes: list[list[int]], start_id: int):
        self.sequences = [[start_id, *story][: model.max_context] for story in stories]
        self.pairs: dict[str, list[list[tuple[int, int]]]] = {"text_induction": [], "name_copy": []}
        self.story_queries: dict[str, list[int]] = {"text_induction": [], "name_copy": []}
        for ids, story_classes in zip(self.sequences, classes):
            induction, copy = story_attention_pairs(ids, story_classes, start_id)
            self.pairs["text_induction"].append(induction)
            self.pairs["name_copy"].append(copy)
            self.story_queries["text_induction"].append(len(induction))
            self.story_queries["name_copy"].append(len({q for q, _ in copy}))
        self.shape = (model.config.n_layer, model.config.n_head)
        self.reset()

    def reset(self) -> StoryAttention:
        self.totals = {key: torch.zeros(self.shape, dtype=torch.float64) for key in self.pairs}
        self.queries = {key: 0 for key in self.pairs}
        return self

    def add(self, batch: list[int], maps: list[torch.Tensor]) -> None:
        """maps: one (rows, n_head, T, T) tensor per layer, row i of story batch[i] (right-padded,
        so only each story's own positions are read). Each layer's entries are gathered in one go."""
        for key, pairs_of in self.pairs.items():
            rows = [row for row, story in enumerate(batch) for _ in pairs_of[story]]
            if rows:
                pairs = [pair for story in batch for pair in pairs_of[story]]
                r, q, k = torch.tensor(rows), torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
                self.totals[key] += torch.stack([layer[r, :, q, k].double().sum(dim=0) for layer in maps])
            self.queries[key] += sum(self.story_queries[key][story] for story in batch)

    def scores(self) -> dict[str, list[list[float]]]:
        return {key: [[round(float(v), ROUND) for v in row] for row in self.totals[key] / max(self.queries[key], 1)]
                for key in self.totals}


@torch.inference_mode()
def story_attention_scores(model: LanguageModel, stories: list[list[int]], classes: list[list[int]], start_id: int,
                           batch_size: int = 16) -> dict[str, list[list[float]]]:
    """Per layer and head, on the validation stories themselves (each read from the start token):

    - `text_induction`: the mean attention from a repeated token to the token right after its
      earlier occurrence. Random repeated tokens (the standard score) test the general circuit;
      this tests what the model does on its own text.
    - `name_copy`: where the next token is a recurring name token, the attention a head pays to
      that token's earlier occurrences, summed over them and averaged over such queries. A head
      near 1 looks straight at the name it is about to repeat (a copying head); unlike the
      induction score it does not ask how the head found it (by the token before, or by content).

    Stories are right-padded into batches, which a causal model never sees. `snapshot_row` gets
    the same scores from the pass that scores the stories' loss (`position_nll`'s `attention`)."""
    scores = StoryAttention(model, stories, classes, start_id)
    for begin in range(0, len(stories), batch_size):
        group = scores.sequences[begin : begin + batch_size]
        padded = torch.full((len(group), max(len(ids) for ids in group)), start_id, dtype=torch.long)
        for row, ids in enumerate(group):
            padded[row, : len(ids)] = torch.tensor(ids)
        scores.add(list(range(begin, begin + len(group))), model.forward_with_attention(padded, per_layer=True)[1])
    return scores.scores()


def in_context_positions(model: LanguageModel) -> dict[str, int]:
    """Olsson's early and late positions scaled to these stories (picollm/interpret.py), with `late`
    moved inside the context of a model that reads a bounded one (a Transformer's block)."""
    late = ICL_LATE
    if model.family == "transformer":
        late = min(late, model.max_context - 1 - ICL_WINDOW)
    return {"early": ICL_EARLY, "late": late, "window": ICL_WINDOW}


def snapshot_row(model: LanguageModel, step: int, tokens: int, stories: list[list[int]], classes: list[list[int]],
                 tok: Tokenizer, story_heads: StoryAttention | None) -> dict:
    """The scores of one snapshot (see the module docstring). For a Transformer (`story_heads`,
    reset) one pass over the stories gives both their loss and the heads' story scores."""
    nll = position_nll(model, stories, start_id=tok.eot_id, attention=story_heads.add if story_heads else None)
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
        heads.update(story_heads.scores())
        for key in ("induction", "text_induction", "name_copy"):
            layer, head, score = strongest_head(heads[key])
            row[f"max_{key}_score"] = score
            row[f"strongest_{key}_head"] = {"layer": layer, "head": head, "score": score}
        row["heads"] = heads
    else:
        row["max_induction_score"] = row["max_text_induction_score"] = row["max_name_copy_score"] = None
    return row


def story_tokens_and_classes(texts: list[str], tok: Tokenizer, names: frozenset[str]) -> tuple[list[list[int]], list[list[int]]]:
    """The stories' token ids and each token's class (picollm/loss_classes.py), computed once per stage."""
    return [tok.encode(text) for text in texts], [document_token_classes(text, tok, names) for text in texts]


def interpret_snapshots(snapshots: list[Path], stories: list[list[int]], classes: list[list[int]],
                        tok: Tokenizer) -> tuple[dict, LanguageModel | None]:
    """Every snapshot's row, in training order, and what they were measured on; and the last
    snapshot's model (the trained one, which `attention_example` reads), each read once."""
    rows, model, story_heads = [], None, None
    for path in snapshots:
        payload = load_checkpoint(path, tokenizer_identity=tok.identity)
        model = model_from_payload(payload, path)
        if model.family == "transformer":  # one training run: every snapshot has the same shape
            story_heads = (story_heads or StoryAttention(model, stories, classes, tok.eot_id)).reset()
        rows.append(snapshot_row(model, int(payload["step"]), int(payload["tokens_seen"]), stories, classes, tok, story_heads))
    result = {
        "stories": len(stories),
        "induction_threshold": INDUCTION_THRESHOLD,
        "snapshots": rows,
        "final": {k: v for k, v in rows[-1].items() if k != "heads"} if rows else None,
    }
    return result, model


def first_recurring_name(classes: list[list[int]], limit: int) -> tuple[int, int] | None:
    """(story, position) of the first recurring-name token within `limit` tokens of a story."""
    for story, document in enumerate(classes):
        for position, kind in enumerate(document[:limit]):
            if kind == NAME_REPEAT:
                return story, position
    return None


def attention_example(model: LanguageModel, result: dict, stories: list[list[int]], classes: list[list[int]],
                      tok: Tokenizer) -> dict | None:
    """Where the trained model's strongest name-copy head looks on the first validation story with
    a recurring name, from the first (up to 3) positions that predict one: the story's tokens and
    those positions' attention rows (6 decimals). None for a model without heads, or no such story."""
    if model.family != "transformer" or not result["snapshots"]:
        return None
    found = first_recurring_name(classes, model.max_context - 1)
    if found is None:
        return None
    story, _ = found
    ids = [tok.eot_id, *stories[story]][: model.max_context]
    with torch.inference_mode():
        _, maps = model.forward_with_attention(torch.tensor([ids]))
    head = result["snapshots"][-1]["strongest_name_copy_head"]
    attn = maps[0, head["layer"], head["head"]].double()
    # ids[0] is the end-of-text token, so story token p sits at index p + 1 and is predicted at index p.
    queries = [p for p, kind in enumerate(classes[story][: len(ids) - 1]) if kind == NAME_REPEAT][:3]
    return {"layer": head["layer"], "head": head["head"], "tokens": [tok.decode([t]) for t in ids],
            "queries": queries, "rows": [_rounded_row(attn[q]) for q in queries]}


def _rounded_row(row: torch.Tensor) -> list[float]:
    return [round(float(v), ROUND) for v in row]
