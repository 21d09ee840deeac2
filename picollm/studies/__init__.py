"""The studies: sweeps whose every point is its own cached DVC stage, trained with the shared loop.

Four studies, each defined under params.yaml's `sweeps:` (schema in picollm/config.py):

- `corpus_size`: the first N train documents, for each N, at a fixed step budget. The model
  trains on the prefix of the train token cache that ends with the N-th document
  (`TrainJob.train_token_limit`), so nothing is re-tokenized.
- `training_budget`: base_steps x each multiplier, on the whole train split.
- `overfitting`: the first `documents` train documents, split train/test and tokenized into small
  caches (`prepare_overfitting`); long training with the test part as the loop's "val", so the
  history holds the divergence curves; greedy samples from the first words of train and test
  documents show memorisation (`longest_overlap` with the training documents).
- `hparam_grid`: the Cartesian grid of embed, block_size, layers, heads, lr and batch_size.

A point is one combination of its sweep's axes (`AXES`): dvc.yaml's `matrix:` expands the same
lists in the same order and passes the values on the command line, so a point's stage is named by
its values and declares as params only what every point shares (the model entry, `train`, the
sweep's `train` overrides, ...). Changing one value creates one new stage; the others stay cached.

Every point starts from `models.<model>` (each architecture is defined once) and the merged
`train` section, then the sweep's `train` overrides, then the point's own values. It is scored
with `eval_metrics` on the first `sweeps.eval_docs` documents of each split (the train split's
documents the point trained on; the overfitting sweep's own train and test sets).

Outputs: metrics/sweeps/points/<sweep>/<point>.json (deterministic: the same params give the same
bytes), metrics/timings/sweeps/points/<sweep>/<point>.json (seconds, tokens/s), and per sweep the
tidy tables metrics/sweeps/<sweep>.json and metrics/timings/sweeps/<sweep>.json (`aggregate`).
"""
