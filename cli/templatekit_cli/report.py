"""The exit-code contract of every command, and the lint report that decides lint's code.

Imports nothing heavy (no click, no jinja2): the plain lint path of :mod:`templatekit_cli.main` uses it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from templatekit.findings import Finding, Severity

EXIT_OK = 0
EXIT_FINDINGS = 1  # lint findings at/above --fail-on, a counterexample, a failed check
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_NOT_FOUND = 3  # repo, revision, file or path does not exist
EXIT_ACCESS = 4  # gated or private repo, missing/invalid token
EXIT_OFFLINE = 5  # offline (HF_HUB_OFFLINE=1 or no network) and not cached
EXIT_MALFORMED = 6  # malformed JSON or GGUF file, not UTF-8, lone surrogates, unexpected file shape
EXIT_NO_TEMPLATE = 7  # no chat template, or unknown --template-name
EXIT_SYNTAX = 8  # the template is not valid Jinja
EXIT_OUTPUT = 9  # the result could not be written
EXIT_TOKENIZER = 10  # the tokenizer could not be loaded
EXIT_ENGINE = 11  # a Jinja engine is not installed (or could not be installed)
EXIT_BUDGET = 12  # rendering exceeded its time or memory budget
EXIT_LIMIT = 13  # an input too large or nested too deeply
EXIT_UNSAFE_JINJA = 14  # the installed jinja2 has known sandbox escapes
EXIT_INTERNAL = 70  # a bug in templatekit
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGTERM exits 143, as the shell reports it)

# The README's "Exit codes" block, verbatim (tests/test_exit_codes.py keeps them in sync).
EXIT_CODES_HELP = """\b
Exit codes:
  0  success            1  findings / counterexample / check failed
  2  usage error        3  not found (repo, revision, file)
  4  access denied (gated repo, token)   5  offline and not cached
  6  malformed JSON/GGUF input file      7  no chat template / unknown name
  8  template is not valid Jinja         9  output could not be written
  10 tokenizer could not be loaded       11 engine not installed
  12 render budget exceeded (time/size)  13 input too large / nested too deep
  14 jinja2 < 3.1.6 (sandbox escapes)    70 internal error (please report)
  130 Ctrl-C; 143 SIGTERM (cleaned up)
"""


class LintReport:
    """What one lint run found, and the exit code that earns (the command exits with it, as black's
    report decides black's): the highest of each unreadable source's code, 8 for a syntax error
    (TK001), 1 for a finding at or above ``fail_on``, else 0."""

    def __init__(self, fail_on: Severity) -> None:
        self.fail_on = fail_on
        self.findings: list[Finding] = []
        self.failures: list[int] = []  # the exit codes of sources that could not be linted
        self.linted = 0  # templates linted

    @property
    def checked_nothing(self) -> bool:
        """Every source failed (each said why on stderr): a text summary such as ``No findings.``
        would claim a check that never ran."""
        return self.linted == 0 and bool(self.failures)

    @property
    def sorted_findings(self) -> list[Finding]:
        from templatekit.findings import sort_findings

        return sort_findings(self.findings)

    @property
    def exit_code(self) -> int:
        if any(finding.code == "TK001" for finding in self.findings):
            verdict = EXIT_SYNTAX
        elif any(finding.severity.at_least(self.fail_on) for finding in self.findings):
            verdict = EXIT_FINDINGS
        else:
            verdict = EXIT_OK
        return max((verdict, *self.failures))
