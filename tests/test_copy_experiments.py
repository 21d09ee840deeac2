"""The copying experiments of docs/findings.md ("Why no classic induction head"), scripts/
invented_names.py and scripts/list_recall.py: how they rewrite the stories and what they score
(their training runs are not tested)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

# ---------------------------------------------------------------- scripts/invented_names.py


def _script(name: str):
    """A module of scripts/, loaded from its file (scripts/ is not a package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _invented_names_script():
    return _script("invented_names")


def test_invented_names_replace_each_character_by_one_new_name_throughout_a_story():
    script = _invented_names_script()
    text = "Lily saw Tom. Tom waved at Lily, and Lily laughed. Grandma smiled."
    out = script.invent_names(text, random.Random(0))
    names = script.INVENTED_NAME.findall(out)
    assert len(names) == 5 and len(set(names)) == 2 and names[0] == names[3] == names[4] and names[1] == names[2]
    assert not script.LEXICON_NAME.search(out) and out.endswith("Grandma smiled.")  # adults keep their titles
    assert out.replace(names[0], "Lily").replace(names[1], "Tom") == text


def test_names_of_word_pieces_are_found_where_they_recur():
    script = _invented_names_script()
    invented: set[str] = set()
    text = "Lily saw Tom. Tom waved at Lily."
    out = script.invent_names(text, random.Random(0), pieces=["ab", "el", "ox"], invented=invented)
    assert len(invented) == 2 and not script.LEXICON_NAME.search(out)
    assert all(set(name.lower()) <= set("abelox") for name in invented)
    assert [m.group() for m in script.name_pattern(invented).finditer(out)] == [out.split()[0], out.split()[2].rstrip("."),
                                                                              out.split()[3], out.split()[6].rstrip(".")]


def test_name_continuations_point_at_the_token_after_the_first_mention():
    script = _invented_names_script()
    pieces = ["Ba", "zo", " met", " Ki", "mu", ".", " Ba", "zo", " ran", " to", " Ki", "mu", "."]

    starts = [sum(len(piece) for piece in pieces[:k]) for k in range(len(pieces))]
    # [eot, *tokens]: the second " Ba" (index 7) predicts "zo", index 2 of the first mention; the
    # second " Ki" (index 11) predicts "mu", index 5. Last tokens of names predict nothing.
    assert script.continuation_pairs("".join(pieces), starts) == [(7, 2), (11, 5)]


# ---------------------------------------------------------------- scripts/list_recall.py


def _list_recall_script():
    return _script("list_recall")


def test_a_story_gets_its_list_written_after_the_first_sentence_and_read_back_at_the_end():
    script = _list_recall_script()
    words = script.list_words(["The red fox ran. It saw a big owl and a tiny cat in the wood."] * 2)
    assert words == sorted(set(words)) and "the" in words and "a" not in words and "The" not in words
    out = script.with_list("Mia ran. She found a ball. The end.", words, random.Random(0))
    first, rest = out.split(script.WRITTEN)
    listing = rest.split(". ", 1)[0]
    assert first == "Mia ran. " and len(listing.split(", ")) == script.LIST_LENGTH
    assert out.endswith(f"The end. {script.READ_BACK}{listing}.") and "She found a ball." in out


def test_list_spans_are_the_first_and_last_occurrence_or_none():
    script = _list_recall_script()
    assert script.list_spans([9, 1, 2, 3, 8, 1, 2, 3, 7], [1, 2, 3]) == (1, 5)
    assert script.list_spans([9, 1, 2, 3, 8], [1, 2, 3]) is None
