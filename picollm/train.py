"""The one training loop: every model, every sweep point, one process or many (torchrun).

- Batches: seeded random crops of the train memmap. The generator draws the *global* batch and
  each rank keeps its own rows, so N processes see exactly the batch one process would.
- AdamW, or Muon on the hidden matrices with AdamW on the rest (picollm/optim.py), linear warmup then cosine decay, gradient clipping,
  gradient accumulation to keep the global batch fixed across process counts.
- Crash safety: a checkpoint every `checkpoint_every` steps (atomic), and on SIGINT/SIGTERM.
  The checkpoint holds model, optimizer, step, data-order and RNG state plus the loss history,
  so a resumed run ends byte-identical to an uninterrupted one. A resume point that is damaged,
  from other params, or no longer fits the model is ignored (and said so on stderr).
- Divergence: a non-finite loss, gradient norm or validation loss stops the run with a PicoError
  naming the step, before the bad update is applied; no checkpoint with non-finite weights is
  ever written, so the last one on disk is the last good state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from picollm.checkpoint import load_checkpoint, save_checkpoint
from picollm.config import TrainParams
from picollm.data.tokens import TokenStream
from picollm.device import (
    ProcessGroup,
    autocast,
    compile_model,
    init_process_group,
    resolve_device,
    resolve_dtype,
    seed_everything,
)
from picollm.errors import PicoError
from picollm.io import temp_name_pattern
from picollm.losses import cross_entropy
from picollm.models.registry import build_model
from picollm.optim import make_optimizer

VAL_BATCH_SEED_OFFSET = 10_007  # the periodic val batches are the same every run and every eval


@dataclass
class TrainJob:
    name: str
    spec: dict
    train: TrainParams
    seed: int
    token_dir: Path
    vocab_size: int
    eot_id: int
    tokenizer_identity: str
    model_out: Path
    checkpoint_dir: Path
    train_token_limit: int | None = None  # train on the first N tokens of train.bin only (the corpus-size sweep)
    snapshot_dir: Path | None = None  # with train.snapshots: where the weights at every eval_every step end up

    @property
    def run_key(self) -> str:
        """Everything that determines the result; a checkpoint from another run is never resumed."""
        parts = [self.spec, self.train.model_dump(), self.seed, self.tokenizer_identity]
        if self.train_token_limit is not None:
            parts.append(self.train_token_limit)
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # {"step", "train_loss"} and {"step", "val_loss"} rows
    tokens_seen: int = 0
    seconds: float = 0.0
    num_params: int = 0
    resumed_from: int = 0
    is_main: bool = True  # rank 0 (or the only process): the one that writes outputs


def learning_rate(step: int, train: TrainParams) -> float:
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    floor = train.lr * train.min_lr_ratio
    return floor + (train.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next step boundary and exits."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def accumulation_steps(train: TrainParams, group: ProcessGroup) -> tuple[int, int]:
    micro = train.micro_batch_size or max(1, train.batch_size // group.world_size)
    if train.batch_size % (micro * group.world_size):
        raise PicoError(
            f"train.batch_size = {train.batch_size} is not a multiple of micro_batch_size ({micro}) x processes "
            f"({group.world_size}); choose sizes that divide it"
        )
    return micro, train.batch_size // (micro * group.world_size)


def _checkpoint_payload(job, model, optimizer, step, data_gen, result) -> dict:
    return {
        "run_key": job.run_key,
        "family": model.family,
        "config": asdict(model.config),
        "tokenizer": job.tokenizer_identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "data_rng": data_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": result.history,
        "tokens_seen": result.tokens_seen,
    }


def _fresh_state(job: TrainJob, device):
    """Model, optimizer and data-order generator exactly as an uninterrupted run starts them."""
    seed_everything(job.seed)
    model = build_model(job.spec, vocab_size=job.vocab_size, block_size=job.train.block_size, pad_id=job.eot_id, key=f"models.{job.name}")
    model.to(device)
    return model, make_optimizer(model, job.train), torch.Generator().manual_seed(job.seed)


def _resume_or_start(job: TrainJob, device, result: TrainResult):
    """Restore model, optimizer, step, data-order and torch RNG state from last.ckpt, if it is ours.

    A checkpoint that is damaged, from another run, or no longer fits the model code is reported
    on stderr and ignored: training starts from step 0 as if it were not there.
    """
    model, optimizer, data_gen = _fresh_state(job, device)
    path = job.checkpoint_dir / "last.ckpt"
    if not path.is_file():
        return model, optimizer, data_gen, 0
    try:
        state = load_checkpoint(path, tokenizer_identity=job.tokenizer_identity, expect={"run_key": job.run_key})
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        data_gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        history, tokens_seen, step = list(state["history"]), int(state["tokens_seen"]), int(state["step"])
    except (PicoError, RuntimeError, ValueError, KeyError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"not resuming {job.name} from {path}: {reason}", file=sys.stderr)
        model, optimizer, data_gen = _fresh_state(job, device)
        return model, optimizer, data_gen, 0
    result.history, result.tokens_seen = history, tokens_seen
    print(f"resuming {job.name} from step {step} ({path})", file=sys.stderr)
    return model, optimizer, data_gen, step


@torch.no_grad()
def estimate_val_loss(model, stream: TokenStream, job: TrainJob, device, group: ProcessGroup, starts: np.ndarray | None) -> float:
    """The mean loss of `eval_batches` seeded crops of the val split, drawn as training draws its
    own (`starts`: story crops), so that the two curves measure the same thing."""
    model.eval()
    gen, losses = torch.Generator().manual_seed(job.seed + VAL_BATCH_SEED_OFFSET), []
    for _ in range(job.train.eval_batches):
        x, y = draw_batch(stream, gen, job.train, starts)
        with autocast(device, job.train.dtype):
            logits = model(x.to(device))
        losses.append(torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def training_runner(model: torch.nn.Module, group: ProcessGroup, compile_: bool) -> torch.nn.Module:
    """What `train_step` calls forward on: the model, wrapped in DDP across ranks, compiled if asked."""
    runner = torch.nn.parallel.DistributedDataParallel(model) if group.world_size > 1 else model
    return compile_model(runner) if compile_ else runner


def train_step(runner, model, optimizer, batch, step: int, train: TrainParams, device, group: ProcessGroup,
               micro: int, accum: int) -> tuple[float, float]:
    """One optimizer step of the loop; `train_model` runs it, and the bench times exactly it.

    Sets the step's learning rate, runs this rank's micro-batches of the global `batch` (forward
    under autocast, float32 cross-entropy, backward), measures the gradient norm (clipping it when
    train.grad_clip > 0), then steps the optimizer. Returns (loss averaged over ranks, gradient norm).
    When either is non-finite no update is applied: the caller stops the run.
    """
    for g in optimizer.param_groups:
        g["lr"] = learning_rate(step, train)
    batch_x, batch_y = batch
    loss_sum = 0.0
    for micro_step in range(accum):
        first_row = (group.rank * accum + micro_step) * micro
        x, y = batch_x[first_row : first_row + micro].to(device), batch_y[first_row : first_row + micro].to(device)
        # DDP all-reduces gradients only on the last micro-step of the accumulation.
        sync = contextlib.nullcontext() if micro_step == accum - 1 or group.world_size == 1 else runner.no_sync()
        with sync:
            with autocast(device, train.dtype):
                logits = runner(x)
            loss = cross_entropy(logits.flatten(0, 1), y.flatten())  # in float32 whatever the dtype
            (loss / accum).backward()
        loss_sum += loss.item()
    step_loss = _mean_across_ranks(loss_sum / accum, group, device)
    if not math.isfinite(step_loss):
        return step_loss, math.nan
    # The norm is measured even without clipping: a non-finite gradient would poison the
    # weights (and the next checkpoint) while this step's loss still looked fine.
    if train.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip).item()
    else:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]).item()
    if not math.isfinite(grad_norm):
        return step_loss, grad_norm
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss, grad_norm


def train_model(job: TrainJob) -> TrainResult:
    train = job.train
    device = resolve_device(train.device, train.allow_device_fallback)
    if train.dtype == "auto":
        train = train.model_copy(update={"dtype": resolve_dtype(train.dtype, device)})
        job = replace(job, train=train)
    group = init_process_group(device)
    if train.threads:
        torch.set_num_threads(train.threads)
    train_stream = TokenStream.open(job.token_dir / "train.bin", job.vocab_size)
    if job.train_token_limit is not None:  # batches are then drawn from this prefix only
        train_stream = TokenStream(train_stream.path, train_stream.tokens[: job.train_token_limit])
    val_stream = TokenStream.open(job.token_dir / "val.bin", job.vocab_size)
    for stream, split in ((train_stream, "train"), (val_stream, "val")):
        stream.check_block_size(train.block_size, split)
    micro, accum = accumulation_steps(train, group)
    starts, val_starts = (story_starts(s, job.eot_id, train.block_size) if train.crop == "story" else None for s in (train_stream, val_stream))

    if group.is_main:
        _remove_stale_temp_files(job.checkpoint_dir / "last.ckpt", job.model_out)

    result = TrainResult(is_main=group.is_main)
    model, optimizer, data_gen, start_step = _resume_or_start(job, device, result)
    result.num_params, result.resumed_from = model.num_params(), start_step
    if train.snapshots and group.is_main:
        # Snapshots past the resume point belong to the interrupted run's future; a fresh start keeps none.
        for stale in (job.checkpoint_dir / "snapshots").glob("step-*.ckpt"):
            if int(stale.stem.removeprefix("step-")) > start_step:
                stale.unlink()
    runner = training_runner(model, group, train.compile)

    began = time.perf_counter()
    step = start_step
    with _StopRequest() as stop:
        for step in range(start_step, train.steps):
            # One draw of the global batch per step; this rank's micro-batches are its rows of it.
            batch = draw_batch(train_stream, data_gen, train, starts)
            step_loss, grad_norm = train_step(runner, model, optimizer, batch, step, train, device, group, micro, accum)
            done = step + 1
            if not math.isfinite(step_loss):
                raise _diverged(job, f"the training loss became {step_loss}", done)
            if not math.isfinite(grad_norm):  # DDP has already averaged the gradients
                raise _diverged(job, f"the gradient norm became {grad_norm}", done)
            result.tokens_seen += train.batch_size * train.block_size
            if done % train.log_every == 0 or done == train.steps:
                result.history.append({"step": done, "train_loss": round(step_loss, 6)})
                print(f"{job.name} step {done}/{train.steps} loss {step_loss:.4f}", file=sys.stderr, flush=True)
            if done % train.eval_every == 0 or done == train.steps:
                val_loss = estimate_val_loss(model, val_stream, job, device, group, val_starts)
                if not math.isfinite(val_loss):
                    raise _diverged(job, f"the validation loss became {val_loss}", done)
                result.history.append({"step": done, "val_loss": round(val_loss, 6)})
                if train.snapshots and group.is_main:
                    _require_finite_weights(job, model, done)
                    save_checkpoint(snapshot_path(job.checkpoint_dir, done), _snapshot_payload(job, model, done))
            # Every rank stops at the same step, even if only some of them got the signal.
            stopping = _any_rank(stop.signal is not None, group, device)
            # On a signal the state is saved even after the last step, so the rerun only writes the outputs.
            if (done % train.checkpoint_every == 0 and done < train.steps) or stopping:
                _require_finite_weights(job, model, done)  # on every rank, so that all of them stop together
                if group.is_main:
                    save_checkpoint(job.checkpoint_dir / "last.ckpt", _checkpoint_payload(job, model, optimizer, done, data_gen, result))
            if stopping:
                signum = stop.signal or signal.SIGTERM
                print(f"{job.name}: stopped by signal {int(signum)} after step {done}; checkpoint saved", file=sys.stderr)
                raise SystemExit(128 + signum)
    result.seconds = time.perf_counter() - began
    _require_finite_weights(job, model, train.steps)
    if group.is_main:
        final = _checkpoint_payload(job, model, optimizer, train.steps, data_gen, result)
        del final["optimizer"], final["data_rng"], final["torch_rng"]
        save_checkpoint(job.model_out, final)
        if train.snapshots:
            _publish_snapshots(job)
        # The run is complete: a leftover resume point would only make `dvc repro -f` skip work.
        (job.checkpoint_dir / "last.ckpt").unlink(missing_ok=True)
    return result


def story_starts(stream: TokenStream, eot_id: int, block_size: int) -> np.ndarray:
    """Where a crop may start so that it begins with a document: at each end-of-text separator
    (the cache is `<eot> doc <eot> doc ...`) that leaves a whole block after it."""
    starts = np.flatnonzero(np.asarray(stream.tokens) == eot_id)
    starts = starts[starts + block_size + 1 <= len(stream)]
    if not len(starts):
        raise PicoError(f"train.crop = 'story': no document in {stream.path} starts a whole block of {block_size} tokens")
    return starts


def draw_batch(stream: TokenStream, generator: torch.Generator, train: TrainParams, starts: np.ndarray | None):
    """The step's global batch: random crops, or crops that start at a document (`train.crop: story`),
    where every name a story repeats has its first mention inside the crop."""
    if starts is None:
        return stream.batch(generator, train.batch_size, train.block_size)
    picked = starts[torch.randint(len(starts), (train.batch_size,), generator=generator).numpy()]
    rows = torch.from_numpy(stream.tokens[picked[:, None] + np.arange(train.block_size + 1)].astype(np.int64))
    return rows[:, :-1], rows[:, 1:]


def snapshot_path(directory: Path, step: int) -> Path:
    return directory / "snapshots" / f"step-{step:06d}.ckpt"


def _snapshot_payload(job: TrainJob, model, step: int) -> dict:
    return {"family": model.family, "config": asdict(model.config), "tokenizer": job.tokenizer_identity,
            "model": model.state_dict(), "step": step, "tokens_seen": step * job.train.batch_size * job.train.block_size}


def _publish_snapshots(job: TrainJob) -> None:
    """Move the run's snapshots, written beside its resume point so that they survive a kill,
    to `job.snapshot_dir`, replacing what an earlier run left there."""
    if job.snapshot_dir is None:
        return
    target = job.snapshot_dir
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("step-*.ckpt"):
        old.unlink()
    for snapshot in sorted((job.checkpoint_dir / "snapshots").glob("step-*.ckpt")):
        snapshot.replace(target / snapshot.name)


def _diverged(job: TrainJob, what: str, step: int) -> PicoError:
    """The error for a non-finite loss, gradient or weight; the last checkpoint on disk stays as it was."""
    path = job.checkpoint_dir / "last.ckpt"
    try:
        kept = f"the last good checkpoint {path} (step {load_checkpoint(path)['step']}) is kept"
    except PicoError:
        kept = "no checkpoint was written before it"
    return PicoError(
        f"models.{job.name}: {what} at step {step} of {job.train.steps}; lower train.lr (now {job.train.lr:g}) "
        f"or keep train.grad_clip > 0, and check the data; {kept}"
    )


def _require_finite_weights(job: TrainJob, model: torch.nn.Module, step: int) -> None:
    """Never write a checkpoint that holds inf or NaN weights."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _diverged(job, f"the weight {name} became non-finite", step)


def _remove_stale_temp_files(*targets: Path) -> None:
    """A run killed while writing leaves a temp file beside its target (see picollm.io); drop those."""
    for target in targets:
        if target.parent.is_dir():
            for stale in target.parent.glob(temp_name_pattern(target)):
                stale.unlink(missing_ok=True)


def _any_rank(flag: bool, group: ProcessGroup, device) -> bool:
    if group.world_size == 1:
        return flag
    tensor = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def _mean_across_ranks(value: float, group: ProcessGroup, device) -> float:
    if group.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / group.world_size
