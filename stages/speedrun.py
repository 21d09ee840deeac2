"""Stage `speedrun`: the default recipe against nanoGPT's on one model (picollm/speedrun.py)
-> metrics/speedrun.json, plots/speedrun.png, and in metrics/timings/speedrun.json both recipes'
training speeds, timed side by side in this stage (the report turns tokens into seconds with them)."""

from picollm import paths, tokenizer
from picollm.data.tokens import TokenStream
from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import read_json, write_json
from picollm.params import load_params
from picollm.speedrun import plot_speedrun, snapshot_bpb, speedrun_summary, training_rates
from picollm.train import TrainJob, train_model


@exit_on_pico_error
def main() -> None:
    params = load_params()
    name = params.speedrun.model
    if name not in params.models:
        raise PicoError(f"speedrun.model = {name!r} is not an entry of models:; defined: {sorted(params.models)}")
    recipe = params.model_train(name)
    if not recipe.snapshots:
        raise PicoError(f"speedrun.model = {name!r} trains without snapshots; set train.snapshots: true")
    meta = read_json(paths.TOKENS_META)
    baseline_steps = round(recipe.steps * params.speedrun.baseline_budget)
    baseline = recipe.merged({**params.speedrun.baseline, "steps": baseline_steps, "snapshots": True})
    job = TrainJob(
        name=f"{name}-nanogpt", spec=params.model_spec(name), train=baseline, seed=params.seed, token_dir=paths.TOKENS_DIR,
        vocab_size=meta["vocab_size"], eot_id=meta["eot_id"], tokenizer_identity=meta["identity"],
        model_out=paths.SPEEDRUN_DIR / "nanogpt.ckpt", checkpoint_dir=paths.resume_dir("speedrun"),
        snapshot_dir=paths.SPEEDRUN_DIR / "snapshots",
    )
    train_model(job)
    tok = tokenizer.load(paths.TOKENS_DIR)
    val = TokenStream.open(paths.TOKENS_DIR / "val.bin", tok.vocab_size)
    val_bytes = meta["splits"]["val"]["bytes"]
    rows = {
        "recipe": snapshot_bpb(sorted(paths.snapshot_dir(name).glob("step-*.ckpt")), val, val_bytes, tok, recipe.block_size),
        "nanogpt": snapshot_bpb(sorted(job.snapshot_dir.glob("step-*.ckpt")), val, val_bytes, tok, baseline.block_size),
    }
    floor = read_json(paths.DATA_METRICS).get("entropy_floor_bpb")
    if not floor:
        raise PicoError("the speedrun's target is a multiple of the entropy floor, which only the stories source knows")
    summary = speedrun_summary(rows["recipe"], rows["nanogpt"], floor, params.speedrun.target_floor_ratio)
    write_json(paths.SPEEDRUN_METRICS, {"model": name, "baseline": {**params.speedrun.baseline, "steps": baseline_steps}, **summary})
    plot_speedrun(summary, floor, paths.SPEEDRUN_PLOT, name)
    rates = training_rates({"recipe": recipe, "nanogpt": baseline}, params.model_spec(name),
                           TokenStream.open(paths.TOKENS_DIR / "train.bin", meta["vocab_size"]), meta["vocab_size"], meta["eot_id"], params.seed)
    # Only the speeds: the report turns tokens into seconds with them (picollm.report.speedrun_seconds).
    write_json(paths.SPEEDRUN_TIMINGS, {side: {"tokens_per_second": round(rate, 1)} for side, rate in rates.items()})


if __name__ == "__main__":
    main()
