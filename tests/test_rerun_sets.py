"""Which stages an edit of params.yaml makes stale: the exact set, for one edit per params section.

No training: each edit is written into a clone of the smoke repo and read back the way
`dvc status` reads it. A stage that reacts to too much (the bench retraining when `train:`
changes) or to too little (an evaluation that ignores `evaluate:`) fails its row.

`RERUNS_ON` is the intended design, written here independently of dvc.yaml: one line per stage,
listing the params whose change must rerun it (a line covers a key and everything under it).
`<model>` stands for the stage's own model. A new stage is one new line.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from picollm.profiles import run

from conftest import clone_smoke_repo

STUDY_POINT = ["seed", "train", "models.<model>", "sweeps.eval_docs"]
RERUNS_ON: dict[str, list[str]] = {
    "manifests": [],  # code only: test_a_code_edit_makes_exactly_the_stages_that_can_import_it_stale
    "prepare": ["seed", "data"],
    "tokenize": ["tokenizer"],
    "train@<model>": ["seed", "train", "models.<model>"],
    "evaluate@<model>": ["data.source", "evaluate", "train.block_size", "models.<model>"],
    "interpret@<model>": ["interpret", "data.source"],  # its model's changes come through the snapshots
    "compare": ["models"],
    "sample@<model>": ["sample", "data.source"],
    "sample_summary": ["sample", "data.source"],
    "speedrun": ["seed", "train", "models.gptoss", "speedrun"],  # the smoke profile races gptoss
    "sweep_corpus_size@<point>": [*STUDY_POINT, "sweeps.corpus_size.spec", "sweeps.corpus_size.train"],
    "sweep_training_budget@<point>": [*STUDY_POINT, "sweeps.training_budget.spec", "sweeps.training_budget.train",
                                      "sweeps.training_budget.base_steps"],
    "sweep_overfitting_data": ["sweeps.overfitting.documents", "sweeps.overfitting.train_fraction"],
    "sweep_overfitting@<point>": [*STUDY_POINT, "sweeps.overfitting.spec", "sweeps.overfitting.train",
                                  "sweeps.overfitting.prompt_words", "sweeps.overfitting.samples",
                                  "sweeps.overfitting.max_new_tokens"],
    "sweep_hparam_grid@<point>": [*STUDY_POINT, "sweeps.hparam_grid.spec", "sweeps.hparam_grid.train"],
    # One point of each study again with more seeds; the smoke profile's noise points are gptoss'.
    **{f"sweep_{study}_noise": ["train", "models.gptoss", "sweeps.eval_docs", "sweeps.noise_seeds", f"sweeps.{study}.noise",
                                f"sweeps.{study}.spec", f"sweeps.{study}.train", *extra]
       for study, extra in (("corpus_size", []), ("training_budget", ["sweeps.training_budget.base_steps"]),
                            ("overfitting", []), ("hparam_grid", []))},
    "aggregate@corpus_size": ["sweeps.eval_docs", "sweeps.corpus_size"],
    "aggregate@training_budget": ["sweeps.eval_docs", "sweeps.training_budget"],
    "aggregate@overfitting": ["sweeps.eval_docs", "sweeps.overfitting"],
    "aggregate@hparam_grid": ["sweeps.eval_docs", "sweeps.hparam_grid"],
    "plots": ["models"],
    "throughput": ["models"],
    "bench": ["bench", "tokenizer.encode_threads"],
    "report": ["models"],
}
PER_MODEL = {"train", "evaluate", "sample", "interpret"}  # stages `<name>@<model>`


def bump(value):
    return value + 1 if isinstance(value, int) else value


# One edit per params section and per key that some stage declares alone: (dotted key, new value
# from the old). Each leaves the params valid, though `dvc status` would not check that.
EDITS: dict[str, object] = {
    "seed": bump,
    "data.source": lambda _: "text",
    "data.stories.count": bump,
    "data.val_fraction": lambda v: v + 0.05,
    "tokenizer.vocab_size": lambda v: v + 16,
    "tokenizer.encode_threads": bump,
    "train.steps": bump,
    "train.block_size": lambda v: v // 2,
    "train.lr": lambda v: v / 2,
    "models.lstm.hidden": bump,
    "models.gptoss.d_ff": lambda v: v * 2,
    "evaluate.max_new_tokens": bump,
    "interpret.stories": bump,
    "sample.num_samples": bump,
    "sweeps.eval_docs": bump,
    "sweeps.corpus_size.train.steps": bump,
    "sweeps.training_budget.base_steps": bump,
    "sweeps.overfitting.documents": bump,
    "sweeps.overfitting.samples": bump,
    "sweeps.hparam_grid.train.steps": bump,
    "bench.repeats": bump,
    "speedrun.target_floor_ratio": lambda v: v * 2,
}


def within(key: str, declared: str) -> bool:
    return key == declared or key.startswith(declared + ".")


def stage_pattern(name: str) -> str:
    base, _, key = name.partition("@")
    if not key:
        return name
    if base in PER_MODEL:
        return f"{base}@<model>"
    return f"{base}@<point>" if f"{base}@<point>" in RERUNS_ON else name


def stage_model(name: str, cmd: str) -> str | None:
    base, _, key = name.partition("@")
    if base in PER_MODEL:
        return key
    found = re.search(r"\bmodel=(\S+)", cmd)
    return found.group(1) if found else None


def expected_stale(stages: dict[str, str], key: str) -> set[str]:
    """The stages (name -> command) that RERUNS_ON says an edit of `key` must make stale."""
    stale = set()
    for name, cmd in stages.items():
        pattern = stage_pattern(name)
        assert pattern in RERUNS_ON, f"stage {name} has no line in RERUNS_ON: add the params it must rerun on"
        model = stage_model(name, cmd)
        declared = [d.replace("<model>", model) if model else d for d in RERUNS_ON[pattern]]
        if any(within(key, d) for d in declared):
            stale.add(name)
    return stale


def stale_stages(repo) -> tuple[dict[str, str], set[str]]:
    """Every stage (name -> command) and those whose params dependencies changed, as `dvc status` sees them.

    `dvc status` reports a stage when any dependency changed; an edit of params.yaml can change
    only params dependencies (the repo starts with an empty status), so these are DVC's own
    status checks of those, in process: a CLI start per row would cost a second or two."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        stages = {stage.name: stage.cmd for stage in dvc_repo.index.stages}
        stale = {
            stage.name for stage in dvc_repo.index.stages
            if any(isinstance(dep, ParamsDependency) and dep.status() for dep in stage.deps)
        }
    return stages, stale


def set_key(params: dict, key: str, change) -> None:
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    new = change(node[leaf])
    assert new != node[leaf], key
    node[leaf] = new


@pytest.fixture(scope="module")
def status_clone(smoke_repo, tmp_path_factory):
    """A clone whose params.yaml each row edits and puts back; it starts with nothing stale."""
    clone = clone_smoke_repo(smoke_repo, tmp_path_factory.mktemp("rerun") / "clone")
    assert json.loads(run(["dvc", "status", "--json"], clone).stdout) == {}
    return clone


@pytest.fixture
def edit_params(status_clone):
    path = status_clone / "params.yaml"
    original = path.read_text(encoding="utf-8")

    def edit(key: str) -> None:
        params = yaml.safe_load(original)
        set_key(params, key, EDITS[key])
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    yield edit
    path.write_text(original, encoding="utf-8")


@pytest.mark.parametrize("key", EDITS)
def test_an_edit_makes_exactly_its_stages_stale(status_clone, edit_params, key):
    edit_params(key)
    stages, stale = stale_stages(status_clone)
    expected = expected_stale(stages, key)
    assert expected, f"no stage reruns on {key}: a dead parameter, or a missing line in RERUNS_ON"
    assert stale == expected, {"unexpected": sorted(stale - expected), "missing": sorted(expected - stale)}


def test_the_in_process_check_is_what_dvc_status_reports(status_clone, edit_params):
    """The shortcut above against the real `dvc status --json`, on an edit that reaches many stages."""
    edit_params("train.block_size")
    reported = json.loads(run(["dvc", "status", "--json"], status_clone).stdout)
    assert set(reported) == stale_stages(status_clone)[1]
    changes = [change for entry in reported.values() for change in entry]
    assert all(list(change) == ["changed deps"] and list(change["changed deps"]) == ["params.yaml"] for change in changes), reported


def test_every_params_section_and_every_stage_is_covered(status_clone):
    params = yaml.safe_load((status_clone / "params.yaml").read_text(encoding="utf-8"))
    assert {key.split(".")[0] for key in EDITS} == set(params)
    stages, _ = stale_stages(status_clone)
    touched = set().union(*(expected_stale(stages, key) for key in EDITS))
    assert touched == set(stages) - {"manifests"}, f"stages no edit reaches: {sorted(set(stages) - touched)}"


def test_a_code_edit_makes_exactly_the_stages_that_can_import_it_stale(smoke_clone):
    """`dvc status` first names only `manifests`; once it reran, the stages whose script can import the edited file."""
    edited = "picollm/sampling_study.py"
    path = smoke_clone / edited
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    assert set(json.loads(run(["dvc", "status", "--json"], smoke_clone).stdout)) == {"manifests"}
    run(["dvc", "repro", "--single-item", "manifests"], smoke_clone)
    importers = {p.stem for p in (smoke_clone / "manifests").glob("*.txt") if f"  {edited}\n" in p.read_text(encoding="utf-8")}
    assert importers == {"sample", "sample_summary"}
    stages, _ = stale_stages(smoke_clone)
    expected = {name for name, cmd in stages.items() if re.search(r"-m stages\.(\w+)", cmd).group(1) in importers}
    assert set(json.loads(run(["dvc", "status", "--json"], smoke_clone).stdout)) == expected
