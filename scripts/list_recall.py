"""The list-recall experiment of docs/findings.md ("Why no classic induction head").

    python scripts/list_recall.py --steps 2500 --out /tmp/lists   # ~9 minutes on 2 cores

In a workspace whose `tokenize` stage has run: every story of the prepared train and val splits
gets a list of 5 words drawn at random from the corpus's own words (about a thousand), written
after its first sentence ("They wrote a list: came, clarinet, papaya, very, guppy.") and read back
word for word at its end ("Later they read the list again: ..."). Only the earlier list tells
what comes next there, in an order no model can know: the task prefix-matching induction heads
solve on repeated random tokens. `--model` trains with its params.yaml recipe for `--steps`,
keeping a snapshot every `train.eval_every` steps; each snapshot is scored on the loss of the
read-back list against the first one (nats per token, the first `--stories` val stories) and
on the usual induction score on repeated random tokens. Writes OUT/result.json and prints a line
per snapshot. The workspace is only read.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from invented_names import parse_experiment_args, random_token_induction, train_on_texts  # noqa: E402

from picollm import paths  # noqa: E402
from picollm.checkpoint import load_checkpoint  # noqa: E402
from picollm.data.prepare import read_split  # noqa: E402
from picollm.errors import PicoError, exit_on_pico_error  # noqa: E402
from picollm.interpret import position_nll, strongest_head  # noqa: E402
from picollm.io import write_json  # noqa: E402
from picollm.models.loading import model_from_payload  # noqa: E402

LIST_LENGTH = 5
WORDS_FROM = 3000  # the list words: every lowercase word of 3+ letters in the first N train stories
WRITTEN, READ_BACK = "They wrote a list: ", "Later they read the list again: "


def list_words(stories: list[str]) -> list[str]:
    return sorted({word for story in stories[:WORDS_FROM] for word in re.findall(r"\b[a-z]{3,}\b", story)})


def with_list(story: str, words: list[str], rng: random.Random) -> str:
    """`story` with a list of LIST_LENGTH random words after its first sentence, read back at its end."""
    listing = ", ".join(rng.sample(words, LIST_LENGTH))
    first, _, rest = story.partition(". ")
    return f"{first}. {WRITTEN}{listing}. {rest} {READ_BACK}{listing}."


def list_spans(ids: list[int], listing_ids: list[int]) -> tuple[int, int] | None:
    """Where the list's tokens start in `ids`, written and read back, or None unless both are there."""
    n = len(listing_ids)
    starts = [i for i in range(len(ids) - n + 1) if ids[i : i + n] == listing_ids]
    return (starts[0], starts[-1]) if len(starts) >= 2 else None


def list_losses(model, stories: list[str], tok) -> dict[str, float]:
    """Mean nats per token of the written list and of the read-back list, over `stories` (each
    read from its start; stories whose read-back list lies past the model's context are skipped)."""
    scored = []  # (story's ids, where its two lists start, the list's length in tokens)
    for story in stories:
        ids = tok.encode(story)
        listing_ids = tok.encode(" " + story.rsplit(READ_BACK, 1)[1].removesuffix("."))  # as it follows ": "
        spans = list_spans(ids, listing_ids)
        if spans is not None and spans[1] + len(listing_ids) <= model.max_context:
            scored.append((ids, spans, len(listing_ids)))
    if not scored:
        raise PicoError(f"no scored story in the {len(stories)} val stories holds both lists in context")
    nll = position_nll(model, [ids for ids, _, _ in scored], start_id=tok.eot_id)
    written = [nll[row, a : a + n].mean() for row, (_, (a, _), n) in enumerate(scored)]
    read_back = [nll[row, b : b + n].mean() for row, (_, (_, b), n) in enumerate(scored)]
    return {"stories": len(scored), "written_nats_per_token": round(float(sum(written)) / len(scored), 4),
            "read_back_nats_per_token": round(float(sum(read_back)) / len(scored), 4)}


@exit_on_pico_error
def main(argv: list[str] | None = None) -> dict:
    args, params, tok = parse_experiment_args(__doc__.split("\n\n")[0], argv)
    rng = random.Random(params.seed)
    splits = {split: [doc.text for doc in read_split(paths.PREPARED_DIR, split)] for split in ("train", "val")}
    words = list_words(splits["train"])
    texts = {split: [with_list(story, words, rng) for story in stories] for split, stories in splits.items()}
    train_on_texts(texts, args, params, tok, snapshots=True)
    rows = []
    for path in sorted((args.out / "snapshots").glob("step-*.ckpt")):
        payload = load_checkpoint(path, tokenizer_identity=tok.identity)
        model = model_from_payload(payload, path).eval()
        layer, head, score = strongest_head(random_token_induction(model, tok))
        row = {"step": int(payload["step"]), "tokens": int(payload["tokens_seen"]),
               **list_losses(model, texts["val"][: args.stories], tok),
               "strongest_random_token_induction_head": {"layer": layer, "head": head, "score": score}}
        rows.append(row)
        print(f"{row['tokens']:>9,} tokens: list {row['written_nats_per_token']:.3f} -> read back "
              f"{row['read_back_nats_per_token']:.3f} nats/token; random-token induction {score:.3f} (layer {layer} head {head})")
    result = {"model": args.model, "steps": args.steps, "list_words": len(words), "snapshots": rows}
    write_json(args.out / "result.json", result)
    return result


if __name__ == "__main__":
    main()
