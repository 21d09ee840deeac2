"""Muon beside AdamW, training snapshots and story-aligned crops: what they touch, and that a killed
run still resumes byte-identically with each of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from picollm import train as train_mod
from picollm.checkpoint import load_checkpoint, save_checkpoint
from picollm.config import TrainParams
from picollm.data.tokens import TokenStream
from picollm.device import ProcessGroup
from picollm.models.registry import build_model
from picollm.optim import Muon, MuonWithAdamW, hidden_matrices, make_optimizer
from picollm.train import draw_batch, story_starts, train_model

import helpers as H

MUON = {"optimizer": "muon", "steps": 12, "eval_every": 4, "checkpoint_every": 4, "log_every": 2}


class SimulatedCrash(Exception):
    pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("optim_tokens")
    return H.make_token_dir(directory), directory


def names_of(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> set[str]:
    ids = {id(p) for p in params}
    return {name for name, p in model.named_parameters() if id(p) in ids}



def _muon_steps(make, steps: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(rows, cols)) for rows, cols in ((16, 48), (48, 16), (24, 24))]
    optimizer = make(params)
    for step in range(steps):
        generator = torch.Generator().manual_seed(step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    return [p.detach().clone() for p in params]


def test_our_muon_is_torchs_update_with_newton_schulz_in_the_dtype_asked_for():
    settings = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.95, "adjust_lr_fn": "match_rms_adamw"}
    reference = _muon_steps(lambda ps: torch.optim.Muon(ps, **settings))
    in_bf16 = _muon_steps(lambda ps: Muon(ps, dtype=torch.bfloat16, **settings))
    in_fp32 = _muon_steps(lambda ps: Muon(ps, **settings))
    assert all(torch.equal(a, b) for a, b in zip(reference, in_bf16))  # torch's own update, bit for bit
    assert not all(torch.equal(a, b) for a, b in zip(reference, in_fp32))
    assert all(torch.allclose(a, b, atol=0.02) for a, b in zip(reference, in_fp32))  # the same update, rounded less


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    tied = build_model({"family": "transformer", "preset": "mingpt", "d_model": 16, "n_head": 2, "n_layer": 2, "d_ff": 32},
                       vocab_size=50, block_size=8, pad_id=0)
    assert names_of(tied, hidden_matrices(tied)) == {
        f"blocks.{i}.{part}.weight" for i in range(2) for part in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    untied = build_model({"family": "transformer", "preset": "gptoss", "d_model": 16, "n_head": 2, "n_kv_head": 2,
                          "n_layer": 1, "d_ff": 32}, vocab_size=50, block_size=8, pad_id=0)
    assert "head.weight" not in names_of(untied, hidden_matrices(untied))
    assert "tok_emb.weight" not in names_of(untied, hidden_matrices(untied))
    lstm = build_model({"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 1}, vocab_size=50, block_size=8, pad_id=0)
    assert names_of(lstm, hidden_matrices(lstm)) == {"lstm.weight_ih_l0", "lstm.weight_hh_l0"}

    optimizer = make_optimizer(tied, TrainParams(optimizer="muon"))
    assert isinstance(optimizer, MuonWithAdamW)
    muon_ids = {id(p) for g in optimizer.muon.param_groups for p in g["params"]}
    adamw_ids = {id(p) for g in optimizer.adamw.param_groups for p in g["params"]}
    assert not muon_ids & adamw_ids and muon_ids | adamw_ids == {id(p) for p in tied.parameters()}
    assert isinstance(make_optimizer(tied, TrainParams()), torch.optim.AdamW)


def test_the_loop_sets_the_learning_rate_of_both_optimizers(cache, tmp_path):
    tok, token_dir = cache
    job = H.make_job(tmp_path, tok, token_dir, optimizer="muon", steps=2, warmup_steps=10)
    model = build_model(job.spec, vocab_size=tok.vocab_size, block_size=job.train.block_size, pad_id=tok.eot_id)
    optimizer = make_optimizer(model, job.train)
    stream = TokenStream.open(token_dir / "train.bin", tok.vocab_size)
    batch = stream.batch(torch.Generator().manual_seed(0), job.train.batch_size, job.train.block_size)
    train_mod.train_step(model, model, optimizer, batch, 3, job.train, torch.device("cpu"), ProcessGroup(), job.train.batch_size, 1)
    expected = train_mod.learning_rate(3, job.train)
    assert [g["lr"] for g in optimizer.muon.param_groups] == [expected]
    assert {g["lr"] for g in optimizer.adamw.param_groups} == {expected}


def crash_after(monkeypatch, at_step: int) -> None:
    def save_then_crash(path, payload):
        save_checkpoint(path, payload)
        if Path(path).name == "last.ckpt" and payload["step"] == at_step:
            raise SimulatedCrash(at_step)

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_crash)


@pytest.mark.parametrize("crop", ["random", "story"])
def test_a_killed_muon_run_with_snapshots_resumes_byte_identically(cache, tmp_path, monkeypatch, crop):
    tok, token_dir = cache
    snapshots = {}
    for run in ("whole", "resumed"):
        job = dataclasses.replace(H.make_job(tmp_path / run, tok, token_dir, **MUON, snapshots=True, crop=crop),
                                  snapshot_dir=tmp_path / run / "snapshots")
        if run == "resumed":
            crash_after(monkeypatch, at_step=8)
            with pytest.raises(SimulatedCrash):
                train_model(job)
            state = load_checkpoint(job.checkpoint_dir / "last.ckpt")
            assert set(state["optimizer"]) == {"muon", "adamw"} and state["optimizer"]["muon"]["state"]
            monkeypatch.undo()
        result = train_model(job)
        assert result.resumed_from == (8 if run == "resumed" else 0)
        snapshots[run] = {p.name: p.read_bytes() for p in sorted(job.snapshot_dir.iterdir())}
        snapshots[run]["model"] = job.model_out.read_bytes()
    assert snapshots["resumed"] == snapshots["whole"]
    assert sorted(snapshots["whole"]) == ["model", "step-000004.ckpt", "step-000008.ckpt", "step-000012.ckpt"]
    final = load_checkpoint(tmp_path / "whole" / "snapshots" / "step-000012.ckpt")
    assert final["step"] == 12 and final["model"].keys() == load_checkpoint(tmp_path / "whole" / "models" / "tiny.ckpt")["model"].keys()


def test_muon_and_adamw_train_different_models(cache, tmp_path):
    tok, token_dir = cache
    jobs = [H.make_job(tmp_path / kind, tok, token_dir, optimizer=kind, steps=4) for kind in ("adamw", "muon")]
    for job in jobs:
        train_model(job)
    weights = [load_checkpoint(job.model_out)["model"]["blocks.0.mlp.fc.weight"] for job in jobs]
    assert not torch.equal(*weights)


def test_story_crops_start_at_a_document(cache):
    tok, token_dir = cache
    stream = TokenStream.open(token_dir / "train.bin", tok.vocab_size)
    train = TrainParams(batch_size=16, block_size=24, crop="story")
    starts = story_starts(stream, tok.eot_id, train.block_size)
    assert len(starts) and all(int(stream.tokens[s]) == tok.eot_id for s in starts)
    assert int(starts.max()) + train.block_size + 1 <= len(stream)
    x, y = draw_batch(stream, torch.Generator().manual_seed(0), train, starts)
    assert x.shape == y.shape == (16, 24) and bool((x[:, 0] == tok.eot_id).all()) and torch.equal(x[:, 1:], y[:, :-1])


def test_the_val_estimate_draws_its_crops_as_training_does(cache, monkeypatch):
    """Story crops in training, story crops of the val split in its estimate (a model that only ever
    saw a story from its start is not scored on contexts that begin mid-story); random crops stay
    the draws they always were."""
    tok, token_dir = cache
    stream = TokenStream.open(token_dir / "val.bin", tok.vocab_size)
    drawn = []
    monkeypatch.setattr(train_mod, "draw_batch", lambda *args: drawn.append(draw_batch(*args)) or drawn[-1])
    model = build_model(H.TINY_TRANSFORMER, vocab_size=tok.vocab_size, block_size=24, pad_id=tok.eot_id)
    for crop in ("story", "random"):
        job = H.make_job(Path("unused"), tok, token_dir, crop=crop, block_size=24, eval_batches=2)
        starts = story_starts(stream, tok.eot_id, 24) if crop == "story" else None
        drawn.clear()
        train_mod.estimate_val_loss(model, stream, job, torch.device("cpu"), ProcessGroup(), starts)
        first_ids = torch.cat([x[:, 0] for x, _ in drawn])
        if crop == "story":
            assert bool((first_ids == tok.eot_id).all())
        else:
            random_x, _ = stream.batch(torch.Generator().manual_seed(job.seed + train_mod.VAL_BATCH_SEED_OFFSET), job.train.batch_size, 24)
            assert torch.equal(drawn[0][0], random_x) and not bool((first_ids == tok.eot_id).all())
