"""Train one tiny model of each family a few steps with the loop's own step on one thread and
print the sha256 of every model's weights (tests/test_kernels.py pins them)."""

import hashlib
import json

import torch

from picollm.config import TrainParams
from picollm.device import ProcessGroup
from picollm.models.registry import build_model
from picollm.optim import make_optimizer
from picollm.train import train_step

VOCAB, BATCH, BLOCK, STEPS = 97, 4, 32, 6
SPECS = {
    "kgram": ({"family": "kgram", "variant": "embed", "k": 3, "d_embed": 16, "hidden": 64}, "adamw"),
    "lstm": ({"family": "lstm", "d_embed": 16, "hidden": 48, "n_layer": 1}, "muon"),
    "gpt2": ({"family": "transformer", "preset": "gpt2", "d_model": 64, "n_layer": 2, "n_head": 4, "d_ff": 128}, "muon"),
    "llama3lite": ({"family": "transformer", "preset": "llama3lite", "d_model": 64, "n_layer": 2, "n_head": 4,
                    "n_kv_head": 2, "d_ff": 128}, "muon"),
}


def weights_sha(spec: dict, optimizer: str) -> str:
    torch.manual_seed(0)
    train = TrainParams(batch_size=BATCH, block_size=BLOCK, micro_batch_size=0, optimizer=optimizer, lr=0.01, warmup_steps=1)
    model = build_model(spec, vocab_size=VOCAB, block_size=BLOCK, pad_id=0)
    opt = make_optimizer(model, train)
    generator = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        rows = torch.randint(VOCAB, (BATCH, BLOCK + 1), generator=generator)
        train_step(model, model, opt, (rows[:, :-1], rows[:, 1:]), step, train, torch.device("cpu"), ProcessGroup(), BATCH, 1)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    torch.set_num_threads(1)  # the thread count is part of what fixes the bytes
    torch.use_deterministic_algorithms(True)
    print(json.dumps({name: weights_sha(spec, opt) for name, (spec, opt) in SPECS.items()}))
