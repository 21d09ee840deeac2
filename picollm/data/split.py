"""Corpus assembly: de-duplication, a stable train/val/test split, and mixing in custom text.

Splitting is by hash, not by shuffling: each document's split is a pure function of
(seed, text). That makes it deterministic for a seed, keeps every document where it was when
other documents are added or removed (so a test set never silently absorbs former training
text as the corpus grows), and sends identical texts to the same split. The price is that the
split sizes follow the fractions only approximately (binomially), which matters little for
corpora of hundreds of documents or more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from picollm.errors import PicoError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Document:
    text: str
    source: str  # "stories" | "tinystories" | "text"
    logprob: float | None  # exact log-probability under the generator, when known (embedded stories)
    name_logprob: float | None = None  # its part spent drawing character names (stories; not saved)


def deduplicate(docs: list[Document]) -> list[Document]:
    """Keep the first document of each distinct text, in the original order."""
    seen: set[str] = set()
    unique: list[Document] = []
    for doc in docs:
        if doc.text not in seen:
            seen.add(doc.text)
            unique.append(doc)
    return unique


def split_documents(docs: list[Document], *, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[Document]]:
    """Assign each document to "train", "val" or "test"; input order is kept inside each split.

    A document goes to test when its hash position u in [0, 1) is below `test_fraction`, to
    val when u is below `test_fraction + val_fraction`, and to train otherwise. A fraction of
    0 asks for no such split, so that split is allowed to be empty; any split with a positive
    fraction (and train, always) must receive at least one document.
    """
    check_fractions(val_fraction, test_fraction)
    if not docs:
        raise PicoError("there are no documents to split; check the data source settings under data.")

    splits: dict[str, list[Document]] = {name: [] for name in SPLITS}
    for doc in docs:
        splits[assign_split(doc.text, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)].append(doc)
    check_split_sizes({name: len(part) for name, part in splits.items()}, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return splits


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    _check_fraction("data.val_fraction", val_fraction)
    _check_fraction("data.test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise PicoError(
            f"data.val_fraction ({val_fraction}) plus data.test_fraction ({test_fraction}) is {val_fraction + test_fraction}, "
            f"which leaves nothing for training; their sum must be below 1"
        )


def check_split_sizes(sizes: dict[str, int], *, val_fraction: float, test_fraction: float, seed: int) -> None:
    """Refuse an empty split that was asked for (a positive fraction, or train)."""
    requested = {"train": 1.0, "val": val_fraction, "test": test_fraction}
    counts = ", ".join(f"{name} {sizes[name]}" for name in SPLITS)
    for name in SPLITS:
        if requested[name] > 0 and not sizes[name]:
            remedy = "lower data.val_fraction or data.test_fraction" if name == "train" else f"raise data.{name}_fraction"
            raise PicoError(
                f"the {name} split would be empty ({sum(sizes.values())} documents split as {counts} with "
                f"val_fraction={val_fraction}, test_fraction={test_fraction}, seed={seed}); {remedy} or add documents"
            )


def assign_split(text: str, *, val_fraction: float, test_fraction: float, seed: int) -> str:
    """The split a text belongs to: a function of (seed, text) and the fractions only."""
    return split_at(unit_hash(seed, "split", text.encode("utf-8")), val_fraction=val_fraction, test_fraction=test_fraction)


def split_at(position: float, *, val_fraction: float, test_fraction: float) -> str:
    """The split of a hash position u in [0, 1)."""
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def mix_documents(
    main: list[Document],
    custom: list[Document],
    *,
    custom_weight: float,
    limit_custom: int | None,
    seed: int,
) -> list[Document]:
    """Combine the main corpus with custom documents so custom makes up `custom_weight` of it.

    The rule, in order:

    1. `limit_custom` (if not None) caps the custom documents first: a seeded, hash-ranked
       sample of that many is kept, in their original order.
    2. `custom_weight` w in [0, 1] is the target share of custom documents in the result.
       w = 0 gives the main documents only; w = 1 gives the (capped) custom documents only.
       Otherwise every main document is kept and min(len(custom), round(w / (1 - w) * len(main)))
       custom documents are added, picked by the same seeded ranking. Custom documents are never
       repeated and main documents never dropped, so when custom text is scarce the real share
       is below w rather than the corpus being distorted.

    The result is the main documents followed by the chosen custom documents, each in input
    order (the training loader shuffles; the splitter does not care about order).
    """
    if isinstance(custom_weight, bool) or not isinstance(custom_weight, (int, float)) or not 0 <= custom_weight <= 1:
        raise PicoError(f"data.mix.weight is {custom_weight!r}; it must be a number from 0 (no custom text) to 1 (custom text only)")
    if limit_custom is not None and (isinstance(limit_custom, bool) or not isinstance(limit_custom, int) or limit_custom < 0):
        raise PicoError(f"data.mix.limit is {limit_custom!r}; it must be a whole number of documents (0 or more), or null for no limit")

    if limit_custom is not None:
        custom = _seeded_sample(custom, limit_custom, seed)
    if custom_weight > 0 and not custom:
        raise PicoError(f"data.mix.weight is {custom_weight} but there are no custom documents to mix in; add custom text or set the weight to 0")

    if custom_weight == 0:
        mixed = list(main)
    elif custom_weight == 1:
        mixed = list(custom)
    else:
        wanted = round(custom_weight / (1 - custom_weight) * len(main))
        mixed = list(main) + _seeded_sample(custom, min(len(custom), wanted), seed)
    if not mixed:
        raise PicoError(f"mixing {len(main)} main and {len(custom)} custom documents with data.mix.weight {custom_weight} leaves no documents; add documents or change the weight")
    return mixed


def _seeded_sample(docs: list[Document], count: int, seed: int) -> list[Document]:
    """The `count` documents ranked first by hash of (seed, text), kept in input order.

    Ranking by hash rather than drawing from a RNG keeps the choice stable when documents are
    added: a chosen document stays chosen unless a new one outranks it.
    """
    if count >= len(docs):
        return list(docs)
    ranked = sorted(range(len(docs)), key=lambda index: (unit_hash_bits(seed, "sample", docs[index].text.encode("utf-8")), index))
    chosen = set(ranked[:count])
    return [doc for index, doc in enumerate(docs) if index in chosen]


def unit_hash(seed: int, purpose: str, data: bytes) -> float:
    """A uniform-looking number in [0, 1) determined by (seed, purpose, data) alone."""
    return unit_hash_bits(seed, purpose, data) / 2**53


def unit_hash_bits(seed: int, purpose: str, data: bytes) -> int:
    """`unit_hash` as the 53-bit integer it scales: the same order, without floats."""
    digest = hashlib.blake2b(digest_size=8, person=purpose.encode("ascii")[:16])
    digest.update(str(int(seed)).encode("ascii") + b"\x00")
    digest.update(data)
    # 53 bits: exactly representable in a float, so the result can never round up to 1.0.
    return int.from_bytes(digest.digest(), "big") >> 11


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PicoError(f"{name} is {value!r}; it must be a number from 0 (inclusive) to 1 (exclusive)")
