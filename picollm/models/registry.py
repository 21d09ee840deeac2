"""From a params.yaml model entry to a config and a model.

A spec is one entry of params.yaml's `models:` section minus its training keys, e.g.
`{"family": "transformer", "preset": "gptoss", "d_model": 128, "n_layer": 2}`. Resolution:

1. `family` picks the config dataclass (FAMILY_CONFIGS) and the model class (model_class);
2. start from the dataclass defaults, then the preset's fields (transformer only), then the
   spec's own fields, which may override any field;
3. `vocab_size` (and the k-gram's `pad_id`) come from the tokenizer, never from params;
4. `max_seq_len` becomes the run's block_size unless the spec sets it; for the transformer,
   block_size may not exceed the preset's (or the spec's) max_seq_len;
5. the config checks itself; every problem is one PicoError naming `<key>.<field>`.

Resolving a config never imports torch (see configs.py); only building a model does.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from picollm.errors import PicoError
from picollm.models.configs import KGramConfig, LSTMConfig, TransformerConfig, require_positive_int
from picollm.models.presets import TRANSFORMER_PRESETS

if TYPE_CHECKING:
    from picollm.models.base import LanguageModel

FAMILY_CONFIGS: dict[str, type] = {
    "kgram": KGramConfig,
    "lstm": LSTMConfig,
    "transformer": TransformerConfig,
}
# Where each family's nn.Module lives, imported on first build (it brings in torch).
FAMILY_MODELS: dict[str, str] = {
    "kgram": "picollm.models.kgram:KGramMLP",
    "lstm": "picollm.models.lstm:LSTMLanguageModel",
    "transformer": "picollm.models.transformer:Transformer",
}

# Families whose specs may name a preset.
PRESETS: dict[str, Mapping[str, Mapping]] = {"transformer": TRANSFORMER_PRESETS}

# Config fields the data decides; params may not set them.
SET_BY_TOKENIZER = ("vocab_size", "pad_id")

# Families with a designed longest context (a position table, a RoPE design length). The others
# read any length, so their max_seq_len is simply the run's block_size.
CONTEXT_LIMITED = ("transformer",)


def _family_config(family: object, key: str) -> type:
    if not isinstance(family, str) or family not in FAMILY_CONFIGS:
        shown = "missing" if family is None else f"{family!r}"
        raise PicoError(
            f"{key}.family={shown} is not allowed; choose one of: {', '.join(FAMILY_CONFIGS)}"
        )
    return FAMILY_CONFIGS[family]


def model_class(family: str) -> type[LanguageModel]:
    module, name = FAMILY_MODELS[family].split(":")
    return getattr(importlib.import_module(module), name)


def model_config(spec: Mapping, *, vocab_size: int, block_size: int, pad_id: int, key: str = "model"):
    """The resolved, checked config dataclass for `spec` (no weights are built)."""
    if not isinstance(spec, Mapping):
        raise PicoError(f"{key}={spec!r} is not allowed; it must be a mapping of model settings")
    require_positive_int("train", "block_size", block_size)
    family = spec.get("family")
    config_cls = _family_config(family, key)
    presets = PRESETS.get(family, {})
    field_names = [f.name for f in dataclasses.fields(config_cls)]
    settable = [name for name in field_names if name not in SET_BY_TOKENIZER]
    selectors = ["family"] + (["preset"] if presets else [])

    for name, value in spec.items():
        if name not in selectors and name not in settable:
            raise PicoError(
                f"{key}.{name}={value!r} is not a setting of the {family} model; "
                f"allowed: {', '.join(selectors + settable)}"
            )
    values: dict = {}
    preset = spec.get("preset")
    if presets and preset is not None:
        if not isinstance(preset, str) or preset not in presets:
            raise PicoError(f"{key}.preset={preset!r} is not allowed; choose one of: {', '.join(presets)}")
        values.update(presets[preset])
    values.update({name: value for name, value in spec.items() if name not in selectors})
    values["vocab_size"] = vocab_size
    if family not in CONTEXT_LIMITED and "max_seq_len" not in spec:
        values["max_seq_len"] = block_size
    if "pad_id" in field_names:
        values["pad_id"] = pad_id

    config = config_cls(**values)
    config.check(key)

    if block_size > config.max_seq_len:
        source = "set in params" if "max_seq_len" in spec else f"of the {preset or family} design"
        raise PicoError(
            f"block_size={block_size} is not allowed with {key}.max_seq_len={config.max_seq_len} "
            f"({source}); block_size must be <= max_seq_len, the longest context the model has positions for"
        )
    if "max_seq_len" not in spec:
        config = dataclasses.replace(config, max_seq_len=block_size)
    return config


def build_model(spec: Mapping, *, vocab_size: int, block_size: int, pad_id: int, key: str = "model") -> LanguageModel:
    """A freshly initialised model for `spec` (seed torch beforehand for reproducible weights)."""
    config = model_config(spec, vocab_size=vocab_size, block_size=block_size, pad_id=pad_id, key=key)
    return model_class(spec["family"])(config)


def model_from_config(family: str, config_dict: Mapping) -> LanguageModel:
    """Rebuild a model (random weights, load the state_dict next) from a checkpoint's config."""
    key = "checkpoint.model_config"
    config_cls = _family_config(family, "checkpoint")
    field_names = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(config_dict) - set(field_names))
    if unknown:
        raise PicoError(
            f"{key}.{unknown[0]}={config_dict[unknown[0]]!r} is not a field of the {family} config; "
            f"allowed: {', '.join(field_names)}"
        )
    config = config_cls(**config_dict)
    config.check(key)
    return model_class(family)(config)
