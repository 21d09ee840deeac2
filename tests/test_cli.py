"""The `picollm` command, run as a real subprocess on a tiny model trained here for 30 steps."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from picollm import cli
from picollm.checkpoint import save_checkpoint
from picollm.generation import generate
from picollm.models.loading import load_model
from picollm.models.registry import build_model
from picollm.sampling import SamplingConfig
from picollm.tokenizer import load, save, train_bpe

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Once upon a time"
SPEC = {"family": "lstm", "d_embed": 16, "hidden": 32, "n_layer": 1, "dropout": 0.0}
STORIES = [
    "Once upon a time there was a little cat who liked the sun.",
    "The cat played in the garden with a red ball every day.",
    "One day the cat met a small dog, and they became good friends.",
    "They ran and jumped together, and at night they slept by the fire.",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A directory laid out like the pipeline's outputs: data/tokens/ and models/tiny.ckpt."""
    root = tmp_path_factory.mktemp("cli")
    tok = train_bpe(STORIES * 10, vocab_size=300)
    save(tok, root / "data" / "tokens")
    corpus = torch.tensor([i for story in STORIES for i in [tok.eot_id, *tok.encode(story)]])
    torch.manual_seed(0)
    block = 24
    model = build_model(SPEC, vocab_size=tok.vocab_size, block_size=block, pad_id=tok.eot_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    batches = torch.Generator().manual_seed(0)
    for _ in range(30):
        starts = torch.randint(0, len(corpus) - block - 1, (8,), generator=batches)
        x = torch.stack([corpus[s : s + block] for s in starts])
        y = torch.stack([corpus[s + 1 : s + block + 1] for s in starts])
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 4.0, "the tiny model did not learn anything"  # ln(300) = 5.7 at random
    save_checkpoint(
        root / "models" / "tiny.ckpt",
        {"family": model.family, "config": dataclasses.asdict(model.config), "tokenizer": tok.identity, "model": model.state_dict()},
    )
    return root


def picollm(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "picollm", *args], cwd=project, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120
    )


def library_sample(project: Path, sampling: SamplingConfig, seed: int, max_new_tokens: int, use_cache: bool = True) -> str:
    tok = load(project / "data" / "tokens")
    model = load_model(project / "models" / "tiny.ckpt", tok)
    ids = generate(
        model, [tok.eot_id, *tok.encode(PROMPT)], max_new_tokens=max_new_tokens, sampling=sampling,
        eot_id=tok.eot_id, generator=torch.Generator().manual_seed(seed), use_cache=use_cache,
    )
    return PROMPT + tok.decode(list(ids))


@pytest.mark.slow
def test_seeded_samples_are_reproducible_and_match_the_library(project):
    args = ["generate", "--model", "tiny", "--seed", "1", "--num-samples", "3", "--max-new-tokens", "20"]
    first, again = picollm(project, *args), picollm(project, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout  # same seed, same text
    samples = first.stdout.removesuffix("\n").split("\n" + cli.SAMPLE_SEPARATOR + "\n")
    assert len(samples) == 3
    assert all(sample.startswith(PROMPT) for sample in samples)
    assert len(set(samples)) > 1  # sample i uses seed 1 + i: different seeds give different text
    # Streaming token by token prints exactly what decoding the whole sample gives.
    for index, sample in enumerate(samples):
        assert sample == library_sample(project, SamplingConfig(top_p=0.9), seed=1 + index, max_new_tokens=20)


@pytest.mark.slow
def test_greedy_output_equals_the_library_greedy_decode(project):
    result = picollm(
        project, "generate", "--checkpoint", "models/tiny.ckpt", "--tokenizer", "data/tokens",
        "--greedy", "--no-cache", "--max-new-tokens", "25",
    )
    assert result.returncode == 0, result.stderr
    expected = library_sample(project, SamplingConfig(greedy=True), seed=0, max_new_tokens=25, use_cache=False)
    assert result.stdout == expected + "\n"


@pytest.mark.slow
def test_an_untrained_model_names_its_file_and_how_to_train_it(project):
    result = picollm(project, "generate", "--model", "big")
    assert result.returncode != 0
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert str(Path("models") / "big.ckpt") in message
    assert "`dvc repro train@big`" in message
    assert "trained models: tiny" in message


def test_a_model_missing_from_params_is_reported_as_such(project, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("models:\n  small: {family: lstm}\n  large: {family: lstm}\n")
    message = cli.missing_model_message("smal", Path("models/smal.ckpt"))
    assert "params.yaml defines no such model (defined: large, small)" in message
    assert "`dvc repro train@smal`" in message
    assert "no model under models/ is trained yet" in message
    assert "defines no such model" not in cli.missing_model_message("small", Path("models/small.ckpt"))


@pytest.mark.slow
def test_top_p_above_one_is_refused_before_loading_anything(project):
    result = picollm(project, "generate", "--model", "tiny", "--top-p", "1.5")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --top-p 1.5 is not allowed; it must lie in (0, 1]"


@pytest.mark.slow
def test_models_lists_the_trained_models(project):
    result = picollm(project, "models")
    assert result.returncode == 0, result.stderr
    tok = load(project / "data" / "tokens")
    params = load_model(project / "models" / "tiny.ckpt", tok).num_params()
    assert any(line.split()[:3] == ["tiny", "lstm", f"{params:,}"] for line in result.stdout.splitlines())


# ---------------------------------------------------------------- streaming, in process


class RecordingOutput(io.StringIO):
    """Remembers what each flush had made visible, i.e. what a terminal would show over time."""

    def __init__(self):
        super().__init__()
        self.snapshots: list[str] = []

    def flush(self) -> None:
        self.snapshots.append(self.getvalue())


def test_characters_split_across_tokens_print_once_complete(project):
    tok = load(project / "data" / "tokens")
    text = " café 😀!"
    ids = tok.encode(text)
    assert len(ids) > len(text.split()) + 3, "the tokenizer should split é and the emoji into byte tokens"
    out = RecordingOutput()
    streamer = cli.TextStreamer(tok, out)
    for token_id in ids:
        streamer.add(token_id)
        assert "\ufffd" not in out.getvalue()  # never half a character
    streamer.finish()
    assert out.getvalue() == text
    visible = [snapshot for i, snapshot in enumerate(out.snapshots) if i == 0 or snapshot != out.snapshots[i - 1]]
    assert visible[-1] == text and len(visible) > 2  # printed incrementally, not all at the end


def test_invalid_utf8_is_replaced_as_the_tokenizer_does(project):
    tok = load(project / "data" / "tokens")
    ids = tok.encode("é")[:1] + tok.encode(" ok")  # the first byte of é, never completed
    out = io.StringIO()
    cli.stream_sample(tok, ids, "x", out)
    assert out.getvalue() == "x" + tok.decode(ids) + "\n"
    assert "\ufffd" in out.getvalue()
