"""Run by tests/test_distributed.py, alone or under torchrun: train a tiny model, dump the history.

    python tests/distributed_worker.py TOKEN_DIR OUT_JSON [micro_batch_size [optimizer]]
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from picollm import tokenizer  # noqa: E402
from picollm.train import train_model  # noqa: E402

from helpers import make_job  # noqa: E402

token_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
micro = int(sys.argv[3]) if len(sys.argv) > 3 else 0
optimizer = sys.argv[4] if len(sys.argv) > 4 else "adamw"
tok = tokenizer.load(token_dir)
spec = {"family": "transformer", "preset": "gpt2", "d_model": 32, "n_head": 2, "n_layer": 1, "d_ff": 64, "dropout": 0.0}
job = make_job(out.parent / out.stem, tok, token_dir, spec=spec, steps=12, batch_size=8, micro_batch_size=micro,
               eval_every=6, log_every=1, checkpoint_every=100, optimizer=optimizer)
result = train_model(job)
if result.is_main:
    out.write_text(json.dumps(result.history))
