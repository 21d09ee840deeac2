"""Stage `interpret@<model>`: every training snapshot of a model scored for copying, in-context
learning and (Transformers) induction heads -> metrics/interpret/<model>.json, and the attention
example data/interpret/<model>.json that the `plots` stage draws."""

import sys

from picollm import paths, tokenizer
from picollm.data.prepare import read_split
from picollm.data.stories import character_names
from picollm.errors import PicoError, exit_on_pico_error
from picollm.interpret_training import attention_example, interpret_snapshots, story_tokens_and_classes
from picollm.io import write_json
from picollm.params import load_params


@exit_on_pico_error
def main(name: str) -> None:
    params = load_params()
    if name not in params.models:
        raise PicoError(f"interpret@{name}: no model named {name!r} under models; defined: {sorted(params.models)}")
    snapshots = sorted(paths.snapshot_dir(name).glob("step-*.ckpt"))
    if not snapshots:
        raise PicoError(f"{paths.snapshot_dir(name)} holds no snapshots; set train.snapshots: true and rerun train@{name}")
    tok = tokenizer.load(paths.TOKENS_DIR)
    texts = [doc.text for doc in read_split(paths.PREPARED_DIR, "val")][: params.interpret.stories]
    names = character_names() if params.data.source == "stories" else frozenset()
    stories, classes = story_tokens_and_classes(texts, tok, names)
    result, final_model = interpret_snapshots(snapshots, stories, classes, tok)
    write_json(paths.interpret_metrics(name), {"model": name, **result})
    example = attention_example(final_model, result, stories, classes, tok)
    write_json(paths.interpret_example(name), {"model": name, "attention_example": example})


if __name__ == "__main__":
    main(sys.argv[1])
