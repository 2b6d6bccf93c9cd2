"""Reporters are pure functions: text, json (versioned), SARIF 2.1.0, GitHub annotations."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from templatekit.findings import Finding, Fix, Severity, sort_findings
from templatekit.reporters import github, sarif, text
from templatekit.reporters import json as json_reporter
from templatekit.rules import RULES, lint, select_rules
from templatekit.sources import load
from templatekit.syntax import Span

ALTERNATION = Finding(
    "TK101",
    "alternation-check",
    Severity.WARNING,
    "role-alternation check fails on [assistant]",
    "templates/a b.jinja",
    13,
    12,
    13,
    98,
    Span(300, 386),
    fix=Fix("`templatekit relax` fixes it", "safe"),
)
SYNTAX = Finding("TK001", "syntax-error", Severity.ERROR, "invalid Jinja: unexpected '}'", "x.jinja", 3, 1)
NAMED = Finding(
    "TK202",
    "tools-not-rendered",
    Severity.INFO,
    "tools: 50%, a:b\nsecond line",
    "tokenizer_config.json",
    template_name="tool_use",
)


@pytest.fixture(scope="module")
def real_findings() -> list[Finding]:
    return lint(load(str(FIXTURES / "lint" / "strict.jinja")).get())


def test_text_lines_and_summary() -> None:
    output = text.render(sort_findings([ALTERNATION, SYNTAX, NAMED]))
    assert output.splitlines() == [
        "templates/a b.jinja:13:12: TK101 role-alternation check fails on [assistant]",
        "  help: `templatekit relax` fixes it",
        "tokenizer_config.json[tool_use]:1:1: TK202 tools: 50%, a:b\nsecond line".splitlines()[0],
        "second line",
        "x.jinja:3:1: TK001 invalid Jinja: unexpected '}'",
        "Found 3 findings (1 error, 1 warning, 1 info).",
    ]
    assert "\x1b[" not in output
    assert text.render([]) == "No findings.\n"


def test_text_colour_only_when_asked() -> None:
    coloured = text.render([SYNTAX], color=True)
    assert "\x1b[1;31mTK001\x1b[0m" in coloured
    assert text.render([SYNTAX], color=False) != coloured


def test_json_schema_and_version(real_findings: list[Finding]) -> None:
    document = json.loads(json_reporter.render(real_findings))
    assert (document["schema"], document["version"]) == ("templatekit-lint", 1)
    assert document["summary"] == {"error": 0, "warning": 1, "info": len(real_findings) - 1}
    keys = {
        "code",
        "name",
        "severity",
        "message",
        "path",
        "template_name",
        "line",
        "column",
        "end_line",
        "end_column",
        "fix",
        "fix_applicability",
        "witness",
    }
    assert all(set(item) == keys for item in document["findings"])
    (alternation,) = [item for item in document["findings"] if item["code"] == "TK101"]
    assert alternation["witness"] == {
        "messages": [{"role": "assistant", "content": "hi"}],
        "tools": None,
        "add_generation_prompt": False,
        "kwargs": {},
    }
    assert (alternation["fix"], alternation["fix_applicability"]) == (
        "`templatekit relax` rewrites it to merge (or skip) consecutive same-role messages",
        "safe",
    )
    assert all(item["fix_applicability"] is None for item in document["findings"] if item["fix"] is None)


def test_sarif_2_1_0_structure(real_findings: list[Finding]) -> None:
    rules = select_rules()
    document = json.loads(sarif.render(real_findings, rules))
    assert document["version"] == "2.1.0" and document["$schema"].endswith("sarif-2.1.0.json")
    (run,) = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "templatekit" and driver["version"]
    assert [rule["id"] for rule in driver["rules"]] == [rule.code for rule in rules]  # the rules that ran
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["help"]["markdown"].startswith("## What it does")
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert len(run["results"]) == len(real_findings)
    for result, finding in zip(run["results"], real_findings):
        assert result["ruleId"] == finding.code
        assert driver["rules"][result["ruleIndex"]]["id"] == finding.code
        assert result["level"] == {"error": "error", "warning": "warning", "info": "note"}[finding.severity.value]
        assert result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"].endswith("fixtures/lint/strict.jinja")
        assert physical["region"]["startLine"] >= 1 and physical["region"]["startColumn"] >= 1


def test_sarif_uris_are_relative_references() -> None:
    document = json.loads(sarif.render([ALTERNATION], [RULES["TK101"]]))
    location = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "templates/a%20b.jinja"
    assert location["region"] == {"startLine": 13, "startColumn": 12, "endLine": 13, "endColumn": 98}


def test_github_annotations_escape_properties_and_data() -> None:
    lines = github.render([ALTERNATION, SYNTAX, NAMED]).splitlines()
    assert lines[0] == (
        "::warning file=templates/a b.jinja,line=13,col=12,endLine=13,endColumn=98,title=TK101::"
        "role-alternation check fails on [assistant]%0A`templatekit relax` fixes it"
    )
    assert lines[1] == "::error file=x.jinja,line=3,col=1,title=TK001::invalid Jinja: unexpected '}'"
    assert lines[2] == (
        "::notice file=tokenizer_config.json,line=1,col=1,title=TK202::[tool_use] tools: 50%25, a:b%0Asecond line"
    )
    assert github.render([]) == ""
