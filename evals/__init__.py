"""Evaluation runner for memcubed: LoCoMo and LongMemEval, with baselines measured in the same run.

Numbers about memory systems are only worth something when one command reproduces them with the
protocol written beside them; this package is that command (``memcubed-eval ...``).
"""
