"""Small, fast building blocks for the reliability tests.

- `synthetic_texts`: a deterministic corpus of short stories made from word lists (no other module
  needed, so these tests do not depend on the story generator being finished).
- `make_token_dir`: a real BPE tokenizer and real token caches, laid out exactly as the tokenize
  stage writes them (data/tokens/{tokenizer.*,train.bin,val.bin,test.bin,meta.json}).
- `make_job`: a `TrainJob` for a tiny model on such a cache.
- `workspace`: a directory the real stages run in (`python -m stages.NAME` with cwd set to it):
  params.yaml plus data; the project root goes on PYTHONPATH, so nothing is copied.
- `run_stage` / `call_stage`: one stage, in a subprocess or in this process (same `main`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from picollm import tokenizer as tokenizer_mod
from picollm.config import TrainParams
from picollm.data.tokens import write_token_cache
from picollm.io import write_json
from picollm.train import TrainJob

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# A transformer small enough to train 20 steps in well under a second, with dropout so that the
# torch RNG state matters to the result (a resume that forgot it would diverge).
TINY_TRANSFORMER = {
    "family": "transformer", "preset": "gptoss", "d_model": 32, "n_head": 2, "n_kv_head": 2,
    "n_layer": 1, "d_ff": 64, "dropout": 0.1,
}
TINY_TRAIN = {
    "steps": 20, "batch_size": 4, "block_size": 32, "lr": 0.003, "warmup_steps": 2, "log_every": 2,
    "eval_every": 5, "eval_batches": 2, "checkpoint_every": 5, "threads": 1,
}

_NAMES = ["Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Ivy", "Max"]
_THINGS = ["a red ball", "a small boat", "an old map", "a blue kite", "a shiny key", "a warm hat"]
_PLACES = ["the park", "the river", "the garden", "the hill", "the market", "the forest"]
_FEELINGS = ["happy", "sad", "brave", "sleepy", "curious", "proud"]


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """`count` distinct little stories; the same list for the same (count, seed), on any machine."""
    rng = random.Random(seed)
    texts = []
    for index in range(count):
        name, friend = rng.sample(_NAMES, 2)
        sentences = [
            f"{name} found {rng.choice(_THINGS)} near {rng.choice(_PLACES)}.",
            f"{name} was {rng.choice(_FEELINGS)} and showed it to {friend}.",
            f"Together they went to {rng.choice(_PLACES)} and played until dark.",
            f"That was day {index} of their summer.",
        ]
        texts.append(" ".join(sentences[: 2 + rng.randrange(3)] + sentences[3:]))
    return texts


def make_token_dir(directory: Path, texts: list[str] | None = None, vocab_size: int = 300) -> tokenizer_mod.Tokenizer:
    """Train a BPE on the texts and write the token caches and meta.json like the tokenize stage."""
    texts = texts if texts is not None else synthetic_texts(300)
    splits = {"train": texts[: len(texts) * 8 // 10], "val": texts[len(texts) * 8 // 10 : len(texts) * 9 // 10]}
    splits["test"] = texts[len(texts) * 9 // 10 :]
    tok = tokenizer_mod.train_bpe(splits["train"], vocab_size)
    tokenizer_mod.save(tok, directory)
    for split, split_texts in splits.items():
        write_token_cache(split_texts, tok, directory / f"{split}.bin", threads=1)
    write_json(directory / "meta.json", {"kind": tok.kind, "vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "identity": tok.identity})
    return tok


def make_job(work: Path, tok: tokenizer_mod.Tokenizer, token_dir: Path, spec: dict | None = None, seed: int = 0,
             name: str = "tiny", **train) -> TrainJob:
    return TrainJob(
        name=name, spec=dict(spec or TINY_TRANSFORMER), train=TrainParams(**{**TINY_TRAIN, **train}), seed=seed,
        token_dir=token_dir, vocab_size=tok.vocab_size, eot_id=tok.eot_id, tokenizer_identity=tok.identity,
        model_out=work / "models" / f"{name}.ckpt", checkpoint_dir=work / "checkpoints" / name,
    )


# ------------------------------------------------------------------------------------ stages


def smoke_params(**sections) -> dict:
    """Complete, small params reading the workspace's text corpus, with the `tiny` model; sections override.

    Built on profiles/smoke.yaml (whose models stay defined, so sections that refer to them, e.g.
    sweeps, remain valid); data, tokenizer, train and evaluate are replaced by tiny settings.
    """
    params = yaml.safe_load((PROJECT_ROOT / "profiles" / "smoke.yaml").read_text(encoding="utf-8"))
    params.update({
        "seed": 7,
        "data": {"source": "text", "text": {"paths": ["corpus"], "mode": "line"}, "val_fraction": 0.1, "test_fraction": 0.1},
        "tokenizer": {"kind": "bpe", "vocab_size": 300, "encode_threads": 1},
        "train": dict(TINY_TRAIN),
        "evaluate": {"max_new_tokens": 4, "num_samples": 1},
    })
    params["models"] = {**params["models"], "tiny": dict(TINY_TRANSFORMER)}
    for key, value in sections.items():
        params[key] = value
    return params


def workspace(root: Path, params: dict | str | None = None, texts: list[str] | None = None) -> Path:
    """A directory the stages can run in: params.yaml and corpus/stories.txt (one story per line)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus").mkdir(exist_ok=True)
    texts = texts if texts is not None else synthetic_texts(300)
    (root / "corpus" / "stories.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    write_params(root, params if params is not None else smoke_params())
    return root


def write_params(root: Path, params: dict | str) -> None:
    text = params if isinstance(params, str) else yaml.safe_dump(params, sort_keys=False)
    (root / "params.yaml").write_text(text, encoding="utf-8")


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop("WORLD_SIZE", None)
    return env


def stage_command(stage: str, *args: str) -> list[str]:
    return [PYTHON, "-m", f"stages.{stage}", *args]


def run_stage(root: Path, stage: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real entry point, `python -m stages.<stage> ARGS`, with the workspace as cwd."""
    return subprocess.run(stage_command(stage, *args), cwd=root, env=stage_env(), capture_output=True, text=True, timeout=timeout)


def start_stage(root: Path, stage: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(stage_command(stage, *args), cwd=root, env=stage_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def call_stage(root: Path, stage: str, *args: str) -> tuple[int, str]:
    """Run stages.<stage>.main in this process (cwd = root): (exit code, stderr).

    The same `main` as the subprocess runs, minus the interpreter start-up; anything but a
    PicoError propagates, so a traceback fails the test.
    """
    from picollm.params import load_cached

    # load_params caches on (path, mtime): a rewritten params.yaml within one mtime tick, or the
    # relative "params.yaml" of another workspace, would otherwise hit a stale entry.
    load_cached.cache_clear()
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.syspath_prepend(str(PROJECT_ROOT))
        patch.chdir(root)
        module = importlib.import_module(f"stages.{stage}")
        try:
            module.main(*args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, stderr.getvalue()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def tree_snapshot(root: Path, *subdirs: str) -> dict[str, bytes]:
    """Every file under the given subdirectories of root, as {relative path: bytes}."""
    files = {}
    for sub in subdirs:
        base = root / sub
        if base.is_file():
            files[sub] = base.read_bytes()
        elif base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files
