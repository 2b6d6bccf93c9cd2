"""Rules: the registry and its docs, one fixture per pattern, selection and suppression."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import FIXTURES, REPO_ROOT, read_template

from templatekit.findings import Severity
from templatekit.rules import DOC_SECTIONS, RULES, doc_pages, get_rule, lint, select_rules
from templatekit.sources import ChatTemplate, load

LINT = FIXTURES / "lint"


def lint_fixture(name: str, **options) -> list:
    return lint(load(str(LINT / name)).get(), **options)


def codes(findings: list) -> list[str]:
    return [finding.code for finding in findings]


# --- the registry ---------------------------------------------------------------------------

def test_codes_names_and_severities_are_well_formed() -> None:
    assert len({rule.name for rule in RULES.values()}) == len(RULES)
    for code, rule in RULES.items():
        assert code == rule.code and code.startswith("TK") and len(code) == 5
        assert rule.name == rule.name.lower() and " " not in rule.name
        assert isinstance(rule.severity, Severity)


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_rule_doc_has_the_fixed_sections(code: str) -> None:
    rule = RULES[code]
    assert rule.missing_sections() == [], f"{code} lacks sections {rule.missing_sections()}"
    positions = [rule.doc.index(f"## {section}") for section in DOC_SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    assert rule.summary.endswith(".") and len(rule.summary) > 20


def test_docs_rules_folder_is_in_sync_with_the_docstrings() -> None:
    folder = REPO_ROOT / "docs" / "rules"
    pages = doc_pages()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in folder.glob("*.md")}
    assert on_disk == pages, "docs/rules is stale: run `python -m templatekit.rules docs/rules`"


def test_rules_are_found_by_code_name_and_prefix() -> None:
    assert get_rule("tk101") is get_rule("alternation-check") is RULES["TK101"]
    assert {rule.code for rule in select_rules(["TK1"])} == {code for code in RULES if code.startswith("TK1")}
    assert "TK101" not in {rule.code for rule in select_rules(["ALL"], ["alternation-check"])}
    with pytest.raises(ValueError, match="TK999"):
        select_rules(["TK999"])


# --- one fixture per pattern ----------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "code", "line", "column"), [
    ("strict.jinja", "TK101", 13, 12),
    ("sandbox_escape.jinja", "TK601", 4, 11),
    ("strftime_now.jinja", "TK401", 1, 30),
    ("double_bos.jinja", "TK501", 1, 4),
    ("silent_system_drop.jinja", "TK301", 1, 1),
    ("dead_check.jinja", "TK107", 9, 8),
    ("tool_call_id.jinja", "TK105", 5, 20),
    ("list_content.jinja", "TK104", 3, 12),
    ("syntax_error.jinja", "TK001", 3, 1),
    ("random_greeting.jinja", "TK402", 1, 24),
    ("required_variable.jinja", "TK207", 1, 30),
])
def test_fixture_triggers_its_rule_at_its_place(fixture: str, code: str, line: int, column: int) -> None:
    found = [finding for finding in lint_fixture(fixture) if finding.code == code]
    assert found, f"{fixture}: no {code} in {codes(lint_fixture(fixture))}"
    assert (found[0].line, found[0].column) == (line, column)
    assert found[0].path == str(LINT / fixture)


def test_alternation_finding_names_relax_and_carries_its_witness() -> None:
    (finding,) = [finding for finding in lint_fixture("strict.jinja") if finding.code == "TK101"]
    assert finding.severity is Severity.WARNING
    assert "templatekit relax" in finding.fix
    assert finding.witness is not None and finding.witness.messages[0]["role"] == "assistant"
    assert finding.message.startswith("role-alternation check fails on [assistant]")


def test_dead_check_is_reported_as_unreachable_not_as_its_class() -> None:
    found = codes(lint_fixture("dead_check.jinja"))
    assert "TK107" in found and "TK102" not in found


def test_syntax_error_is_the_only_finding_and_no_exception() -> None:
    (finding,) = lint_fixture("syntax_error.jinja")
    assert finding.code == "TK001" and finding.severity is Severity.ERROR
    assert "unknown tag 'endif'" in finding.message


def test_sandbox_escape_is_found_without_rendering_and_blocks_probes() -> None:
    findings = lint_fixture("sandbox_escape.jinja")
    assert set(codes(findings)) == {"TK601"}, "no probe may render a template that tries to escape"
    assert {finding.message for finding in findings} == {
        "possible sandbox escape: reads the attribute '__init__'",
        "possible sandbox escape: reads the attribute '__globals__'"}


@pytest.mark.parametrize("expression", [
    "messages.__class__.__mro__",
    "messages['__class__']",
    "messages | attr('__class__')",
    "messages | map(attribute='__class__') | list",
    "messages | selectattr('__globals__') | list",
    "lipsum.__globals__",
    "self._TemplateReference__context",
    "messages | attr('__cla' ~ 'ss__')",
    "messages | attr('_' + '_class_' + '_')",
    "'{0.__class__}'.format(messages)",
    "loop.mro()",
])
def test_escape_forms(expression: str) -> None:
    assert "TK601" in codes(lint("{{ " + expression + " }}", probe=False))


def test_computed_attribute_names_are_a_warning() -> None:
    (finding,) = lint("{{ messages[0] | attr(name) }}", probe=False)
    assert (finding.code, finding.severity) == ("TK602", Severity.WARNING)


def test_ordinary_attribute_filters_are_fine() -> None:
    text = ("{{ messages | selectattr('role', 'equalto', 'system') | list | length }}"
            "{{ messages | map(attribute='content') | join }}{{ tools | attr('type') }}")
    assert lint(text, select=["TK6"]) == []


def test_double_bos_from_the_tokenizer_setting_when_the_source_records_it() -> None:
    @dataclass(frozen=True)
    class WithBosFlag(ChatTemplate):
        add_bos_token: bool | None = None

    text = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokens = {"bos_token": "<s>"}
    assert lint(WithBosFlag(text, special_tokens=tokens, add_bos_token=False), select=["TK501"]) == []
    (finding,) = lint(WithBosFlag(text, special_tokens=tokens, add_bos_token=True), select=["TK501"])
    assert "add_bos_token" in finding.message


def test_missing_eos_needs_the_sources_eos_token() -> None:
    config = LINT / "no_eos" / "tokenizer_config.json"
    assert "TK502" in codes(lint(load(str(config)).get()))
    assert "TK502" not in codes(lint(read_template(LINT / "strict.jinja")))


# --- selection, probing, suppression --------------------------------------------------------

def test_select_and_ignore() -> None:
    assert set(codes(lint_fixture("strict.jinja", select=["TK101"]))) == {"TK101"}
    assert "TK101" not in codes(lint_fixture("strict.jinja", ignore=["alternation-check"]))


def test_no_probe_runs_only_static_rules() -> None:
    assert lint_fixture("strict.jinja", probe=False) == []
    assert codes(lint_fixture("random_greeting.jinja", probe=False)) == ["TK402"]


def test_suppression_with_reason_hides_the_finding_on_the_next_line() -> None:
    found = codes(lint_fixture("suppressed.jinja"))
    assert "TK101" not in found


def test_suppression_without_reason_still_applies_but_is_reported() -> None:
    findings = lint_fixture("suppressed.jinja")
    assert "TK104" not in codes(findings)
    (missing,) = [finding for finding in findings if finding.code == "TK002"]
    assert (missing.line, missing.column) == (7, 9)


def test_suppression_covers_only_its_line_and_the_next() -> None:
    text = ("{# templatekit: ignore[TK402] reason: a demo #}\n\n{{ [1, 2] | random }}\n")
    assert codes(lint(text, select=["TK402"])) == ["TK402"]
    text = "{{ [1, 2] | random }}{# templatekit: ignore[TK402] reason: a demo #}"
    assert lint(text, select=["TK402"]) == []


def test_findings_are_sorted_by_position() -> None:
    findings = lint_fixture("suppressed.jinja")
    assert findings == sorted(findings, key=lambda finding: (finding.line, finding.column, finding.code,
                                                             finding.message))


def test_lint_accepts_template_text() -> None:
    assert codes(lint("{{ messages | random }}", probe=False)) == ["TK402"]
