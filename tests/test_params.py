"""params.yaml validation: every mistake is one sentence naming the key, the value and what is allowed.

Mostly `parse_params` / `load_params` directly; one real `python -m stages.prepare` run checks
that a malformed params.yaml ends the stage with exit code 2, one `error:` line and no output.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import re

import pytest
import yaml

import helpers as H
from picollm.config import load_params, parse_params
from picollm.errors import PicoError


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


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("seed", "x", "seed = 'x' is not allowed: Input should be a valid integer"),
        ("train.steps", "many", "train.steps = 'many' is not allowed: Input should be a valid integer"),
        ("train.steps", 2.5, "train.steps = 2.5 is not allowed: Input should be a valid integer"),
        ("train.compile", "sometimes", "train.compile = 'sometimes' is not allowed: Input should be a valid boolean"),
        ("data.text.paths", "corpus", "data.text.paths = 'corpus' is not allowed: Input should be a valid list"),
        ("data.text", None, "data.text = None is not allowed"),
        ("models.tiny", "transformer", "models.tiny = 'transformer' is not allowed: Input should be a valid dictionary"),
        ("models.tiny.d_model", "big", "models.tiny.d_model='big' is not allowed; it must be a positive integer"),
        ("models.tiny.d_model", 32.0, "models.tiny.d_model=32.0 is not allowed; it must be a positive integer"),
        ("models.tiny.norm", ["rmsnorm"], "models.tiny.norm=['rmsnorm'] is not allowed; choose one of: layernorm, rmsnorm"),
        ("models.tiny.tie_weights", "yes", "models.tiny.tie_weights='yes' is not allowed; it must be true or false"),
    ],
)
def test_wrong_types_are_named(path, value, expected):
    assert expected in rejected(params_with(path, value))


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("seed", -1, "seed = -1 is not allowed: Input should be greater than or equal to 0"),
        ("train.lr", -1, "train.lr = -1 is not allowed: Input should be greater than 0"),
        ("train.lr", 2, "train.lr = 2 is not allowed: Input should be less than or equal to 1"),
        ("train.lr", float("nan"), "train.lr = nan is not allowed"),
        ("train.steps", 0, "train.steps = 0 is not allowed: Input should be greater than or equal to 1"),
        ("train.block_size", 1, "train.block_size = 1 is not allowed: Input should be greater than or equal to 2"),
        ("train.beta2", 1.0, "train.beta2 = 1.0 is not allowed: Input should be less than 1"),
        ("data.val_fraction", 0.7, "data.val_fraction = 0.7 is not allowed: Input should be less than 0.5"),
        ("data.test_fraction", 0, "data.test_fraction = 0 is not allowed: Input should be greater than 0"),
        ("data.mix.weight", 1.5, "data.mix.weight = 1.5 is not allowed: Input should be less than or equal to 1"),
        ("data.stories.count", 3, "data.stories.count = 3 is not allowed: Input should be greater than or equal to 10"),
        ("tokenizer.vocab_size", 256, "tokenizer.vocab_size = 256 is not allowed: Input should be greater than or equal to 257"),
        ("tokenizer.vocab_size", 10**6, "tokenizer.vocab_size = 1000000 is not allowed: Input should be less than or equal to 200000"),
        ("tokenizer.encode_threads", 0, "tokenizer.encode_threads = 0 is not allowed"),
        ("evaluate.num_samples", 0, "evaluate.num_samples = 0 is not allowed"),
        ("models.tiny.train.lr", 5, "models.tiny.train.lr = 5 is not allowed: Input should be less than or equal to 1"),
        ("models.tiny.dropout", 1.5, "models.tiny.dropout=1.5 is not allowed; it must be a number in [0, 1)"),
        ("models.tiny.rope_base", 0, "models.tiny.rope_base=0 is not allowed; it must be a finite number > 0"),
    ],
)
def test_out_of_range_values_are_named_with_the_allowed_range(path, value, expected):
    assert expected in rejected(params_with(path, value))


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("data.source", "web", "data.source = 'web' is not allowed: Input should be 'stories', 'tinystories' or 'text'"),
        ("tokenizer.kind", "wordpiece", "tokenizer.kind = 'wordpiece' is not allowed: Input should be 'bpe' or 'gpt2'"),
        ("train.device", "tpu", "train.device = 'tpu' is not allowed: Input should be 'auto', 'cpu', 'cuda' or 'mps'"),
        ("models.tiny.family", "rnn", "models.tiny.family='rnn' is not allowed; choose one of: kgram, lstm, transformer"),
        ("models.tiny.preset", "gpt5", "models.tiny.preset='gpt5' is not allowed; choose one of: mingpt, gpt2, gptoss, llama3lite"),
        ("models.tiny.variant", "onehot", "models.tiny.variant='onehot' is not a setting of the transformer model"),
    ],
)
def test_unknown_choices_list_the_allowed_ones(path, value, expected):
    assert expected in rejected(params_with(path, value))


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
        ("seed: 1\ndata: [\n", r"is not valid YAML at line 3, column 1: expected the node content"),
        ("seed: 1\n  models: x\n", r"is not valid YAML at line 2, column 9: mapping values are not allowed here"),
        ("seed: 1\n\tmodels: {}\n", r"is not valid YAML at line 2, column 1"),
        ('seed: "unterminated\n', r"is not valid YAML at line \d+, column \d+"),
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
    assert re.fullmatch(r"error: (\S*/)?params\.yaml is not valid YAML at line 3, column 1: "
                        r"expected the node content, but found '<stream end>'", line), line
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (root / "data" / "prepared").exists() and not (root / "metrics").exists()


def test_validating_params_and_the_torch_free_stages_never_import_torch():
    # Importing torch costs ~1.2 s per process; every stage validates params.yaml, so a torch import
    # reached from the schema (a model config, a sampling setting) would tax each of the ~20 stages.
    probe = (
        "import sys\n"
        "from picollm.config import load_params\n"
        "import stages.prepare, stages.tokenize, stages.compare, stages.aggregate, stages.report\n"
        f"load_params({str(H.PROJECT_ROOT / 'params.yaml')!r})\n"
        "print(sorted(name for name in sys.modules if name == 'torch' or name.startswith('torch.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=H.PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
