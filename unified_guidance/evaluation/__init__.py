"""Evaluation: sample-quality metrics (:mod:`.metrics`) and the digits evaluator (:mod:`.classifier`)."""
