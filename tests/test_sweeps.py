"""The studies: sweep points as cached DVC stages, their tables, and the pieces they are built from."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from picollm.data.tokens import TokenStream
from picollm.errors import PicoError
from picollm.params import parse_params
from picollm.profiles import PROJECT_ROOT, run
from picollm.studies import plan as study_plan
from picollm.studies import run as study_run
from picollm.train import TrainJob, train_model

from conftest import read_json
from helpers import make_job, make_token_dir, synthetic_texts

TIMING_KEYS = {"train_seconds", "tokens_per_second", "elapsed_seconds"}
ROW_KEYS = {"point", "model", "steps", "train_docs", "train_tokens", "params", "train_loss", "val_loss", "test_loss", "val_bpb"}


def smoke_params(repo=None) -> dict:
    """The smoke repo's params; without a repo, the project's params.yaml with the smoke sweeps."""
    if repo is not None:
        return yaml.safe_load((repo / "params.yaml").read_text())
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["sweeps"] = yaml.safe_load((PROJECT_ROOT / "profiles" / "smoke.yaml").read_text())["sweeps"]
    return raw


def ran_stages(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


# ------------------------------------------------------------------------------ the real pipeline
def test_every_sweep_has_a_tidy_table_and_separate_timings(smoke_repo):
    params = parse_params(smoke_params(smoke_repo))
    for sweep in study_plan.STUDIES:
        table = read_json(smoke_repo / f"metrics/sweeps/{sweep}.json")
        timings = read_json(smoke_repo / f"metrics/timings/sweeps/{sweep}.json")
        points = study_plan.points(params, sweep)
        assert len(table["rows"]) == len(points) == len(timings["rows"]) >= 1
        for row, point, timing in zip(table["rows"], points, timings["rows"]):
            assert ROW_KEYS <= set(row) and not TIMING_KEYS & set(row), row
            assert {k: row[k] for k in point} == point
            assert row["point"] == timing["point"] and TIMING_KEYS <= set(timing)
            assert timing["tokens_per_second"] > 0 and timing["elapsed_seconds"] >= timing["train_seconds"] > 0
            assert all(np.isfinite(row[k]) for k in ("train_loss", "val_loss", "test_loss", "val_bpb"))
            # Every point is also a DVC metric of its own, without the timings.
            point_doc = read_json(smoke_repo / f"metrics/sweeps/points/{sweep}/{row['point']}.json")
            assert point_doc["val_loss"] == row["val_loss"] and not TIMING_KEYS & set(point_doc)
    corpus = read_json(smoke_repo / "metrics/sweeps/corpus_size.json")
    assert [r["train_docs"] for r in corpus["rows"]] == [r["docs"] for r in corpus["rows"]]
    budget = read_json(smoke_repo / "metrics/sweeps/training_budget.json")
    assert [r["steps"] for r in budget["rows"]] == [
        params.sweeps.training_budget.base_steps * m for m in params.sweeps.training_budget.multipliers
    ]


def test_overfitting_logs_train_and_test_curves_and_memorisation_samples(smoke_repo):
    table = read_json(smoke_repo / "metrics/sweeps/overfitting.json")
    section = smoke_params(smoke_repo)["sweeps"]["overfitting"]
    assert {c["split"] for c in table["curves"]} == {"train", "test"}
    assert max(c["step"] for c in table["curves"]) == section["train"]["steps"]
    texts = read_json(smoke_repo / "data/sweeps/overfitting/texts.json")
    n_train = round(section["documents"] * section["train_fraction"])
    assert (len(texts["train"]), len(texts["test"])) == (n_train, section["documents"] - n_train)
    assert {s["part"] for s in table["samples"]} == {"train", "test"}
    for sample in table["samples"]:
        source = texts[sample["part"]][sample["document"]]
        assert source.startswith(sample["prompt"]) and len(sample["prompt"].split()) == section["prompt_words"]
        assert 0 <= sample["longest_overlap_words"] <= sample["words"]
        assert 0 <= sample["reference_overlap_words"] <= max(1, sample["words"])
    row = table["rows"][0]
    assert row["train_docs"] == n_train
    summary = table["summary"][row["model"]]
    assert summary["train_loss"] == row["train_loss"] and summary["gap"] == pytest.approx(row["test_loss"] - row["train_loss"])


def test_a_point_reruns_to_the_same_bytes(smoke_clone):
    model = smoke_params(smoke_clone)["sweeps"]["training_budget"]["models"][0]
    point = f"metrics/sweeps/points/training_budget/{model}-1.json"
    before = (smoke_clone / point).read_bytes()
    out = run(["dvc", "repro", "-f", "-s", f"sweep_training_budget@{model}-1"], smoke_clone).stdout
    assert ran_stages(out) == {f"sweep_training_budget@{model}-1"}, out
    assert (smoke_clone / point).read_bytes() == before


def test_changing_one_point_runs_only_that_point_as_a_dvc_experiment(smoke_clone):
    """`dvc exp run -S` a new corpus size: one new point stage runs, the other point stays cached."""
    section = smoke_params(smoke_clone)["sweeps"]["corpus_size"]
    docs = section["docs"]
    assert len(docs) >= 2
    new = [*docs[:-1], docs[-1] + 7]
    out = run(["dvc", "exp", "run", "-n", "bigger-corpus", "-S", f"sweeps.corpus_size.docs={json.dumps(new)}"], smoke_clone).stdout
    ran = ran_stages(out)
    point_stages = {s for s in ran if s.startswith("sweep_")}
    assert point_stages == {f"sweep_corpus_size@{m}-{new[-1]}" for m in section["models"]}, out
    assert {"aggregate@corpus_size", "plots", "report"} <= ran, out
    assert not any(s.startswith("aggregate@") and s != "aggregate@corpus_size" for s in ran), out
    assert not {"prepare", "tokenize", "compare"} & ran, out
    table = read_json(smoke_clone / "metrics/sweeps/corpus_size.json")
    assert [r["docs"] for r in table["rows"]] == new
    shown = json.loads(run(["dvc", "exp", "show", "--json"], smoke_clone).stdout)
    names = [exp.get("name") for entry in shown for exp in (entry.get("experiments") or [])]
    assert "bigger-corpus" in names, shown
    assert str(new[-1]) in run(["dvc", "exp", "show", "--only-changed", "--md"], smoke_clone).stdout


# ------------------------------------------------------------------------------ the pieces
def test_first_documents_cuts_after_the_nth_document(tmp_path):
    tok = make_token_dir(tmp_path, synthetic_texts(60))
    stream = TokenStream.open(tmp_path / "train.bin", tok.vocab_size)
    first3 = study_run.first_documents(stream, tok.eot_id, 3, "test")
    ids = np.asarray(first3.tokens)
    assert ids[0] == ids[-1] == tok.eot_id and int((ids == tok.eot_id).sum()) == 4
    texts = synthetic_texts(60)[:3]
    assert study_run.stream_bytes(first3, tok) == sum(len(t.encode()) for t in texts)
    with pytest.raises(PicoError, match="holds only"):
        study_run.first_documents(stream, tok.eot_id, 10_000, "test")


def test_train_token_limit_draws_batches_from_the_prefix_only(tmp_path, monkeypatch):
    tok = make_token_dir(tmp_path / "tokens")
    full = len(TokenStream.open(tmp_path / "tokens" / "train.bin", tok.vocab_size))
    seen = []
    original = TokenStream.batch

    def spy(self, generator, batch_size, block_size):
        seen.append(len(self))
        return original(self, generator, batch_size, block_size)

    monkeypatch.setattr(TokenStream, "batch", spy)
    job = make_job(tmp_path, tok, tmp_path / "tokens", steps=3, eval_every=100)
    limited = TrainJob(**{**job.__dict__, "train_token_limit": 200})
    assert limited.run_key != job.run_key
    train_model(limited)
    assert 200 in seen and full not in seen and full > 200


def test_longest_overlap_and_prompt_split():
    corpus = ["Tom had a red ball.  He played in the park.", "Mia saw a cat."]
    assert study_run.longest_overlap("He played in the park. Then".split(), corpus) == 5
    assert study_run.longest_overlap("nothing here".split(), corpus) == 0
    assert study_run.longest_overlap([], corpus) == 0
    prompt, rest = study_run.split_prompt("Once  upon a\ntime, there", 3)
    assert (prompt, rest) == ("Once  upon a", "\ntime, there")
    assert study_run.matching_prefix("a b c".split(), "a b d".split()) == 2


def test_points_follow_the_matrix_order_and_the_command_line_is_checked():
    params = parse_params(smoke_params())
    grid = study_plan.points(params, "hparam_grid")
    assert list(grid[0]) == [name for name, _, _ in study_plan.AXES["hparam_grid"]]
    section = params.sweeps.corpus_size
    point = study_plan.parse_point(params, "corpus_size", [f"model={section.models[0]}", f"docs={section.docs[0]}"])
    assert point == {"model": section.models[0], "docs": section.docs[0]}
    with pytest.raises(PicoError, match="not in params.yaml"):
        study_plan.parse_point(params, "corpus_size", [f"model={section.models[0]}", "docs=999999"])
    with pytest.raises(PicoError, match="not an integer"):
        study_plan.parse_point(params, "corpus_size", [f"model={section.models[0]}", "docs=many"])
    with pytest.raises(PicoError, match="no sweep named"):
        study_plan.points(params, "nope")


def test_grid_points_resize_the_models_defined_once():
    raw = smoke_params()
    raw["models"]["gqa"] = {"family": "transformer", "preset": "llama3lite", "d_model": 32, "n_head": 4, "n_kv_head": 2,
                            "n_layer": 1, "d_ff": 64}
    raw["sweeps"]["hparam_grid"].update(models=["gqa", "lstm"], embed=[48], heads=[6], layers=[2])
    params = parse_params(raw)
    gqa, lstm = study_plan.points(params, "hparam_grid")
    spec = study_plan.point_spec(params, "hparam_grid", gqa)
    assert (spec["d_model"], spec["n_head"], spec["n_kv_head"], spec["n_layer"], spec["d_ff"]) == (48, 6, 3, 2, 96)
    assert spec["preset"] == "llama3lite"
    base = raw["models"]["lstm"]
    spec = study_plan.point_spec(params, "hparam_grid", lstm)
    assert spec["d_embed"] == 48 and spec["hidden"] == round(base["hidden"] * 48 / base["d_embed"]) and spec["n_layer"] == 2
    train = study_plan.point_train(params, "hparam_grid", lstm)
    grid = raw["sweeps"]["hparam_grid"]
    assert (train.block_size, train.lr, train.batch_size, train.steps) == (
        grid["block_size"][0], grid["lr"][0], grid["batch_size"][0], grid["train"]["steps"])


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["corpus_size"].update(docs=[20, 20]), "listed twice"),
    (lambda s: s["overfitting"].update(models=["nope"]), "not a model under models"),
    (lambda s: s["hparam_grid"].update(models=["kgram_embed"]), "resizes only"),
    (lambda s: s["training_budget"].update(train={"stepz": 3}), "sweeps.training_budget.train.stepz"),
    (lambda s: s["hparam_grid"].update(models=["gptoss"], embed=[32], heads=[3]), "sweeps.hparam_grid point"),
    (lambda s: s["overfitting"].update(documents=5, train_fraction=0.95), "at least one"),
    (lambda s: s.update(colour="red"), "sweeps.colour"),
])
def test_bad_sweep_params_fail_in_one_sentence(edit, message):
    raw = smoke_params()
    edit(raw["sweeps"])
    with pytest.raises(PicoError, match=re.escape(message)):
        parse_params(raw)
