"""The workflow's entry points, above every other package: each rule runs ``python -m pipeline.<step>``.

A module here parses a rule's command line and calls library functions of
``suite`` (the foundation), ``aao``/``baselines`` (the methods) and ``evals``
(benchmarks and judges); it also holds what only the workflow needs (config
validation, the run plan, the tables, claims, plots and the proof of concept).
Nothing below imports from here.
"""

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """The entry points' log lines (INFO and above, to stderr: the rule's log file)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
