"""Params sections `data` and `tokenizer`: where the corpus comes from and how it becomes tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from picollm.config_base import END_OF_TEXT, GPT2_VOCAB_SIZE, MIN_BPE_VOCAB, Strict


# ---------------------------------------------------------------- data
class StoriesParams(Strict):
    count: int = Field(20000, ge=10, le=10_000_000, description="stories to generate")


class TinyStoriesParams(Strict):
    subset: int | None = Field(20000, ge=10, description="first N stories of the train split")
    path: str | None = Field(None, description="local copy in the hub's layout, instead of the hub")




class TextFormat(Strict):  # how text files become documents: picollm/data/text_source.py, docs/data.md
    mode: Literal["line", "paragraph", "separator"] = "paragraph"
    separator: str = Field(END_OF_TEXT, description="separator mode: the text that ends each document")

    @field_validator("separator")
    @classmethod
    def _one_visible_line(cls, separator: str) -> str:
        if not separator.strip() or "\n" in separator or "\r" in separator:
            raise ValueError("the separator must be visible text on one line (no line break, not only whitespace)")
        return separator


class TextParams(TextFormat):
    paths: list[str] = Field(default_factory=lambda: ["data/custom"], min_length=1)


class MixParams(TextFormat):
    """Custom text mixed into the main source (the design notes' --input_dir / --tinystories_weight)."""

    paths: list[str] = Field(default_factory=list)
    weight: float = Field(0.0, ge=0.0, le=1.0, description="target share of custom documents")
    limit: int | None = Field(None, ge=1, description="cap on custom documents")


class DataParams(Strict):
    source: Literal["stories", "tinystories", "text"] = "stories"
    stories: StoriesParams = StoriesParams()
    tinystories: TinyStoriesParams = TinyStoriesParams()
    text: TextParams = TextParams()
    mix: MixParams = MixParams()
    val_fraction: float = Field(0.05, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.05, gt=0.0, lt=0.5)


# ---------------------------------------------------------------- tokenizer
class TokenizerParams(Strict):
    kind: Literal["bpe", "gpt2"] = "bpe"
    vocab_size: int = Field(4096, ge=MIN_BPE_VOCAB, le=200_000, description="including <|endoftext|>; bpe only")
    encode_threads: int = Field(2, ge=1, le=256)

    @property
    def effective_vocab_size(self) -> int:
        return GPT2_VOCAB_SIZE if self.kind == "gpt2" else self.vocab_size
