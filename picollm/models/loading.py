"""A trained model from its checkpoint: the recorded family and config rebuilt, the weights loaded and checked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from picollm.checkpoint import load_checkpoint
from picollm.errors import PicoError
from picollm.models.base import LanguageModel
from picollm.models.registry import model_from_config

if TYPE_CHECKING:  # the tokenizer sits above the models layer; only its identity is read here
    from picollm.tokenizer import Tokenizer


def load_model(path: str | Path, tokenizer: Tokenizer | None = None, expect: dict | None = None) -> LanguageModel:
    """A trained model in eval mode, checked against the tokenizer and `expect` when given."""
    payload = load_checkpoint(path, tokenizer_identity=tokenizer.identity if tokenizer else None, expect=expect)
    return model_from_payload(payload, path)


def model_from_payload(payload: dict, path: str | Path) -> LanguageModel:
    """The model of a checkpoint `load_checkpoint` already read and verified from `path`, in eval mode."""
    model = model_from_config(payload["family"], payload["config"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise PicoError(f"{path}: its weights do not fit its recorded config ({str(err).splitlines()[0]})") from None
    return model.eval()
