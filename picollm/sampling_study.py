"""The sampling study: how decoding settings trade quality for diversity, for every model.

For each model and each decoding setting (greedy, nucleus sampling at several p, ...), N samples
continue the same prompt, decoded together as one batch (`generate_batch`, KV cache) from a
`torch.Generator` seeded from (seed, setting label): the same setting gets the same random
stream in every model, and reordering or adding settings changes no other setting's samples.

Diversity, over the N continuations (the prompt, identical in every sample, is left out):
  - distinct-1/2/3: distinct n-grams / all n-grams, pooled over the samples (`textstats`);
  - repetition rate: the share of 3-grams that repeat one seen earlier in the same sample;
  - unique samples: how many of the N texts differ (greedy decoding gives 1).

Quality:
  - accepted share: the share of generated sentences that the story generator's grammar accepts
    (`recognize_sentence`), over the samples' text *including* the prompt (the prompt opens the
    first sentence). Sentences are cut with `split_sentences`. A sample that stopped because it
    reached max_new_tokens (it never produced end-of-text) may end mid-sentence: its last
    sentence is dropped when it is unterminated (does not end in . ! or ?, possibly followed by
    a closing quote), so the budget is not counted against the model. A sample that ended with
    end-of-text keeps every sentence: stopping mid-sentence was the model's choice. The share is
    null when no sentence is left, and whenever the corpus is not the story generator
    (`data.source != stories`), where the grammar says nothing about quality.
  - scorer NLL: the mean negative log-likelihood (nats per token) of the generated tokens under
    the *scorer*, the best model (lowest val bpb, the first row of metrics/models.json), with
    the prompt as context. Every generated token is scored exactly once; sequences longer than
    the scorer's context are scored in sliding windows (stride half the context), as
    `evaluate.token_nll` scores a split. The end-of-text token that ends a sample is not scored.
    All models share one tokenizer, so the generated ids are scored as they are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from picollm.data.stories import recognize_sentence, split_sentences
from picollm.figures import pyplot, save_png
from picollm.generation import generate_batch
from picollm.models.base import LanguageModel
from picollm.sampling import SamplingConfig
from picollm.textstats import distinct_n, repetition_rate
from picollm.tokenizer import Tokenizer

# A sentence is complete when it ends in . ! or ?, possibly inside a closing quote.
_TERMINATED = re.compile(r'[.!?]"?$')
DIGITS = 4  # rounding of every float in metrics/sampling.json


@dataclass(frozen=True)
class SampleSet:
    """The N samples of one (model, setting)."""

    prompt: str
    token_ids: list[list[int]]  # generated ids of each sample (no prompt, no end-of-text)
    continuations: list[str]  # their decoded text
    truncated: list[bool]  # True when the sample hit max_new_tokens instead of ending

    @property
    def texts(self) -> list[str]:
        """Each sample as a reader sees it: the prompt followed by its continuation."""
        return [self.prompt + text for text in self.continuations]


def setting_seed(seed: int, label: str) -> int:
    """The generator seed of a setting: stable across runs, models and the order of settings."""
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def prompt_ids(tok: Tokenizer, prompt: str) -> list[int]:
    return [tok.eot_id, *tok.encode(prompt)]  # a story starts after an end-of-text, as in training


def draw_samples(
    model: LanguageModel, tok: Tokenizer, prompt: str, sampling: SamplingConfig, n: int, max_new_tokens: int, seed: int
) -> SampleSet:
    generator = torch.Generator().manual_seed(setting_seed(seed, sampling.label))
    ids = generate_batch(
        model, prompt_ids(tok, prompt), n, max_new_tokens=max_new_tokens, sampling=sampling, eot_id=tok.eot_id, generator=generator
    )
    # A row that holds max_new_tokens ids never drew end-of-text: it was cut by the budget.
    return SampleSet(prompt, ids, [tok.decode(row) for row in ids], [len(row) == max_new_tokens for row in ids])


# ---------------------------------------------------------------- quality


def judged_sentences(text: str, truncated: bool) -> list[str]:
    """The sentences of a sample that the recognizer judges (see the module docstring)."""
    sentences = split_sentences(text)
    if truncated and sentences and not _TERMINATED.search(sentences[-1]):
        sentences = sentences[:-1]
    return sentences


def acceptance(texts: list[str], truncated: list[bool] | None = None) -> tuple[int, int]:
    """(accepted sentences, judged sentences) over the texts, pooled."""
    truncated = truncated or [False] * len(texts)
    accepted = judged = 0
    for text, cut in zip(texts, truncated, strict=True):
        for sentence in judged_sentences(text, cut):
            judged += 1
            accepted += recognize_sentence(sentence)
    return accepted, judged


def acceptance_share(texts: list[str], truncated: list[bool] | None = None) -> float | None:
    accepted, judged = acceptance(texts, truncated)
    return accepted / judged if judged else None


@torch.inference_mode()
def continuation_nll(scorer: LanguageModel, context: list[int], samples: list[list[int]]) -> tuple[float, int]:
    """Total NLL (nats) of every sample's tokens after `context`, under `scorer`, and their count.

    The samples are right-padded into one batch (a causal model's logits never depend on later
    positions, so padding changes nothing that is scored). Windows of at most max_context tokens
    advance by half a context; each scores the targets the previous windows did not reach.
    """
    rows = [row for row in samples if row]
    if not rows:
        return 0.0, 0
    scorer.eval()
    start_len = len(context)
    length = start_len + max(len(row) for row in rows)
    x = torch.zeros(len(rows), length, dtype=torch.long)
    scored = torch.zeros(len(rows), length, dtype=torch.bool)  # which positions are targets
    x[:, :start_len] = torch.tensor(context, dtype=torch.long)
    for i, row in enumerate(rows):
        x[i, start_len : start_len + len(row)] = torch.tensor(row, dtype=torch.long)
        scored[i, start_len : start_len + len(row)] = True
    window = scorer.max_context
    stride = max(1, window // 2)
    total = 0.0
    done = 1  # targets before `done` are scored (position 0 is never a target)
    end = min(length, window)
    while True:
        begin = max(0, end - window)
        low = max(done, begin + 1)
        if low < end:
            logp = torch.log_softmax(scorer(x[:, begin:end]).double(), dim=-1)
            # the logits at position t (window offset t - begin) predict the token at t + 1
            picked = logp[:, low - 1 - begin : end - 1 - begin].gather(-1, x[:, low:end].unsqueeze(-1)).squeeze(-1)
            total -= picked.masked_fill(~scored[:, low:end], 0.0).sum().item()
        done = end
        if end == length:
            break
        end = min(length, end + stride)
    return total, int(scored.sum())


# ---------------------------------------------------------------- one row of metrics/sampling.json


def _round(value: float | None, digits: int = DIGITS) -> float | None:
    return None if value is None else round(float(value), digits)


def study_row(
    model_name: str, sampling: SamplingConfig, samples: SampleSet, scorer_nll: tuple[float, int], use_recognizer: bool
) -> dict:
    texts = samples.continuations
    nll, tokens = scorer_nll
    lengths = [len(row) for row in samples.token_ids]
    return {
        "model": model_name,
        "setting": sampling.label,
        "greedy": sampling.greedy,
        "top_p": None if sampling.greedy else sampling.top_p,
        "temperature": None if sampling.greedy else sampling.temperature,
        "top_k": None if sampling.greedy else sampling.top_k,
        "num_samples": len(texts),
        "unique_samples": len(set(texts)),
        "mean_tokens": _round(sum(lengths) / len(lengths), 2),
        "truncated_share": _round(sum(samples.truncated) / len(samples.truncated)),
        "distinct_1": _round(distinct_n(texts, 1)),
        "distinct_2": _round(distinct_n(texts, 2)),
        "distinct_3": _round(distinct_n(texts, 3)),
        "repetition_rate": _round(repetition_rate(texts, 3)),
        "judged_sentences": acceptance(samples.texts, samples.truncated)[1] if use_recognizer else None,
        "accepted_share": _round(acceptance_share(samples.texts, samples.truncated)) if use_recognizer else None,
        "scorer_nll": _round(nll / tokens) if tokens else None,
    }


# ---------------------------------------------------------------- one model's part of the study


def sample_model(name: str, model: LanguageModel, tok: Tokenizer, prompt: str, settings: tuple[SamplingConfig, ...],
                 num_samples: int, max_new_tokens: int, seed: int, use_recognizer: bool) -> dict:
    """One model's part of the study (`sample@<model>`): its rows, not yet scored, and its samples.

    Decoding runs on one torch thread: its many small operations gain little from a second
    thread and lose a lot when the cores are shared. The rows lack `scorer_nll`, which needs the
    best model: `score_parts` adds it, so a new ranking rescores samples without redrawing them.
    """
    torch.set_num_threads(1)
    rows, samples = [], []
    for sampling in settings:
        drawn = draw_samples(model, tok, prompt, sampling, num_samples, max_new_tokens, seed)
        rows.append(study_row(name, sampling, drawn, (0.0, 0), use_recognizer))
        samples.append({"setting": sampling.label, **asdict(drawn)})
    return {"model": name, "rows": rows, "samples": samples}


def score_parts(parts: list[dict], scorer: LanguageModel, tok: Tokenizer, prompt: str) -> tuple[list[dict], dict]:
    """Every row of every part with `scorer_nll` (the scorer's NLL per sampled token), and the
    samples as `SampleSet`s keyed by (model, setting) for the report."""
    torch.set_num_threads(1)
    context = prompt_ids(tok, prompt)
    rows, sample_sets = [], {}
    for part in parts:
        for row, sample in zip(part["rows"], part["samples"]):
            drawn = SampleSet(sample["prompt"], sample["token_ids"], sample["continuations"], sample["truncated"])
            nll, tokens = continuation_nll(scorer, context, drawn.token_ids)
            rows.append({**row, "scorer_nll": _round(nll / tokens) if tokens else None})
            sample_sets[(part["model"], sample["setting"])] = drawn
    return rows, sample_sets


# ---------------------------------------------------------------- the plot


def plot_quality_diversity(rows: list[dict], path: str | Path, scorer: str) -> None:
    """Quality against diversity (distinct-2): one line per model through its settings, in order.

    Left panel: the recognizer's accepted share (when it applies); right: the scorer's NLL
    per token (lower is better). Each point is labelled with its setting.
    """
    import pandas as pd  # here: sample@<model> imports this module and never plots

    plt, sns = pyplot()
    frame = pd.DataFrame(rows)
    panels = [("scorer_nll", f"NLL per token under {scorer} (nats, lower is better)")]
    if frame["accepted_share"].notna().any():
        panels.insert(0, ("accepted_share", "share of sentences the story grammar accepts"))
    sns.set_theme(style="whitegrid", context="paper")
    # One colour and marker per model, the same in every panel (a panel may lack some models).
    models = list(dict.fromkeys(frame["model"]))
    palette = dict(zip(models, sns.color_palette("tab10", n_colors=max(len(models), 1))))
    shapes = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
    markers = {model: shapes[i % len(shapes)] for i, model in enumerate(models)}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.0), squeeze=False)
    for ax, (column, title) in zip(axes[0], panels):
        data = frame.dropna(subset=[column])
        sns.lineplot(
            data=data, x="distinct_2", y=column, hue="model", style="model", palette=palette, markers=markers,
            dashes=False, sort=False, estimator=None, ax=ax,
        )
        for _, row in data.iterrows():
            ax.annotate(row["setting"], (row["distinct_2"], row[column]), textcoords="offset points", xytext=(3, 3), fontsize=6, alpha=0.8)
        ax.set_xlabel("diversity: distinct-2 over the samples")
        ax.set_ylabel(column.replace("_", " "))
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, title="model", title_fontsize=7)
    fig.suptitle("Sampling: quality against diversity across decoding settings", fontsize=11)
    save_png(fig, Path(path))


# ---------------------------------------------------------------- the Markdown report

_MD_SPECIAL = re.compile(r"([\\`*_<>\[\]|#])")

METRIC_COLUMNS = (
    ("distinct_1", "distinct-1"),
    ("distinct_2", "distinct-2"),
    ("distinct_3", "distinct-3"),
    ("repetition_rate", "repetition"),
    ("accepted_share", "accepted"),
    ("scorer_nll", "scorer NLL"),
    ("mean_tokens", "tokens"),
    ("truncated_share", "cut"),
)


def _md_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _cell(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: list[dict], leading: tuple[str, ...]) -> list[str]:
    header = [*leading, *(title for _, title in METRIC_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(leading) + "---:|" * len(METRIC_COLUMNS)]
    for row in rows:
        cells = [f"`{row[key]}`" if key == "model" else row[key] for key in leading]
        cells += [_cell(row[key], 1 if key == "mean_tokens" else 3) for key, _ in METRIC_COLUMNS]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def report_markdown(study: dict, samples: dict[tuple[str, str], SampleSet]) -> str:
    rows = study["rows"]
    lines = [
        "# Sampling study",
        "",
        f"Prompt: `{study['prompt']}`; {study['num_samples']} samples of up to {study['max_new_tokens']} new tokens "
        f"per model and setting. Scorer: `{study['scorer']}` (the lowest val bpb in metrics/models.json).",
        "",
        "- **distinct-n**: distinct n-grams / all n-grams over the samples' continuations (whitespace words); "
        "**repetition**: share of 3-grams repeating one earlier in the same sample.",
        "- **accepted**: share of sentences (prompt included) that the story generator's grammar accepts; "
        "an unterminated last sentence of a sample cut by the token budget is not judged.",
        "- **scorer NLL**: mean nats per generated token under the scorer, the prompt as context.",
        "- **tokens**: mean generated tokens per sample; **cut**: share of samples that hit the token budget "
        "(marked `[cut]` below).",
        "",
    ]
    if not study["recognizer"]:
        lines += [
            f"> The corpus is not the story generator (`data.source: {study['source']}`), so the grammar's verdict "
            "says nothing about quality: **accepted** is null (n/a) throughout.",
            "",
        ]
    lines += ["## Summary", "", *_table(rows, ("model", "setting")), ""]
    for model in dict.fromkeys(row["model"] for row in rows):
        lines += [f"## `{model}`", ""]
        for row in (r for r in rows if r["model"] == model):
            lines += [f"### {row['setting']}", "", *_table([row], ()), ""]
            sample_set = samples[(model, row["setting"])]
            for index, (text, cut) in enumerate(zip(sample_set.texts, sample_set.truncated), start=1):
                lines.append(f"{index}. {_md_text(text)}{' `[cut]`' if cut else ''}")
            lines.append("")
    return "\n".join(lines)
