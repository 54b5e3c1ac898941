"""Evaluation: a trained model on a manifest split -> metrics, intervals, fairness, reports.

Modules: ``config`` (``EvalConfig``, ``MetricOptions``, ``CompareConfig``; standard library
only, read by the CLI for its help), ``scoring`` (labels and predictions -> per-class counts),
``metrics`` (``evaluate_predictions``: pure functions, arrays in and dicts out), ``bootstrap``
(confidence intervals), ``fairness`` (per-group breakdown), ``collapse`` (a head that predicts one
value), ``data`` (manifest rows -> labels and groups), ``pipeline`` (``evaluate_run``: a run
folder -> ``metrics.json`` and the report) and ``compare`` (runs evaluated before, side by side).

This package itself imports nothing, so that the CLI can read the defaults without numpy.
"""
