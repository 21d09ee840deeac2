"""The story generator: determinism, lexicon, exact probabilities, parser and recognizer."""

from __future__ import annotations

import math
import random
import re
from collections import Counter

import pytest

from picollm.data import stories
from picollm.data import story_lexicon as lex
from picollm.data.stories import (
    LEXICON_STATS,
    Story,
    generate_stories,
    parse_story,
    recognize_sentence,
    split_sentences,
    story_logprob,
)

from grammar_enumeration import ScriptedRng, every_choice_sequence, every_story, small_domains, tiny_grammar

N_STORIES = 2500


@pytest.fixture(scope="module")
def corpus() -> list[Story]:
    return generate_stories(N_STORIES, seed=11)


@pytest.fixture(scope="module")
def parsed(corpus) -> list[list[stories.Derivation]]:
    return [parse_story(story.text) for story in corpus]


# ---------------------------------------------------------------- generation


def test_generation_is_deterministic_and_prefix_stable():
    first = generate_stories(40, seed=3)
    assert generate_stories(40, seed=3) == first
    assert generate_stories(15, seed=3) == first[:15]
    assert generate_stories(0, seed=3) == []
    other = generate_stories(40, seed=4)
    assert sum(a.text == b.text for a, b in zip(first, other)) < 3
    assert len({s.text for s in first}) == 40


def test_stories_have_the_promised_shape(corpus, parsed):
    plots = Counter()
    for story, (derivation,) in zip(corpus, parsed):
        text = story.text
        plots[derivation.plot] += 1
        assert text.isascii() and "\n" not in text and text == text.strip()
        assert 60 <= len(text.split()) <= 160
        assert text.count('"') >= 2 and text.count('"') % 2 == 0, "dialogue in quotes"
        last = split_sentences(text)[-1]
        assert last.startswith(("The moral of the story is that ", "And so, ")), last
        assert math.isfinite(story.logprob) and story.logprob < 0
    assert set(plots) == set(lex.PLOTS), "every plot shape occurs"


def test_hero_of_the_opening_returns_at_the_end(corpus, parsed):
    for story, (derivation,) in zip(corpus, parsed):
        hero = derivation.words["hero"]
        sentences = split_sentences(story.text)
        assert hero in " ".join(sentences[:2])
        assert hero in sentences[-2] or hero in sentences[-1]


def _slots(sentence: stories._Sentence) -> set[str]:
    return {part[0] for part in sentence.parts if not isinstance(part, str)}


def _surely_filled(step) -> set[str]:
    """Slots that are filled whichever optional/alternative branch the story takes."""
    if isinstance(step, stories._Sentence):
        return _slots(step)
    if isinstance(step, stories._OneOf):
        return set.intersection(*(_surely_filled(option) for option in step.options))
    return set()  # a Maybe may be skipped


def _all_slots(step) -> set[str]:
    if isinstance(step, stories._Sentence):
        return _slots(step)
    if isinstance(step, stories._Maybe):
        return _all_slots(step.step)
    return set().union(*(_all_slots(option) for option in step.options))


def test_story_endings_reuse_earlier_choices_only():
    """The last sentences name the hero and an earlier object with no new random choice:
    only a model that remembers the beginning can predict them."""
    for name, steps in stories._GRAMMAR.plots:
        final = max(i for i, step in enumerate(steps[:-1]) if isinstance(step, stories._Sentence))
        filled = set().union(*(_surely_filled(step) for step in steps[:final]))
        assert "hero" in _slots(steps[final]) and len(_slots(steps[final])) >= 2, name
        for step in steps[final:]:
            assert _all_slots(step) <= filled, (name, _all_slots(step) - filled)


# ---------------------------------------------------------------- lexicon


def test_lexicon_floors():
    assert LEXICON_STATS["names"] >= 300
    assert LEXICON_STATS["nouns"] >= 300
    assert LEXICON_STATS["verbs"] >= 150
    assert LEXICON_STATS["plots"] >= 12
    assert LEXICON_STATS["adjectives"] >= 40


def test_word_lists_have_no_duplicates_and_no_overlaps():
    names = [n for group in lex.NAMES.values() for n in group] + list(lex.ADULTS)
    nouns = [n for category in lex.NOUNS.values() for n in category.nouns]
    bases = [base for pairs in lex.VERBS.values() for base, _ in pairs]
    pasts = {past for pairs in lex.VERBS.values() for base, past in pairs if past != base}
    adjectives = {a for c in lex.NOUNS.values() for a in c.qualities + c.colors}
    for words in (names, nouns, bases):
        assert len(words) == len(set(words)), [w for w, k in Counter(words).items() if k > 1]
    kinds = {
        "name": {n.lower() for n in names},
        "noun": set(nouns),
        "verb": set(bases) | pasts,
        "adjective": adjectives,
    }
    for a in kinds:
        for b in kinds:
            if a < b:
                assert not kinds[a] & kinds[b], (a, b, kinds[a] & kinds[b])
    for word in set().union(*kinds.values()):
        assert re.fullmatch(r"[A-Za-z]+(-[a-z]+)?", word), word


def test_every_noun_has_fitting_adjectives():
    for name, category in lex.NOUNS.items():
        assert category.nouns and category.qualities, name
        assert len(set(category.qualities)) == len(category.qualities)
        assert len(set(category.colors)) == len(category.colors)


# ---------------------------------------------------------------- exactness


def test_every_story_parses_back_to_exactly_one_derivation(corpus, parsed):
    for story, derivations in zip(corpus, parsed):
        assert len(derivations) == 1, story.text
        assert derivations[0].logprob == pytest.approx(story.logprob, abs=1e-9)
        assert story_logprob(story.text) == pytest.approx(story.logprob, abs=1e-9)



def test_name_logprob_is_the_draw_of_each_character(corpus, parsed):
    # Children are drawn uniformly from the names not yet taken, grown-ups from the adults.
    n_names, n_adults = LEXICON_STATS["names"], len(lex.ADULTS)
    for story, (derivation,) in zip(corpus, parsed):
        children = sum(slot in derivation.words for slot in ("hero", "friend"))
        expected = -sum(math.log(n_names - k) for k in range(children))
        expected -= math.log(n_adults) if "grown" in derivation.words else 0.0
        assert story.name_logprob == pytest.approx(expected, abs=1e-9), story.text
        assert story.logprob < story.name_logprob < 0


def test_character_names_are_the_lexicons_children_and_grown_ups():
    expected = {name for names in lex.NAMES.values() for name in names} | set(lex.ADULTS)
    assert stories.character_names() == expected
    assert len(expected) == LEXICON_STATS["names"] + len(lex.ADULTS)

def test_all_plots_enumerated_exhaustively_sum_to_one_and_decode_uniquely():
    """With every word list cut to a few words, all choice sequences of all 17 plots can be
    enumerated: their probabilities sum to 1, their texts are all different, and each text
    parses back to exactly its own log-probability."""
    grammar = stories._build_grammar(small_domains())
    every = every_story(grammar)
    assert 1000 < len(every) < 200_000
    assert math.fsum(math.exp(s.logprob) for s in every) == pytest.approx(1.0, abs=1e-9)
    assert len({s.text for s in every}) == len(every)
    for story in every[:: max(1, len(every) // 1500)]:
        (derivation,) = grammar.derivations(story.text)
        assert derivation.logprob == story.logprob


def test_tiny_grammar_probabilities_are_exact_and_match_sampling():
    grammar = tiny_grammar()
    every = {s.text: s.logprob for s in every_story(grammar)}
    # plot one: hero 3 x toy 2 x (waves: friend 2 x 2 nappers | no wave: hero naps or friend 2)
    # plot two: friend 3 x (sees: hero 2 x toy 2 | not)
    assert len(every) == 3 * 2 * (2 * 2 + 1 + 2) + 3 * (2 * 2 + 1)
    assert math.fsum(math.exp(lp) for lp in every.values()) == pytest.approx(1.0, abs=1e-12)
    for text, logprob in every.items():
        (derivation,) = grammar.derivations(text)
        assert derivation.logprob == pytest.approx(logprob, abs=1e-12)
    counts = Counter(grammar.sample(random.Random(i)).text for i in range(20_000))
    assert set(counts) <= set(every)
    for text, logprob in every.items():
        expected = 20_000 * math.exp(logprob)
        assert abs(counts[text] - expected) < 5 * math.sqrt(expected) + 1, text


def test_ambiguous_text_gets_the_sum_of_its_derivations(monkeypatch):
    # "She naps." can come from two heroes: P = 2/3. The real grammar never allows this.
    monkeypatch.setattr(stories, "_GRAMMAR", tiny_grammar({"p": ("{hero:He} naps.",)}))
    assert len(parse_story("She naps.")) == 2
    assert story_logprob("She naps.") == pytest.approx(math.log(2 / 3), abs=1e-12)
    assert story_logprob("He naps.") == pytest.approx(math.log(1 / 3), abs=1e-12)


@pytest.fixture(scope="module")
def exact_entropy() -> dict[str, float]:
    """The real generator's exact entropy per story (nats) and the names' share, with their variances.

    A story's log P depends only on its structural choices (plot, optional steps, alternatives):
    a slot's draw costs log(number of words it may take), whichever word it takes. The cut-down
    grammar makes the same structural choices with the same probabilities, so replaying each of
    its choice sequences on the real grammar lists every structural path once, weighted by the
    cut-down story's probability: E[-log P] over the real generator, exactly."""
    small = stories._build_grammar(small_domains())
    moments = {"mean": 0.0, "square": 0.0, "names": 0.0, "names_square": 0.0}
    for script, story in every_choice_sequence(small):
        real = stories._GRAMMAR.sample(ScriptedRng(script))
        weight = math.exp(story.logprob)
        moments["mean"] += weight * -real.logprob
        moments["square"] += weight * real.logprob**2
        moments["names"] += weight * -real.name_logprob
        moments["names_square"] += weight * real.name_logprob**2
    return {
        "entropy": moments["mean"], "entropy_variance": moments["square"] - moments["mean"] ** 2,
        "names": moments["names"], "names_variance": moments["names_square"] - moments["names"] ** 2,
    }


def test_the_corpus_entropy_is_the_generators_exact_entropy_within_its_error_bars(corpus, exact_entropy):
    """The floor is the corpus's mean -log P: it must agree with the exact entropy to within 4
    standard errors (about 0.6 nats of 36 for 2500 stories), and so must the names' share."""
    for key, part in (("entropy", "logprob"), ("names", "name_logprob")):
        nats = [-getattr(story, part) for story in corpus]
        standard_error = math.sqrt(exact_entropy[f"{key}_variance"] / len(nats))
        assert abs(sum(nats) / len(nats) - exact_entropy[key]) < 4 * standard_error, (key, exact_entropy)
        assert 4 * standard_error < 0.05 * exact_entropy[key]  # bars tight enough to matter
    assert 0 < exact_entropy["names"] < exact_entropy["entropy"]
    # each story is one draw out of roughly e^entropy equally likely ones: no repeats expected
    assert len({s.text for s in corpus}) == len(corpus)


def test_impossible_texts_get_no_probability(corpus):
    text = corpus[0].text
    sentences = split_sentences(text)
    assert story_logprob(" " + text) is None
    assert story_logprob(text.replace(". ", ".  ", 1)) is None
    assert story_logprob(" ".join(sentences[:-1])) is None  # no moral
    assert story_logprob(" ".join(sentences[:1] + sentences[2:])) is None  # a sentence dropped
    assert story_logprob("Hello world.") is None
    assert story_logprob("") is None


# ---------------------------------------------------------------- sentences


def test_split_sentences_keeps_dialogue_together():
    text = '"Can I play?" asked Tom.  Tom said, "Yes!" Then they left. "Oh no!" cried Sam.'
    assert split_sentences(text) == [
        '"Can I play?" asked Tom.',
        'Tom said, "Yes!"',
        "Then they left.",
        '"Oh no!" cried Sam.',
    ]
    assert split_sentences("  \n ") == []


def test_every_template_is_one_sentence():
    """No template renders with a sentence break inside (the parser works sentence by sentence).
    Within a word list all words share their capitalization, so the first word stands for all."""
    grammar = stories._GRAMMAR
    for template, sentence in grammar.sentences.items():
        rendered = "".join(
            part if isinstance(part, str) else grammar.slots[part[0]].domain[0].forms[part[1]]
            for part in sentence.parts
        )
        assert split_sentences(rendered) == [rendered], template


def test_recognizer_accepts_every_generated_sentence(corpus):
    for story in corpus[:300]:
        for sentence in split_sentences(story.text):
            assert recognize_sentence(sentence), sentence
            assert recognize_sentence(f"  {sentence}\n")


_PRONOUN_SWAP = {"she": "he", "he": "she", "her": "his", "his": "her",
                 "She": "He", "He": "She", "Her": "His", "His": "Her"}


def _corruptions(story: Story, derivation: stories.Derivation, rng: random.Random):
    """(kind, corrupted sentence) pairs that no template can produce."""
    hero = derivation.words["hero"]
    hero_is_she_or_he = hero not in lex.NAMES["they"]
    for sentence in split_sentences(story.text):
        words = sentence.split(" ")
        i = rng.randrange(len(words) - 1)
        if words[i] != words[i + 1]:
            yield "swap", " ".join(words[:i] + [words[i + 1], words[i]] + words[i + 2 :])
        yield "extra word", " ".join(words[:1] + ["really"] + words[1:])
        ending = re.search(r'[.!?"]+$', sentence).group()
        yield "truncated", " ".join(words[:-1]) + ending
        yield "cut short", sentence[: len(sentence) // 2]
        j = rng.randrange(len(words))
        word = words[j]
        if len(word) >= 4 and word[1] != word[2]:
            misspelled = word[0] + word[2] + word[1] + word[3:]
            yield "misspelled", " ".join(words[:j] + [misspelled] + words[j + 1 :])
        if hero_is_she_or_he and re.search(rf"\b{hero}\b", sentence):
            for k, w in enumerate(words):
                if w in _PRONOUN_SWAP:
                    yield "pronoun", " ".join(words[:k] + [_PRONOUN_SWAP[w]] + words[k + 1 :])
                    break
        for slot, phrase in derivation.words.items():
            noun_slot = slot.removesuffix("_adj")
            noun = derivation.words.get(noun_slot)
            if slot.endswith("_adj") and f"{phrase} {noun}" in sentence:
                category = lex.NOUNS[noun_slot.rstrip("2")]
                bad = "juicy" if "juicy" not in category.qualities else "woolly"
                yield "adjective", sentence.replace(f"{phrase} {noun}", f"{bad} {noun}")


def test_recognizer_rejects_corrupted_sentences(corpus, parsed):
    rng = random.Random(0)
    kinds = Counter()
    for story, (derivation,) in zip(corpus[:300], parsed):
        for kind, corrupted in _corruptions(story, derivation, rng):
            assert not recognize_sentence(corrupted), (kind, corrupted)
            kinds[kind] += 1
    assert set(kinds) == {"swap", "extra word", "truncated", "cut short", "misspelled", "pronoun", "adjective"}
    assert min(kinds.values()) >= 50, kinds


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Lily hugged the shiny red kite and never lost it again.", True),
        ("Lily hugged the juicy kite and never lost it again.", False),  # adjective does not fit
        ("Then Lily and her little black gerbil went outside to play in the puddles.", True),
        ("Then Lily and his little black gerbil went outside to play in the puddles.", False),  # pronoun
        ('"Can I play with your kite?" asked Tom.', True),
        ('"Can I play with your kite?" asked Mom.', False),  # only a child asks this
        ("Alex was a little kid who loved to dance.", True),
        ("Alex were a little kid who loved to dance.", False),
        ("One day, Tom and Tom decided to build a tall fort.", False),  # hero and friend differ
    ],
)
def test_recognizer_examples(sentence, expected):
    assert recognize_sentence(sentence) is expected
