# Entry points for the task YAMLs in this folder; the logic lives in the installed package.
from instrobust.harness import doc_to_choice, doc_to_target, doc_to_text, fewshot_doc_to_text, load_bbl  # noqa: F401
