"""The paper's numbers, for a reference column next to ours when the model matches.

Source: shared/reference/paper_results_per_category.txt, derived by the reference maintainers
from the authors' per-instruction result CSVs (InstructionEval): mean and population std x100
over all (task, instruction) accuracies of a category, n = number of such pairs. Zero-shot
numbers come from the "Main" and "Scaling" folders, one-shot numbers from "Shots". They are close
to, not identical with, the printed Table 3 (which is garbled in the draft). "default" there is
each BIG-bench task's own prompt, our ``designer`` collection.
"""
from __future__ import annotations

import re

# (model, n_shot) -> category -> (obs mean, obs std, obs n, unobs mean, unobs std, unobs n), in percent.
PAPER: dict[tuple[str, int], dict[str, tuple[float, float, int, float, float, int]]] = {
    ("Flan-T5-Small", 0): {"MMLU": (29.4, 1.0, 50, 29.8, 0.8, 40), "BBL-QA": (27.6, 11.8, 400, 30.2, 11.9, 82),
                           "BBL-BC": (50.0, 9.7, 72, 56.1, 10.3, 40), "BBL-MC": (38.9, 14.9, 45, 26.9, 15.9, 18)},
    ("Flan-T5-Base", 0): {"MMLU": (34.1, 0.4, 50, 34.1, 1.0, 40), "BBL-QA": (41.9, 17.0, 400, 40.4, 16.7, 82),
                          "BBL-BC": (50.6, 8.5, 72, 52.4, 8.8, 40), "BBL-MC": (51.0, 18.8, 45, 40.4, 25.3, 18)},
    ("Flan-T5-Large", 0): {"MMLU": (41.1, 0.2, 50, 41.0, 0.7, 40), "BBL-QA": (51.7, 17.2, 400, 50.3, 15.9, 82),
                           "BBL-BC": (58.7, 6.4, 72, 58.7, 8.4, 40), "BBL-MC": (62.2, 19.5, 45, 28.9, 9.0, 18)},
    ("Flan-T5-XL", 0): {"MMLU": (48.1, 0.3, 50, 47.5, 0.9, 20), "BBL-QA": (59.0, 16.7, 400, 57.1, 16.4, 82),
                        "BBL-BC": (66.5, 8.0, 72, 61.1, 7.9, 40), "BBL-MC": (68.4, 19.1, 45, 54.9, 26.9, 18)},
    ("Flan-T5-XXL", 0): {"MMLU": (53.2, 0.2, 50, 52.7, 0.8, 20), "BBL-QA": (65.8, 15.3, 402, 63.3, 17.0, 82),
                         "BBL-BC": (65.6, 11.0, 72, 63.8, 9.5, 40), "BBL-MC": (69.7, 16.5, 45, 58.7, 24.6, 18)},
    ("Alpaca-7B", 0): {"MMLU": (41.9, 0.6, 20, 39.7, 2.1, 33), "BBL-QA": (46.8, 18.8, 160, 43.6, 17.0, 70),
                       "BBL-BC": (56.0, 8.6, 35, 52.5, 9.4, 39), "BBL-MC": (32.1, 19.4, 40, 16.7, 4.3, 19)},
    ("Alpaca-13B", 0): {"MMLU": (47.8, 0.5, 20, 47.0, 0.8, 33), "BBL-QA": (52.0, 23.5, 160, 49.0, 22.8, 70),
                        "BBL-BC": (59.1, 8.6, 35, 53.8, 9.3, 39), "BBL-MC": (36.7, 18.3, 40, 23.2, 10.1, 19)},
    ("T0-3B", 0): {"MMLU": (36.2, 1.5, 13, 37.6, 0.8, 20), "BBL-QA": (37.7, 12.5, 72, 39.5, 16.8, 54),
                   "BBL-BC": (61.6, 20.4, 20, 50.5, 7.6, 23), "BBL-MC": (31.5, 20.7, 9, 28.4, 23.1, 13)},
    ("T0++", 0): {"MMLU": (48.3, 0.9, 13, 48.5, 0.8, 20), "BBL-QA": (54.4, 16.1, 104, 54.8, 16.3, 82),
                  "BBL-BC": (66.1, 20.0, 32, 54.9, 6.8, 40), "BBL-MC": (42.0, 26.4, 14, 44.2, 27.1, 18)},
    ("Flan-T5-Small", 1): {"MMLU": (29.3, 0.9, 50, 29.6, 0.6, 20), "BBL-QA": (27.6, 10.9, 350, 27.3, 10.7, 72),
                           "BBL-BC": (48.9, 9.8, 72, 50.6, 6.9, 40), "BBL-MC": (42.2, 16.4, 45, 32.0, 20.2, 18)},
    ("Flan-T5-Base", 1): {"MMLU": (33.9, 0.5, 50, 33.8, 0.9, 20), "BBL-QA": (40.7, 17.5, 350, 37.5, 17.1, 72),
                          "BBL-BC": (50.7, 8.5, 72, 49.9, 10.9, 40), "BBL-MC": (34.2, 23.9, 80, 41.0, 26.2, 18)},
    ("Flan-T5-Large", 1): {"MMLU": (40.7, 0.2, 50, 40.4, 0.9, 20), "BBL-QA": (54.7, 17.1, 350, 50.8, 15.3, 72),
                           "BBL-BC": (58.2, 5.9, 72, 54.1, 7.2, 40), "BBL-MC": (62.7, 19.8, 45, 48.7, 27.8, 18)},
    ("Flan-T5-XL", 1): {"MMLU": (47.5, 0.2, 50, 47.5, 0.7, 20), "BBL-QA": (61.3, 15.9, 350, 60.1, 15.1, 72),
                        "BBL-BC": (67.4, 9.3, 72, 63.2, 12.9, 40), "BBL-MC": (68.2, 19.5, 45, 54.2, 29.7, 18)},
    ("Flan-T5-XXL", 1): {"MMLU": (52.7, 0.2, 50, 52.8, 1.0, 20), "BBL-QA": (69.0, 14.7, 350, 66.9, 14.3, 72),
                         "BBL-BC": (66.3, 14.0, 72, 66.5, 13.5, 40), "BBL-MC": (71.1, 17.3, 45, 58.9, 26.1, 18)},
}

# The BIG-bench tasks' own default prompt ("task designer" instruction): (mean, std, n) in percent.
PAPER_DEFAULT: dict[tuple[str, int], dict[str, tuple[float, float, int]]] = {
    ("Flan-T5-XL", 0): {"BBL-QA": (49.8, 13.5, 8), "BBL-BC": (61.0, 16.5, 4), "BBL-MC": (53.1, 27.4, 2)},
    ("Flan-T5-XXL", 0): {"BBL-QA": (58.0, 12.4, 8), "BBL-BC": (62.0, 13.2, 4), "BBL-MC": (54.8, 27.2, 2)},
    ("Alpaca-7B", 0): {"BBL-QA": (39.0, 12.2, 8), "BBL-BC": (51.2, 4.6, 4), "BBL-MC": (14.7, 1.2, 2)},
    ("Alpaca-13B", 0): {"BBL-QA": (45.5, 16.6, 8), "BBL-BC": (55.6, 4.5, 4), "BBL-MC": (18.1, 4.5, 2)},
    ("T0-3B", 0): {"BBL-QA": (41.6, 16.2, 5), "BBL-BC": (52.3, 10.8, 2), "BBL-MC": (36.8, 21.4, 2)},
    ("T0++", 0): {"BBL-QA": (54.7, 15.9, 8), "BBL-BC": (52.8, 2.7, 4), "BBL-MC": (42.9, 26.7, 2)},
    ("Flan-T5-Small", 0): {"BBL-QA": (34.7, 14.6, 8), "BBL-BC": (51.5, 7.5, 4), "BBL-MC": (25.2, 15.8, 2)},
    ("Flan-T5-Base", 0): {"BBL-QA": (37.3, 12.2, 8), "BBL-BC": (48.7, 9.7, 4), "BBL-MC": (38.8, 26.0, 2)},
    ("Flan-T5-Large", 0): {"BBL-QA": (38.7, 11.1, 8), "BBL-BC": (53.0, 6.3, 4), "BBL-MC": (26.8, 9.4, 2)},
    ("Flan-T5-Small", 1): {"BBL-QA": (30.3, 11.5, 7), "BBL-BC": (52.2, 7.0, 4), "BBL-MC": (31.4, 19.2, 2)},
    ("Flan-T5-Base", 1): {"BBL-QA": (33.5, 11.1, 7), "BBL-BC": (55.8, 5.7, 4), "BBL-MC": (38.7, 28.1, 2)},
    ("Flan-T5-Large", 1): {"BBL-QA": (34.7, 12.1, 7), "BBL-BC": (55.2, 5.7, 4), "BBL-MC": (41.0, 31.5, 2)},
    ("Flan-T5-XL", 1): {"BBL-QA": (41.2, 14.6, 7), "BBL-BC": (60.1, 13.6, 4), "BBL-MC": (31.4, 19.8, 2)},
    ("Flan-T5-XXL", 1): {"BBL-QA": (51.0, 20.1, 7), "BBL-BC": (55.6, 3.5, 4), "BBL-MC": (41.2, 28.7, 2)},
}

# Normalized checkpoint name -> the paper's model name.
_ALIASES = {
    "flan-t5-small": "Flan-T5-Small", "flan-t5-base": "Flan-T5-Base", "flan-t5-large": "Flan-T5-Large",
    "flan-t5-xl": "Flan-T5-XL", "flan-t5-xxl": "Flan-T5-XXL",
    "alpaca-7b": "Alpaca-7B", "alpaca-native": "Alpaca-7B", "alpaca-13b": "Alpaca-13B",
    "t0-3b": "T0-3B", "t0pp": "T0++", "t0++": "T0++",
}


def paper_collections(name: str) -> tuple[str, ...]:
    """The collection the paper's model was trained on: its observed instructions (section 4.1)."""
    return ("flan2022",) if name.startswith("Flan") else ("alpaca",) if name.startswith("Alpaca") else ("p3",)


def paper_model(pretrained: str) -> str | None:
    """The paper's name for a checkpoint (google/flan-t5-xl -> Flan-T5-XL), or None."""
    base = pretrained.rstrip("/").split("/")[-1].lower().replace("_", "-")
    base = re.sub(r"-(hf|native-hf)$", "", base) if base not in _ALIASES else base
    return _ALIASES.get(base)


def paper_reference(pretrained: str, n_shot: int, category: str) -> dict | None:
    """The paper's observed/unobserved figures (as fractions) for this model, setting and category."""
    name = paper_model(pretrained)
    row = PAPER.get((name, n_shot), {}).get(category) if name else None
    if row is None:
        return None
    om, osd, on, um, usd, un = row
    default = PAPER_DEFAULT.get((name, n_shot), {}).get(category)
    return {"model": name, "observed_collections": list(paper_collections(name)),
            "observed_mean": om / 100, "observed_std": osd / 100, "observed_n": on,
            "unobserved_mean": um / 100, "unobserved_std": usd / 100, "unobserved_n": un,
            "delta": round(um - om, 1) / 100,
            "designer_mean": default[0] / 100 if default else None,
            "designer_std": default[1] / 100 if default else None, "designer_n": default[2] if default else None,
            "source": "shared/reference/paper_results_per_category.txt "
                      "(mean, population std over task-instruction pairs)"}
