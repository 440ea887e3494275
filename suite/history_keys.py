"""Names of what the squeezing diagnostic adds to a training log history.

Shared by the trainer callback (``suite.diagnostics``, which needs torch) and
the tables and plots that read the histories (which should not import it).
"""

KEY = "squeeze/top_prob"  # mean top-token probability on the held-out responses (+ _chosen, _rejected)
FINAL = "squeeze/final"  # at the end of training: each held-out pair's value, by record id
