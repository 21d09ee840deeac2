"""The sampling study: its quality measures (unit tests) and the `sample` stage on the smoke repo."""

from __future__ import annotations

import random

import pytest
import torch
import yaml

from picollm.config import SampleParams
from picollm.data.stories import generate_stories
from picollm.errors import PicoError
from picollm.models.registry import build_model
from picollm.params import parse_params
from picollm.profiles import run
from picollm.sampling import SamplingConfig
from picollm.sampling_study import (
    SampleSet,
    acceptance_share,
    continuation_nll,
    judged_sentences,
    report_markdown,
    setting_seed,
    study_row,
)

import helpers as H
from conftest import read_json

ROW_KEYS = {
    "model", "setting", "greedy", "top_p", "temperature", "top_k", "num_samples", "unique_samples", "mean_tokens",
    "truncated_share", "distinct_1", "distinct_2", "distinct_3", "repetition_rate", "judged_sentences",
    "accepted_share", "scorer_nll",
}


# ---------------------------------------------------------------- the quality measures


def corrupt(text: str, rng: random.Random) -> str:
    """Swap two words inside every sentence: the words stay, the grammar breaks."""
    out = []
    for sentence in text.split(". "):
        words = sentence.split()
        if len(words) > 3:
            i, j = rng.sample(range(1, len(words)), 2)
            words[i], words[j] = words[j], words[i]
        out.append(" ".join(words))
    return ". ".join(out)


def test_generator_stories_are_accepted_and_corrupted_ones_are_not():
    stories = [story.text for story in generate_stories(20, seed=3)]
    assert acceptance_share(stories) == 1.0
    rng = random.Random(0)
    corrupted = [corrupt(text, rng) for text in stories]
    assert acceptance_share(corrupted) < 0.5
    # Half the stories corrupted: the share falls in between.
    assert 0.0 < acceptance_share(stories[:10] + corrupted[10:]) < 1.0
    assert acceptance_share(["", "   "]) is None  # nothing to judge


def test_an_unterminated_last_sentence_counts_only_when_the_model_chose_to_stop():
    story = generate_stories(1, seed=5)[0].text
    cut = story[: story.rindex(" ")]  # the budget ran out mid-sentence
    assert judged_sentences(cut, truncated=True) == judged_sentences(story, truncated=False)[:-1]
    assert acceptance_share([cut], [True]) == 1.0  # the budget is not the model's fault
    assert acceptance_share([cut], [False]) < 1.0  # but ending there by choice is
    # A cut that falls right after a full stop keeps its last sentence.
    assert judged_sentences(story, truncated=True) == judged_sentences(story, truncated=False)


def _brute_force_nll(model, context: list[int], samples: list[list[int]]) -> tuple[float, int]:
    """Each generated token scored with a forward pass over (up to) its whole context."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for row in samples:
            seq = context + row
            for t in range(len(context), len(seq)):
                window = seq[max(0, t - model.max_context + 1) : t]  # shorter than max_context: always fits
                logp = torch.log_softmax(model(torch.tensor([window])).double()[0, -1], dim=-1)
                total -= logp[seq[t]].item()
                count += 1
    return total, count


def _windowed_nll(model, context: list[int], samples: list[list[int]]) -> tuple[float, int]:
    """Each generated token scored with a forward pass over the window that first reaches it.

    The windows are those of the whole batch (its longest sequence): they end at max_context,
    then every half context after, each starting max_context tokens before its end."""
    window, length = model.max_context, len(context) + max(map(len, samples))
    ends = [min(length, window)]
    while ends[-1] < length:
        ends.append(min(length, ends[-1] + max(1, window // 2)))
    total, count = 0.0, 0
    with torch.inference_mode():
        for row in samples:
            seq = context + row
            for t in range(len(context), len(seq)):
                begin = max(0, next(end for end in ends if end > t) - window)
                logp = torch.log_softmax(model(torch.tensor([seq[begin:t]])).double()[0, -1], dim=-1)
                total -= logp[seq[t]].item()
                count += 1
    return total, count


def test_scorer_nll_scores_every_generated_token_once_with_its_context():
    torch.manual_seed(0)
    spec = {"family": "transformer", "preset": "gpt2", "d_model": 16, "n_head": 2, "n_layer": 1, "d_ff": 32}
    model = build_model(spec, vocab_size=19, block_size=64, pad_id=0, key="models.tiny").eval()
    context = [0, 5, 6]
    samples = [[1, 2, 3, 4, 5, 6, 7], [], [8, 9], [3] * 12]
    total, count = continuation_nll(model, context, samples)
    expected, expected_count = _brute_force_nll(model, context, samples)
    assert count == expected_count == 7 + 2 + 12
    assert total == pytest.approx(expected, rel=1e-6)
    # Longer than the context: sliding windows still score each token once, with >= half a context.
    small = build_model(spec, vocab_size=19, block_size=8, pad_id=0, key="models.small").eval()
    with torch.no_grad():
        small.head.weight.mul_(20.0)  # logits that differ from context to context, so a wrong one shows
    total, count = continuation_nll(small, context, samples)
    expected, expected_count = _windowed_nll(small, context, samples)
    assert count == expected_count == 21
    assert total == pytest.approx(expected, rel=1e-6)
    # Full context where it fits would be another number: the windows matter, and are checked.
    assert abs(total - _brute_force_nll(small, context, samples)[0]) > 1e-3 * total
    assert continuation_nll(model, context, [[], []]) == (0.0, 0)


def test_without_the_story_generator_the_share_is_null_and_the_report_says_why():
    drawn = SampleSet("Once upon a time", [[1, 2], [3]], [" there was a cat.", " Tom"], [False, False])
    row = study_row("tiny", SamplingConfig(top_p=0.9), drawn, (6.0, 3), use_recognizer=False)
    assert row["accepted_share"] is None and row["judged_sentences"] is None
    assert row["scorer_nll"] == 2.0 and row["unique_samples"] == 2 and row["mean_tokens"] == 1.5
    study = {"prompt": "Once upon a time", "num_samples": 2, "max_new_tokens": 2, "scorer": "tiny",
             "source": "text", "recognizer": False, "rows": [row]}
    report = report_markdown(study, {("tiny", "p=0.9"): drawn})
    assert "`data.source: text`" in report and "**accepted** is null" in report
    assert "1. Once upon a time there was a cat." in report and "2. Once upon a time Tom" in report


def test_sample_params_default_to_greedy_and_a_top_p_sweep():
    labels = [s.sampling.label for s in SampleParams().settings]
    assert labels == ["greedy", "p=0.5", "p=0.8", "p=0.9", "p=0.95", "p=1"]
    params = H.smoke_params()
    params["sample"] = {"settings": [{"top_p": 0.9}, {"top_p": 0.9, "top_k": None}]}
    with pytest.raises(PicoError, match=r"sample.settings .*'p=0.9' is listed twice"):
        parse_params(params)
    params["sample"] = {"settings": [{"top_p": 1.5}]}
    with pytest.raises(PicoError, match=r"sample.settings.0.top_p = 1.5 is not allowed"):
        parse_params(params)
    # A setting's random stream depends on the seed and its label only, not on its position in the
    # list nor on the process (no hash randomisation): pinned, since every sample depends on it.
    assert setting_seed(0, "p=0.9") == 8709477650056002725
    assert setting_seed(1, "p=0.9") == 5763776481187646275 and setting_seed(0, "greedy") == 4199456940289345442


# ---------------------------------------------------------------- the stage, on the smoke repo


@pytest.fixture(scope="module")
def study(smoke_repo):
    return read_json(smoke_repo / "metrics/sampling.json")


def test_sampling_metrics_hold_one_row_per_model_and_setting(smoke_repo, study):
    params = parse_params(yaml.safe_load((smoke_repo / "params.yaml").read_text()))
    settings = [s.sampling.label for s in params.sample.settings]
    assert [(r["model"], r["setting"]) for r in study["rows"]] == [(m, s) for m in params.models for s in settings]
    ranking = read_json(smoke_repo / "metrics/models.json")["models"]
    assert study["scorer"] == ranking[0]["model"] and study["recognizer"] is True
    for row in study["rows"]:
        assert set(row) == ROW_KEYS, row
        assert row["num_samples"] == params.sample.num_samples
        for key in ("distinct_1", "distinct_2", "distinct_3", "repetition_rate", "truncated_share"):
            assert 0.0 <= row[key] <= 1.0, (key, row)
        assert 0 < row["mean_tokens"] <= params.sample.max_new_tokens
        # The share is null exactly when no sentence was left to judge.
        assert (row["accepted_share"] is None) == (row["judged_sentences"] == 0), row
        assert row["accepted_share"] is None or 0.0 <= row["accepted_share"] <= 1.0
        assert row["scorer_nll"] is None or row["scorer_nll"] > 0


def test_greedy_repeats_itself_and_full_sampling_is_at_least_as_diverse(smoke_repo, study):
    rows = {(r["model"], r["setting"]): r for r in study["rows"]}
    report = (smoke_repo / "reports/sampling.md").read_text()
    for model in {r["model"] for r in study["rows"]}:
        greedy, full = rows[(model, "greedy")], rows[(model, "p=1")]
        assert greedy["unique_samples"] == 1
        n = greedy["num_samples"]
        # N identical samples: every n-gram occurs at least N times.
        assert all(greedy[f"distinct_{k}"] <= 1 / n for k in (1, 2, 3))
        for key in ("distinct_1", "distinct_2", "distinct_3"):
            assert full[key] >= greedy[key], (model, key)
        # The report lists the N identical greedy samples under the model's greedy heading.
        section = report.split(f"## `{model}`", 1)[1].split("### greedy", 1)[1].split("###", 1)[0]
        samples = [line.split(". ", 1)[1] for line in section.splitlines() if line[:1].isdigit()]
        assert len(samples) == n and len(set(samples)) == 1 and samples[0].startswith("Once upon a time")


OUTPUTS = ("metrics/sampling.json", "reports/sampling.md", "plots/sampling_quality_diversity.png")


def test_report_plot_and_a_rerun_of_one_model_and_the_summary_are_identical(smoke_clone):
    report = (smoke_clone / "reports/sampling.md").read_text()
    assert report.startswith("# Sampling study") and "## Summary" in report
    assert (smoke_clone / "plots/sampling_quality_diversity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_json(smoke_clone / "metrics/timings/sample/lstm.json")["seconds"] > 0
    # Rerun one model's sampling and the summary by their own commands: the same bytes.
    outputs = (*OUTPUTS, "data/samples/lstm.json")
    before = {name: (smoke_clone / name).read_bytes() for name in outputs}
    run(["python", "-m", "stages.sample", "lstm"], smoke_clone)
    run(["python", "-m", "stages.sample_summary"], smoke_clone)
    for name in outputs:
        assert (smoke_clone / name).read_bytes() == before[name], name
