"""Bad input: one clear `error:` line naming the thing, exit code 2, no traceback, no partial output.

Each case runs a real stage entry point (`stages.<name>.main`, wrapped by exit_on_pico_error) in
a workspace directory; most in this process to keep the suite fast, and one per stage as a real
`python -m stages.<name>` subprocess, which is where a traceback or a wrong exit code would show.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest

import helpers as H

# What each stage declares as outputs in dvc.yaml (for the tiny model).
OUTPUTS = {
    "prepare": ["data/prepared", "metrics/data.json"],
    "tokenize": ["data/tokens", "metrics/tokenizer.json", "metrics/timings/tokenize.json"],
    "train": ["models/tiny.ckpt", "metrics/timings/train/tiny.json", "metrics/train/tiny", "checkpoints/tiny/last.ckpt"],
    "evaluate": ["reports/samples/tiny.md", "metrics/eval/tiny.json"],
}
STAGE_ARGS = {"train": ("tiny",), "evaluate": ("tiny",)}
STAGES = ("prepare", "tokenize", "train", "evaluate")


def params_with(**dotted) -> dict:
    params = copy.deepcopy(H.smoke_params())
    for path, value in dotted.items():
        *parents, leaf = path.split("__")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return params


def run_up_to(root: Path, last: str) -> tuple[int, str]:
    """Run the stages in order up to `last`; every earlier stage must succeed."""
    for stage in STAGES[: STAGES.index(last) + 1]:
        code, err = H.call_stage(root, stage, *STAGE_ARGS.get(stage, ()))
        if stage != last:
            assert code == 0, err
    return code, err


def assert_clean_failure(code: int, stderr: str, *fragments: str) -> str:
    assert code == 2, stderr
    errors = H.error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    message = errors[0]
    assert not re.search(r"[.!?] [A-Z]", message), f"more than one sentence: {message}"
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_no_outputs(root: Path, stage: str) -> None:
    present = [out for out in OUTPUTS[stage] if (root / out).exists()]
    assert not present, f"{stage} left partial outputs: {present}"
    leftovers = [p for p in root.rglob(".*.tmp")]
    assert not leftovers, leftovers


# ------------------------------------------------------------------------------ data.text.paths


def write_file(relative: str, content: bytes):
    def make(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return make


SEVERAL_MB_LINE = ("once upon a time " * 200_000).encode()  # 3.4 MB, no newline

TEXT_CASES = {
    "missing file": (["corpus", "missing.txt"], None,
                     ["missing.txt (in data.text.paths) does not exist", "expected a UTF-8 .txt file or a folder"]),
    "missing folder": (["corpus", "nowhere/"], None, ["nowhere/ (in data.text.paths) does not exist"]),
    "folder without .txt": (["corpus", "notes"], write_file("notes/a.md", b"# hi\n"),
                            ["folder notes (in data.text.paths) contains no .txt files", "add UTF-8 .txt files"]),
    "empty file": (["corpus"], write_file("corpus/empty.txt", b""),
                   ["corpus/empty.txt is empty or holds only whitespace", "remove it from the corpus or add text"]),
    "whitespace file": (["corpus"], write_file("corpus/blank.txt", b"  \n\t\n\n"), ["corpus/blank.txt is empty"]),
    "binary file": (["corpus"], write_file("corpus/image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
                    ["corpus/image.txt contains a NUL byte at byte offset 8, so it looks binary", "re-save it as UTF-8"]),
    "UTF-16 with BOM": (["corpus"], write_file("corpus/wide.txt", "Once upon a time.\n".encode("utf-16")),
                        ["corpus/wide.txt starts with a UTF-16 byte-order mark", "reads only UTF-8 text"]),
    "UTF-16 without BOM": (["corpus"], write_file("corpus/wide.txt", ("Once upon a time.\n" * 20).encode("utf-16-le")),
                           ["corpus/wide.txt looks like UTF-16", "reads only UTF-8 text"]),
    "Latin-1": (["corpus"], write_file("corpus/cafe.txt", "a caf\xe9\n".encode("latin-1")),
                ["corpus/cafe.txt is not valid UTF-8: byte 0xe9 at byte offset 5 (line 1)"]),
    "a line of several MB": (["corpus"], write_file("corpus/long.txt", SEVERAL_MB_LINE),
                             ["corpus/long.txt line 1 starts a document of 3399999 bytes",
                              "longer than the limit of 1000000 bytes", "split it into shorter lines"]),
    "TinyStories' text format in line mode": (["corpus"], write_file("corpus/valid.txt", b"A story.\n<|endoftext|>\nAnother.\n"),
                                              ["corpus/valid.txt line 2 holds <|endoftext|>, the end-of-text token's text",
                                               "looks like TinyStories' text format", "set data.text.mode: separator"]),
    "a bad file read after good ones": (["corpus"], write_file("corpus/z.txt", "caf\xe9\n".encode("latin-1")),
                                       ["corpus/z.txt is not valid UTF-8: byte 0xe9 at byte offset 3 (line 1)"]),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_bad_text_files_stop_prepare_with_one_sentence(tmp_path, case):
    paths, make, fragments = TEXT_CASES[case]
    root = H.workspace(tmp_path, params_with(data__text__paths=paths))
    if make:
        make(root)
    assert_clean_failure(*H.call_stage(root, "prepare"), *fragments)
    assert_no_outputs(root, "prepare")


def test_a_missing_mix_file_is_named_with_its_key(tmp_path):
    root = H.workspace(tmp_path, params_with(data__mix={"paths": ["extra.txt"], "weight": 0.3}))
    assert_clean_failure(*H.call_stage(root, "prepare"), "extra.txt (in data.mix.paths) does not exist")
    assert_no_outputs(root, "prepare")


def test_a_bad_text_file_fails_the_real_prepare_process_cleanly(tmp_path):
    root = H.workspace(tmp_path)
    (root / "corpus" / "wide.txt").write_bytes("Once upon a time.\n".encode("utf-16"))
    result = H.run_stage(root, "prepare")
    assert_clean_failure(result.returncode, result.stderr, "corpus/wide.txt starts with a UTF-16 byte-order mark")
    assert_no_outputs(root, "prepare")


# ------------------------------------------------------------------------------- corpus too small


def test_a_corpus_too_small_for_the_split_names_the_empty_split(tmp_path):
    root = H.workspace(tmp_path, texts=["Tom had a red ball.", "Mia saw a big dog."])
    assert_clean_failure(*H.call_stage(root, "prepare"), "the val split would be empty (2 documents split as",
                         "raise data.val_fraction or add documents")
    assert_no_outputs(root, "prepare")


def test_a_corpus_too_small_for_the_block_size_stops_train(tmp_path):
    root = H.workspace(tmp_path, params_with(train__block_size=4000))  # val holds about 2,250 tokens, train 18,500
    code, err = run_up_to(root, "train")
    message = assert_clean_failure(code, err, "too few for val block_size 4000", "lower train.block_size or add data")
    assert re.search(r"data/tokens/val\.bin holds \d+ tokens", message)
    assert_no_outputs(root, "train")


@pytest.mark.slow
def test_a_corpus_too_small_for_the_block_size_fails_the_real_train_process_cleanly(tmp_path):
    root = H.workspace(tmp_path, params_with(train__block_size=4000))
    assert run_up_to(root, "tokenize")[0] == 0
    result = H.run_stage(root, "train", "tiny")
    assert_clean_failure(result.returncode, result.stderr, "too few for val block_size 4000")
    assert_no_outputs(root, "train")


# ---------------------------------------------------------------------- unknown names, params


@pytest.mark.parametrize(
    "dotted, fragments",
    [
        ({"data__source": "web"}, ["data.source = 'web' is not allowed", "'stories'", "'tinystories'", "'text'"]),
        ({"tokenizer__kind": "wordpiece"}, ["tokenizer.kind = 'wordpiece' is not allowed", "'bpe'", "'gpt2'"]),
        ({"models__tiny__family": "rnn"}, ["models.tiny.family='rnn' is not allowed", "kgram, lstm, transformer"]),
        ({"models__tiny__preset": "gpt5"}, ["models.tiny.preset='gpt5' is not allowed", "mingpt, gpt2, gptoss, llama3lite"]),
        ({"models__tiny__d_model": 30, "models__tiny__n_head": 4}, ["models.tiny.d_model=30", "multiple of n_head"]),
        ({"models__tiny__n_layer": 11}, ["models.tiny.n_layer=11 is not allowed; the design caps it at 10"]),
        ({"models__tiny__n_head": 4, "models__tiny__n_kv_head": 3}, ["models.tiny.n_kv_head=3", "must divide n_head"]),
        ({"models__tiny__preset": "mingpt", "train__block_size": 2048},
         ["block_size=2048 is not allowed with models.tiny.max_seq_len=1024", "block_size must be <= max_seq_len"]),
        ({"tokenizer__vocab_size": 200}, ["tokenizer.vocab_size = 200 is not allowed", " 257"]),
        ({"data__text__separator": " "}, ["data.text.separator = ' ' is not allowed", "visible text on one line"]),
        ({"data__mix__mode": "sentence"}, ["data.mix.mode = 'sentence' is not allowed", "'line', 'paragraph' or 'separator'"]),
        ({"train__lr": "fast"}, ["train.lr = 'fast' is not allowed", "number"]),
        ({"train__warmup": 5}, ["unknown key 'train.warmup'"]),
    ],
)
@pytest.mark.parametrize("stage", ["prepare", "train"])
def test_invalid_params_stop_every_stage_before_it_writes(tmp_path, dotted, fragments, stage):
    root = H.workspace(tmp_path, params_with(**dotted))
    assert_clean_failure(*H.call_stage(root, stage, *STAGE_ARGS.get(stage, ())), "params.yaml: ", *fragments)
    assert_no_outputs(root, stage)


def test_a_model_name_not_in_params_is_named(finished):
    root = finished
    message = assert_clean_failure(*H.call_stage(root, "train", "nosuchmodel"), "no model named 'nosuchmodel' under models; defined: [")
    assert "'tiny'" in message


# ---------------------------------------------------------------------------------- vocab size


def test_a_vocab_too_large_for_the_corpus_fails_the_real_tokenize_process_cleanly(tmp_path):
    root = H.workspace(tmp_path, params_with(tokenizer__vocab_size=60000))
    assert run_up_to(root, "prepare")[0] == 0
    result = H.run_stage(root, "tokenize")
    message = assert_clean_failure(result.returncode, result.stderr, "tokenizer.vocab_size = 60000 is too large for this corpus",
                                   "lower tokenizer.vocab_size or add data")
    assert re.search(r"its train split supports only \d+ tokens", message)
    assert_no_outputs(root, "tokenize")


def test_a_vocab_too_small_for_the_byte_alphabet_is_refused_by_the_tokenizer_too():
    from picollm.errors import PicoError
    from picollm.tokenizer import build

    with pytest.raises(PicoError, match=r"tokenizer.vocab_size = 200 is too small: a byte-level BPE needs at least 257"):
        build("bpe", 200, H.synthetic_texts(20))
    with pytest.raises(PicoError, match=r"tokenizer.kind = 'sentencepiece' is unknown; allowed: 'bpe', 'gpt2'"):
        build("sentencepiece", 300, [])


# ---------------------------------------------------- previous outputs survive a failing rerun


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A workspace where prepare, tokenize, train and evaluate have all run."""
    root = H.workspace(tmp_path_factory.mktemp("finished"))
    assert run_up_to(root, "evaluate")[0] == 0
    return root


def copy_of(finished: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(finished, root)
    return root


EVERYTHING = ("data", "metrics", "models", "reports", "checkpoints")


@pytest.mark.parametrize(
    "stage, break_it, fragments",
    [
        ("prepare", lambda root: (root / "corpus" / "z.txt").write_bytes(b"\x00\x01binary"),
         ["corpus/z.txt contains a NUL byte"]),
        ("tokenize", lambda root: H.write_params(root, params_with(tokenizer__vocab_size=60000)),
         ["tokenizer.vocab_size = 60000 is too large for this corpus"]),
        # Found while streaming, after a new tokenizer is trained and the train cache encoded: still nothing is replaced.
        ("tokenize", lambda root: (H.write_params(root, params_with(tokenizer__vocab_size=320)),
                                   (root / "data" / "prepared" / "val.jsonl").write_text('{"text": "ok", "source": "text", "logprob": null}\n{damaged\n')),
         ["data/prepared/val.jsonl is damaged (JSONDecodeError); rerun `dvc repro prepare`"]),
        ("train", lambda root: H.write_params(root, params_with(train__block_size=4000)),
         ["too few for val block_size 4000"]),
        ("evaluate", lambda root: (root / "models" / "tiny.ckpt").write_bytes((root / "models" / "tiny.ckpt").read_bytes()[:-10]),
         ["models/tiny.ckpt is truncated or corrupted (checksum mismatch); it will not be loaded"]),
        ("evaluate", lambda root: (root / "data" / "tokens" / "meta.json").write_text("{not json"),
         ["data/tokens/meta.json is not valid JSON"]),
    ],
)
def test_a_failing_rerun_leaves_the_previous_outputs_unchanged(finished, tmp_path, stage, break_it, fragments):
    root = copy_of(finished, tmp_path)
    break_it(root)
    before = H.tree_snapshot(root, *EVERYTHING)
    assert_clean_failure(*H.call_stage(root, stage, *STAGE_ARGS.get(stage, ())), *fragments)
    assert H.tree_snapshot(root, *EVERYTHING) == before


def test_a_model_from_another_tokenizer_is_refused_by_evaluate(finished, tmp_path):
    root = copy_of(finished, tmp_path)
    H.write_params(root, params_with(tokenizer__vocab_size=320))
    assert H.call_stage(root, "tokenize")[0] == 0  # a new tokenizer; the model is now stale
    before = H.tree_snapshot(root, "metrics/eval", "reports")
    assert_clean_failure(*H.call_stage(root, "evaluate", "tiny"), "models/tiny.ckpt was trained with another tokenizer",
                         "retrain it with `dvc repro`")
    assert H.tree_snapshot(root, "metrics/eval", "reports") == before
