"""The `picollm` command: sample from a trained model, list the trained models, show where a head looks.

    picollm generate --model tiny --prompt "Once upon a time" --top-p 0.9 --seed 0
    picollm generate --checkpoint path/to/model.ckpt --tokenizer data/tokens --greedy
    picollm models
    picollm attention --model tiny --prompt "Mia saw Tom. Then Mia" --generate 10 [--layer 1 --head 0]

`--model NAME` reads the pipeline's outputs (models/NAME.ckpt, data/tokens/), so run it from the
project root. Sample i of a run uses the seed `--seed + i`, as the evaluate stage does: with the
same prompt, length and top-p, `--seed <evaluate.sample_seed>` reproduces the report's samples.
"""

from __future__ import annotations

import argparse
import codecs
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import torch
import yaml

from picollm import interpret, paths, tokenizer
from picollm.checkpoint import load_checkpoint
from picollm.config import PARAMS_FILE
from picollm.errors import PicoError, exit_on_pico_error
from picollm.generation import generate
from picollm.io import read_json
from picollm.models.base import LanguageModel
from picollm.models.loading import load_model
from picollm.models.registry import model_from_config
from picollm.params import load_params
from picollm.plots import HTML_TEMPLATE, write_html_template
from picollm.profiles import run_profile, use
from picollm.sampling import SamplingConfig
from picollm.scaling import run_scaling
from picollm.tokenizer import Tokenizer

SAMPLE_SEPARATOR = "-" * 40
# Random sequences that `attention` scores the heads on when no head is given (at most the context).
ATTENTION_PERIOD, ATTENTION_BATCH = 50, 8


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picollm", description="Sample from, list and look inside pico-llm models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", help="stream text from a trained model")
    add_model_arguments(gen)
    gen.add_argument("--prompt", default="Once upon a time", help="text to continue (default: %(default)r)")
    gen.add_argument("--max-new-tokens", type=int, default=160, help="stop after this many tokens (default: %(default)s)")
    gen.add_argument("--temperature", type=float, default=1.0, help="> 0; below 1 sharpens, above 1 flattens (default: %(default)s)")
    gen.add_argument("--top-k", type=int, default=None, help="keep only the k most probable tokens (default: no limit)")
    gen.add_argument("--top-p", type=float, default=0.9, help="nucleus mass in (0, 1]; 1 samples everything (default: %(default)s)")
    gen.add_argument("--greedy", action="store_true", help="always take the most probable token")
    gen.add_argument("--seed", type=int, default=None, help="seed of sample 1 (sample i uses seed+i-1); default: random, reported on stderr")
    gen.add_argument("--num-samples", type=int, default=1, help="independent continuations of the prompt (default: %(default)s)")
    gen.add_argument("--no-cache", action="store_true", help="recompute the whole context each step (the reference path)")
    gen.set_defaults(run=run_generate)

    models = commands.add_parser("models", help=f"list the trained models under {paths.MODELS_DIR}/")
    models.set_defaults(run=run_models)

    attention = commands.add_parser("attention", help="show which earlier token an attention head looks at, token by token")
    add_model_arguments(attention)
    attention.add_argument("--prompt", required=True, help="text whose tokens to show")
    attention.add_argument("--generate", metavar="N", type=int, default=0, help="append N greedy tokens first (default: %(default)s)")
    attention.add_argument("--layer", type=int, default=None, help="layer, from 0 (default: interpret@MODEL's strongest copying head, else the strongest induction head)")
    attention.add_argument("--head", type=int, default=None, help="head within the layer, from 0 (give it with --layer)")
    attention.set_defaults(run=run_attention)

    profile = commands.add_parser("profile", help="use a profile as params.yaml, or run the pipeline on one in a scratch repo")
    profile.add_argument("action", choices=("use", "run"), help="use: params.yaml <- params.yaml + profiles/NAME.yaml; run: dvc repro it")
    profile.add_argument("name", help="a profile under profiles/ (smoke, long, gpu)")
    profile.add_argument("--dir", type=Path, default=None, help="run: where to build the scratch repo (default: a new temp dir)")
    profile.set_defaults(run=run_profile_command)

    scaling = commands.add_parser("scaling", help="time training against model size, context and processes (reports/scaling.md)")
    scaling.add_argument("--docs", action="store_true", help="also rewrite the table in docs/scaling.md")
    scaling.set_defaults(run=run_scaling_command)

    template = commands.add_parser("plots-template", help="write the offline page template of `dvc plots show`")
    template.add_argument("path", nargs="?", type=Path, default=HTML_TEMPLATE, help="(default: %(default)s)")
    template.set_defaults(run=run_plots_template)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model NAME or --checkpoint PATH, and --tokenizer: what `load_for_generation` reads."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME", help=f"a model trained by the pipeline ({paths.MODELS_DIR}/NAME.ckpt)")
    source.add_argument("--checkpoint", metavar="PATH", type=Path, help="any pico-llm checkpoint file")
    parser.add_argument("--tokenizer", metavar="DIR", type=Path, default=paths.TOKENS_DIR, help="tokenizer directory (default: %(default)s)")


@exit_on_pico_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


# ---------------------------------------------------------------- profile, scaling, plots-template


def run_profile_command(args: argparse.Namespace) -> None:
    if args.action == "use":
        use(args.name)
        print(f"params.yaml now holds profile {args.name!r}; the previous file is params.yaml.bak")
        return
    raise SystemExit(run_profile(args.name, args.dir))


def run_scaling_command(args: argparse.Namespace) -> None:
    print(run_scaling(load_params(), write_docs=args.docs))


def run_plots_template(args: argparse.Namespace) -> None:
    write_html_template(args.path)
    print(f"wrote {args.path}; `dvc config plots.html_template PATH` (relative to .dvc/) makes it the default")


# ---------------------------------------------------------------- generate


def sampling_from_args(args: argparse.Namespace) -> SamplingConfig:
    try:
        return SamplingConfig(greedy=args.greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    except PicoError as err:
        # SamplingConfig names its field ("top_p=1.5 is not allowed; ..."); name the flag instead.
        field, _, rest = str(err).partition("=")
        if field not in ("temperature", "top_k", "top_p"):
            raise
        raise PicoError(f"--{field.replace('_', '-')} {rest}") from None


def trained_models() -> list[str]:
    return sorted(path.stem for path in paths.MODELS_DIR.glob("*.ckpt"))


def defined_models() -> list[str] | None:
    """Model names under params.yaml's `models:`, or None when there is no readable params file."""
    try:
        models = yaml.safe_load(Path(PARAMS_FILE).read_text(encoding="utf-8")).get("models")
        return sorted(str(name) for name in models) if isinstance(models, dict) else None
    except (OSError, AttributeError, yaml.YAMLError):
        return None


def missing_model_message(name: str, checkpoint: Path) -> str:
    trained = trained_models()
    available = f"trained models: {', '.join(trained)}" if trained else f"no model under {paths.MODELS_DIR}/ is trained yet"
    defined = defined_models()
    if defined is not None and name not in defined:
        return (
            f"model {name!r} is not trained ({checkpoint} does not exist) and {PARAMS_FILE} defines no such model "
            f"(defined: {', '.join(defined)}); add it under models: and run `dvc repro train@{name}` ({available})"
        )
    return f"model {name!r} is not trained ({checkpoint} does not exist); train it with `dvc repro train@{name}` ({available})"


def load_for_generation(args: argparse.Namespace) -> tuple[LanguageModel, Tokenizer]:
    checkpoint = args.checkpoint
    if args.model is not None:
        checkpoint = paths.model_checkpoint(args.model)
        if not checkpoint.is_file():
            raise PicoError(missing_model_message(args.model, checkpoint))
    tok = tokenizer.load(args.tokenizer)
    return load_model(checkpoint, tok), tok


class TextStreamer:
    """Writes the text of token ids as they arrive, flushing after each.

    A token may end in the middle of a multi-byte UTF-8 character (byte-level BPE splits rare
    characters into bytes). The incremental decoder keeps such trailing bytes until the
    character is complete, so only whole characters are printed and none is printed twice;
    `finish` flushes whatever is left (invalid bytes become U+FFFD, as in `Tokenizer.decode`).
    """

    def __init__(self, tok: Tokenizer, out: TextIO):
        self.tok, self.out = tok, out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()

    def add(self, token_id: int) -> None:
        self._write(self.decoder.decode(self.tok.decode_bytes([token_id])))

    def finish(self) -> None:
        self._write(self.decoder.decode(b"", final=True))


def stream_sample(tok: Tokenizer, token_ids: Iterable[int], prompt: str, out: TextIO) -> None:
    out.write(prompt)
    out.flush()
    streamer = TextStreamer(tok, out)
    for token_id in token_ids:
        streamer.add(token_id)
    streamer.finish()
    out.write("\n")
    out.flush()


def run_generate(args: argparse.Namespace) -> None:
    sampling = sampling_from_args(args)  # checked before the (slower) model load
    if args.num_samples < 1:
        raise PicoError(f"--num-samples {args.num_samples} is not allowed; it must be an integer >= 1")
    if args.max_new_tokens < 0:
        raise PicoError(f"--max-new-tokens {args.max_new_tokens} is not allowed; it must be an integer >= 0")
    model, tok = load_for_generation(args)
    seed = args.seed
    if seed is None:
        seed = secrets.randbits(31)
        if not sampling.greedy:
            print(f"(seed {seed}; pass --seed {seed} to repeat this run)", file=sys.stderr, flush=True)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # a terminal without UTF-8 gets '?', not a crash
    prompt_ids = [tok.eot_id, *tok.encode(args.prompt)]  # a story starts after an end-of-text, as in training
    for index in range(args.num_samples):
        if index:
            print(SAMPLE_SEPARATOR, flush=True)
        token_ids = generate(
            model,
            prompt_ids,
            max_new_tokens=args.max_new_tokens,
            sampling=sampling,
            eot_id=tok.eot_id,
            generator=torch.Generator().manual_seed(seed + index),
            use_cache=not args.no_cache,
        )
        stream_sample(tok, token_ids, args.prompt, sys.stdout)


# ---------------------------------------------------------------- models


def describe_checkpoint(name: str) -> list[str]:
    """Name, family, parameter count and (once evaluated) val bits per byte of a trained model."""
    try:
        payload = load_checkpoint(paths.model_checkpoint(name))
        params = model_from_config(payload["family"], payload["config"]).num_params()
    except (PicoError, KeyError, TypeError) as err:
        return [name, f"unreadable: {err}"]  # one bad file should not hide the others
    metrics_path = paths.eval_metrics(name)
    val_bpb = read_json(metrics_path).get("val_bpb") if metrics_path.is_file() else None
    return [name, payload["family"], f"{params:,}", "-" if val_bpb is None else f"{val_bpb:.4f}"]


def run_models(args: argparse.Namespace) -> None:
    names = trained_models()
    if not names:
        print(f"no trained models under {paths.MODELS_DIR}/; train one with `dvc repro train@NAME` (names: {PARAMS_FILE} models:)")
        return
    rows = [["name", "family", "params", "val_bpb"], *(describe_checkpoint(name) for name in names)]
    table = [row for row in rows if len(row) == 4]  # unreadable rows do not set the column widths
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    widths[0] = max(len(row[0]) for row in rows)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# ---------------------------------------------------------------- attention


def strongest_copying_head(model_name: str) -> dict | None:
    """The head `interpret@<model>` found copying recurring names at the end of training (layer,
    head, score), or None where that stage has not run. On the stories it is the head that does
    the work; the induction score on random tokens can stay near zero for every head."""
    path = paths.interpret_metrics(model_name)
    final = read_json(path).get("final") if path.is_file() else None
    return (final or {}).get("strongest_name_copy_head")


def run_attention(args: argparse.Namespace) -> None:
    """One line per token: its position and text, the position and text it attends to most, the weight."""
    if args.generate < 0:
        raise PicoError(f"--generate {args.generate} is not allowed; it must be an integer >= 0")
    if (args.layer is None) != (args.head is None):
        raise PicoError("--layer and --head go together: give both, or neither for the strongest copying head")
    model, tok = load_for_generation(args)
    interpret.require_transformer(model, f"model {args.model or args.checkpoint}")
    ids = [tok.eot_id, *tok.encode(args.prompt)]  # as `generate` starts a story
    if args.generate:
        ids += list(generate(model, ids, max_new_tokens=args.generate, sampling=SamplingConfig(greedy=True), eot_id=tok.eot_id))
    if len(ids) > model.max_context:
        raise PicoError(
            f"the prompt and generated tokens make {len(ids)} tokens (with the leading end-of-text); the model reads at most "
            f"{model.max_context}: shorten --prompt or --generate"
        )
    layer, head = args.layer, args.head
    copying = strongest_copying_head(args.model) if layer is None and args.model else None
    if copying is not None:
        layer, head = copying["layer"], copying["head"]
        title = (f"layer {layer}, head {head}: the strongest name-copying head in {paths.interpret_metrics(args.model)} "
                 f"(score {copying['score']:.3f} on the validation stories)")
    elif layer is None:
        period = min(ATTENTION_PERIOD, (model.max_context - 1) // 2)
        scores = interpret.head_scores(model, tok.vocab_size, period, ATTENTION_BATCH, seed=0, exclude_ids=[tok.eot_id], start_id=tok.eot_id)
        layer, head, score = interpret.strongest_head(scores["induction"])
        title = f"layer {layer}, head {head}: the strongest induction head (score {score:.3f} on random tokens repeated twice)"
    else:
        title = f"layer {layer}, head {head}"
    rows = interpret.top_attended(model, ids, layer, head)  # checks layer and head before anything is printed
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    texts = [repr(tok.decode([token])) for token in ids]
    width = max(len(text) for text in texts)
    print(title)
    print(f"{'pos':>4}  {'token':<{width}}  {'looks at':>8}  {'token':<{width}}  weight")
    for position, (attended, weight) in enumerate(rows):
        print(f"{position:>4}  {texts[position]:<{width}}  {attended:>8}  {texts[attended]:<{width}}  {weight:.3f}")
