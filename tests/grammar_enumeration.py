"""Grammars small enough to list every story they can produce, for exact checks of the generator.

- `ScriptedRng`: replays a list of choice indices in place of `random.Random`.
- `every_choice_sequence`: every story of a grammar with the choices that made it.
- `small_domains`: the real word lists cut to the fewest words each slot needs (same plots).
- `tiny_grammar`: three children and two toys, small enough to check by hand.
"""

from __future__ import annotations

from collections import Counter

from picollm.data import stories
from picollm.data import story_lexicon as lex
from picollm.data.stories import Story


class ScriptedRng:
    """Stands in for random.Random: replays a script of choice indices, then picks 0s,
    and records how many options each choice had."""

    def __init__(self, script: list[int]):
        self.script, self.branching = script, []

    def _next(self, n_options: int) -> int:
        position = len(self.branching)
        self.branching.append(n_options)
        return self.script[position] if position < len(self.script) else 0

    def randrange(self, n_options: int) -> int:
        return self._next(n_options)

    def choices(self, population, weights):
        return [population[self._next(len(population))]]


def every_choice_sequence(grammar: stories.Grammar) -> list[tuple[list[int], Story]]:
    """Every story the grammar can produce with the choice indices that made it (odometer order)."""
    found, script = [], []
    while True:
        rng = ScriptedRng(script)
        story = grammar.sample(rng)
        digits = script + [0] * (len(rng.branching) - len(script))
        found.append((digits, story))
        while digits and digits[-1] + 1 >= rng.branching[len(digits) - 1]:
            digits = digits[:-1]
        if not digits:
            return found
        script = [*digits[:-1], digits[-1] + 1]


def every_story(grammar: stories.Grammar) -> list[Story]:
    return [story for _, story in every_choice_sequence(grammar)]


def small_domains() -> dict[str, tuple[stories.Word, ...]]:
    """The real word lists cut to the fewest words each slot group needs (3 names: one per pronoun)."""
    specs = [stories._slot_spec(name) for name in stories._GRAMMAR.slots]
    group_size = Counter(group for _, group in specs if group)
    needed: dict[str, int] = {}
    for domain, group in specs:
        needed[domain] = max(needed.get(domain, 1), group_size[group] if group else 1)
    domains = stories._build_domains()
    small = {key: words[: needed.get(key, 1)] for key, words in domains.items()}
    small["names"] = tuple(next(w for w in domains["names"] if w.forms["he"] == p) for p in ("she", "he", "they"))
    return small


TINY_PLOTS = {
    "one": ("{hero} has a {toy}.", lex.Maybe("{friend} waves.", p=0.25), lex.OneOf("{hero} naps.", "{friend} naps.")),
    "two": ("{friend} hops.", lex.Maybe("{hero} sees a {toy}.", p=0.8)),
}


def tiny_grammar(plots: dict = TINY_PLOTS) -> stories.Grammar:
    """Three children (two share a pronoun), two toys: every story can be listed by hand."""
    word = lambda text, **forms: stories.Word({"": text, **forms})  # noqa: E731
    domains = {
        "kids": (word("Ann", He="She"), word("Bo", He="He"), word("Cy", He="She")),
        "toys": (word("ball"), word("kite")),
    }
    slots = {"hero": ("kids", "kid"), "friend": ("kids", "kid"), "toy": ("toys", None)}
    return stories.Grammar(plots, domains, slots)
