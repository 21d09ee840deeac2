"""Run by tests/test_reliability.py: train the tiny reference job and SIGKILL itself at a chosen step.

    python tests/kill_worker.py WORK_DIR TOKEN_DIR STEP

The process kills itself with SIGKILL as step STEP (0-based) begins, i.e. after STEP steps: no
handler, no `finally` and no atexit code runs, as when the machine's OOM killer strikes.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from picollm import tokenizer  # noqa: E402
from picollm import train as train_mod  # noqa: E402

from helpers import make_job  # noqa: E402

work, token_dir, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
real_learning_rate = train_mod.learning_rate


def learning_rate_then_kill(step, train):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_learning_rate(step, train)


train_mod.learning_rate = learning_rate_then_kill
train_mod.train_model(make_job(work, tokenizer.load(token_dir), token_dir))
