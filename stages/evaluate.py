"""Stage `evaluate@<model>`: held-out loss, perplexity, bits per byte, floor gap, and samples."""

import sys
from dataclasses import asdict

import torch

from picollm import paths, tokenizer
from picollm.data.prepare import read_split
from picollm.data.stories import character_names
from picollm.data.tokens import TokenStream
from picollm.errors import exit_on_pico_error
from picollm.evaluate import eval_metrics
from picollm.generation import generate
from picollm.io import read_json, write_json, write_text
from picollm.loss_classes import split_token_classes
from picollm.models.loading import load_model
from picollm.models.registry import model_config
from picollm.params import load_params
from picollm.sampling import SamplingConfig


def samples_markdown(name: str, model, tok, prompt: str, settings, max_new_tokens: int, seed: int) -> str:
    lines = [f"# Samples from `{name}`", "", f"Prompt: `{prompt}`", ""]
    prompt_ids = [tok.eot_id, *tok.encode(prompt)]  # a story starts after an end-of-text, as in training
    for label, sampling, count in settings:
        lines.append(f"## {label}")
        lines.append("")
        for index in range(count):
            generator = torch.Generator().manual_seed(seed + index)
            ids = list(generate(model, prompt_ids, max_new_tokens=max_new_tokens, sampling=sampling, eot_id=tok.eot_id, generator=generator))
            lines.append(f"{index + 1}. {prompt}{tok.decode(ids)}".replace("\n", " "))
        lines.append("")
    return "\n".join(lines)


@exit_on_pico_error
def main(name: str) -> None:
    params = load_params()
    meta = read_json(paths.TOKENS_META)
    tok = tokenizer.load(paths.TOKENS_DIR)
    train = params.model_train(name)
    # The checkpoint must be the model params.yaml describes now, not a stale or copied one.
    expected = model_config(params.model_spec(name), vocab_size=tok.vocab_size, block_size=train.block_size, pad_id=tok.eot_id, key=f"models.{name}")
    model = load_model(paths.model_checkpoint(name), tok, expect={"family": params.models[name]["family"], "config": asdict(expected)})
    streams = {split: TokenStream.open(paths.TOKENS_DIR / f"{split}.bin", tok.vocab_size) for split in ("val", "test")}
    split_bytes = {split: meta["splits"][split]["bytes"] for split in streams}
    floor = read_json(paths.DATA_METRICS).get("entropy_floor_bpb")
    block_size = train.block_size
    val_texts = [doc.text for doc in read_split(paths.PREPARED_DIR, "val")]
    names = character_names() if params.data.source == "stories" else frozenset()
    val_classes = (split_token_classes(val_texts, tok, names, len(streams["val"]) - 1), len(val_texts))
    metrics = eval_metrics(model, streams, split_bytes, block_size, floor, meta["unigram_val_bpb"], val_classes, eot_id=tok.eot_id)
    write_json(paths.eval_metrics(name), metrics)
    ev = params.evaluate
    settings = [("greedy", SamplingConfig(greedy=True), 1), (f"top-p {ev.top_p:g}", SamplingConfig(top_p=ev.top_p), ev.num_samples)]
    write_text(paths.samples_file(name), samples_markdown(name, model, tok, ev.prompt, settings, ev.max_new_tokens, ev.sample_seed))


if __name__ == "__main__":
    main(sys.argv[1])
