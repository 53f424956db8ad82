"""The error `instrobust analyze` raises on bad input."""
from __future__ import annotations

from instrobust.errors import InstrobustError


class AnalysisError(InstrobustError):
    """Bad analysis input: an unknown task, a task set with nothing to compare, a broken saved run."""
