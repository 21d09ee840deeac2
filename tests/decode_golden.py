"""The decoded tokens that `test_decode_identity.py` pins: every model family of test_generation,
greedy and sampled settings, with and without the KV cache, past max_context, several seeds.

`python tests/decode_golden.py` rewrites tests/data/decode_golden.json; run it only when a change
to the sampled tokens is intended (the pipeline's committed samples depend on them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from test_generation import SPECS, tiny  # noqa: E402

from picollm.generation import generate, generate_batch  # noqa: E402
from picollm.sampling import SamplingConfig  # noqa: E402

GOLDEN_PATH = Path(__file__).parent / "data" / "decode_golden.json"
SETTINGS = {
    "greedy": SamplingConfig(greedy=True),
    "p=1": SamplingConfig(),
    "p=0.9,T=0.8": SamplingConfig(temperature=0.8, top_p=0.9),
    "p=0.5": SamplingConfig(top_p=0.5),
    "k=5": SamplingConfig(top_k=5),
    "k=3,p=0.8,T=1.5": SamplingConfig(temperature=1.5, top_k=3, top_p=0.8),
}
SEEDS = range(8)
PROMPTS = {"1": [5], "longer-than-context": list(range(1, 12))}
NEW_TOKENS = 20  # crosses CONTEXT = 8, so the cached path re-prefills


def decoded() -> dict[str, list]:
    """key -> tokens, for every (model, setting, prompt, cache, seed) and a batch of 3 per model."""
    out: dict[str, list] = {}
    for name in SPECS:
        model = tiny(name)
        for label, sampling in SETTINGS.items():
            for prompt_label, prompt in PROMPTS.items():
                for use_cache in (True, False):
                    for seed in SEEDS:
                        generator = torch.Generator().manual_seed(seed)
                        key = f"{name}|{label}|{prompt_label}|{'cache' if use_cache else 'no_cache'}|{seed}"
                        out[key] = list(generate(model, prompt, max_new_tokens=NEW_TOKENS, sampling=sampling,
                                                 generator=generator, use_cache=use_cache))
            generator = torch.Generator().manual_seed(11)
            out[f"{name}|{label}|batch3"] = generate_batch(model, [5], 3, max_new_tokens=NEW_TOKENS, sampling=sampling,
                                                           generator=generator)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    GOLDEN_PATH.write_text(json.dumps(decoded(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN_PATH}")
