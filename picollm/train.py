"""The one training loop: every model, every sweep point, one process or many (torchrun).

- Batches: seeded random crops of the train memmap. The generator draws the *global* batch and
  each rank keeps its own rows, so N processes see exactly the batch one process would.
- AdamW (decay on matrices only), linear warmup then cosine decay, gradient clipping,
  gradient accumulation to keep the global batch fixed across process counts.
- Crash safety: a checkpoint every `checkpoint_every` steps (atomic), and on SIGINT/SIGTERM.
  The checkpoint holds model, optimizer, step, data-order and RNG state plus the loss history,
  so a resumed run ends byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from picollm.checkpoint import load_checkpoint, save_checkpoint
from picollm.config import TrainParams
from picollm.data.tokens import TokenStream
from picollm.device import ProcessGroup, autocast, init_process_group, resolve_device, seed_everything
from picollm.errors import PicoError
from picollm.models.registry import build_model

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

    @property
    def run_key(self) -> str:
        """Everything that determines the result; a checkpoint from another run is never resumed."""
        blob = json.dumps([self.spec, self.train.model_dump(), self.seed, self.tokenizer_identity], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # {"step", "train_loss"} and {"step", "val_loss"} rows
    tokens_seen: int = 0
    seconds: float = 0.0
    num_params: int = 0
    resumed_from: int = 0


def learning_rate(step: int, train: TrainParams) -> float:
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    floor = train.lr * train.min_lr_ratio
    return floor + (train.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, train: TrainParams) -> torch.optim.AdamW:
    # Decay weight matrices, not biases or norm gains (nanoGPT's rule).
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), foreach=True)


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


def _accumulation_steps(train: TrainParams, group: ProcessGroup) -> tuple[int, int]:
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


def _try_resume(job, model, optimizer, data_gen, result) -> int:
    path = job.checkpoint_dir / "last.ckpt"
    if not path.is_file():
        return 0
    try:
        state = load_checkpoint(path, tokenizer_identity=job.tokenizer_identity, expect={"run_key": job.run_key})
    except PicoError as err:
        print(f"not resuming: {err}", file=sys.stderr)
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    data_gen.set_state(state["data_rng"])
    torch.set_rng_state(state["torch_rng"])
    result.history, result.tokens_seen = list(state["history"]), state["tokens_seen"]
    print(f"resuming {job.name} from step {state['step']} ({path})", file=sys.stderr)
    return state["step"]


@torch.no_grad()
def estimate_val_loss(model, stream: TokenStream, job: TrainJob, device, group: ProcessGroup) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(job.seed + VAL_BATCH_SEED_OFFSET)
    losses = []
    for _ in range(job.train.eval_batches):
        x, y = stream.batch(gen, job.train.batch_size, job.train.block_size)
        with autocast(device, job.train.dtype):
            logits = model(x.to(device))
        losses.append(torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def train_model(job: TrainJob) -> TrainResult:
    train = job.train
    device = resolve_device(train.device, train.allow_device_fallback)
    group = init_process_group(device)
    seed_everything(job.seed)
    if train.threads:
        torch.set_num_threads(train.threads)
    train_stream = TokenStream.open(job.token_dir / "train.bin", job.vocab_size)
    val_stream = TokenStream.open(job.token_dir / "val.bin", job.vocab_size)
    train_stream.check_block_size(train.block_size, "train")
    val_stream.check_block_size(train.block_size, "val")
    micro, accum = _accumulation_steps(train, group)

    model = build_model(job.spec, vocab_size=job.vocab_size, block_size=train.block_size, pad_id=job.eot_id, key=f"models.{job.name}")
    model.to(device)
    optimizer = make_optimizer(model, train)
    data_gen = torch.Generator().manual_seed(job.seed)
    result = TrainResult(num_params=model.num_params())
    start_step = result.resumed_from = _try_resume(job, model, optimizer, data_gen, result)
    runner = torch.nn.parallel.DistributedDataParallel(model) if group.world_size > 1 else model
    if train.compile:
        runner = torch.compile(runner)

    began = time.perf_counter()
    step = start_step
    with _StopRequest() as stop:
        for step in range(start_step, train.steps):
            for g in optimizer.param_groups:
                g["lr"] = learning_rate(step, train)
            loss_sum = 0.0
            for micro_step in range(accum):
                x, y = train_stream.batch(data_gen, train.batch_size, train.block_size)
                rows = slice((group.rank * accum + micro_step) * micro, (group.rank * accum + micro_step + 1) * micro)
                x, y = x[rows].to(device), y[rows].to(device)
                with autocast(device, train.dtype):
                    logits = runner(x)
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())
                (loss / accum).backward()
                loss_sum += loss.item()
            step_loss = _mean_across_ranks(loss_sum / accum, group, device)
            if not math.isfinite(step_loss):
                raise PicoError(
                    f"models.{job.name}: the training loss became {step_loss} at step {step}; lower train.lr or "
                    f"check the data. The last good checkpoint ({job.checkpoint_dir / 'last.ckpt'}) is kept"
                )
            if train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            result.tokens_seen += train.batch_size * train.block_size
            done = step + 1
            if done % train.log_every == 0 or done == train.steps:
                result.history.append({"step": done, "train_loss": round(step_loss, 6)})
                print(f"{job.name} step {done}/{train.steps} loss {step_loss:.4f}", file=sys.stderr, flush=True)
            if done % train.eval_every == 0 or done == train.steps:
                result.history.append({"step": done, "val_loss": round(estimate_val_loss(model, val_stream, job, device, group), 6)})
            if group.is_main and (done % train.checkpoint_every == 0 or stop.signal is not None) and done < train.steps:
                save_checkpoint(job.checkpoint_dir / "last.ckpt", _checkpoint_payload(job, model, optimizer, done, data_gen, result))
            if stop.signal is not None:
                print(f"{job.name}: stopped by signal {stop.signal} after step {done}; checkpoint saved", file=sys.stderr)
                raise SystemExit(128 + stop.signal)
    result.seconds = time.perf_counter() - began
    if group.is_main:
        final = _checkpoint_payload(job, model, optimizer, train.steps, data_gen, result)
        del final["optimizer"], final["data_rng"], final["torch_rng"]
        save_checkpoint(job.model_out, final)
        # The run is complete: a leftover resume point would only make `dvc repro -f` skip work.
        (job.checkpoint_dir / "last.ckpt").unlink(missing_ok=True)
    return result


def _mean_across_ranks(value: float, group: ProcessGroup, device) -> float:
    if group.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / group.world_size
