"""Reliability: determinism, crash-safe resume, divergence, checkpoint integrity, full disks,
and the tokenizer round trip.

Everything trains real (tiny) models on real token caches (the `token_cache` and `reference` fixtures
of conftest.py). Kills of real training processes are in test_process_kills.py.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from picollm import tokenizer as tokenizer_mod
from picollm import train as train_mod
from picollm.checkpoint import MAGIC, load_checkpoint, save_checkpoint
from picollm.config import TrainParams
from picollm.data.tokens import TokenStream, write_token_cache
from picollm.errors import PicoError
from picollm.evaluate import eval_metrics
from picollm.io import write_text
from picollm.models.loading import load_model
from picollm.models.registry import model_config
from picollm.train import train_model

import helpers as H

PICOLLM_DIR = H.PROJECT_ROOT / "picollm"


class SimulatedCrash(Exception):
    """Raised right after a chosen checkpoint is written: the process 'dies' there."""



def crash_after_checkpoint(monkeypatch, at_step: int) -> dict:
    """Make the loop die right after writing the resume checkpoint of `at_step`; returns its bytes."""
    saved = {}

    def save_then_crash(path, payload):
        save_checkpoint(path, payload)
        if Path(path).name == "last.ckpt" and payload["step"] == at_step:
            saved["bytes"] = Path(path).read_bytes()
            raise SimulatedCrash(at_step)

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_crash)
    return saved


def metrics_of(path: Path, tok, token_dir: Path) -> str:
    """The evaluate stage's quality metrics for a saved model, as the JSON text it would write."""
    model = load_model(path, tok)
    streams = {split: TokenStream.open(token_dir / f"{split}.bin", tok.vocab_size) for split in ("val", "test")}
    sizes = {split: 1000 for split in streams}
    return json.dumps(eval_metrics(model, streams, sizes, 32, None, 1.0, eot_id=tok.eot_id), sort_keys=True)


# ------------------------------------------------------------------------------- determinism


def test_same_params_give_byte_identical_model_history_and_metrics(token_cache, reference, tmp_path):
    tok, token_dir = token_cache
    ref_job, ref_result, ref_bytes = reference
    job = H.make_job(tmp_path, tok, token_dir)
    result = train_model(job)
    assert job.model_out.read_bytes() == ref_bytes
    assert result.history == ref_result.history and len(result.history) == 10 + 4
    assert metrics_of(job.model_out, tok, token_dir) == metrics_of(ref_job.model_out, tok, token_dir)
    # The run is complete, so no resume point is left behind.
    assert not (job.checkpoint_dir / "last.ckpt").exists()


def test_another_seed_gives_another_model(token_cache, reference, tmp_path):
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir, seed=1, steps=5, log_every=5, eval_every=5)
    train_model(job)
    assert load_checkpoint(job.model_out)["model"]["head.weight"].ne(
        load_checkpoint(reference[0].model_out)["model"]["head.weight"]).any()


# ----------------------------------------------------------------- crash and resume, in process


def test_crash_then_resume_is_byte_identical_to_an_uninterrupted_run(token_cache, reference, tmp_path, monkeypatch):
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    crash_after_checkpoint(monkeypatch, at_step=10)
    with pytest.raises(SimulatedCrash):
        train_model(job)
    assert not job.model_out.exists()
    monkeypatch.undo()
    result = train_model(job)
    assert result.resumed_from == 10
    assert job.model_out.read_bytes() == reference[2]
    assert result.history == reference[1].history


@pytest.mark.parametrize("part", ["model", "optimizer", "step", "data_rng", "torch_rng"])
def test_every_part_of_the_resume_state_is_restored(token_cache, reference, tmp_path, monkeypatch, part):
    """Swap one part of a step-10 checkpoint for a wrong value: the resumed result must change.

    Together with the byte-identical resume above this shows that each part is both saved and
    restored (torch_rng matters because the model has dropout 0.1).
    """
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    saved = crash_after_checkpoint(monkeypatch, at_step=10)
    with pytest.raises(SimulatedCrash):
        train_model(job)
    monkeypatch.undo()
    payload = load_checkpoint(job.checkpoint_dir / "last.ckpt")
    if part == "model":
        payload["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in payload["model"].items()}
    elif part == "optimizer":
        for state in payload["optimizer"]["state"].values():
            state["exp_avg_sq"] = state["exp_avg_sq"] * 4.0
    elif part == "step":
        payload["step"] = 12
    elif part == "data_rng":
        payload["data_rng"] = torch.Generator().manual_seed(12345).get_state()
    else:
        payload["torch_rng"] = torch.Generator().manual_seed(12345).get_state()
    save_checkpoint(job.checkpoint_dir / "last.ckpt", payload)
    assert (job.checkpoint_dir / "last.ckpt").read_bytes() != saved["bytes"]
    train_model(job)
    assert job.model_out.read_bytes() != reference[2]


def test_sigint_checkpoints_at_the_next_step_and_exits_nonzero_then_resumes(token_cache, reference, tmp_path, monkeypatch):
    """A real SIGINT delivered to this process mid-step, through the loop's own handler."""
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    real_lr = train_mod.learning_rate

    def lr_with_interrupt(step, train):
        if step == 6:  # the 7th step is running when Ctrl-C arrives
            signal.raise_signal(signal.SIGINT)
        return real_lr(step, train)

    monkeypatch.setattr(train_mod, "learning_rate", lr_with_interrupt)
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stopped:
        train_model(job)
    assert stopped.value.code == 128 + signal.SIGINT
    assert load_checkpoint(job.checkpoint_dir / "last.ckpt")["step"] == 7  # not a multiple of checkpoint_every
    assert signal.getsignal(signal.SIGINT) is handler_before  # the loop put the previous handler back
    monkeypatch.undo()
    result = train_model(job)
    assert result.resumed_from == 7
    assert job.model_out.read_bytes() == reference[2]


def test_signal_during_the_last_step_saves_state_and_the_rerun_only_writes_outputs(token_cache, reference, tmp_path, monkeypatch):
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    real_lr = train_mod.learning_rate

    def lr_with_terminate(step, train):
        if step == 19:  # the last step
            signal.raise_signal(signal.SIGTERM)
        return real_lr(step, train)

    monkeypatch.setattr(train_mod, "learning_rate", lr_with_terminate)
    with pytest.raises(SystemExit):
        train_model(job)
    assert load_checkpoint(job.checkpoint_dir / "last.ckpt")["step"] == 20 and not job.model_out.exists()
    monkeypatch.undo()
    assert train_model(job).resumed_from == 20
    assert job.model_out.read_bytes() == reference[2]


def test_a_damaged_or_foreign_resume_point_is_ignored_and_training_starts_over(token_cache, reference, tmp_path, capfd):
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    job.checkpoint_dir.mkdir(parents=True)
    (job.checkpoint_dir / "last.ckpt").write_bytes(reference[2][:1000])  # truncated
    stale_tmp = job.checkpoint_dir / ".last.ckpt.abc123.tmp"  # left by a process killed mid-write
    stale_tmp.write_bytes(b"partial")
    result = train_model(job)
    assert result.resumed_from == 0 and job.model_out.read_bytes() == reference[2]
    assert "not resuming tiny" in capfd.readouterr().err
    assert not stale_tmp.exists()


def test_a_resume_point_of_other_params_is_not_used(token_cache, tmp_path, monkeypatch):
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    crash_after_checkpoint(monkeypatch, at_step=5)
    with pytest.raises(SimulatedCrash):
        train_model(job)
    monkeypatch.undo()
    other = H.make_job(tmp_path, tok, token_dir, lr=0.002)  # same paths, other params
    assert train_model(other).resumed_from == 0


# ------------------------------------------------------------------------------- divergence


def test_a_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(token_cache, tmp_path):
    """lr = 1e30 without clipping blows the weights up after one update.

    The params schema caps train.lr at 1, so the value is set with model_construct: this is the
    training loop's own guard, which must hold whatever produced the divergence.
    """
    tok, token_dir = token_cache
    job = H.make_job(tmp_path, tok, token_dir)
    job.train = TrainParams.model_construct(**{**job.train.model_dump(), "lr": 1e30, "grad_clip": 0.0,
                                               "warmup_steps": 0, "checkpoint_every": 1})
    with pytest.raises(PicoError, match=r"models\.tiny: the (training loss|gradient norm|weight \S+) became (nan|inf|non-finite) at step (\d+) of 20") as err:
        train_model(job)
    failed_step = int(err.value.args[0].split(" at step ")[1].split()[0])
    last = job.checkpoint_dir / "last.ckpt"
    good = load_checkpoint(last)
    assert good["step"] == failed_step - 1
    assert f"the last good checkpoint {last} (step {failed_step - 1}) is kept" in str(err.value)
    assert all(torch.isfinite(t).all() for t in good["model"].values() if t.is_floating_point())
    assert not job.model_out.exists()
    kept = last.read_bytes()
    # Rerunning resumes from that checkpoint and fails the same way; the checkpoint is untouched.
    with pytest.raises(PicoError, match=f"at step {failed_step} of 20"):
        train_model(job)
    assert last.read_bytes() == kept


# -------------------------------------------------------------------------- checkpoint integrity


@pytest.fixture
def checkpoint(reference, tmp_path) -> Path:
    path = tmp_path / "model.ckpt"
    path.write_bytes(reference[2])
    return path


CORRUPTIONS = ["truncated", "truncated in the header", "empty", "one flipped bit in the weights",
               "one flipped bit in the checksum", "a bare torch.save file", "a text file"]


def corrupt_cases(good: bytes) -> dict[str, bytes]:
    body_at = good.index(b"\n") + 1
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    header_flipped = bytearray(good)
    header_flipped[len(MAGIC) + 3] ^= 0x01
    return {
        "truncated": good[: len(good) // 2],
        "truncated in the header": good[:20],
        "empty": b"",
        "one flipped bit in the weights": bytes(flipped),
        "one flipped bit in the checksum": bytes(header_flipped),
        "a bare torch.save file": good[body_at:],
        "a text file": b"hello, I am not a checkpoint\n" * 10,
    }


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_a_damaged_or_foreign_file_is_reported_and_never_loaded(checkpoint, token_cache, case):
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(corrupt_cases(good)[case])
    with pytest.raises(PicoError, match=r"(truncated or corrupted|not a pico-llm checkpoint).*will not be loaded"):
        load_checkpoint(checkpoint)
    with pytest.raises(PicoError):
        load_model(checkpoint, token_cache[0])


def sign(body: bytes) -> bytes:
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_a_correctly_checksummed_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"family": "lstm", "config": {}, "tokenizer": "", "model": _RunsCodeWhenUnpickled(marker)}, buffer,
               pickle_module=pickle)
    path = tmp_path / "evil.ckpt"
    path.write_bytes(sign(buffer.getvalue()))
    with pytest.raises(PicoError, match="could not be read as a weights-only checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_checksummed_file_that_is_not_a_checkpoint_payload_is_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    path = tmp_path / "tensor.ckpt"
    path.write_bytes(sign(buffer.getvalue()))
    with pytest.raises(PicoError, match="was not written by pico-llm"):
        load_checkpoint(path)


def expected_for(spec: dict, vocab_size: int, block_size: int = 32) -> dict:
    config = model_config(spec, vocab_size=vocab_size, block_size=block_size, pad_id=vocab_size - 1)
    return {"family": spec["family"], "config": asdict(config)}


@pytest.mark.parametrize(
    "label, spec, vocab, match",
    [
        ("another family", {"family": "lstm", "d_embed": 32, "hidden": 32, "n_layer": 1}, 300, "family 'transformer', but 'lstm' was"),
        ("another size", {**H.TINY_TRANSFORMER, "d_model": 64}, 300, "d_model=32, but d_model=64"),
        ("another vocab", H.TINY_TRANSFORMER, 512, "vocab_size=300, but vocab_size=512"),
        ("another preset", {**H.TINY_TRANSFORMER, "preset": "llama3lite"}, 300, "rope_base=10000.0, but rope_base=500000.0"),
    ],
)
def test_a_checkpoint_of_another_model_is_refused(checkpoint, label, spec, vocab, match):
    expected = expected_for(spec, vocab)
    with pytest.raises(PicoError, match=f"holds .*{re.escape(match)}.* will not be loaded"):
        load_checkpoint(checkpoint, expect=expected)
    assert load_checkpoint(checkpoint, expect=expected_for(H.TINY_TRANSFORMER, 300))["step"] == 20


def test_a_checkpoint_of_another_tokenizer_is_refused(checkpoint, token_cache):
    other = tokenizer_mod.train_bpe(H.synthetic_texts(200, seed=99), 300)
    assert other.identity != token_cache[0].identity
    with pytest.raises(PicoError, match="was trained with another tokenizer"):
        load_model(checkpoint, other)
    assert load_model(checkpoint, token_cache[0]).num_params() > 0


def test_weights_that_do_not_fit_the_recorded_config_are_refused(checkpoint):
    payload = load_checkpoint(checkpoint)
    payload["config"]["d_ff"] = 96
    save_checkpoint(checkpoint, payload)
    with pytest.raises(PicoError, match="its weights do not fit its recorded config"):
        load_model(checkpoint)


def test_picollm_loads_with_weights_only_true_everywhere():
    """No `weights_only=False` anywhere, and every torch.load call passes weights_only=True."""
    calls = 0
    for path in [*PICOLLM_DIR.rglob("*.py"), *(H.PROJECT_ROOT / "stages").rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        assert "weights_only=False" not in source.replace(" ", ""), path
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                calls += 1
                flags = {kw.arg: kw.value for kw in node.keywords}
                assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
                    f"{path}:{node.lineno} calls torch.load without weights_only=True"
    assert calls >= 1


# ------------------------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB tmpfs: writes past its size fail with ENOSPC from the kernel.

    Mounting needs root (CAP_SYS_ADMIN); where that is not possible the test is run in a
    subprocess under RLIMIT_FSIZE instead (see `run_under_file_size_limit`), which makes the
    kernel fail an over-long write with EFBIG: also real, also no mock.
    """
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             capture_output=True).returncode == 0
    yield mount_point if mounted else None
    if mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


NO_SPACE = {True: "No space left on device", False: "File too large"}  # tmpfs: ENOSPC; RLIMIT_FSIZE: EFBIG


def fill(directory: Path, leave_bytes: int) -> None:
    """Fill the filesystem holding `directory` until about `leave_bytes` remain free."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with open(directory / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))


FULL_DISK_SCRIPT = r"""
import resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import helpers as H
from picollm.checkpoint import load_checkpoint, save_checkpoint
from picollm.data.tokens import write_token_cache
from picollm.errors import PicoError
what, target, limit = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ, so writes fail with EFBIG
try:
    if what == "checkpoint":
        payload = load_checkpoint(target)
        payload["history"] = payload["history"] * 400
        save_checkpoint(target, payload)
    else:
        from picollm import tokenizer
        write_token_cache(H.synthetic_texts(3000), tokenizer.load(target.parent), target, threads=1)
except PicoError as err:
    print(err)
    raise SystemExit(2)
"""


def run_under_file_size_limit(what: str, target: Path, limit: int) -> str:
    result = subprocess.run([H.PYTHON, "-c", FULL_DISK_SCRIPT, str(Path(__file__).parent), what, str(target), str(limit)],
                            capture_output=True, text=True, env=H.stage_env(), timeout=120)
    assert result.returncode == 2, result.stderr
    return result.stdout


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(small_disk, reference, tmp_path):
    directory = small_disk or tmp_path
    target = directory / "last.ckpt"
    target.write_bytes(reference[2])
    if small_disk is None:
        message = run_under_file_size_limit("checkpoint", target, limit=len(reference[2]) + 4096)
    else:
        fill(directory, leave_bytes=8192)
        payload = load_checkpoint(target)
        with pytest.raises(PicoError) as err:
            save_checkpoint(target, payload)
        message = str(err.value)
    assert f"could not write {target}: {NO_SPACE[small_disk is not None]}; " in message, message
    assert "and rerun; the previous file, if any, is untouched" in message
    assert target.read_bytes() == reference[2]
    assert not list(directory.glob(".*.tmp"))


def test_a_full_disk_while_writing_a_token_cache_keeps_the_previous_one(small_disk, token_cache, tmp_path):
    tok, token_dir = token_cache
    directory = small_disk or tmp_path
    tokenizer_mod.save(tok, directory)
    target = directory / "train.bin"
    write_token_cache(H.synthetic_texts(100), tok, target, threads=1)
    before = target.read_bytes()
    if small_disk is None:
        message = run_under_file_size_limit("tokens", target, limit=64 * 1024)
    else:
        fill(directory, leave_bytes=16384)
        with pytest.raises(PicoError) as err:
            write_token_cache(H.synthetic_texts(3000), tok, target, threads=1)
        message = str(err.value)
    assert f"could not write {target}: {NO_SPACE[small_disk is not None]}" in message, message
    assert "the previous file, if any, is untouched" in message
    assert target.read_bytes() == before
    assert not list(directory.glob(".*.tmp"))


def test_outputs_get_ordinary_file_permissions(tmp_path):
    write_text(tmp_path / "out.txt", "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert (tmp_path / "out.txt").stat().st_mode == plain.stat().st_mode


def test_a_missing_parent_that_cannot_be_created_is_a_pico_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PicoError, match="could not write"):
        write_text(tmp_path / "file" / "out.txt", "x")


# ------------------------------------------------------------------------ tokenizer round trip

round_trip_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def gpt2():
    return tokenizer_mod.load_gpt2()


@round_trip_settings
@given(text=st.text(max_size=200))
def test_bpe_round_trips_any_unicode_text(token_cache, text):
    tok = token_cache[0]
    assert tok.decode(tok.encode(text)) == text


@round_trip_settings
@given(text=st.text(max_size=200))
def test_gpt2_round_trips_any_unicode_text(gpt2, text):
    assert gpt2.decode(gpt2.encode(text)) == text


@round_trip_settings
@given(text=st.text(max_size=50).map(lambda s: s + "<|endoftext|>" + s))
def test_the_end_of_text_marker_in_user_text_is_ordinary_text(token_cache, gpt2, text):
    for tok in (token_cache[0], gpt2):
        ids = tok.encode(text)
        assert tok.eot_id not in ids and tok.decode(ids) == text
