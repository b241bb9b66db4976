"""Evaluator model, metric functions, evaluation runners and reports."""
