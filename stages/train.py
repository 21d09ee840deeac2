"""Stage `train@<model>`: train one model from params.yaml's models.<model> with the shared loop.

With `train.nproc` > 1 the stage re-executes itself under torchrun; the loop then runs
data-parallel and only rank 0 writes checkpoints, logs and timings.
"""

import os
import sys

from picollm import paths
from picollm.errors import exit_on_pico_error
from picollm.io import read_json, write_json
from picollm.params import load_params
from picollm.train import TrainJob, train_model
from picollm.trainlog import write_history


def relaunch_under_torchrun(name: str, nproc: int) -> None:
    command = ["torchrun", "--standalone", f"--nproc_per_node={nproc}", "-m", "stages.train", name]
    print(f"train@{name}: {' '.join(command)}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


@exit_on_pico_error
def main(name: str) -> None:
    params = load_params()
    train = params.model_train(name)
    if train.nproc > 1 and "WORLD_SIZE" not in os.environ:
        relaunch_under_torchrun(name, train.nproc)
    meta = read_json(paths.TOKENS_META)
    job = TrainJob(
        name=name, spec=params.model_spec(name), train=train, seed=params.seed,
        token_dir=paths.TOKENS_DIR, vocab_size=meta["vocab_size"], eot_id=meta["eot_id"],
        tokenizer_identity=meta["identity"], model_out=paths.model_checkpoint(name), checkpoint_dir=paths.resume_dir(name),
        snapshot_dir=paths.snapshot_dir(name),
    )
    # The directory is a declared output even when snapshots are off: then it stays empty.
    paths.snapshot_dir(name).mkdir(parents=True, exist_ok=True)
    result = train_model(job)
    if not result.is_main:
        return
    last_train = next(r["train_loss"] for r in reversed(result.history) if "train_loss" in r)
    write_history(paths.train_log_dir(name), result.history, {
        "params": result.num_params, "steps": job.train.steps, "tokens_seen": result.tokens_seen, "final_train_loss": last_train,
    })
    trained_tokens = (job.train.steps - result.resumed_from) * job.train.batch_size * job.train.block_size
    write_json(paths.TIMINGS_DIR / "train" / f"{name}.json", {
        "seconds": round(result.seconds, 3),
        "tokens_per_second": round(trained_tokens / max(result.seconds, 1e-9), 1),
        "resumed_from_step": result.resumed_from,
        "processes": train.nproc,
    })


if __name__ == "__main__":
    main(sys.argv[1])
