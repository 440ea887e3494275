"""Proof-of-concept experiment: a synthetic preference task that isolates AAO's mechanism.

Chosen and rejected responses share most of their tokens (identical or lightly
paraphrased filler) and differ only in a few key tokens that decide the
preference. ``ambiguous_share`` sets how much of each response is shared.
Modules: :mod:`suite.poc.config` (the settings), :mod:`suite.poc.data` (the
generator), :mod:`suite.poc.models` (tokenizer and start models),
:mod:`suite.poc.train` (one training run with held-out evaluation) and
:mod:`suite.poc.report` (table, intervals, curves, summary).
"""
