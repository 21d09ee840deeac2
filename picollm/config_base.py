"""The base of every params section: strict models, and the constants the schema shares."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

PARAMS_FILE = "params.yaml"
GPT2_VOCAB_SIZE = 50257
# 256 byte tokens plus <|endoftext|>: a byte-level BPE cannot be smaller.
MIN_BPE_VOCAB = 257
# A model name becomes a file name (models/<name>.ckpt) and a DVC stage name (train@<name>).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
END_OF_TEXT = "<|endoftext|>"  # the end-of-text token's text (TinyStories' separator), never in a document


class Strict(BaseModel):
    # strict: "0.001" is not a number and true is not a seed; inf/nan are never a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
