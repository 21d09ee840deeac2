"""The studies: sweeps whose every point is its own cached DVC stage.

Their params schema is picollm/config_sweeps.py. Here: one module per study,
picollm/studies/<study>.py (summary, findings, figures, report tables; found through registry.py);
plan.py makes the points and their files, run.py trains one, aggregate.py gathers them, fit.py
fits the scaling laws, base.py holds what the scaling studies share. Design, budgets and measured
numbers: docs/studies.md.
"""
