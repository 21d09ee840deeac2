"""The overfitting study's own data (a few train documents, split train/test, in small token
caches) and its memorisation samples: greedy continuations and how much of them is copied."""

from __future__ import annotations

import re

from picollm import paths, tokenizer
from picollm.data.prepare import read_split
from picollm.data.tokens import write_token_cache
from picollm.errors import PicoError
from picollm.generation import generate
from picollm.io import write_json
from picollm.sampling import SamplingConfig
from picollm.studies.plan import study_data_dir

STUDY = "overfitting"
CACHES = (("train", "train.bin"), ("test", "val.bin"))  # the loop evaluates on val.bin: the test part


# ------------------------------------------------------------------------------ data
def overfitting_split(texts: list[str], train_fraction: float) -> dict[str, list[str]]:
    n_train = round(len(texts) * train_fraction)
    return {"train": texts[:n_train], "test": texts[n_train:]}


def prepare_overfitting(params) -> dict:
    """The first N train documents, split train/test, tokenized into the study's small caches."""
    section = params.sweeps.overfitting
    docs = read_split(paths.PREPARED_DIR, "train")
    if len(docs) < section.documents:
        raise PicoError(
            f"sweeps.overfitting.documents = {section.documents}, but the train split holds only {len(docs)} documents; lower it"
        )
    split = overfitting_split([d.text for d in docs[: section.documents]], section.train_fraction)
    tok = tokenizer.load(paths.TOKENS_DIR)
    out = study_data_dir(STUDY)
    counts = {name: write_token_cache(split[name], tok, out / cache, threads=1) for name, cache in CACHES}
    write_json(out / "texts.json", split)
    summary = {name: {"documents": len(split[name]), "tokens": c["tokens"], "bytes": c["bytes"]} for name, c in counts.items()}
    write_json(out / "meta.json", {"tokenizer": tok.identity, "splits": summary})
    return summary


# ------------------------------------------------------------------------------ memorisation
_WORD = re.compile(r"\S+")


def split_prompt(text: str, words: int) -> tuple[str, str]:
    """(the first `words` words with their original spacing, the rest of the text)."""
    matches = list(_WORD.finditer(text))
    if not matches:
        return "", text
    end = matches[min(words, len(matches)) - 1].end()
    return text[:end], text[end:]


def longest_overlap(words: list[str], corpus: list[str]) -> int:
    """The longest run of consecutive `words` that occurs verbatim (word for word) in one corpus text."""
    padded = [f" {' '.join(text.split())} " for text in corpus]
    best = 0
    for start in range(len(words)):
        length = best + 1  # only a longer run can matter
        while start + length <= len(words) and any(f" {' '.join(words[start:start + length])} " in t for t in padded):
            best = length
            length += 1
    return best


def matching_prefix(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def memorisation_samples(model, tok, texts: dict[str, list[str]], prompt_words: int, samples: int, max_new_tokens: int) -> list[dict]:
    """Greedy continuations of the first words of train and test documents, with their overlaps."""
    rows = []
    for part in ("train", "test"):
        for index, text in enumerate(texts[part][:samples]):
            prompt, rest = split_prompt(text, prompt_words)
            ids = list(generate(model, [tok.eot_id, *tok.encode(prompt)], max_new_tokens=max_new_tokens,
                                sampling=SamplingConfig(greedy=True), eot_id=tok.eot_id))
            continuation = tok.decode(ids)
            words = continuation.split()
            # The same test on the document's real text (as many words) against the other training
            # documents: how much any text of this corpus shares with it, memorised or not.
            others = [t for i, t in enumerate(texts["train"]) if part != "train" or i != index]
            rows.append({
                "part": part,
                "document": index,
                "prompt": prompt,
                "continuation": continuation,
                "words": len(words),
                "longest_overlap_words": longest_overlap(words, texts["train"]),
                "reference_overlap_words": longest_overlap(rest.split()[: max(1, len(words))], others),
                "source_match_words": matching_prefix(words, rest.split()),
            })
    return rows
