"""Sparse (budgeted) multi-instruction evaluation: each instruction evaluates a share of the items,
a whole group costs B single-instruction runs, and an IRT model estimates the full run.

* :mod:`instrobust.sparse.design` - which items each instruction evaluates (``sparse_subset``);
* :mod:`instrobust.sparse.tasks` - the design groups (``design_members``); a budgeted run is an ordinary
  run with ``--metadata '{"sparse_budget": 2}'``;
* :mod:`instrobust.sparse.loader` - the harness loaders' hook that keeps an instruction's share;
* :mod:`instrobust.sparse.results` - reading a sparse run's ``--log_samples`` output;
* :mod:`instrobust.sparse.irt` - the logistic IRT fit and posterior-predictive estimates;
* :mod:`instrobust.sparse.estimate` - ``instrobust estimate``: the estimated report.

See docs/sparse.md.
"""
