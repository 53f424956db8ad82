"""The upstream collections, in one place: everything that reads other projects' files.

* ``sources``: where a pinned upstream file comes from (offline directory, cache, URL at the
  pinned commit) and its whole-file checksum;
* ``parsers``: reading instruction text out of those files without executing them (Flan's
  templates.py by ``ast``, NIV2 JSON, promptsource YAML, Alpaca JSON);
* ``references``: the pins (templates/observed/*.yaml) and the per-text checksum check;
* ``collections``: the recipes that turn the pinned pieces into observed instructions (Flan 2022,
  P3, Alpaca), shared by every benchmark; a benchmark supplies only its views (instrobust.mmlu,
  instrobust.bbl).

No upstream text is stored in the repository: it is read here at run time.
"""
