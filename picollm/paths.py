"""Where every stage reads and writes: the single map of the pipeline's files (mirrors dvc.yaml)."""

from pathlib import Path

PREPARED_DIR = Path("data/prepared")
TOKENS_DIR = Path("data/tokens")
MODELS_DIR = Path("models")
CHECKPOINTS_DIR = Path("checkpoints")
METRICS_DIR = Path("metrics")
TIMINGS_DIR = METRICS_DIR / "timings"  # the only non-deterministic metrics live here
REPORTS_DIR = Path("reports")
PLOTS_DIR = Path("plots")
MANIFESTS_DIR = Path("manifests")  # each stage script's code dependency (stage `manifests`)

DATA_METRICS = METRICS_DIR / "data.json"
TOKENIZER_METRICS = METRICS_DIR / "tokenizer.json"
TOKENS_META = TOKENS_DIR / "meta.json"


def code_manifest(script: str) -> Path:
    return MANIFESTS_DIR / f"{script}.txt"


def model_checkpoint(name: str) -> Path:
    return MODELS_DIR / f"{name}.ckpt"


def resume_dir(name: str) -> Path:
    return CHECKPOINTS_DIR / name


def snapshot_dir(name: str) -> Path:
    """The weights at every `train.eval_every` step (with `train.snapshots`), read by interpret@<name>."""
    return MODELS_DIR / "snapshots" / name


def interpret_metrics(name: str) -> Path:
    return METRICS_DIR / "interpret" / f"{name}.json"


INTERPRET_DATA_DIR = Path("data/interpret")


def interpret_example(name: str) -> Path:
    """interpret@<name>'s attention example (its strongest copying head on one story; null
    without heads): the data behind the attention picture the `plots` stage draws."""
    return INTERPRET_DATA_DIR / f"{name}.json"


INTERPRET_PLOTS_DIR = PLOTS_DIR / "interpret"  # the `plots` stage's per-Transformer head figures


def interpret_figures(name: str) -> dict[str, Path]:
    """A Transformer's head figures, drawn by the `plots` stage from interpret@<name>'s outputs
    (every model's scores over training share one figure, OVER_TRAINING_PLOT)."""
    directory = INTERPRET_PLOTS_DIR / name
    return {"heads": directory / "heads.png", "attention": directory / "attention.png"}


OVER_TRAINING_PLOT = PLOTS_DIR / "over_training.png"
THROUGHPUT_PLOT = PLOTS_DIR / "throughput.png"  # stage `throughput`, from metrics/timings/train


SPEEDRUN_DIR = MODELS_DIR / "speedrun"  # the nanoGPT-recipe run: its model and snapshots
SPEEDRUN_METRICS = METRICS_DIR / "speedrun.json"
SPEEDRUN_TIMINGS = TIMINGS_DIR / "speedrun.json"  # both recipes' training speed, timed side by side
SPEEDRUN_PLOT = PLOTS_DIR / "speedrun.png"


def train_log_dir(name: str) -> Path:
    return METRICS_DIR / "train" / name


def eval_metrics(name: str) -> Path:
    return METRICS_DIR / "eval" / f"{name}.json"


def samples_file(name: str) -> Path:
    return REPORTS_DIR / "samples" / f"{name}.md"


# The sampling study (stages `sample@<model>`, `sample_summary`): every model, several decoding settings.
MODELS_RANKING = METRICS_DIR / "models.json"  # written by `compare`; the first row is the best model
SAMPLING_METRICS = METRICS_DIR / "sampling.json"
SAMPLING_REPORT = REPORTS_DIR / "sampling.md"
SAMPLING_PLOT = PLOTS_DIR / "sampling_quality_diversity.png"


def samples_part(name: str) -> Path:
    """One model's samples and unscored rows (`sample@<model>`), read by `sample_summary`."""
    return Path("data/samples") / f"{name}.json"


# Speed (stage `bench`): the one non-deterministic metrics file outside metrics/timings/.
BENCH_METRICS = METRICS_DIR / "bench.json"
BENCH_REPORT = REPORTS_DIR / "bench.md"
BENCH_PLOT = PLOTS_DIR / "bench.png"
