"""The invented-names experiment of docs/findings.md ("Why no classic induction head").

    python scripts/invented_names.py --steps 1000 --out /tmp/invented   # ~3 minutes on 2 cores

In a workspace whose `tokenize` stage has run: every character name of the prepared train and
val splits is replaced, story by story, by an invented one of 2 or 3 random consonant-vowel
syllables (`Vobipo`, `Zenuta`: names no model can memorise, so only the story tells what follows
their first token), or with `--names pieces` of 2 or 3 random word pieces of the tokenizer's
vocabulary (`Ivill`, `Umbledvice`: hundreds of different tokens to copy, not a few syllables);
the splits are encoded with the workspace's tokenizer; `--model` trains with
its params.yaml recipe for `--steps`; then, per head, the mean attention at the continuation
tokens of recurring invented names to the token after the name's first mention (prefix matching
where it is the only way to predict), and the usual induction score on repeated random tokens.
Writes OUT/result.json and prints both heads. The workspace is only read.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from picollm import paths, tokenizer  # noqa: E402
from picollm.checkpoint import load_checkpoint  # noqa: E402
from picollm.data.prepare import read_split  # noqa: E402
from picollm.data.story_lexicon import NAMES  # noqa: E402
from picollm.data.tokens import write_token_cache  # noqa: E402
from picollm.errors import PicoError, exit_on_pico_error  # noqa: E402
from picollm.interpret import head_scores, strongest_head  # noqa: E402
from picollm.interpret_training import HEAD_SEED, HEAD_SEQUENCES, head_period  # noqa: E402
from picollm.io import write_json  # noqa: E402
from picollm.models.loading import model_from_payload  # noqa: E402
from picollm.params import load_params  # noqa: E402
from picollm.train import TrainJob, train_model  # noqa: E402

CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"
LEXICON_NAME = re.compile(r"\b(" + "|".join(sorted({n for ns in NAMES.values() for n in ns}, key=len, reverse=True)) + r")\b")
INVENTED_NAME = re.compile(rf"\b[{CONSONANTS.upper()}](?:[{VOWELS}][{CONSONANTS}])+[{VOWELS}]\b")


def invent_names(text: str, rng: random.Random, pieces: list[str] | None = None, invented: set[str] | None = None) -> str:
    """`text` with each distinct character name replaced by its own invented one, throughout: of
    consonant-vowel syllables, or of `pieces` where given. Adds the names it made to `invented`."""
    chosen: dict[str, str] = {}

    def syllable() -> str:
        return rng.choice(CONSONANTS) + rng.choice(VOWELS)

    def replace(match: re.Match) -> str:
        while match.group(1) not in chosen:
            name = "".join(rng.choice(pieces) if pieces else syllable() for _ in range(rng.choice((2, 3)))).capitalize()
            # A name of pieces can spell a lexicon's ("an" + "na"); syllables are kept as they were measured.
            if name not in chosen.values() and not (pieces and LEXICON_NAME.fullmatch(name)):
                chosen[match.group(1)] = name
        return chosen[match.group(1)]

    out = LEXICON_NAME.sub(replace, text)
    if invented is not None:
        invented.update(chosen.values())
    return out


def word_pieces(tok) -> list[str]:
    """The vocabulary's lowercase letter pieces of two or more letters that continue a word (no leading space)."""
    pieces = (tok.encoding.decode([token]) for token in range(tok.vocab_size) if token != tok.eot_id)
    return sorted({piece for piece in pieces if len(piece) >= 2 and piece.isascii() and piece.isalpha() and piece.islower()})


def name_pattern(names: set[str]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b")


def continuation_pairs(text: str, token_starts: list[int], pattern: re.Pattern = INVENTED_NAME) -> list[tuple[int, int]]:
    """(query, key) index pairs into [eot, *tokens], given where each token of `text` starts: the
    query is a non-final token of a later mention of an invented name (`pattern` finds them), the
    key the token after its counterpart in the name's first mention."""
    ends = [*token_starts[1:], len(text)]
    first: dict[str, list[int]] = {}
    pairs = []
    for match in pattern.finditer(text):
        # token k, index k + 1 after the eot, overlaps the name's characters
        covering = [k + 1 for k, (start, end) in enumerate(zip(token_starts, ends)) if end > match.start() and start < match.end()]
        earlier = first.setdefault(match.group(), covering)
        if earlier is not covering and len(earlier) == len(covering):
            pairs += [(covering[j], earlier[j + 1]) for j in range(len(covering) - 1)]
    return pairs


@torch.inference_mode()
def name_induction_scores(model, texts: list[str], tok, pattern: re.Pattern = INVENTED_NAME) -> torch.Tensor:
    """(layers, heads): the mean attention over every continuation pair of the texts."""
    total, count = None, 0
    for text in texts:
        ids = tok.encode(text)[: model.max_context - 1]
        shown, token_starts = tok.encoding.decode_with_offsets(ids)  # as picollm/loss_classes.py reads them
        pairs = continuation_pairs(shown, token_starts, pattern)
        if not pairs:
            continue
        _, maps = model.forward_with_attention(torch.tensor([[tok.eot_id, *ids]]))
        queries, keys = (torch.tensor(side) for side in zip(*pairs))
        summed = maps[0][:, :, queries, keys].double().sum(dim=-1)
        total, count = (summed if total is None else total + summed), count + len(pairs)
    if not count:
        raise PicoError(f"no recurring invented name in the {len(texts)} val stories scored; score more (--stories)")
    return total / count


def parse_experiment_args(description: str, argv: list[str] | None, add_options=None):
    """(args, params, tokenizer) of a copying experiment: --out (new), --model (a Transformer),
    --steps, --stories, plus what `add_options(parser)` adds. scripts/list_recall.py shares it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="a new directory for the run")
    parser.add_argument("--model", default="mingpt", help="an entry of params.yaml's models (a Transformer)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--stories", type=int, default=100, help="val stories scored")
    if add_options:
        add_options(parser)
    args = parser.parse_args(argv)
    if args.out.exists():
        raise PicoError(f"--out {args.out} exists; give a new directory (nothing of a user's is overwritten)")
    for flag, value in (("--steps", args.steps), ("--stories", args.stories)):
        if value < 1:
            raise PicoError(f"{flag}={value} is not allowed; it must be a positive integer")
    params = load_params()
    if params.model_spec(args.model).get("family") != "transformer":
        raise PicoError(f"--model {args.model} is not a Transformer; only a Transformer's heads can be scored")
    return args, params, tokenizer.load(paths.TOKENS_DIR)


def train_on_texts(texts: dict[str, list[str]], args, params, tok, snapshots: bool = False) -> tuple[torch.nn.Module, dict]:
    """Encode the rewritten splits under args.out and train args.model on them with its params.yaml
    recipe for args.steps; the trained model (in eval mode) and its checkpoint payload."""
    tokens = args.out / "tokens"
    for split, documents in texts.items():
        write_token_cache(documents, tok, tokens / f"{split}.bin", threads=2)
    train = params.model_train(args.model).model_copy(update={"steps": args.steps, "snapshots": snapshots})
    job = TrainJob(name=args.model, spec=params.model_spec(args.model), train=train, seed=params.seed, token_dir=tokens,
                   vocab_size=tok.vocab_size, eot_id=tok.eot_id, tokenizer_identity=tok.identity,
                   model_out=args.out / f"{args.model}.ckpt", checkpoint_dir=args.out / "resume",
                   snapshot_dir=args.out / "snapshots" if snapshots else None)
    if snapshots:
        job.snapshot_dir.mkdir(parents=True)
    train_model(job)
    payload = load_checkpoint(job.model_out, tokenizer_identity=tok.identity)
    return model_from_payload(payload, job.model_out).eval(), payload


def random_token_induction(model, tok) -> list[list[float]]:
    """Every head's induction score on repeated random tokens, as interpret@ measures it."""
    return head_scores(model, tok.vocab_size, head_period(model), HEAD_SEQUENCES, HEAD_SEED,
                       exclude_ids=[tok.eot_id], start_id=tok.eot_id)["induction"]


@exit_on_pico_error
def main(argv: list[str] | None = None) -> dict:
    def names_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--names", choices=("syllables", "pieces"), default="syllables",
                            help="invent names of consonant-vowel syllables, or of the vocabulary's word pieces")

    args, params, tok = parse_experiment_args(__doc__.split("\n\n")[0], argv, names_option)
    rng = random.Random(params.seed)
    pieces = word_pieces(tok) if args.names == "pieces" else None
    invented: dict[str, set[str]] = {"train": set(), "val": set()}
    texts = {split: [invent_names(doc.text, rng, pieces, invented[split]) for doc in read_split(paths.PREPARED_DIR, split)]
             for split in ("train", "val")}
    model, payload = train_on_texts(texts, args, params, tok)
    pattern = INVENTED_NAME if pieces is None else name_pattern(invented["val"])
    names = name_induction_scores(model, texts["val"][: args.stories], tok, pattern)
    result = {"model": args.model, "names": args.names, "steps": args.steps, "tokens": int(payload["tokens_seen"]),
              "name_induction": [[round(float(v), 6) for v in row] for row in names],
              "random_token_induction": random_token_induction(model, tok)}
    for key in ("name_induction", "random_token_induction"):
        layer, head, score = strongest_head(result[key])
        result[f"strongest_{key}_head"] = {"layer": layer, "head": head, "score": score}
        print(f"{key}: layer {layer} head {head} scores {score:.3f}")
    write_json(args.out / "result.json", result)
    return result


if __name__ == "__main__":
    main()
