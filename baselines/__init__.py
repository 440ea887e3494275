"""Baseline preference-optimisation methods, one module each, behind one registry."""

from baselines.registry import METHODS, Method, get_method, method_names

__all__ = ["METHODS", "Method", "get_method", "method_names"]
