"""Proof-of-concept experiment: a synthetic preference task that isolates AAO's mechanism.

Chosen and rejected responses share most of their tokens (identical or lightly
paraphrased filler) and differ only in a few key tokens that decide the
preference. ``ambiguous_share`` sets how much of each response is shared.
Modules: :mod:`pipeline.poc.config` (the settings), :mod:`pipeline.poc.data` (the
generator), :mod:`pipeline.poc.models` (tokenizer and start models),
:mod:`pipeline.poc.train` (one training run with held-out evaluation) and
:mod:`pipeline.poc.report` (table, intervals, curves, summary).
"""
