"""Streaming `prepare` and `tokenize`: the same bytes as the in-memory rule, in bounded memory.

`build_corpus` + `write_splits` + `corpus_stats` (lists in memory) is the specification; the
streaming `prepare_corpus` must write byte-identical splits and equal statistics for every
source and mix, with the chunk sizes shrunk so every merge and block boundary is exercised.
The memory test runs the real stages in subprocesses and reads their peak RSS.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from picollm import tokenizer as tokenizer_mod
from picollm.config import END_OF_TEXT, DataParams
from picollm.data import dedup, text_source, tokens
from picollm.data.dedup import TextDeduplicator
from picollm.data.prepare import SPLITS, build_corpus, corpus_stats, prepare_corpus, read_split, write_splits
from picollm.data.tinystories import write_local_hub_layout
from picollm.errors import PicoError

import helpers as H


def tinystories_file(path, stories: list[str]) -> str:
    path.write_text("".join(f"{story}\n{END_OF_TEXT}\n" for story in stories), encoding="utf-8")
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    """Text inputs with repeats inside each file and across the main and custom sources."""
    stories = H.synthetic_texts(400, seed=3)
    multi_line = [f"{a}\n\n{b}" for a, b in zip(stories[::2], stories[1::2])]
    tinystories_file(tmp_path / "main.txt", multi_line + multi_line[:30])
    (tmp_path / "custom").mkdir()
    custom = H.synthetic_texts(120, seed=9) + stories[:10]  # 10 repeat the stories source
    (tmp_path / "custom" / "lines.txt").write_text("\n".join(custom + custom[:15]) + "\n", encoding="utf-8")
    tinystories_file(tmp_path / "custom.txt", multi_line[:25] + [f"custom story {i}.\nline two" for i in range(40)])
    write_local_hub_layout(tmp_path / "hub", {"train": stories + stories[:20] + ["", f"a{END_OF_TEXT}b"]})
    return tmp_path


def data_params(**data) -> DataParams:
    return DataParams.model_validate({"val_fraction": 0.1, "test_fraction": 0.1, **data})


CONFIGS = {
    "stories": lambda p: {"source": "stories", "stories": {"count": 300}},
    "text separator": lambda p: {"source": "text", "text": {"paths": [str(p / "main.txt")], "mode": "separator"}},
    "tinystories": lambda p: {"source": "tinystories", "tinystories": {"subset": 420, "path": str(p / "hub")}},
    "mix lines": lambda p: {"source": "stories", "stories": {"count": 300}, "mix": {"paths": [str(p / "custom")], "mode": "line", "weight": 0.3}},
    "mix limit": lambda p: {"source": "stories", "stories": {"count": 300}, "mix": {"paths": [str(p / "custom")], "mode": "line", "weight": 0.2, "limit": 7}},
    "mix only": lambda p: {"source": "stories", "stories": {"count": 300}, "mix": {"paths": [str(p / "custom")], "mode": "line", "weight": 1.0, "limit": 60}},
    "mix separator": lambda p: {
        "source": "text", "text": {"paths": [str(p / "main.txt")], "mode": "separator"},
        "mix": {"paths": [str(p / "custom.txt")], "mode": "separator", "weight": 0.1},
    },
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_streaming_prepare_writes_the_in_memory_bytes(inputs, tmp_path, monkeypatch, config):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # not the home cache
    data = data_params(**CONFIGS[config](inputs))
    memory = build_corpus(data, seed=5)
    write_splits(memory, tmp_path / "memory")
    monkeypatch.setattr(dedup, "MERGE_EVERY", 16)
    monkeypatch.setattr(text_source, "READ_BLOCK_BYTES", 100)
    stats = prepare_corpus(data, seed=5, directory=tmp_path / "streamed")
    for name in SPLITS:
        assert (tmp_path / "streamed" / f"{name}.jsonl").read_bytes() == (tmp_path / "memory" / f"{name}.jsonl").read_bytes(), name
    assert stats == corpus_stats(memory)
    assert sum(part["documents"] for part in stats["splits"].values()) >= 60
    texts = [doc.text for name in SPLITS for doc in read_split(tmp_path / "streamed", name)]
    assert len(set(texts)) == len(texts) and not any(END_OF_TEXT in text for text in texts)


def test_streamed_stats_keep_the_entropy_floor_of_generated_stories(tmp_path):
    stats = prepare_corpus(data_params(source="stories", stories={"count": 200}), seed=1, directory=tmp_path / "out")
    assert stats["entropy_floor_bpb"] > 0 and stats["entropy_floor_nats_per_story"] > stats["entropy_floor_name_nats_per_story"] > 0


def test_a_bad_input_late_in_the_stream_leaves_no_output_and_no_folder(inputs, tmp_path):
    (inputs / "late").mkdir()
    tinystories_file(inputs / "late" / "a.txt", H.synthetic_texts(300))
    (inputs / "late" / "b.txt").write_bytes(b"fine line\nbad \xff byte\n")
    data = data_params(source="text", text={"paths": [str(inputs / "late")], "mode": "separator"})
    with pytest.raises(PicoError, match=r"late/b.txt is not valid UTF-8: byte 0xff at byte offset 14 \(line 2\)"):
        prepare_corpus(data, seed=0, directory=tmp_path / "out" / "prepared")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- exact dedup


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.sampled_from(["a", "b", "ab", "ba", "abc", "é", "", "x" * 9, "y" * 9]), max_size=80))
def test_dedup_is_exact_even_when_every_text_shares_a_hash(texts):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup, "text_hash", len)  # equal lengths collide: only the byte check tells them apart
        patch.setattr(dedup, "MERGE_EVERY", 3)
        with TextDeduplicator() as seen:
            kept = [text for text in texts if seen.add(text)]
    assert kept == list(dict.fromkeys(texts))


# ---------------------------------------------------------------------------- token caches


def reference_cache(texts: list[str], tok) -> bytes:
    """The token cache layout, built in memory: <eot> doc_1 <eot> doc_2 <eot> ..."""
    ids = [tok.eot_id] + [i for text in texts for i in tok.encode(text) + [tok.eot_id]]
    return np.array(ids, dtype=tokens.token_dtype(tok.vocab_size)).tobytes()


def test_streamed_token_cache_and_counts_match_the_in_memory_layout(tmp_path, monkeypatch):
    texts = H.synthetic_texts(50)
    tok = tokenizer_mod.train_bpe(texts, 300)
    monkeypatch.setattr(tokens, "ENCODE_CHUNK", 7)
    counts = tokens.write_token_cache(iter(texts), tok, tmp_path / "c.bin", threads=2)
    expected = reference_cache(texts, tok)
    assert (tmp_path / "c.bin").read_bytes() == expected
    ids = np.frombuffer(expected, dtype=np.uint16)
    assert counts["tokens"] == len(ids) and counts["bytes"] == sum(len(t.encode()) for t in texts)
    assert np.array_equal(counts["counts"], np.bincount(ids, minlength=tok.vocab_size))


def test_unigram_baseline_is_the_whole_array_sum_in_one_chunk_and_close_in_many(tmp_path, monkeypatch):
    texts = H.synthetic_texts(80)
    tok = tokenizer_mod.train_bpe(texts, 300)
    train = tokens.write_token_cache(texts[:60], tok, tmp_path / "train.bin", threads=1)
    val = tokens.write_token_cache(texts[60:], tok, tmp_path / "val.bin", threads=1)
    train_ids = np.fromfile(tmp_path / "train.bin", dtype=np.uint16)
    val_ids = np.fromfile(tmp_path / "val.bin", dtype=np.uint16)
    # The former formula, on the whole arrays.
    logp = np.log((np.bincount(train_ids, minlength=tok.vocab_size) + 1.0) / (len(train_ids) + tok.vocab_size))
    whole = float(-logp[val_ids[1:]].sum() / np.log(2.0) / val["bytes"])
    assert tokens.unigram_bpb(train["counts"], tmp_path / "val.bin", tok.vocab_size, val["bytes"]) == whole
    monkeypatch.setattr(tokens, "READ_CHUNK_TOKENS", 5)
    chunked = tokens.unigram_bpb(train["counts"], tmp_path / "val.bin", tok.vocab_size, val["bytes"])
    assert chunked == pytest.approx(whole, rel=1e-12)


def test_the_bpe_learns_from_all_of_a_small_split_and_a_hash_sample_of_a_large_one(monkeypatch):
    texts = [f"document number {i}" for i in range(2000)]
    assert list(tokens.bpe_training_texts(iter(texts), split_bytes=tokens.BPE_SAMPLE_BYTES)) == texts
    monkeypatch.setattr(tokens, "BPE_SAMPLE_BYTES", 1000)
    sample = list(tokens.bpe_training_texts(iter(texts), split_bytes=4000))  # a quarter
    assert 400 <= len(sample) <= 600 and sample == [t for t in texts if t in set(sample)]
    assert list(tokens.bpe_training_texts(iter(texts), split_bytes=4000)) == sample


def test_the_tokenize_stage_writes_the_in_memory_tokenizer_and_caches_silently(tmp_path):
    params = H.smoke_params()
    params["data"] = {"source": "text", "text": {"paths": ["corpus"], "mode": "separator"}, "val_fraction": 0.1, "test_fraction": 0.1}
    root = H.workspace(tmp_path, params)
    (root / "corpus" / "stories.txt").unlink()
    tinystories_file(root / "corpus" / "valid.txt", [f"{a}\n{b}" for a, b in zip(H.synthetic_texts(600)[::2], H.synthetic_texts(600)[1::2])])
    for stage in ("prepare", "tokenize"):
        code, stderr = H.call_stage(root, stage)
        assert (code, stderr) == (0, ""), stderr  # no progress bar when stderr is not a terminal
    splits = {name: [doc.text for doc in read_split(root / "data" / "prepared", name)] for name in SPLITS}
    assert sum(map(len, splits.values())) == 300 and all("\n" in text for text in splits["train"])
    tok = tokenizer_mod.train_bpe(splits["train"], 300)
    assert tokenizer_mod.load(root / "data" / "tokens").identity == tok.identity
    for name in SPLITS:
        assert (root / "data" / "tokens" / f"{name}.bin").read_bytes() == reference_cache(splits[name], tok), name


# ---------------------------------------------------------------------------- bounded memory

MEASURE = """
import runpy, sys
from pathlib import Path
from picollm.data import dedup, prepare, text_source, tokens
# Chunks far smaller than the corpus, so that the test corpus is many chunks long.
text_source.READ_BLOCK_BYTES = 1 << 16
dedup.MERGE_EVERY = 1 << 12
tokens.ENCODE_CHUNK = 512
tokens.BPE_SAMPLE_BYTES = 2_000_000
try:
    runpy.run_module("stages." + sys.argv[1], run_name="__main__")
finally:
    # VmHWM, not getrusage: ru_maxrss carries over the forking parent's peak (here: pytest's).
    status = Path("/proc/self/status").read_text()
    print("peak_rss_kb", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
"""
# Peak RSS may grow by at most this much from a 2.6 MB to a 26 MB corpus (the in-memory path
# grows by more than the corpus size), and never exceed PEAK_BOUND_MB (docs/data.md).
GROWTH_BOUND_MB = 12
PEAK_BOUND_MB = 150


def peak_rss_mb(root, stage: str) -> float:
    result = subprocess.run([sys.executable, "-c", MEASURE, stage], cwd=root, env=H.stage_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return int(result.stderr.rsplit("peak_rss_kb ", 1)[1]) / 1024


def corpus_workspace(root, documents: int):
    params = H.smoke_params()
    params["data"] = {"source": "text", "text": {"paths": ["corpus"], "mode": "separator"}, "val_fraction": 0.05, "test_fraction": 0.05}
    root = H.workspace(root, params, texts=[])
    (root / "corpus" / "stories.txt").unlink()
    rng = random.Random(documents)
    words = [f"word{i}" for i in range(300)]
    stories = (" ".join(rng.choices(words, k=30)) + f".\nStory {i} ends here." for i in range(documents))
    tinystories_file(root / "corpus" / "big.txt", list(stories))
    return root


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from Linux's /proc/self/status")
@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    small = corpus_workspace(tmp_path / "small", 10_000)
    large = corpus_workspace(tmp_path / "large", 100_000)
    assert os.path.getsize(large / "corpus" / "big.txt") > 20_000_000
    peaks = {stage: (peak_rss_mb(small, stage), peak_rss_mb(large, stage)) for stage in ("prepare", "tokenize")}
    report = json.dumps(peaks)
    for at_small, at_large in peaks.values():
        assert at_large - at_small < GROWTH_BOUND_MB, report
        assert at_large < PEAK_BOUND_MB, report
    assert json.loads((large / "metrics" / "data.json").read_text())["splits"]["train"]["documents"] > 85_000
