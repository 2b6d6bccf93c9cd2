"""The renderer is transformers' renderer: byte-identical outputs and errors, thread-safe, per profile.

The oracle is a real transformers installation run in its own process
(``tests/transformers_oracle.py``): the test environment's transformers (5.16-5.20, the range
vLLM pins, profile ``transformers<5.23``) and, when ``TEMPLATEKIT_ORACLE_PYTHON`` names an
interpreter with transformers 5.23 (the README's test command creates one), that release too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
import jinja2.sandbox
import pytest
from conftest import FIXTURES, corpus_files, read_template

from templatekit.environment import (
    DEFAULT_PROFILE,
    PROFILES,
    RenderBudget,
    TemplateRaise,
    command_budget,
    compile_template,
    fixed_clock,
    make_environment,
    render,
)
from templatekit.errors import RenderBudgetExceeded

PARITY_CASES = json.loads((FIXTURES / "conversations" / "parity.json").read_text(encoding="utf-8"))
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
FIXED_NOW = datetime(2024, 7, 26, 10, 30, 15)
ORACLE_SCRIPT = Path(__file__).with_name("transformers_oracle.py")
ORACLE_PYTHON_VARIABLE = "TEMPLATEKIT_ORACLE_PYTHON"


# --- outcomes and the oracle ---------------------------------------------------------------


def our_outcome(template: str, case: dict[str, Any], profile: str) -> dict[str, str]:
    """What ``render`` gives for ``case``, in the oracle's format.

    ``TemplateRaise`` is reported as ``jinja2.exceptions.TemplateError``, the class transformers'
    ``raise_exception`` raises (``TemplateRaise`` subclasses it, so callers catching it still do).
    """
    case = json.loads(json.dumps(case))  # a fresh copy, as the oracle gets
    try:
        text = render(
            template,
            case["messages"],
            tools=case.get("tools"),
            documents=case.get("documents"),
            add_generation_prompt=case.get("add_generation_prompt", False),
            special_tokens=SPECIAL_TOKENS,
            now=FIXED_NOW,
            profile=profile,
            **case.get("kwargs", {}),
        )
    except TemplateRaise as error:
        return {"error": "jinja2.exceptions.TemplateError", "message": str(error)}
    except Exception as error:  # noqa: BLE001 - every error is an outcome to compare
        return {"error": f"{type(error).__module__}.{type(error).__qualname__}", "message": str(error)}
    return {"text": text}


def run_oracle(python: str, templates: list[Path], cases: list[dict[str, Any]]) -> tuple[str, list[list[dict]]]:
    """``(transformers version, outcomes per template per case)`` from the interpreter ``python``."""
    job = {
        "templates": [str(path) for path in templates],
        "cases": cases,
        "special_tokens": SPECIAL_TOKENS,
        "now": FIXED_NOW.isoformat(),
    }
    environment = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [python, str(ORACLE_SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"oracle {python} failed:\n{result.stderr[-3000:]}"
    answer = json.loads(result.stdout)
    assert answer["jinja2"] == jinja2.__version__, (
        f"oracle {python} renders with jinja2 {answer['jinja2']}, templatekit with {jinja2.__version__}: "
        "install the same jinja2 in both to compare renderers"
    )
    return answer["version"], answer["outcomes"]


def profile_for(version: str) -> str:
    major, minor = (int(part) for part in version.split(".")[:2])
    return "transformers>=5.23" if (major, minor) >= (5, 23) else "transformers<5.23"


def oracle_pythons() -> list[Any]:
    pythons = []
    if importlib.util.find_spec("transformers") is not None:
        pythons.append(pytest.param(sys.executable, id="installed-transformers"))
    else:
        pythons.append(
            pytest.param(
                sys.executable,
                id="installed-transformers",
                marks=pytest.mark.skip(reason="transformers is not installed"),
            )
        )
    extra = os.environ.get(ORACLE_PYTHON_VARIABLE)
    extra = extra and os.path.abspath(extra)  # relative to where pytest started, whatever tests chdir to
    pythons.append(
        pytest.param(
            extra,
            id="oracle-python",
            marks=pytest.mark.skipif(
                not extra, reason=f"set {ORACLE_PYTHON_VARIABLE} to a python with another transformers release (5.23)"
            ),
        )
    )
    return pythons


@dataclass(frozen=True)
class Tally:
    pairs: int
    identical_texts: int
    identical_errors: int
    differences: tuple[str, ...]


def compare(templates: list[Path], oracle: list[list[dict]], profile: str) -> Tally:
    texts = errors = 0
    differences = []
    for path, expected_row in zip(templates, oracle):
        template = read_template(path)
        for case, expected in zip(PARITY_CASES, expected_row):
            ours = our_outcome(template, case, profile)
            if ours != expected:
                differences.append(
                    f"{path.name} x {case['id']}:\n  ours:         {ours!r:.400}\n  transformers: {expected!r:.400}"
                )
            elif "text" in ours:
                texts += 1
            else:
                errors += 1
    return Tally(len(templates) * len(PARITY_CASES), texts, errors, tuple(differences))


# --- parity over the corpus ----------------------------------------------------------------


def test_parity_fixture_is_varied() -> None:
    assert len(PARITY_CASES) >= 30
    assert len({case["id"] for case in PARITY_CASES}) == len(PARITY_CASES)
    messages = [message for case in PARITY_CASES for message in case["messages"]]
    roles = Counter(message["role"] for message in messages)
    assert {"system", "developer", "user", "assistant", "tool"} <= set(roles)
    assert any(isinstance(message.get("content"), list) for message in messages)
    assert any(message.get("content") is None and message.get("tool_calls") for message in messages)
    arguments = [call["function"]["arguments"] for message in messages for call in message.get("tool_calls") or []]
    assert any(isinstance(value, str) for value in arguments) and any(isinstance(value, dict) for value in arguments)
    assert any("reasoning_content" in message for message in messages)
    assert {case["add_generation_prompt"] for case in PARITY_CASES} == {True, False}
    assert any(case.get("tools") for case in PARITY_CASES) and any(case.get("kwargs") for case in PARITY_CASES)


@pytest.mark.slow
@pytest.mark.parametrize("python", oracle_pythons())
def test_render_is_byte_identical_to_transformers_over_the_corpus(corpus: list[Path], python: str) -> None:
    version, oracle = run_oracle(python, corpus, PARITY_CASES)
    profile = profile_for(version)
    tally = compare(corpus, oracle, profile)
    print(
        f"\ntransformers {version} vs profile {profile!r}: {tally.pairs} pairs "
        f"({len(corpus)} templates x {len(PARITY_CASES)} conversations), "
        f"{tally.identical_texts} identical outputs, {tally.identical_errors} identical errors, "
        f"{len(tally.differences)} differences"
    )
    assert not tally.differences, "\n".join(tally.differences[:20])
    assert tally.identical_texts + tally.identical_errors == tally.pairs
    # not vacuous: most pairs render, some raise through raise_exception, the clock is shared
    assert tally.identical_texts > tally.pairs // 2
    assert any(outcome.get("error") == "jinja2.exceptions.TemplateError" for row in oracle for outcome in row)
    assert any(FIXED_NOW.strftime("%d %b %Y") in outcome.get("text", "") for row in oracle for outcome in row)


# --- the differences between profiles, pinned to each transformers release --------------

# (id, template, messages, kwargs, outcome under transformers<5.23, outcome under >=5.23).
# Every input is plain JSON, so the same probes also run through the real transformers oracles.
SECURITY = "jinja2.exceptions.SecurityError"
UNDERSCORE_MESSAGE = (
    "Chat templates cannot store underscore-prefixed attributes on a namespace, but got {!r}. "
    "Please rename the attribute."
)
PROFILE_PROBES: list[tuple[str, str, list[dict], dict, dict, dict]] = [
    (
        "none-valued-key-dropped",
        "{{ 'content' in messages[0] }}|{{ messages[0].content }}",
        [{"role": "assistant", "content": None}],
        {},
        {"text": "True|None"},
        {"text": "False|"},
    ),
    (
        "none-tool-calls-dropped",
        "{{ messages[0].tool_calls is defined }}",
        [{"role": "assistant", "content": "hi", "tool_calls": None}],
        {},
        {"text": "True"},
        {"text": "False"},
    ),
    (
        "reasoning-aliased",
        "{{ messages[0] | tojson }}",
        [{"role": "assistant", "content": "4", "reasoning": "2+2"}],
        {},
        {"text": '{"role": "assistant", "content": "4", "reasoning": "2+2"}'},
        {
            "text": '{"thinking": "2+2", "role": "assistant", "content": "4", "reasoning": "2+2", '
            '"reasoning_content": "2+2"}'
        },
    ),
    (
        "thinking-aliased",
        "{{ messages[0].reasoning_content }}",
        [{"role": "assistant", "content": "4", "thinking": "2+2"}],
        {},
        {"text": ""},
        {"text": "2+2"},
    ),
    (
        "namespace-underscore-argument",
        "{% set ns = namespace(_seen=1) %}ok",
        [{"role": "user", "content": "hi"}],
        {},
        {"text": "ok"},
        {"error": SECURITY, "message": UNDERSCORE_MESSAGE.format("_seen")},
    ),
    (
        "namespace-underscore-assignment",
        "{% set ns = namespace() %}{% set ns._count = 2 %}ok",
        [{"role": "user", "content": "hi"}],
        {},
        {"text": "ok"},
        {"error": SECURITY, "message": UNDERSCORE_MESSAGE.format("_count")},
    ),
    (
        "namespace-missing-attribute-message",
        "{% set ns = namespace(a=1) %}{{ ns.b.c }}",
        [{"role": "user", "content": "hi"}],
        {},
        {
            "error": "jinja2.exceptions.UndefinedError",
            "message": "'jinja2.utils.Namespace object' has no attribute 'b'",
        },
        {
            "error": "jinja2.exceptions.UndefinedError",
            "message": "'transformers.utils.chat_template_utils.TemplateNamespace object' has no attribute 'b'",
        },
    ),
    (
        "dict-missing-attribute-message",
        "{{ dict.foo.bar }}",
        [{"role": "user", "content": "hi"}],
        {},
        {"text": ""},
        {
            "error": "jinja2.exceptions.UndefinedError",
            "message": "'transformers.utils.chat_template_utils.TemplateDict object' has no attribute 'foo'",
        },
    ),
    (
        "namespace-plain-attributes",
        "{% set ns = namespace(a=1) %}{% set ns.b = 2 %}{{ ns.a + ns.b }}",
        [{"role": "user", "content": "hi"}],
        {},
        {"text": "3"},
        {"text": "3"},
    ),
    (
        "dict-global-exposes-only-construction",
        "{{ dict(a=1) }}|{{ dict.fromkeys(['k']) }}|{{ dict.keys is defined }}",
        [{"role": "user", "content": "hi"}],
        {},
        {"text": "{'a': 1}|{'k': None}|True"},
        {"text": "{'a': 1}|{'k': None}|False"},
    ),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("probe_id", "template", "messages", "kwargs", "before", "after"),
    PROFILE_PROBES,
    ids=[probe[0] for probe in PROFILE_PROBES],
)
def test_profiles_differ_exactly_as_documented(
    profile: str, probe_id: str, template: str, messages: list, kwargs: dict, before: dict, after: dict
) -> None:
    case = {"messages": messages, "kwargs": kwargs}
    assert our_outcome(template, case, profile) == (after if profile == "transformers>=5.23" else before)


@pytest.mark.parametrize("python", oracle_pythons())
def test_profile_probes_match_the_real_transformers_release(tmp_path: Path, python: str) -> None:
    templates = []
    for probe_id, template, *_ in PROFILE_PROBES:
        path = tmp_path / f"{probe_id}.jinja"
        path.write_text(template, encoding="utf-8")
        templates.append(path)
    cases = [{"id": probe[0], "messages": probe[2], "kwargs": probe[3]} for probe in PROFILE_PROBES]
    version, oracle = run_oracle(python, templates, cases)
    after = profile_for(version) == "transformers>=5.23"
    for index, (probe_id, _template, _messages, _kwargs, before_outcome, after_outcome) in enumerate(PROFILE_PROBES):
        assert oracle[index][index] == (after_outcome if after else before_outcome), (version, probe_id)


class Shade(str):
    """A ``str`` subclass with a method of its own, as enums and numpy strings are."""

    def shout(self) -> str:
        return self.upper() + "!"


@dataclass
class Picture:
    url: str


class Model:
    """Duck-typed pydantic model."""

    def model_dump(self) -> dict[str, Any]:
        return {"kind": "model", "size": 3}


class Opaque:
    def __str__(self) -> str:
        return "opaque-object"


RICH_TEMPLATE = (
    "{{ messages[0].content.shout is defined }}|{{ messages[0].parts[0] }}|{{ messages[0].parts[1] }}|"
    "{{ messages[0].parts[2] }}|{{ messages[0].parts[3] }}|{{ messages[0].parts is sequence }}"
)


def test_plain_json_rebuild_replaces_rich_objects_only_under_523() -> None:
    numpy = pytest.importorskip("numpy")
    messages = [
        {
            "role": "user",
            "content": Shade("hi"),
            "parts": (Picture("a.png"), Model(), numpy.bool_(False), Opaque()),
            "meta": MappingProxyType({"k": 1}),
        }
    ]
    before = render(RICH_TEMPLATE, messages)
    after = render(RICH_TEMPLATE, messages, profile="transformers>=5.23")
    assert before.startswith("True|Picture(url='a.png')|<") and before.endswith("|False|opaque-object|True")
    assert after == "False|{'url': 'a.png'}|{'kind': 'model', 'size': 3}|False|<Opaque>|True"
    assert render("{{ messages[0].meta | tojson }}", messages, profile="transformers>=5.23") == '{"k": 1}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        render("{{ messages[0].meta | tojson }}", messages)
    assert type(messages[0]["content"]) is Shade, "inputs are never modified"


def test_plain_json_rebuild_reaches_tools_documents_and_kwargs() -> None:
    template = "{{ tools[0].n.shout is defined }}{{ documents[0].t.shout is defined }}{{ extra.shout is defined }}"
    arguments = {"tools": [{"n": Shade("a")}], "documents": [{"t": Shade("b")}], "extra": Shade("c")}
    assert render(template, [], **arguments) == "TrueTrueTrue"
    assert render(template, [], profile="transformers>=5.23", **arguments) == "FalseFalseFalse"


def test_tools_and_documents_must_be_dicts_in_every_profile() -> None:
    for profile in PROFILES:
        with pytest.raises(TypeError, match="Documents should be a list of dicts"):
            render("x", [], documents=["not a dict"], profile=profile)
        with pytest.raises(ValueError, match="Tools should be JSON schemas"):
            render("x", [], tools=[len], profile=profile)
        assert render("{{ tools }}", [], tools=({"n": 1},), profile=profile) == "[{'n': 1}]"


# --- the environment -----------------------------------------------------------------------


def test_environment_matches_transformers_configuration() -> None:
    for profile in PROFILES:
        environment = make_environment(profile)
        assert environment is make_environment(profile)
        # transformers' sandbox class; the subclass only adds the render budget's checks
        assert type(environment).__mro__[1] is jinja2.sandbox.ImmutableSandboxedEnvironment
        assert environment.trim_blocks and environment.lstrip_blocks and not environment.keep_trailing_newline
        assert "jinja2.ext.LoopControlExtension" in environment.extensions
        assert {"raise_exception", "strftime_now"} <= set(environment.globals)
    assert make_environment(DEFAULT_PROFILE).globals["dict"] is dict
    with pytest.raises(ValueError, match="unknown profile"):
        make_environment("transformers==4.0")  # type: ignore[arg-type]


def test_tojson_keeps_order_and_unicode_and_takes_json_dumps_options() -> None:
    data = {"b": "<é&>", "a": [1, 2]}
    assert render("{{ x | tojson }}", [], x=data) == '{"b": "<é&>", "a": [1, 2]}'
    assert (
        render("{{ x | tojson(sort_keys=true, ensure_ascii=true) }}", [], x=data) == '{"a": [1, 2], "b": "<\\u00e9&>"}'
    )
    assert render("{{ x | tojson(indent=2, separators=(',', ':')) }}", [], x={"a": 1}) == '{\n  "a":1\n}'


def test_raise_exception_carries_the_templates_message() -> None:
    with pytest.raises(TemplateRaise) as caught:
        render("{{ raise_exception('Conversation roles must alternate user/assistant') }}", [])
    assert isinstance(caught.value, jinja2.TemplateError)
    assert str(caught.value) == caught.value.template_message == "Conversation roles must alternate user/assistant"


def test_generation_tag_renders_its_body() -> None:
    template = "{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"
    assert render(template, [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "[a][b]"


def test_special_tokens_are_variables_and_kwargs_override_them() -> None:
    assert render("{{ bos_token }}{{ eos_token }}", [], special_tokens=SPECIAL_TOKENS) == "<s></s>"
    assert render("{{ bos_token }}", [], special_tokens=SPECIAL_TOKENS, bos_token="<BOS>") == "<BOS>"


def test_sandbox_refuses_escapes() -> None:
    with pytest.raises(jinja2.exceptions.SecurityError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", [])
    with pytest.raises(jinja2.exceptions.SecurityError):
        render("{{ messages.append(1) }}", [{"role": "user", "content": "x"}])


def test_syntax_errors_are_jinjas() -> None:
    with pytest.raises(jinja2.TemplateSyntaxError):
        compile_template("{% if %}")


def test_clock_is_fixed_by_now_or_by_fixed_clock() -> None:
    template = "{{ strftime_now('%Y-%m-%d %H:%M') }}"
    assert render(template, [], now=FIXED_NOW) == "2024-07-26 10:30"
    with fixed_clock(datetime(2001, 2, 3, 4, 5)):
        assert render(template, []) == "2001-02-03 04:05"
        assert render(template, [], now=FIXED_NOW) == "2024-07-26 10:30"
        assert render(template, []) == "2001-02-03 04:05"
    year_now = render("{{ strftime_now('%Y') }}", [])
    assert year_now in {str(datetime.now().year - 1), str(datetime.now().year)}  # unfixed: the real clock


def test_compile_cache_is_reused_per_profile() -> None:
    source = "{# cache probe #}{{ messages | length }}"
    compile_template.cache_clear()
    first = compile_template(source)
    assert compile_template(source) is first
    assert compile_template(source, "transformers>=5.23") is not first
    render(source, [])
    render(source, [], profile="transformers>=5.23")
    info = compile_template.cache_info()
    assert (info.misses, info.hits) == (2, 3)


def test_rendering_from_8_threads_is_byte_identical_to_sequential() -> None:
    templates = [read_template(path) for path in corpus_files()[::12]] or [
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    ]
    templates.append("{{ strftime_now('%d %B %Y %H:%M:%S') }}|{{ messages | length }}")
    dates = [datetime(2020 + index, 1 + index, 1 + index, index, index, index) for index in range(8)]
    jobs = [
        (template_index, case_index, date_index, profile)
        for template_index in range(len(templates))
        for case_index in range(len(PARITY_CASES))
        for date_index in range(len(dates))
        if (case_index + date_index) % 4 == 0
        for profile in PROFILES
    ]

    def outcome(job: tuple[int, int, int, str]) -> dict[str, str]:
        template_index, case_index, date_index, profile = job
        case = PARITY_CASES[case_index]
        try:
            return {
                "text": render(
                    templates[template_index],
                    case["messages"],
                    tools=case.get("tools"),
                    documents=case.get("documents"),
                    add_generation_prompt=case.get("add_generation_prompt", False),
                    special_tokens=SPECIAL_TOKENS,
                    now=dates[date_index],
                    profile=profile,
                    **case.get("kwargs", {}),
                )
            }
        except Exception as error:  # noqa: BLE001 - errors must be identical too
            return {"error": type(error).__name__, "message": str(error)}

    sequential = [outcome(job) for job in jobs]
    compile_template.cache_clear()  # the threads also race to compile
    order = list(range(len(jobs))) * 2
    random.Random(7).shuffle(order)
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda index: (index, outcome(jobs[index])), order))
    mismatches = [jobs[index] for index, result in concurrent if result != sequential[index]]
    print(f"\n8 threads: {len(concurrent)} renders of {len(templates)} templates, {len(mismatches)} mismatches")
    assert not mismatches
    assert len(templates) >= 2 and any("text" in result for result in sequential)


# --- the render budget -----------------------------------------------------------------------

QUICK = RenderBudget(milliseconds=300, megabytes=32)
TIME_BOMBS = {
    "nested ranges in the message loop": "{% for m in messages %}{% for i in range(100000) %}"
    "{% for j in range(100000) %}{% endfor %}{% endfor %}{% endfor %}",
    "nested ranges outside it": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "a macro forking itself": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    "{{ f(60) }}",
    "a recursive loop": "{% for x in [[1] * 100000] * 100000 recursive %}{{ loop(x) if x is iterable }}{% endfor %}",
}
MEMORY_BOMBS = {
    "str times int": "{{ 'x' * 10**9 }}",
    "list times int": "{{ [1] * 10**8 }}",
    "a huge power": "{{ 10 ** (10 ** 9) }}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}",
    "doubling with +": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}",
    "join of ranges": "{{ range(100000) | join(range(100000) | join) }}",
    "join of one string many times": "{% set s = 'x' * 20000000 %}{{ ([s] * 1000) | join }}",
    "map replace fan-out": "{% set s = range(100000) | join %}{{ range(100000) | map('replace', '', s) | list }}",
    "str.center": "{{ 'x'.center(10**9) }}",
    "%-format width": "{{ '%999999999s' % 1 }}",
    "%-format width from the arguments": "{{ '%*s' % (10**9, 1) }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "str.format width from the arguments": "{{ '{:{}}'.format(1, 10**9) }}",
    "format filter": "{{ '%999999999s' | format(1) }}",
    "lipsum": "{{ lipsum(n=10**7) }}",
    "list printed": "{{ ((range(100000) | list) * 50) | string }}",
    "output": "{% for i in range(1000) %}{{ 'x' * 1000000 }}{% endfor %}",
    "a macro's output": "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}"
    "{{ m() | length }}",
}


@pytest.mark.parametrize("name", sorted(TIME_BOMBS))
def test_a_cpu_bomb_runs_out_of_the_time_budget(name: str) -> None:
    with pytest.raises(RenderBudgetExceeded) as raised:
        render(TIME_BOMBS[name], [{"role": "user", "content": "hi"}], budget=QUICK)
    assert (raised.value.kind, str(raised.value)) == ("time", "rendering exceeds 300 ms")


@pytest.mark.parametrize("name", sorted(MEMORY_BOMBS))
def test_a_memory_bomb_runs_out_of_the_size_budget(name: str) -> None:
    with pytest.raises(RenderBudgetExceeded) as raised:
        render(MEMORY_BOMBS[name], [{"role": "user", "content": "hi"}], budget=QUICK)
    assert (raised.value.kind, str(raised.value)) == ("memory", "rendering exceeds 32 MB")


def test_a_command_budget_is_shared_by_its_renders() -> None:
    slow = "{% for i in range(100000) %}{% for j in range(100) %}{% endfor %}{% endfor %}"
    with command_budget(0.2, "verify"), pytest.raises(RenderBudgetExceeded) as raised:
        for _ in range(100):
            render(slow, [])
    assert raised.value.scope == "verify" and str(raised.value) == "rendering exceeds the verify budget of 0.2 s"


def test_the_budget_never_changes_an_output_or_an_error() -> None:
    template = (
        "{% for m in messages %}{{ (m.role ~ ': ' + m.content) | replace('a', 'b') | center(12) }}"
        "{{ '%-4s|' % loop.index }}{{ '{:>3}'.format(loop.length) }}{{ ([m.role] * 2) | join(',') }}"
        "{% endfor %}{{ 2 ** 10 }}{{ 'x'.ljust(3) }}"
    )
    messages = [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "a"}]
    plain = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    assert render(template, messages) == plain.from_string(template).render(messages=messages)
    for failing in ("{{ 1 + 'a' }}", "{{ 'x' * 'y' }}", "{{ 'a'.replace('b') }}", "{{ '%d' % 'x' }}"):
        assert _type_error(lambda: render(failing, [])) == _type_error(lambda: plain.from_string(failing).render())


def _type_error(call: Any) -> str:
    with pytest.raises(TypeError) as raised:
        call()
    return str(raised.value)
