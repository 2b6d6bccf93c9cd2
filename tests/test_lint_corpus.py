"""Lint over the real-template corpus: no crash, every raise site found, classified and witnessed.

Prints the table of classes and confirmed witnesses (run with ``-s`` or read the captured output).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import corpus_files, read_template

from templatekit.analysis import CHECK_CLASSES, Analysis, analyze
from templatekit.environment import TemplateRaise, render
from templatekit.findings import Finding
from templatekit.cases import Case
from templatekit.probes import PLACEHOLDER_TOKENS, find_witnesses
from templatekit.rules import lint
from templatekit.sources import load
from templatekit.syntax import parse, scan_tags

pytestmark = pytest.mark.slow
_RAISE_CALL = re.compile(r"(?<![\w.])raise_exception\s*\(")


@dataclass(frozen=True)
class Linted:
    path: Path
    text: str
    analysis: Analysis
    witnesses: dict[int, Case | None]
    findings: list[Finding]


@pytest.fixture(scope="module")
def linted() -> list[Linted]:
    files = corpus_files()
    if not files:
        pytest.skip("real-template corpus not found (clone with ../shared beside it)")
    results = []
    for path in files:
        text = read_template(path)
        parsed = parse(text)
        analysis = analyze(parsed)
        results.append(Linted(path, text, analysis, find_witnesses(parsed, analysis), lint(load(str(path)).get())))
    return results


def plain_count(text: str) -> int:
    """``raise_exception(`` occurrences outside Jinja comments (and outside template data)."""
    return sum(len(_RAISE_CALL.findall(tag.inner.text(text))) for tag in scan_tags(text) if tag.kind != "comment")


def test_every_raise_site_is_found_and_classified(linted: list[Linted]) -> None:
    for item in linted:
        assert len(item.analysis.sites) == plain_count(item.text), item.path.name
        assert all(site.check_class in CHECK_CLASSES for site in item.analysis.sites), item.path.name


def test_every_alternation_check_is_classified_and_witnessed(linted: list[Linted]) -> None:
    plainly_alternation = 0
    for item in linted:
        for site in item.analysis.sites:
            if "alternate" in site.message.lower():
                plainly_alternation += 1
                assert site.check_class == "alternation", f"{item.path.name}:{site.line}"
            if site.check_class == "alternation":
                assert item.witnesses[site.index] is not None, f"{item.path.name}:{site.line}"
    assert plainly_alternation > 0


def test_witnesses_replay_on_the_plain_renderer(linted: list[Linted]) -> None:
    """Each witness, rendered from its JSON by the ordinary renderer, raises with the site's message."""
    for item in linted:
        for site in item.analysis.sites:
            witness = item.witnesses[site.index]
            if witness is None:
                continue
            case = witness.to_dict()
            with pytest.raises(TemplateRaise) as raised:
                render(
                    item.text,
                    case["messages"],
                    tools=case["tools"],
                    add_generation_prompt=case["add_generation_prompt"],
                    special_tokens=PLACEHOLDER_TOKENS,
                    **case["kwargs"],
                )
            if site.message_is_literal:
                assert raised.value.template_message == site.message, f"{item.path.name}:{site.line}"


def test_lint_findings_cover_every_site(linted: list[Linted]) -> None:
    site_codes = {"TK101", "TK102", "TK103", "TK104", "TK105", "TK106", "TK107"}
    for item in linted:
        reported = [finding for finding in item.findings if finding.code in site_codes]
        assert len(reported) == len(item.analysis.sites), item.path.name
        assert {(finding.line, finding.column) for finding in reported} == {
            (site.line, site.column) for site in item.analysis.sites
        }, item.path.name


def test_no_sandbox_escape_or_syntax_error_in_real_templates(linted: list[Linted]) -> None:
    flagged = [
        (item.path.name, finding.code)
        for item in linted
        for finding in item.findings
        if finding.code in ("TK001", "TK601", "TK602")
    ]
    assert flagged == []


def test_table_of_classes_and_witnesses(linted: list[Linted]) -> None:
    """The table of classes and witnesses is the assertion's message: shown on failure only
    (printing it would put a statistics table into every test run's output)."""
    sites = Counter(site.check_class for item in linted for site in item.analysis.sites)
    witnessed = Counter(
        site.check_class for item in linted for site in item.analysis.sites if item.witnesses[site.index] is not None
    )
    rows = [f"{'class':<18}{'sites':>7}{'witnessed':>11}"]
    rows += [f"{name:<18}{sites[name]:>7}{witnessed[name]:>11}" for name in CHECK_CLASSES]
    rows.append(f"{'total':<18}{sum(sites.values()):>7}{sum(witnessed.values()):>11}")
    codes = Counter(finding.code for item in linted for finding in item.findings)
    rows.append(
        f"{len(linted)} templates; findings by code: "
        + ", ".join(f"{code} {count}" for code, count in sorted(codes.items()))
    )
    assert sum(witnessed.values()) <= sum(sites.values()), "\n".join(rows)


def test_undeclared_variables_from_the_shared_pass_are_jinja2_metas(linted: list[Linted]) -> None:
    from jinja2 import meta

    from templatekit.environment import make_environment

    for item in linted:
        expected = meta.find_undeclared_variables(make_environment().parse(item.text))
        assert item.analysis.undeclared == expected, item.path.name


def test_the_numbering_pass_leaves_the_ast_as_parsed(linted: list[Linted]) -> None:
    """No numbers left behind, and no constants folded into the shared AST (jinja2's optimizer,
    which the pass leaves out, rewrites the tree it compiles): static rules that read the AST
    after the probes compiled it see what was parsed."""
    from templatekit.environment import make_environment
    from templatekit.syntax import numbered_code

    for item in linted:
        parsed, reference = parse(item.text), make_environment().parse(item.text)
        numbered_code(parsed)
        assert parsed.ast == reference, item.path.name
