"""params.yaml validation: every mistake is one sentence naming the key, the value and what is allowed.

Mostly `parse_params` / `load_params` directly; one real `python -m stages.prepare` run checks
that a malformed params.yaml ends the stage with exit code 2, one `error:` line and no output.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml

from picollm.errors import PicoError
from picollm.params import load_params, parse_params

import helpers as H

DELETE = object()


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert not re.search(r"[.!?] [A-Z]", message), f"more than one sentence: {message}"


def params_with(path: str, value) -> dict:
    """The smoke-sized params with one dotted key set (a missing leaf is created)."""
    params = copy.deepcopy(H.smoke_params())
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return params


def rejected(params) -> str:
    with pytest.raises(PicoError) as err:
        parse_params(params)
    message = str(err.value)
    assert message.startswith("params.yaml: "), message
    assert_one_sentence(message)
    return message


def test_the_shipped_params_and_profiles_are_valid():
    for path in [H.PROJECT_ROOT / "params.yaml", *sorted((H.PROJECT_ROOT / "profiles").glob("*.yaml"))]:
        assert load_params(path).models, path
    assert parse_params(H.smoke_params()).models["tiny"]["family"] == "transformer"


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("trian", {}, "unknown key 'trian'"),
        ("train.lrr", 0.1, "unknown key 'train.lrr'"),
        ("data.text.encoding", "latin-1", "unknown key 'data.text.encoding'"),
        ("models.tiny.train.stepz", 3, "unknown key 'models.tiny.train.stepz'"),
        ("models.tiny.dmodel", 32, "models.tiny.dmodel=32 is not a setting of the transformer model; allowed: family, preset"),
    ],
)
def test_unknown_keys_are_named(path, value, expected):
    assert expected in rejected(params_with(path, value))


def test_the_speedrun_baseline_takes_its_steps_from_its_budget():
    message = rejected(params_with("speedrun.baseline", {"optimizer": "adamw", "steps": 900}))
    assert "speedrun.baseline = {'optimizer': 'adamw', 'steps': 900} is not allowed" in message
    assert "the baseline's steps are speedrun.baseline_budget times the model's" in message


def assert_names_the_value_and_what_is_allowed(message: str, path: str, value, allowed: tuple[str, ...]) -> None:
    """The contract, not any library's wording: the dotted key with the offending value, refused,
    then every allowed type, bound or choice, as a word of its own."""
    refused = [f"{path} = {value!r} is not allowed", f"{path}={value!r} is not allowed"]
    assert any(part in message for part in refused), message
    tail = message.split("is not allowed", 1)[1]
    for word in allowed:
        assert re.search(rf"(?<![\w.]){re.escape(word)}(?![\w.])", tail), f"{word!r} is not named in: {message}"


@pytest.mark.parametrize(
    "path, value, allowed",
    [
        ("seed", "x", ("integer",)),
        ("train.steps", "many", ("integer",)),
        ("train.steps", 2.5, ("integer",)),
        ("train.compile", "sometimes", ("boolean",)),
        ("data.text.paths", "corpus", ("list",)),
        ("data.text", None, ()),
        ("models.tiny", "transformer", ("dictionary",)),
        ("models.tiny.d_model", "big", ("positive integer",)),
        ("models.tiny.d_model", 32.0, ("positive integer",)),
        ("models.tiny.norm", ["rmsnorm"], ("layernorm", "rmsnorm")),
        ("models.tiny.tie_weights", "yes", ("true", "false")),
    ],
)
def test_wrong_types_are_named(path, value, allowed):
    assert_names_the_value_and_what_is_allowed(rejected(params_with(path, value)), path, value, allowed)


@pytest.mark.parametrize(
    "path, value, allowed",
    [
        ("seed", -1, ("0",)),
        ("train.lr", -1, ("0",)),
        ("train.lr", 2, ("1",)),
        ("train.lr", float("nan"), ()),
        ("train.steps", 0, ("1",)),
        ("train.block_size", 1, ("2",)),
        ("train.beta2", 1.0, ("1",)),
        ("data.val_fraction", 0.7, ("0.5",)),
        ("data.test_fraction", 0, ("0",)),
        ("data.mix.weight", 1.5, ("1",)),
        ("data.stories.count", 3, ("10",)),
        ("tokenizer.vocab_size", 256, ("257",)),
        ("tokenizer.vocab_size", 10**6, ("200000",)),
        ("tokenizer.encode_threads", 0, ("1",)),
        ("evaluate.num_samples", 0, ("1",)),
        ("models.tiny.train.lr", 5, ("1",)),
        ("models.tiny.dropout", 1.5, ("[0, 1)",)),
        ("models.tiny.rope_base", 0, ("0",)),
        ("speedrun.baseline_budget", 0.5, ("1",)),
    ],
)
def test_out_of_range_values_are_named_with_the_allowed_range(path, value, allowed):
    assert_names_the_value_and_what_is_allowed(rejected(params_with(path, value)), path, value, allowed)


@pytest.mark.parametrize(
    "path, value, allowed",
    [
        ("data.source", "web", ("'stories'", "'tinystories'", "'text'")),
        ("tokenizer.kind", "wordpiece", ("'bpe'", "'gpt2'")),
        ("train.device", "tpu", ("'auto'", "'cpu'", "'cuda'", "'mps'")),
        ("models.tiny.family", "rnn", ("kgram", "lstm", "transformer")),
        ("models.tiny.preset", "gpt5", ("mingpt", "gpt2", "gptoss", "llama3lite")),
    ],
)
def test_unknown_choices_list_the_allowed_ones(path, value, allowed):
    assert_names_the_value_and_what_is_allowed(rejected(params_with(path, value)), path, value, allowed)


def test_a_setting_of_another_family_is_named_with_the_allowed_settings():
    message = rejected(params_with("models.tiny.variant", "onehot"))
    assert "models.tiny.variant='onehot' is not a setting of the transformer model; allowed: " in message
    assert "d_model" in message.split("allowed: ", 1)[1]


def test_a_model_without_a_family_is_named():
    params = H.smoke_params()
    del params["models"]["tiny"]["family"]
    assert "models.tiny.family=missing is not allowed; choose one of: kgram, lstm, transformer" in rejected(params)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"d_model": 30, "n_head": 4}, "models.tiny.d_model=30 is not allowed with n_head=4; d_model must be a multiple of n_head"),
        ({"n_layer": 11}, "models.tiny.n_layer=11 is not allowed; the design caps it at 10"),
        ({"n_kv_head": None, "preset": "llama3lite", "n_head": 2}, None),  # null: as many K/V heads as heads: valid
        ({"n_head": 4, "n_kv_head": 3}, "models.tiny.n_kv_head=3 is not allowed with n_head=4; n_kv_head must divide n_head"),
        ({"preset": "llama3lite", "n_head": 6, "d_model": 48, "n_kv_head": DELETE},  # the preset's 4 K/V heads stay
         "models.tiny.n_kv_head=4 is not allowed with n_head=6; n_kv_head must divide n_head"),
        ({"max_seq_len": 16}, "block_size=32 is not allowed with models.tiny.max_seq_len=16 (set in params)"),
        ({"preset": "mingpt", "train": {"block_size": 2048}},
         "block_size=2048 is not allowed with models.tiny.max_seq_len=1024 (of the mingpt design)"),
    ],
)
def test_preset_overrides_that_break_constraints_are_named(overrides, expected):
    params = H.smoke_params()
    params["models"]["tiny"].update(overrides)
    params["models"]["tiny"] = {key: value for key, value in params["models"]["tiny"].items() if value is not DELETE}
    if expected is None:
        parse_params(params)
    else:
        assert expected in rejected(params)


def test_a_block_size_beyond_the_position_table_is_refused_for_every_model_that_uses_it():
    params = params_with("train.block_size", 8192)  # > gptoss's 4096-token design context
    message = rejected(params)
    assert re.search(r"block_size=8192 is not allowed with models\.\w+\.max_seq_len=4096 \(of the gptoss design\)", message)
    assert "block_size must be <= max_seq_len" in message


@pytest.mark.parametrize("name", ["../evil", "a/b", "", " spaced", "-x"])
def test_model_names_that_are_not_safe_file_and_stage_names_are_refused(name):
    params = H.smoke_params()
    params["models"][name] = {"family": "lstm"}
    assert f"the model name {name!r} is not allowed" in rejected(params)


@pytest.mark.parametrize("raw, expected", [
    (None, "the top level must be a mapping of sections, got NoneType"),
    ([1, 2], "the top level must be a mapping of sections, got list"),
    ({"seed": 1}, "required key 'models' is missing"),
    ({"seed": 1, "models": {}}, "models = {} is not allowed"),
])
def test_the_overall_shape_is_checked(raw, expected):
    assert expected in rejected(raw)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("seed: 1\ndata: [\n", r"is not valid YAML at line 3, column 1: \S"),
        ("seed: 1\n  models: x\n", r"is not valid YAML at line 2, column 9: \S"),
        ("seed: 1\n\tmodels: {}\n", r"is not valid YAML at line 2, column 1: \S"),
        ('seed: "unterminated\n', r"is not valid YAML at line \d+, column \d+: \S"),
    ],
)
def test_malformed_yaml_names_the_line_and_column(tmp_path, text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PicoError, match=f"^{re.escape(str(path))} {expected}") as err:
        load_params(path)
    assert_one_sentence(str(err.value))


def test_the_file_is_named_when_it_is_not_the_default(tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(params_with("train.lr", 7)), encoding="utf-8")
    with pytest.raises(PicoError, match=f"^{re.escape(str(path))}: train.lr = 7 is not allowed"):
        load_params(path)
    with pytest.raises(PicoError, match="does not exist; run from the project root"):
        load_params(tmp_path / "missing.yaml")


def test_an_edited_params_file_is_read_again(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(H.smoke_params()), encoding="utf-8")
    assert load_params(path).seed == 7
    path.write_text(yaml.safe_dump(params_with("seed", 8)), encoding="utf-8")
    assert load_params(path).seed == 8


def test_a_malformed_params_file_stops_the_real_stage_with_one_error_line_and_no_output(tmp_path):
    root = H.workspace(tmp_path, "seed: 1\ndata: [\n")
    result = H.run_stage(root, "prepare")
    assert result.returncode == 2
    [line] = H.error_lines(result.stderr)
    assert re.fullmatch(r"error: (\S*/)?params\.yaml is not valid YAML at line 3, column 1: \S.*", line), line
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (root / "data" / "prepared").exists() and not (root / "metrics").exists()


def test_validating_params_and_the_torch_free_stages_never_import_torch():
    # Importing torch costs ~1.2 s per process; every stage validates params.yaml, so a torch import
    # reached from the schema (a model config, a sampling setting) would tax each of the ~20 stages.
    probe = (
        "import sys\n"
        "from picollm.params import load_params\n"
        "import stages.prepare, stages.tokenize, stages.compare, stages.aggregate, stages.report\n"
        f"load_params({str(H.PROJECT_ROOT / 'params.yaml')!r})\n"
        "print(sorted(name for name in sys.modules if name == 'torch' or name.startswith('torch.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=H.PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_an_out_of_range_value_stops_the_real_stage_with_exit_code_2_and_one_line_naming_it(tmp_path):
    root = H.workspace(tmp_path, params_with("train.lr", 2))
    result = H.run_stage(root, "prepare")
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    [line] = H.error_lines(result.stderr)
    assert re.match(r"error: (\S*/)?params\.yaml: ", line), line
    assert_one_sentence(line)
    assert_names_the_value_and_what_is_allowed(line, "train.lr", 2, ("1",))
    assert not (root / "data" / "prepared").exists() and not (root / "metrics").exists()
