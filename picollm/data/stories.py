"""Seeded generator of simple children's stories with exact log-probabilities, and its parser.

A story is drawn from a small template grammar (word lists and plots in `story_lexicon`):
pick a plot uniformly, then walk its steps; an optional step is kept with probability p, an
alternative is picked uniformly, and a `{slot}` is filled (uniformly from its word list,
minus words other slots of its group already hold) the first time it is rendered and reused
afterwards. Every random choice goes through `_Sampler.choose`, which adds the log of the
chosen option's probability, so a story carries log P(its choices).

The grammar is built so that different choices always give different text (each choice is
visible where it is made, and no two word lists or templates can render the same string);
then P(text) == P(choices) and the corpus entropy is known exactly. `parse_story` checks
this: it enumerates *all* derivations of a text by backtracking over the same grammar.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache, reduce
from typing import NamedTuple

from picollm.data import story_lexicon as lex


@dataclass(frozen=True)
class Story:
    text: str  # one story: a single paragraph, no newlines, ending with the moral sentence
    logprob: float  # natural-log probability of this exact text under the generator
    # The part of logprob spent drawing the characters (name slots). A name's draw is visible at
    # its first mention, so this is the floor's share of the loss on first mentions of names.
    name_logprob: float = 0.0


@dataclass(frozen=True)
class Derivation:
    """One way the generator can produce a text: the plot, log P, and each slot's word."""

    plot: str
    logprob: float
    words: dict[str, str]


class Word:
    """One option of a word list: its text in every form a template may ask for."""

    __slots__ = ("forms",)

    def __init__(self, forms: dict[str, str]):
        self.forms = forms


# ---------------------------------------------------------------- choices and probabilities


def _choice_logprob(n_options: int, weights: tuple[float, ...] | None, index: int) -> float:
    """log P of picking option `index`: the one formula both generation and parsing use."""
    if weights is None:
        return -math.log(n_options)
    return math.log(weights[index] / sum(weights))


class _Sampler:
    """Makes every random choice of one story and sums their log-probabilities."""

    __slots__ = ("rng", "logprob", "name_logprob")

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.logprob = 0.0
        self.name_logprob = 0.0

    def choose(self, options, weights=None, is_name: bool = False):
        if weights is None:
            index = self.rng.randrange(len(options))
        else:
            index = self.rng.choices(range(len(options)), weights)[0]
        logprob = _choice_logprob(len(options), weights, index)
        self.logprob += logprob
        if is_name:
            self.name_logprob += logprob
        return options[index]


_INCLUDE = (True, False)  # the two outcomes of an optional step, in `Maybe` weight order


# ---------------------------------------------------------------- compiled grammar


class _Sentence(NamedTuple):
    template: str
    parts: tuple  # literal strings and (slot, form) pairs, in text order
    fragments: tuple[str, str]  # its two longest literals ("" if fewer): a cheap pre-check


class _Maybe(NamedTuple):
    step: object
    weights: tuple[float, float]  # (present, absent)


class _OneOf(NamedTuple):
    options: tuple


class _Slot(NamedTuple):
    domain: tuple[Word, ...]
    peers: tuple[str, ...]  # other slots of the same group: they never hold the same word
    positions: dict  # word -> its position in domain
    index: dict  # form -> (rendered text -> words, distinct text lengths), built on demand


class _Without:
    """The words of `domain` except those at the sorted positions `gaps`, without a copy."""

    __slots__ = ("domain", "gaps")

    def __init__(self, domain: tuple[Word, ...], gaps: list[int]):
        self.domain, self.gaps = domain, gaps

    def __len__(self) -> int:
        return len(self.domain) - len(self.gaps)

    def __getitem__(self, index: int) -> Word:
        for gap in self.gaps:
            if gap <= index:
                index += 1
        return self.domain[index]


_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class Grammar:
    """Plots compiled against word lists; samples stories and enumerates their derivations.

    `domains` maps a domain name to its words; `slots` maps a slot name to (domain, group):
    slots sharing a group never hold the same word. Slots drawing from `name_domains` are the
    characters, whose draws a story also sums apart (`Story.name_logprob`)."""

    def __init__(self, plots: dict, domains: dict[str, tuple[Word, ...]], slots: dict[str, tuple],
                 name_domains: frozenset[str] = frozenset()):
        self.name_slots = frozenset(name for name, (domain, _) in slots.items() if domain in name_domains)
        groups: dict[str, list[str]] = {}
        for name, (_, group) in slots.items():
            if group is not None:
                groups.setdefault(group, []).append(name)
        self.slots = {
            name: _Slot(
                domains[domain],
                tuple(p for p in groups.get(group, ()) if p != name),
                {word: i for i, word in enumerate(domains[domain])},
                {},
            )
            for name, (domain, group) in slots.items()
        }
        for name, slot in self.slots.items():
            if any(self.slots[p].domain is not slot.domain for p in slot.peers):
                raise ValueError(f"slot {name!r} shares a group with a slot of another word list")
        self.sentences: dict[str, _Sentence] = {}
        self.plots = tuple((name, tuple(map(self._compile, steps))) for name, steps in plots.items())
        self._prefilter = [(*node.fragments, node) for node in self.sentences.values()]
        # Each plot's steps as a cons list (step, (step, ... None)): the parser's continuation.
        self._pending = [reduce(lambda rest, step: (step, rest), reversed(steps), None) for _, steps in self.plots]

    def _compile(self, step):
        if isinstance(step, lex.Maybe):
            return _Maybe(self._compile(step.step), (step.p, 1.0 - step.p))
        if isinstance(step, lex.OneOf):
            return _OneOf(tuple(map(self._compile, step)))
        if step not in self.sentences:
            self.sentences[step] = self._compile_sentence(step)
        return self.sentences[step]

    def _compile_sentence(self, template: str) -> _Sentence:
        parts, cursor = [], 0
        for match in _PLACEHOLDER.finditer(template):
            if match.start() > cursor:
                parts.append(template[cursor : match.start()])
            slot, form = match.group(1), match.group(2) or ""
            if slot not in self.slots:
                raise ValueError(f"template {template!r}: unknown slot {slot!r}")
            if any(form not in word.forms for word in self.slots[slot].domain):
                raise ValueError(f"template {template!r}: slot {slot!r} has no form {form!r}")
            parts.append((slot, form))
            cursor = match.end()
        if cursor < len(template):
            parts.append(template[cursor:])
        literals = sorted((p for p in parts if isinstance(p, str)), key=len, reverse=True) + ["", ""]
        return _Sentence(template, tuple(parts), (literals[0], literals[1]))

    # ------------------------------------------------------------ generation

    def sample(self, rng: random.Random) -> Story:
        sampler = _Sampler(rng)
        _, steps = sampler.choose(self.plots)
        words: dict[str, Word] = {}
        sentences: list[str] = []
        for step in steps:
            self._render(step, sampler, words, sentences)
        return Story(" ".join(sentences), sampler.logprob, sampler.name_logprob)

    def _render(self, step, sampler: _Sampler, words: dict, out: list[str]) -> None:
        kind = type(step)
        if kind is _Sentence:
            pieces = []
            for part in step.parts:
                if type(part) is str:
                    pieces.append(part)
                    continue
                slot, form = part
                word = words.get(slot)
                if word is None:
                    word = words[slot] = sampler.choose(self._options(slot, words), is_name=slot in self.name_slots)
                pieces.append(word.forms[form])
            out.append("".join(pieces))
        elif kind is _Maybe:
            if sampler.choose(_INCLUDE, step.weights):
                self._render(step.step, sampler, words, out)
        else:
            self._render(sampler.choose(step.options), sampler, words, out)

    def _options(self, slot: str, words: dict):
        spec = self.slots[slot]
        taken = [words[p] for p in spec.peers if p in words]
        if not taken:
            return spec.domain
        return _Without(spec.domain, sorted(spec.positions[w] for w in taken))

    # ------------------------------------------------------------ parsing

    def derivations(self, text: str) -> list[Derivation]:
        sentences = split_sentences(text)
        if " ".join(sentences) != text:
            return []  # stray whitespace: the generator joins sentences with single spaces
        found = []
        for index, ((name, _), pending) in enumerate(zip(self.plots, self._pending)):
            start = 0.0 + _choice_logprob(len(self.plots), None, index)
            for words, logprob in self._walk(pending, sentences, 0, {}, start):
                found.append(Derivation(name, logprob, {s: w.forms[""] for s, w in words.items()}))
        return found

    def _walk(self, pending, sentences, i, words, logprob) -> Iterator[tuple[dict, float]]:
        """Yield (words, logprob) for every way the steps in `pending` produce sentences[i:]."""
        if pending is None:
            if i == len(sentences):
                yield words, logprob
            return
        step, rest = pending
        kind = type(step)
        if kind is _Sentence:
            if i < len(sentences):
                for words2, logprob2 in self._match(step.parts, 0, sentences[i], 0, words, logprob):
                    yield from self._walk(rest, sentences, i + 1, words2, logprob2)
        elif kind is _Maybe:
            present, absent = (_choice_logprob(2, step.weights, k) for k in (0, 1))
            yield from self._walk((step.step, rest), sentences, i, words, logprob + present)
            yield from self._walk(rest, sentences, i, words, logprob + absent)
        else:
            each = _choice_logprob(len(step.options), None, 0)
            for option in step.options:
                yield from self._walk((option, rest), sentences, i, words, logprob + each)

    def _match(self, parts, k, text, pos, words, logprob) -> Iterator[tuple[dict, float]]:
        """Yield (words, logprob) for every way parts[k:] render exactly text[pos:]."""
        while k < len(parts):  # literals and already-filled slots: no choice, just compare
            part = parts[k]
            if type(part) is not str:
                word = words.get(part[0])
                if word is None:
                    break
                part = word.forms[part[1]]
            if not text.startswith(part, pos):
                return
            pos += len(part)
            k += 1
        else:
            if pos == len(text):
                yield words, logprob
            return
        slot, form = parts[k]  # an empty slot: try every word whose text fits here
        spec = self.slots[slot]
        taken = [words[p] for p in spec.peers if p in words]
        step_logprob = _choice_logprob(len(spec.domain) - len(taken), None, 0)
        table, lengths = self._index(spec, form)
        for length in lengths:
            for word in table.get(text[pos : pos + length], ()):
                if word not in taken:
                    yield from self._match(
                        parts, k + 1, text, pos + length, {**words, slot: word}, logprob + step_logprob
                    )

    @staticmethod
    def _index(spec: _Slot, form: str) -> tuple[dict[str, list[Word]], tuple[int, ...]]:
        if form not in spec.index:
            table: dict[str, list[Word]] = {}
            for word in spec.domain:
                table.setdefault(word.forms[form], []).append(word)
            spec.index[form] = (table, tuple(sorted({len(t) for t in table})))
        return spec.index[form]

    def recognize(self, sentence: str) -> bool:
        for longest, second, node in self._prefilter:
            if longest in sentence and second in sentence:
                if next(self._match(node.parts, 0, sentence, 0, {}, 0.0), None) is not None:
                    return True
        return False


# ---------------------------------------------------------------- the story grammar


NAME_DOMAINS = frozenset({"names", "adults"})  # the characters: children's names and the grown-ups


def _build_domains() -> dict[str, tuple[Word, ...]]:
    people = [(name, pronoun) for pronoun, names in lex.NAMES.items() for name in names]
    domains = {
        "names": tuple(Word({"": n, **lex.PRONOUNS[p]}) for n, p in people),
        "adults": tuple(Word({"": n, **lex.PRONOUNS[p]}) for n, p in lex.ADULTS.items()),
    }
    for category, (nouns, qualities, colors) in lex.NOUNS.items():
        domains[category] = tuple(Word({"": n, "a": _with_article(n)}) for n in nouns)
        phrases = [f"{q} {c}" for q in qualities for c in colors] if colors else list(qualities)
        domains[f"{category}_adj"] = tuple(Word({"": p, "a": _with_article(p)}) for p in phrases)
    for verb_class, pairs in lex.VERBS.items():
        domains[f"verb:{verb_class}"] = tuple(Word({"": past, "base": base}) for base, past in pairs)
    return domains


_SLOT_NAME = re.compile(r"(?P<base>[a-z]+?)(?P<n>\d*)(?P<adj>_adj)?")


def _slot_spec(slot: str) -> tuple[str, str | None]:
    """The (domain, group) of a slot name, following the convention in `story_lexicon`."""
    if slot in ("hero", "friend"):
        return "names", "children"
    if slot == "grown":
        return "adults", None
    match = _SLOT_NAME.fullmatch(slot)
    base = match.group("base") if match else ""
    if base in lex.NOUNS:
        return (f"{base}_adj", None) if match.group("adj") else (base, base)
    if base in lex.VERBS and not match.group("adj"):
        return f"verb:{base}", base
    raise ValueError(f"unknown slot {slot!r}")


def _templates(step) -> Iterator[str]:
    if isinstance(step, str):
        yield step
    elif isinstance(step, lex.Maybe):
        yield from _templates(step.step)
    else:
        for option in step:
            yield from _templates(option)


def _build_grammar(domains: dict[str, tuple[Word, ...]] | None = None) -> Grammar:
    """The story grammar; tests pass cut-down `domains` to enumerate every possible story."""
    templates = [t for steps in lex.PLOTS.values() for t in _templates(steps)]
    slots = {m.group(1) for t in templates for m in _PLACEHOLDER.finditer(t)}
    slot_specs = {s: _slot_spec(s) for s in sorted(slots)}
    return Grammar(lex.PLOTS, domains or _build_domains(), slot_specs, name_domains=NAME_DOMAINS)


_GRAMMAR = _build_grammar()

LEXICON_STATS: dict[str, int] = {
    "names": sum(len(names) for names in lex.NAMES.values()),
    "nouns": sum(len(c.nouns) for c in lex.NOUNS.values()),
    "verbs": sum(len(pairs) for pairs in lex.VERBS.values()),
    "plots": len(lex.PLOTS),
    "adjectives": len({a for c in lex.NOUNS.values() for a in c.qualities + c.colors}),
}


# ---------------------------------------------------------------- public API


def generate_stories(count: int, seed: int) -> list[Story]:
    """`count` stories; story i depends only on (seed, i), so longer runs extend shorter ones."""
    return list(iter_stories(count, seed))


def iter_stories(count: int, seed: int) -> Iterator[Story]:
    """`generate_stories`, one story at a time (a corpus of millions never sits in memory)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return (_GRAMMAR.sample(random.Random(f"{seed}:{i}")) for i in range(count))


def character_names() -> frozenset[str]:
    """Every name the generator can draw for a character (the words of NAME_DOMAINS): the names
    picollm/loss_classes.py classifies, and whose draws make `Story.name_logprob`."""
    return frozenset(word.forms[""] for slot in _GRAMMAR.name_slots for word in _GRAMMAR.slots[slot].domain)


def parse_story(text: str) -> list[Derivation]:
    """Every derivation of `text` (exactly one for any generated story; none if impossible)."""
    return _GRAMMAR.derivations(text)


def story_logprob(text: str) -> float | None:
    """Exact natural-log probability of `text` under the generator, or None if it is impossible."""
    logprobs = [d.logprob for d in parse_story(text)]
    if not logprobs:
        return None
    if len(logprobs) == 1:
        return logprobs[0]
    top = max(logprobs)  # several derivations would add up; the grammar is built to avoid this
    return top + math.log(sum(math.exp(lp - top) for lp in logprobs))


# A sentence ends at . ! or ? (possibly inside a closing quote) followed by whitespace and a
# capital letter or an opening quote; `"Can I play?" asked Tom.` therefore stays one sentence.
_SENTENCE_END = re.compile(r'(?:(?<=[.!?])|(?<=[.!?]"))\s+(?=[A-Z"])')


def split_sentences(text: str) -> list[str]:
    """Cut text into sentences the way the generator's sentences are delimited."""
    text = text.strip()
    return _SENTENCE_END.split(text) if text else []


@lru_cache(maxsize=1 << 16)
def recognize_sentence(sentence: str) -> bool:
    """True if the generator could produce this sentence in some story (surrounding space ignored)."""
    return _GRAMMAR.recognize(sentence.strip())
