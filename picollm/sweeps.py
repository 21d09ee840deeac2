"""The studies: sweeps whose every point is its own cached DVC stage, trained with the shared loop.

Four sweeps, each defined under params.yaml's `sweeps:` (schema in picollm/config.py):

- `corpus_size`: the first N train documents, for each N, at a fixed step budget. The model
  trains on the prefix of the train token cache that ends with the N-th document
  (`TrainJob.train_token_limit`), so nothing is re-tokenized.
- `training_budget`: base_steps x each multiplier, on the whole train split.
- `overfitting`: the first `documents` train documents, split train/test and tokenized into small
  caches (`prepare_overfitting`); long training with the test part as the loop's "val", so the
  history holds the divergence curves; greedy samples from the first words of train and test
  documents show memorisation (`longest_overlap` with the training documents).
- `hparam_grid`: the Cartesian grid of embed, block_size, layers, heads, lr and batch_size.

A point is one combination of its sweep's axes (`AXES`): dvc.yaml's `matrix:` expands the same
lists in the same order and passes the values on the command line, so a point's stage is named by
its values and declares as params only what every point shares (the model entry, `train`, the
sweep's `train` overrides, ...). Changing one value creates one new stage; the others stay cached.

Every point starts from `models.<model>` (each architecture is defined once) and the merged
`train` section, then the sweep's `train` overrides, then the point's own values. It is scored
with `eval_metrics` on the first `sweeps.eval_docs` documents of each split (the train split's
documents the point trained on; the overfitting sweep's own train and test sets).

Outputs: metrics/sweeps/points/<sweep>/<point>.json (deterministic: the same params give the same
bytes), metrics/timings/sweeps/points/<sweep>/<point>.json (seconds, tokens/s), and per sweep the
tidy tables metrics/sweeps/<sweep>.json and metrics/timings/sweeps/<sweep>.json (`aggregate`).
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from picollm import paths
from picollm.errors import PicoError

SWEEPS = ("corpus_size", "training_budget", "overfitting", "hparam_grid")

# The matrix axes of each sweep, in dvc.yaml's order: (axis, params list it comes from, type).
AXES: dict[str, tuple[tuple[str, str, type], ...]] = {
    "corpus_size": (("model", "models", str), ("docs", "docs", int)),
    "training_budget": (("model", "models", str), ("multiplier", "multipliers", int)),
    "overfitting": (("model", "models", str),),
    "hparam_grid": (
        ("model", "models", str), ("embed", "embed", int), ("block_size", "block_size", int), ("layers", "layers", int),
        ("heads", "heads", int), ("lr", "lr", float), ("batch_size", "batch_size", int),
    ),
}
GRID_FAMILIES = ("lstm", "transformer")
OVERFIT_DIR = Path("data/sweeps/overfitting")  # train.bin, val.bin (the held-out test part), texts.json
ROUND = 6


# ------------------------------------------------------------------------------ file layout
def point_metrics(sweep: str, key: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / "points" / sweep / f"{key}.json"


def point_timings(sweep: str, key: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / "points" / sweep / f"{key}.json"


def sweep_metrics(sweep: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / f"{sweep}.json"


def sweep_timings(sweep: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / f"{sweep}.json"


def point_checkpoint(sweep: str, key: str) -> Path:
    return paths.MODELS_DIR / "sweeps" / sweep / f"{key}.ckpt"


def point_resume_dir(sweep: str, key: str) -> Path:
    return paths.CHECKPOINTS_DIR / "sweeps" / sweep / key


# ------------------------------------------------------------------------------ points
def _check_sweep(sweep: str) -> None:
    if sweep not in SWEEPS:
        raise PicoError(f"no sweep named {sweep!r}; the sweeps are: {', '.join(SWEEPS)}")


def points(params, sweep: str) -> list[dict[str, Any]]:
    """Every point of a sweep, in the order DVC's matrix expands them."""
    _check_sweep(sweep)
    section = getattr(params.sweeps, sweep)
    axes = AXES[sweep]
    lists = [getattr(section, source) for _, source, _ in axes]
    return [dict(zip((name for name, _, _ in axes), combo)) for combo in itertools.product(*lists)]


def parse_point(params, sweep: str, assignments: list[str]) -> dict[str, Any]:
    """`model=lstm docs=250` (from the stage's command line) -> the point, which params must define."""
    _check_sweep(sweep)
    types = {name: kind for name, _, kind in AXES[sweep]}
    point: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in types:
            raise PicoError(f"sweep {sweep}: {item!r} is not an assignment of one of its axes ({', '.join(types)}=VALUE)")
        try:
            point[name] = types[name](raw)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(types[name], "a string")
            raise PicoError(f"sweep {sweep}: {name}={raw!r} is not {kind}") from None
    if set(point) != set(types):
        raise PicoError(f"sweep {sweep}: a point needs a value for each of {', '.join(types)}; got {', '.join(point) or 'none'}")
    if point not in points(params, sweep):
        raise PicoError(
            f"sweep {sweep}: the point {point} is not in params.yaml's sweeps.{sweep}; "
            "run it through `dvc repro`, which builds the points from params"
        )
    return {name: point[name] for name, _, _ in AXES[sweep]}


def point_train(params, sweep: str, point: dict[str, Any]):
    """train + models.<model>.train, then sweeps.<sweep>.train, then the point's own values."""
    from picollm.config import _describe

    section = getattr(params.sweeps, sweep)
    base = params.model_train(point["model"])
    try:
        train = base.merged(section.train)
    except ValidationError as err:
        raise PicoError(_describe(err, prefix=f"sweeps.{sweep}.train")) from None
    own: dict[str, Any] = {}
    if sweep == "training_budget":
        own = {"steps": section.base_steps * point["multiplier"]}
    elif sweep == "hparam_grid":
        own = {"block_size": point["block_size"], "lr": point["lr"], "batch_size": point["batch_size"]}
    try:
        return train.merged(own)
    except ValidationError as err:
        raise PicoError(_describe(err, prefix=f"sweeps.{sweep} point {point}")) from None


def point_spec(params, sweep: str, point: dict[str, Any]) -> dict[str, Any]:
    """The model spec: models.<model>, resized by the grid's embed/layers/heads for hparam_grid."""
    spec = dict(params.model_spec(point["model"]))
    if sweep != "hparam_grid":
        return spec
    from picollm.models.registry import model_config

    family = spec.get("family")
    if family not in GRID_FAMILIES:
        raise PicoError(
            f"sweeps.hparam_grid.models: {point['model']!r} is a {family} model; the grid resizes only "
            f"{' and '.join(GRID_FAMILIES)} models (embed, layers, heads)"
        )
    base = model_config(spec, vocab_size=params.tokenizer.effective_vocab_size, block_size=2, pad_id=0, key=f"models.{point['model']}")
    embed, layers, heads = point["embed"], point["layers"], point["heads"]
    if family == "transformer":
        group = max(1, base.n_head // base.n_kv_head)  # query heads per key/value head (GQA) stays
        spec.update(
            d_model=embed, n_layer=layers, n_head=heads,
            n_kv_head=heads // group if heads % group == 0 and heads >= group else heads,
            d_ff=max(1, round(base.d_ff * embed / base.d_model)),
        )
    else:
        spec.update(d_embed=embed, n_layer=layers, hidden=max(1, round(base.hidden * embed / base.d_embed)))
    return spec


def check_sweeps(params) -> None:
    """Every point of every sweep resolves to valid training params and a buildable model."""
    from picollm.models.registry import model_config

    for sweep in SWEEPS:
        section = getattr(params.sweeps, sweep)
        for name in section.models:
            if name not in params.models:
                raise PicoError(
                    f"{_params_file()}: sweeps.{sweep}.models lists {name!r}, which is not a model under models; "
                    f"defined: {sorted(params.models)}"
                )
        for point in points(params, sweep):
            train = point_train(params, sweep, point)
            spec = point_spec(params, sweep, point)
            model_config(
                spec, vocab_size=params.tokenizer.effective_vocab_size, block_size=train.block_size, pad_id=0,
                key=f"sweeps.{sweep} point {point}",
            )
    ov = params.sweeps.overfitting
    n_train = round(ov.documents * ov.train_fraction)
    if not 1 <= n_train < ov.documents:
        raise PicoError(
            f"{_params_file()}: sweeps.overfitting keeps {n_train} of {ov.documents} documents for training; "
            "choose documents and train_fraction so both the train and the test part hold at least one"
        )


def _params_file() -> str:
    from picollm.config import PARAMS_FILE

    return PARAMS_FILE


# ------------------------------------------------------------------------------ token prefixes
def eot_positions(stream, eot_id: int):
    import numpy as np

    return np.flatnonzero(np.asarray(stream.tokens) == eot_id)


def first_documents(stream, eot_id: int, docs: int, what: str):
    """The stream cut after its `docs`-th document (the cache is `<eot> doc <eot> doc ... <eot>`)."""
    from picollm.data.tokens import TokenStream

    ends = eot_positions(stream, eot_id)
    available = len(ends) - 1
    if docs > available:
        raise PicoError(f"{what} asks for {docs} documents, but {stream.path} holds only {available}; lower it")
    return TokenStream(stream.path, stream.tokens[: int(ends[docs]) + 1])


def stream_bytes(stream, tok) -> int:
    """UTF-8 bytes of the documents in a stream (separators excluded): the bits-per-byte divisor."""
    import numpy as np

    ids = np.asarray(stream.tokens)
    return len(tok.decode_bytes(ids[ids != tok.eot_id].tolist()))


# ------------------------------------------------------------------------------ overfitting data
def overfitting_split(texts: list[str], train_fraction: float) -> dict[str, list[str]]:
    n_train = round(len(texts) * train_fraction)
    return {"train": texts[:n_train], "test": texts[n_train:]}


def prepare_overfitting(params) -> dict:
    """The first N train documents, split train/test, tokenized into OVERFIT_DIR's small caches."""
    from picollm import tokenizer
    from picollm.data.prepare import read_split
    from picollm.data.tokens import write_token_cache
    from picollm.io import write_json

    section = params.sweeps.overfitting
    docs = read_split(paths.PREPARED_DIR, "train")
    if len(docs) < section.documents:
        raise PicoError(
            f"sweeps.overfitting.documents = {section.documents}, but the train split holds only {len(docs)} documents; lower it"
        )
    split = overfitting_split([d.text for d in docs[: section.documents]], section.train_fraction)
    tok = tokenizer.load(paths.TOKENS_DIR)
    counts = {}
    for name, cache in (("train", "train.bin"), ("test", "val.bin")):  # the loop evaluates on val.bin
        counts[name] = write_token_cache(split[name], tok, OVERFIT_DIR / cache, threads=1)
    write_json(OVERFIT_DIR / "texts.json", split)
    summary = {name: {"documents": len(split[name]), "tokens": c["tokens"], "bytes": c["bytes"]} for name, c in counts.items()}
    write_json(OVERFIT_DIR / "meta.json", {"tokenizer": tok.identity, "splits": summary})
    return summary


# ------------------------------------------------------------------------------ memorisation
_WORD = re.compile(r"\S+")


def split_prompt(text: str, words: int) -> tuple[str, str]:
    """(the first `words` words with their original spacing, the rest of the text)."""
    matches = list(_WORD.finditer(text))
    if not matches:
        return "", text
    end = matches[min(words, len(matches)) - 1].end()
    return text[:end], text[end:]


def longest_overlap(words: list[str], corpus: list[str]) -> int:
    """The longest run of consecutive `words` that occurs verbatim (word for word) in one corpus text."""
    padded = [f" {' '.join(text.split())} " for text in corpus]
    best = 0
    for start in range(len(words)):
        length = best + 1  # only a longer run can matter
        while start + length <= len(words) and any(f" {' '.join(words[start:start + length])} " in t for t in padded):
            best = length
            length += 1
    return best


def matching_prefix(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def memorisation_samples(model, tok, texts: dict[str, list[str]], prompt_words: int, samples: int, max_new_tokens: int) -> list[dict]:
    """Greedy continuations of the first words of train and test documents, with their overlaps."""
    from picollm.generation import generate
    from picollm.sampling import SamplingConfig

    rows = []
    for part in ("train", "test"):
        for index, text in enumerate(texts[part][:samples]):
            prompt, rest = split_prompt(text, prompt_words)
            ids = list(generate(model, [tok.eot_id, *tok.encode(prompt)], max_new_tokens=max_new_tokens,
                                sampling=SamplingConfig(greedy=True), eot_id=tok.eot_id))
            continuation = tok.decode(ids)
            words = continuation.split()
            # The same test on the document's real text (as many words) against the other training
            # documents: how much any text of this corpus shares with it, memorised or not.
            others = [t for i, t in enumerate(texts["train"]) if part != "train" or i != index]
            rows.append({
                "part": part,
                "document": index,
                "prompt": prompt,
                "continuation": continuation,
                "words": len(words),
                "longest_overlap_words": longest_overlap(words, texts["train"]),
                "reference_overlap_words": longest_overlap(rest.split()[: max(1, len(words))], others),
                "source_match_words": matching_prefix(words, rest.split()),
            })
    return rows


# ------------------------------------------------------------------------------ one point
def run_point(params, sweep: str, key: str, point: dict[str, Any]) -> tuple[dict, dict]:
    """Train and score one point; returns (its metrics, its timings)."""
    from picollm import tokenizer
    from picollm.data.tokens import TokenStream
    from picollm.evaluate import eval_metrics, load_model
    from picollm.io import read_json
    from picollm.train import TrainJob, train_model

    began = time.perf_counter()
    meta = read_json(paths.TOKENS_META)
    tok = tokenizer.load(paths.TOKENS_DIR)
    train = point_train(params, sweep, point)
    spec = point_spec(params, sweep, point)
    eval_docs = params.sweeps.eval_docs
    splits = {s: TokenStream.open(paths.TOKENS_DIR / f"{s}.bin", tok.vocab_size) for s in ("train", "val", "test")}

    token_dir, limit, train_docs = paths.TOKENS_DIR, None, len(eot_positions(splits["train"], tok.eot_id)) - 1
    if sweep == "corpus_size":
        used = first_documents(splits["train"], tok.eot_id, point["docs"], f"sweeps.corpus_size.docs = {point['docs']}")
        limit, train_docs = len(used), point["docs"]
        used.check_block_size(train.block_size, f"the corpus_size point {key}'s")
        scored = {"train": first_documents(used, tok.eot_id, min(point["docs"], eval_docs), "sweeps.eval_docs")}
    elif sweep == "overfitting":
        token_dir = OVERFIT_DIR
        small = {s: TokenStream.open(OVERFIT_DIR / cache, tok.vocab_size) for s, cache in (("train", "train.bin"), ("test", "val.bin"))}
        train_docs = len(eot_positions(small["train"], tok.eot_id)) - 1
        scored = {"train": small["train"]}
    else:
        scored = {"train": first_documents(splits["train"], tok.eot_id, min(eval_docs, train_docs), "sweeps.eval_docs")}
    for split in ("val", "test"):
        stream = splits[split]
        scored[split] = first_documents(stream, tok.eot_id, min(eval_docs, len(eot_positions(stream, tok.eot_id)) - 1), "sweeps.eval_docs")
    if sweep == "overfitting":
        scored["test"] = small["test"]

    job = TrainJob(
        name=point["model"], spec=spec, train=train, seed=params.seed, token_dir=token_dir,
        vocab_size=meta["vocab_size"], eot_id=meta["eot_id"], tokenizer_identity=meta["identity"],
        model_out=point_checkpoint(sweep, key), checkpoint_dir=point_resume_dir(sweep, key), train_token_limit=limit,
    )
    result = train_model(job)
    model = load_model(job.model_out, tok)
    split_bytes = {split: stream_bytes(stream, tok) for split, stream in scored.items()}
    scores = eval_metrics(model, scored, split_bytes, train.block_size, None, meta["unigram_val_bpb"])

    metrics: dict[str, Any] = {
        "sweep": sweep,
        "point": key,
        **point,
        "steps": train.steps,
        "batch_size": train.batch_size,
        "block_size": train.block_size,
        "lr": train.lr,
        "train_docs": train_docs,
        "train_tokens": train.steps * train.batch_size * train.block_size,
        "params": result.num_params,
        "train_loss": scores["train_loss"],
        "val_loss": scores["val_loss"],
        "test_loss": scores["test_loss"],
        "val_bpb": scores["val_bpb"],
        "history": result.history,
    }
    if sweep == "overfitting":
        section = params.sweeps.overfitting
        texts = read_json(OVERFIT_DIR / "texts.json")
        metrics["samples"] = memorisation_samples(model, tok, texts, section.prompt_words, section.samples, section.max_new_tokens)
    trained_tokens = (train.steps - result.resumed_from) * train.batch_size * train.block_size
    timings = {
        "sweep": sweep,
        "point": key,
        "train_seconds": round(result.seconds, 3),
        "tokens_per_second": round(trained_tokens / max(result.seconds, 1e-9), 1),
        "elapsed_seconds": round(time.perf_counter() - began, 3),
    }
    return metrics, timings


# ------------------------------------------------------------------------------ aggregation
ROW_FIELDS = ("steps", "batch_size", "block_size", "lr", "train_docs", "train_tokens", "params",
              "train_loss", "val_loss", "test_loss", "val_bpb")
TIMING_FIELDS = ("train_seconds", "tokens_per_second", "elapsed_seconds")


def _collect(params, sweep: str) -> list[tuple[dict, dict]]:
    """(metrics, timings) of every point params define, found by value among the point files."""
    from picollm.io import read_json

    axes = [name for name, _, _ in AXES[sweep]]
    found: dict[tuple, tuple[dict, Path]] = {}
    directory = point_metrics(sweep, "x").parent
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        doc = read_json(path)
        if isinstance(doc, dict) and doc.get("sweep") == sweep and all(a in doc for a in axes):
            found[tuple(doc[a] for a in axes)] = (doc, path)
    collected = []
    for point in points(params, sweep):
        entry = found.get(tuple(point[a] for a in axes))
        if entry is None:
            raise PicoError(f"sweep {sweep}: no results for the point {point} in {directory}; run `dvc repro` to train it")
        doc, path = entry
        collected.append((doc, read_json(point_timings(sweep, path.stem))))
    return collected


def _axis_fields(sweep: str) -> list[str]:
    return [name for name, _, _ in AXES[sweep] if name not in ROW_FIELDS]


def tidy_row(sweep: str, doc: dict) -> dict:
    return {"point": doc["point"], **{a: doc[a] for a in _axis_fields(sweep)}, **{f: doc[f] for f in ROW_FIELDS}}


def config_label(row: dict) -> str:
    """A hparam_grid point in words: `gptoss e128 b64 l2 h4 lr0.003 bs8`."""
    return (f"{row['model']} e{row['embed']} b{row['block_size']} l{row['layers']} h{row['heads']} "
            f"lr{row['lr']:g} bs{row['batch_size']}")


def aggregate(params, sweep: str) -> tuple[dict, dict]:
    """The sweep's tidy table (deterministic) and its timings table."""
    _check_sweep(sweep)
    collected = _collect(params, sweep)
    rows = [tidy_row(sweep, doc) for doc, _ in collected]
    table: dict[str, Any] = {"sweep": sweep, "eval_docs": params.sweeps.eval_docs, "rows": rows,
                             "summary": summarize(sweep, rows, [doc for doc, _ in collected])}
    if sweep in ("training_budget", "overfitting"):
        table["curves"] = [
            {"model": doc["model"], "point": doc["point"], "steps": doc["steps"], "step": h["step"],
             "split": "train" if "train_loss" in h else ("test" if sweep == "overfitting" else "val"),
             "loss": h.get("train_loss", h.get("val_loss"))}
            for doc, _ in collected for h in doc["history"]
        ]
    if sweep == "overfitting":
        table["samples"] = [{"model": doc["model"], **s} for doc, _ in collected for s in doc["samples"]]
    timing_rows = [{"point": doc["point"], "model": doc["model"], **{a: doc[a] for a in _axis_fields(sweep)[1:]},
                    **{f: t[f] for f in TIMING_FIELDS}} for doc, t in collected]
    timings = {"sweep": sweep, "rows": timing_rows,
               "total_elapsed_seconds": round(sum(r["elapsed_seconds"] for r in timing_rows), 3)}
    return table, timings


def _by_model(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["model"], []).append(row)
    return grouped


def summarize(sweep: str, rows: list[dict], docs: list[dict]) -> dict:
    """The numbers each finding sentence of the report is made from (scalars: `dvc metrics` shows them)."""
    summary: dict[str, Any] = {}
    if sweep == "corpus_size":
        for model, group in _by_model(rows).items():
            small, large = min(group, key=lambda r: r["docs"]), max(group, key=lambda r: r["docs"])
            summary[model] = {"docs_smallest": small["docs"], "docs_largest": large["docs"],
                              "val_loss_smallest": small["val_loss"], "val_loss_largest": large["val_loss"],
                              "train_loss_smallest": small["train_loss"], "train_loss_largest": large["train_loss"]}
    elif sweep == "training_budget":
        for model, group in _by_model(rows).items():
            short, long = min(group, key=lambda r: r["steps"]), max(group, key=lambda r: r["steps"])
            best = min(group, key=lambda r: (r["val_loss"], r["steps"]))
            summary[model] = {"steps_fewest": short["steps"], "steps_most": long["steps"],
                              "val_loss_fewest": short["val_loss"], "val_loss_most": long["val_loss"],
                              "train_loss_fewest": short["train_loss"], "train_loss_most": long["train_loss"],
                              "best_steps": best["steps"]}
    elif sweep == "overfitting":
        for doc in docs:
            test_curve = [(h["step"], h["val_loss"]) for h in doc["history"] if "val_loss" in h]
            best_step, best_test = min(test_curve, key=lambda item: (item[1], item[0])) if test_curve else (doc["steps"], doc["test_loss"])
            def mean(part: str, field: str, samples=doc["samples"]) -> float:
                values = [s[field] for s in samples if s["part"] == part]
                return round(sum(values) / len(values), 3) if values else 0.0

            summary[doc["model"]] = {
                "train_loss": doc["train_loss"], "test_loss": doc["test_loss"], "gap": round(doc["test_loss"] - doc["train_loss"], ROUND),
                "best_test_loss_logged": best_test, "best_test_step": best_step, "steps": doc["steps"],
                "last_test_loss_logged": test_curve[-1][1] if test_curve else doc["test_loss"],
                "overlap_words_train_prompts": mean("train", "longest_overlap_words"),
                "overlap_words_test_prompts": mean("test", "longest_overlap_words"),
                "source_match_words_train_prompts": mean("train", "source_match_words"),
                "source_match_words_test_prompts": mean("test", "source_match_words"),
                "reference_overlap_words": round(
                    sum(s["reference_overlap_words"] for s in doc["samples"]) / max(1, len(doc["samples"])), 3),
            }
    elif sweep == "hparam_grid":
        for model, group in _by_model(rows).items():
            best = min(group, key=lambda r: (r["val_loss"], r["point"]))
            summary[model] = {"best_point": best["point"], "best_config": config_label(best), "best_val_loss": best["val_loss"],
                              "worst_val_loss": max(r["val_loss"] for r in group)}
        best = min(rows, key=lambda r: (r["val_loss"], r["point"]))
        summary["best"] = {"point": best["point"], "config": config_label(best), "val_loss": best["val_loss"], "val_bpb": best["val_bpb"]}
    return summary
