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
from picollm.studies import fit, memorisation
from picollm.studies import plan as study_plan
from picollm.studies import run as study_run
from picollm.studies.registry import REGISTRY, ordered
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
        own = [t for t in timings["rows"] if t["seed"] == params.seed]
        assert len(table["rows"]) == len(points) == len(own) >= 1
        assert [t["seed"] for t in timings["rows"][len(own):]] == params.sweeps.noise_seeds
        # The noise point: the study's own run, then one run per noise seed, and their spread.
        noise = table["noise"]
        assert [r["seed"] for r in noise["runs"]] == [params.seed, *params.sweeps.noise_seeds]
        values = [r[noise["field"]] for r in noise["runs"]]
        assert noise["spread"] == pytest.approx(max(values) - min(values), abs=1e-6)
        assert {k: noise[k] for k in points[0]} == study_plan.noise_point(params, sweep)
        assert noise["runs"][0][noise["field"]] == next(r[noise["field"]] for r in table["rows"] if r["point"] == noise["point"])
        for row, point, timing in zip(table["rows"], points, own):
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
    assert all(r["corpus_tokens"] > 0 for r in corpus["rows"])
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
    assert memorisation.longest_overlap("He played in the park. Then".split(), corpus) == 5
    assert memorisation.longest_overlap("nothing here".split(), corpus) == 0
    assert memorisation.longest_overlap([], corpus) == 0
    prompt, rest = memorisation.split_prompt("Once  upon a\ntime, there", 3)
    assert (prompt, rest) == ("Once  upon a", "\ntime, there")
    assert memorisation.matching_prefix("a b c".split(), "a b d".split()) == 2


def test_points_follow_the_matrix_order_and_the_command_line_is_checked():
    params = parse_params(smoke_params())
    grid = study_plan.points(params, "hparam_grid")
    assert list(grid[0]) == [name for name, _, _ in study_plan.axes("hparam_grid")] == study_plan.axis_names("hparam_grid")
    section = params.sweeps.corpus_size
    point = study_plan.parse_point(params, "corpus_size", [f"model={section.models[0]}", f"docs={section.docs[0]}"])
    assert point == {"model": section.models[0], "docs": section.docs[0]}
    with pytest.raises(PicoError, match="not in params.yaml"):
        study_plan.parse_point(params, "corpus_size", [f"model={section.models[0]}", "docs=999999"])
    with pytest.raises(PicoError, match="not an integer"):
        study_plan.parse_point(params, "corpus_size", [f"model={section.models[0]}", "docs=many"])
    with pytest.raises(PicoError, match="no study named"):
        study_plan.points(params, "nope")


def test_grid_points_resize_the_models_defined_once():
    raw = smoke_params()
    raw["models"]["gqa"] = {"family": "transformer", "preset": "llama3lite", "d_model": 32, "n_head": 4, "n_kv_head": 2,
                            "n_layer": 1, "d_ff": 64}
    raw["sweeps"]["hparam_grid"].update(models=["gqa", "lstm"], embed=[48], heads=[6], layers=[2])
    raw["sweeps"]["hparam_grid"]["noise"].update(model="lstm", embed=48, heads=6, layers=2)
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
    (lambda s: s["corpus_size"].update(noise={"model": "gptoss", "docs": 21}), "is not a point of the study"),
    (lambda s: s["corpus_size"].update(noise={"model": "gptoss"}), "must give a value for each of model, docs"),
    (lambda s: s["corpus_size"].pop("noise"), "required key 'sweeps.corpus_size.noise' is missing"),
    (lambda s: s.update(noise_seeds=[3, 3]), "listed twice"),
    (lambda s: s.update(noise_seeds=[-1]), "sweeps.noise_seeds = [-1] is not allowed: Value error, every value must be >= 0"),
    (lambda s: s["training_budget"].update(multipliers=[0, 2]), "sweeps.training_budget.multipliers = [0, 2] is not allowed: "
                                                                 "Value error, every value must be >= 1"),
    (lambda s: s["hparam_grid"].update(lr=[0.01, 0.0]), "sweeps.hparam_grid.lr = [0.01, 0.0] is not allowed: Value error, "
                                                        "every value must be > 0"),
    (lambda s: s["overfitting"].update(spec={"family": "lstm"}), "cannot change their family"),
    (lambda s: s["overfitting"].update(spec={"n_layer": 0}), "sweeps.overfitting point"),
])
def test_bad_sweep_params_fail_in_one_sentence(edit, message):
    raw = smoke_params()
    edit(raw["sweeps"])
    with pytest.raises(PicoError, match=re.escape(message)):
        parse_params(raw)


def test_a_study_point_can_use_a_smaller_architecture():
    raw = smoke_params()
    raw["sweeps"]["corpus_size"]["spec"] = {"d_model": 16, "d_ff": 32}
    params = parse_params(raw)
    point = study_plan.points(params, "corpus_size")[0]
    spec = study_plan.point_spec(params, "corpus_size", point)
    assert (spec["d_model"], spec["d_ff"], spec["n_layer"]) == (16, 32, raw["models"]["gptoss"]["n_layer"])
    assert params.model_spec("gptoss")["d_model"] == raw["models"]["gptoss"]["d_model"]  # the entry itself is untouched


def test_every_study_has_a_module_and_its_own_figures():
    assert list(REGISTRY) == list(study_plan.STUDIES) == [s.name for s in ordered()]
    names = [name for s in ordered() for name in s.figures]
    assert len(names) == len(set(names)) and all(s.csv_fields and s.title for s in ordered())


# ------------------------------------------------------------------------------ fitted laws
LAW = {"E": 1.5, "A": 40.0, "alpha": 0.5}
XS = [1e3, 2e3, 5e3, 1e4, 3e4]


def law_points(xs=XS, **law):
    law = {**LAW, **law}
    return [law["E"] + law["A"] * x ** -law["alpha"] for x in xs]


def test_the_law_fit_recovers_known_parameters_and_inverts():
    law = fit.fit_law(XS, law_points())
    assert law["converged"] and law["points"] == 5
    assert (law["E"], law["A"], law["alpha"]) == pytest.approx((1.5, 40.0, 0.5), rel=1e-4)
    assert law["E_se"] < 1e-6 and law["alpha_se"] < 1e-6
    assert fit.predict(law, 7e4) == pytest.approx(1.5 + 40.0 * 7e4 ** -0.5, rel=1e-5)
    reach = fit.x_for_loss(law, 1.6)
    assert reach["reachable"] and reach["x"] == pytest.approx((40.0 / 0.1) ** 2, rel=1e-4)
    assert fit.x_for_loss(law, 1.4) == {"loss": 1.4, "reachable": False}
    check = fit.holdout_check(XS, law_points())
    assert check["checked"] and check["x"] == 3e4 and abs(check["x_error"]) < 1e-3 and abs(check["loss_error"]) < 1e-5


def test_the_law_fit_gives_uncertainty_from_the_residuals():
    noisy = [y + d for y, d in zip(law_points(), (0.01, -0.01, 0.01, -0.01, 0.01))]
    law = fit.fit_law(XS, noisy)
    assert law["converged"] and law["E_se"] > 0 and law["alpha_se"] > 0 and law["A_se"] > 0
    assert law["rmse"] == pytest.approx(0.01, rel=0.3)
    low_high = fit.x_for_loss(law, 1.6)
    assert low_high["low"] < low_high["x"] < low_high["high"]


@pytest.mark.parametrize("xs, ys, reason", [
    (XS[:3], law_points(XS[:3]), "needs at least 4 points"),
    ([1e3, 1e3, 2e3, 2e3, 4e3], law_points([1e3, 1e3, 2e3, 2e3, 4e3]), "distinct positive x"),
    (XS, [1.0, 1.1, 1.2, 1.3, 1.4], "the loss does not fall with x"),
])
def test_the_law_fit_says_when_the_points_cannot_fit_it(xs, ys, reason):
    law = fit.fit_law(xs, ys)
    assert not law["converged"] and reason in law["reason"]


# ------------------------------------------------------------------------------ findings from numbers
def noise(spread: float, point: str = "m-1") -> dict:
    runs = [{"seed": seed, "train_loss": 1.0, "val_loss": 2.0 + d, "test_loss": 2.0 + d, "val_bpb": 0.7} for seed, d in ((7, 0.0), (1, spread))]
    return {"point": point, "field": "val_loss", "runs": runs, "seeds": 2, "spread": spread, "mean": 2.0 + spread / 2}


def budget_table(spread: float) -> dict:
    tokens = [4096 * m for m in (1, 2, 4, 8, 16)]
    rows = [{"point": f"m-{i}", "model": "m", "steps": t // 1024, "train_tokens": t, "train_loss": y - 0.01, "val_loss": y,
             "val_bpb": y / 3} for i, (t, y) in enumerate(zip(tokens, law_points(tokens)))]
    return {"rows": rows, "noise": noise(spread), "unigram_val_bpb": 2.0}


def test_training_budget_findings_state_the_effect_law_extrapolation_and_check():
    table = budget_table(0.01)
    section = type("Section", (), {"target_loss": 1.6})()
    table["summary"] = REGISTRY["training_budget"].summarize(table, section)
    s = table["summary"]["m"]
    assert s["exceeds_noise"] and s["law"]["converged"] and s["target"]["reachable"]
    found = REGISTRY["training_budget"].findings(table)
    first = f"m: held-out loss falls from {table['rows'][0]['val_loss']:.3f} to {table['rows'][-1]['val_loss']:.3f}"
    assert found[0].startswith(first) and "16x the training tokens (4,096 to 65,536)" in found[0]
    assert f"{s['times_spread']:g}x the seed spread (0.010 across 2 seeds at m-1)" in found[0]
    assert found[1].startswith("Fitted over training tokens D: L(D) = E + A·D^-α with E = 1.500 ± 0.000")
    assert found[2].startswith("Extrapolated: a held-out loss of 1.6 takes 160,000 training tokens")
    assert found[3].startswith("Check: fitted without the largest budget") and "(+0%)" in found[3]
    assert found[-1] == f"The worst point's val bpb is {table['rows'][0]['val_bpb'] / 2.0:.2f}x the unigram baseline's (2.000)."


def test_an_effect_inside_the_seed_spread_is_not_a_finding():
    table = budget_table(10.0)
    table["summary"] = REGISTRY["training_budget"].summarize(table, type("Section", (), {"target_loss": None})())
    assert not table["summary"]["m"]["exceeds_noise"]
    assert "within the seed spread (10.000 across 2 seeds at m-1), so no effect is measured" in REGISTRY["training_budget"].findings(table)[0]


def test_grid_findings_rank_and_weigh_each_axis_against_the_noise():
    losses = {(32, 0.01): 3.3, (32, 0.02): 3.1, (64, 0.01): 3.2, (64, 0.02): 3.35}
    rows = [{"point": f"g-{e}-{lr}", "model": "g", "embed": e, "block_size": 32, "layers": 1, "heads": 2, "lr": lr,
             "batch_size": 8, "params": 10, "val_loss": v, "val_bpb": v / 3} for (e, lr), v in losses.items()]
    table = {"rows": rows, "noise": noise(0.04), "unigram_val_bpb": 2.0}
    table["summary"] = REGISTRY["hparam_grid"].summarize(table, None)
    found = REGISTRY["hparam_grid"].findings(table)
    assert found[0] == "The best configuration is g e32 b32 l1 h2 lr0.02 bs8 (val loss 3.100, 1.033 bpb)."
    assert "beats the worst, g e64 b32 l1 h2 lr0.02 bs8 (3.350), by 0.250: 6.2x the seed spread" in found[1]
    assert "g embed: mean val loss 3.200 at embed 32, 3.275 at embed 64; the spread between them, 0.075, is 1.9x" in found[2]
    assert "g lr: mean val loss 3.250 at lr 0.01, 3.225 at lr 0.02" in found[3] and "so no effect is measured" in found[3]
    assert ("g: the best lr depends on embed: lr 0.02 at embed 32 (by 0.200), lr 0.01 at embed 64 (by 0.150), "
            "each margin beyond the seed spread.") in found



def test_the_noise_seeds_must_differ_from_the_seed_of_the_points():
    raw = smoke_params()
    raw["sweeps"]["noise_seeds"] = [3, raw["seed"]]
    with pytest.raises(PicoError, match=re.escape(f"sweeps.noise_seeds lists {raw['seed']}, the seed every point already trains with")):
        parse_params(raw)
