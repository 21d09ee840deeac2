"""Looking inside the models: induction heads, previous-token heads and in-context learning.

Head scores (Transformers), on sequences of random tokens repeated twice, r_1..r_n r_1..r_n
(Olsson et al. 2022, "In-context learning and induction heads"; TransformerLens and ARENA use
the same construction and call a head with an induction score >= 0.4 an induction head):

- previous-token score: the mean over query positions i >= 1 of attn[i, i-1];
- induction score: the mean over the n query positions i of the second half of attn[i, i-n+1],
  the token right after the earlier occurrence of the current token. The first token of the
  second half (i = n, whose earlier occurrence is position 0) is included: its target, position
  1, is as well defined as any other, and an induction head reaches it the same way (match the
  current token against the token before each key). ARENA's `diagonal(-n+1).mean()` on
  [BOS, r, r] also averages two first-half entries; the difference shrinks with n.

This project trains without a BOS token, so none is needed. `start_id` (e.g. the end-of-text id,
which precedes every story in training) prepends one token that is no part of the repeated
sequence: scores then skip it (`offset=1`), so a head that parks its attention there scores 0.
The random halves draw n distinct tokens, so "the earlier occurrence" is unique.

In-context learning score (Olsson's "loss at token 500 minus loss at token 50"): the mean NLL of
the tokens at story positions late-w..late+w minus that at early-w..early+w, over the validation
stories that reach late+w, each scored from its start (`position_nll`). The stories here are far
shorter than Olsson's documents, so the defaults scale his positions down tenfold: early = 10,
the first sentence, where the characters are introduced; late = 100, which almost every story
reaches and where most of its names and nouns recur. A window (w = 5, 11 tokens) averages over
which template word happens to sit at one position. Negative means later tokens are cheaper:
the model uses its context. A k-gram, which sees 3 tokens, measures what position alone does.

Every function here puts the model in eval mode and leaves it there (as picollm.generation does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from picollm.errors import PicoError
from picollm.interpret_plots import INDUCTION_THRESHOLD  # noqa: F401  (kept torch-free there, for the plots)
from picollm.models.base import LanguageModel
from picollm.models.registry import CONTEXT_LIMITED
from picollm.models.transformer import Transformer

ICL_EARLY, ICL_LATE, ICL_WINDOW = 10, 100, 5


# ---------------------------------------------------------------- scores of attention patterns


def _as_patterns(attn: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """A (..., T, T) tensor from one, or from a per-layer list of (heads, T, T) tensors."""
    if not isinstance(attn, torch.Tensor):
        attn = torch.stack(list(attn))
    if attn.dim() < 2 or attn.size(-1) != attn.size(-2):
        raise ValueError(f"attention patterns must be (..., T, T), got {tuple(attn.shape)}")
    return attn


def previous_token_scores(attn: torch.Tensor | Sequence[torch.Tensor], offset: int = 0) -> torch.Tensor:
    """Mean of attn[..., i, i-1] over queries i = offset+1 .. T-1; shape attn.shape[:-2].

    `offset` leading positions (a start token) are no part of the sequence: query offset+1 is
    the first whose previous token belongs to it."""
    attn = _as_patterns(attn)
    if not 0 <= offset < attn.size(-1) - 1:
        raise ValueError(f"offset={offset} leaves no query with a previous token in {attn.size(-1)} positions")
    # diagonal(-1)[k] = attn[k+1, k]
    return attn.diagonal(offset=-1, dim1=-2, dim2=-1)[..., offset:].mean(dim=-1)


def induction_scores(attn: torch.Tensor | Sequence[torch.Tensor], period: int, offset: int = 0) -> torch.Tensor:
    """Mean of attn[..., i, i-period+1] over the second half's queries i; shape attn.shape[:-2].

    The sequence is `offset` start tokens, then r_1..r_period twice: T = offset + 2 * period, and
    the second half's queries are i = offset+period .. offset+2*period-1."""
    attn = _as_patterns(attn)
    if period < 2 or attn.size(-1) != offset + 2 * period:
        raise ValueError(
            f"patterns of {attn.size(-1)} positions do not hold {offset} start tokens and a period of {period} "
            "(>= 2) repeated twice"
        )
    # diagonal(-(period-1))[k] = attn[k+period-1, k]; query i = offset+period is k = offset+1.
    return attn.diagonal(offset=-(period - 1), dim1=-2, dim2=-1)[..., offset + 1 : offset + 1 + period].mean(dim=-1)


def repeated_random_tokens(vocab_size: int, period: int, batch: int, seed: int, exclude_ids: Iterable[int] = (),
                           start_id: int | None = None) -> torch.Tensor:
    """(batch, [1 +] 2 * period) ids: per row, `period` distinct tokens drawn uniformly from
    [0, vocab_size) minus `exclude_ids`, twice; `start_id` first when given. Same seed, same ids."""
    for name, value in (("period", period), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PicoError(f"{name}={value!r} is not allowed; it must be a positive integer")
    excluded = set(exclude_ids)
    allowed = torch.tensor([i for i in range(vocab_size) if i not in excluded], dtype=torch.long)
    if not 2 <= period <= len(allowed):
        raise PicoError(f"period={period} is not allowed; it must lie in [2, {len(allowed)}] (distinct tokens available)")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.rand(batch, len(allowed), generator=generator).argsort(dim=1, stable=True)[:, :period]
    half = allowed[picks]
    parts = [half, half] if start_id is None else [torch.full((batch, 1), start_id), half, half]
    return torch.cat(parts, dim=1)


def require_transformer(model: LanguageModel, name: str = "the model") -> Transformer:
    if not isinstance(model, Transformer):
        raise PicoError(f"{name} is a {model.family} model; only transformers have attention heads to inspect")
    return model


@torch.inference_mode()
def head_scores(model: LanguageModel, vocab_size: int, period: int, batch: int, seed: int, *,
                exclude_ids: Iterable[int] = (), start_id: int | None = None, chunk: int = 8) -> dict:
    """Every head's previous-token and induction score on `batch` seeded repeated random sequences
    (see repeated_random_tokens), as {"previous_token": [[layer 0's heads], ...], "induction":
    ...}, floats rounded to 6 decimals: the same model and arguments give the same JSON."""
    model = require_transformer(model)
    if vocab_size > model.config.vocab_size:
        raise PicoError(f"vocab_size={vocab_size} is not allowed; the model has {model.config.vocab_size} tokens")
    ids = repeated_random_tokens(vocab_size, period, batch, seed, exclude_ids, start_id)
    if ids.size(1) > model.max_context:
        raise PicoError(
            f"period={period} is not allowed; twice it{' plus the start token' if start_id is not None else ''} "
            f"({ids.size(1)}) exceeds the model's context of {model.max_context} tokens"
        )
    model.eval()
    device = next(model.parameters()).device
    offset = 0 if start_id is None else 1
    previous, induction = [], []
    for rows in ids.split(chunk):  # (chunk, layers, heads, T, T) maps at a time bound the memory
        _, maps = model.forward_with_attention(rows.to(device))
        maps = maps.double()
        previous.append(previous_token_scores(maps, offset).cpu())
        induction.append(induction_scores(maps, period, offset).cpu())
    return {
        "previous_token": _rounded(torch.cat(previous).mean(dim=0)),
        "induction": _rounded(torch.cat(induction).mean(dim=0)),
    }


def _rounded(scores: torch.Tensor) -> list[list[float]]:
    return [[round(float(value), 6) for value in layer] for layer in scores]


def strongest_head(scores: Sequence[Sequence[float]]) -> tuple[int, int, float]:
    """(layer, head, score) of the highest score in a layers x heads table (the first on ties)."""
    return max(((layer, head, value) for layer, row in enumerate(scores) for head, value in enumerate(row)),
               key=lambda item: item[2])


@torch.inference_mode()
def top_attended(model: LanguageModel, ids: Sequence[int], layer: int, head: int) -> list[tuple[int, float]]:
    """For each position i of `ids`: the position j <= i that head (layer, head) attends to most
    (the first on ties) and its attention weight."""
    model = require_transformer(model)
    n_layer, n_head = model.config.n_layer, model.config.n_head
    if not 0 <= layer < n_layer:
        raise PicoError(f"layer {layer} is not allowed; the model's layers are 0..{n_layer - 1}")
    if not 0 <= head < n_head:
        raise PicoError(f"head {head} is not allowed; the model's heads are 0..{n_head - 1}")
    if not 1 <= len(ids) <= model.max_context:
        raise PicoError(f"{len(ids)} tokens are not allowed; the model reads 1 to {model.max_context} tokens")
    model.eval()
    device = next(model.parameters()).device
    _, maps = model.forward_with_attention(torch.tensor([list(ids)], device=device))
    weights, positions = maps[0, layer, head].float().max(dim=-1)
    return [(int(j), float(w)) for j, w in zip(positions.cpu(), weights.cpu())]


# ---------------------------------------------------------------- in-context learning


def _logits(model: LanguageModel, idx: torch.Tensor) -> torch.Tensor:
    """forward(idx); past max_context (families that read any length) through `step` in chunks."""
    if idx.size(1) <= model.max_context:
        return model(idx)
    state, parts = model.init_state(idx.size(0)), []
    for start in range(0, idx.size(1), model.max_context):
        logits, state = model.step(idx[:, start : start + model.max_context], state)
        parts.append(logits)
    return torch.cat(parts, dim=1)


@torch.inference_mode()
def position_nll(model: LanguageModel, stories: Sequence[Sequence[int]], start_id: int | None = None,
                 batch_size: int = 16, attention: Callable[[list[int], list[torch.Tensor]], None] | None = None) -> np.ndarray:
    """(stories, longest story) NLL in nats; entry [s, p] is that of story s's token p given the
    story's tokens before it (and `start_id` before them, when given), NaN where nothing is scored.

    Each story is its own context, read from its first token. Without `start_id` nothing predicts
    token 0 (NaN). A Transformer reads at most max_context tokens, so its later positions stay
    NaN; the LSTM and the k-grams read any length (`step` carries their state across chunks).
    Stories are batched by length (fewer padded positions) and right-padded, which causal models
    never see.

    With `attention` (Transformers), the logits come from `forward_with_attention`, fed every
    token within the context (the last one too, as a query), and `attention(first_row, maps)` gets
    each batch's maps, one (rows, n_head, T, T) tensor per layer, with the indices of the stories
    in its rows: analyses of the heads then cost no second pass over the stories."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PicoError(f"batch_size={batch_size!r} is not allowed; it must be a positive integer")
    model.eval()
    device = next(model.parameters()).device
    vocab_size = model.config.vocab_size
    lead = [] if start_id is None else [start_id]
    first = 1 - len(lead)  # the story position that the first prediction scores
    sequences = [lead + [int(t) for t in story] for story in stories]
    for index, sequence in enumerate(sequences):
        bad = [t for t in sequence if not 0 <= t < vocab_size]
        if bad:
            raise PicoError(f"story {index} holds token id {bad[0]}; ids must lie in [0, {vocab_size})")
    if model.family in CONTEXT_LIMITED:
        sequences = [sequence[: model.max_context + 1] for sequence in sequences]
    out = np.full((len(stories), max((len(story) for story in stories), default=0)), np.nan)
    by_length = sorted(range(len(sequences)), key=lambda index: len(sequences[index]))
    for begin in range(0, len(sequences), batch_size):
        indices = by_length[begin : begin + batch_size]
        group = [sequences[index] for index in indices]
        width = max(len(sequence) for sequence in group)
        if width < 2:
            continue
        padded = torch.zeros(len(group), width, dtype=torch.long)
        for row, sequence in enumerate(group):
            padded[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        padded = padded.to(device)
        if attention is None:
            logits = _logits(model, padded[:, :-1])
        else:
            logits, maps = model.forward_with_attention(padded[:, : min(width, model.max_context)], per_layer=True)
            attention(indices, maps)
            logits = logits[:, : width - 1]
        logits = logits.float()
        targets = padded[:, 1:].unsqueeze(-1)
        nll = (torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets).squeeze(-1)).double().cpu().numpy()
        for row, sequence in enumerate(group):
            count = len(sequence) - 1
            out[indices[row], first : first + count] = nll[row, :count]
    return out


def in_context_score(nll: np.ndarray, early: int = ICL_EARLY, late: int = ICL_LATE, window: int = ICL_WINDOW) -> dict:
    """Mean NLL over positions late-window..late+window minus that over early-window..early+window,
    on the stories (rows of `position_nll`) scored at all of them; rounded to 6 decimals."""
    for name, value in (("early", early), ("late", late), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PicoError(f"in-context {name}={value!r} is not allowed; it must be an integer >= 0")
    if early - window < 0 or early + window >= late - window:
        raise PicoError(
            f"in-context positions early={early}, late={late}, window={window} are not allowed; the windows "
            "early-window..early+window and late-window..late+window must start at 0 or later and not overlap"
        )
    nll = np.asarray(nll, dtype=np.float64)
    if nll.ndim != 2:
        raise ValueError(f"expected per-position NLL as (stories, positions), got shape {nll.shape}")
    early_cols, late_cols = slice(early - window, early + window + 1), slice(late - window, late + window + 1)
    if nll.shape[1] < late_cols.stop:
        raise PicoError(f"no story reaches position {late_cols.stop - 1} (the longest has {nll.shape[1]} tokens); choose a smaller late")
    scored = np.isfinite(nll[:, early_cols]).all(axis=1) & np.isfinite(nll[:, late_cols]).all(axis=1)
    if not scored.any():
        raise PicoError(f"no story is scored at every position of {early - window}..{early + window} and "
                        f"{late - window}..{late + window}; choose a smaller late or give longer stories")
    early_nll, late_nll = float(nll[scored, early_cols].mean()), float(nll[scored, late_cols].mean())
    return {
        "in_context_score": round(late_nll - early_nll, 6),
        "early_nll": round(early_nll, 6),
        "late_nll": round(late_nll, 6),
        "stories": int(scored.sum()),
    }
