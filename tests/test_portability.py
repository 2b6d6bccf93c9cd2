"""The portability table (templatekit.rules.portability) against the real engines, and the
engines against transformers over the corpus x parity conversations.

Every row is proven: its probe renders with jinja2, and each engine the row names cannot parse it,
fails on it or renders other text, as the row says.  Over the corpus, every input on which an
engine's outcome differs from jinja2's is explained by a row (a construct the template contains,
or a run-time difference recognised from the two outcomes); the static rows flag no template on
which the engine agrees with transformers.  Engines that are not installed are skipped
(`templatekit engines install all`).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import FIXTURES, read_template
from engine_outcomes import PARITY_CASES, corpus_outcomes, outcome, same

from templatekit import lint
from templatekit.engines import engine_status
from templatekit.errors import TemplateSyntaxError
from templatekit.rules.portability import CONSTRUCTS, divergences, explain, find_constructs
from templatekit.syntax import parse

ROWS = [(construct, engine) for construct in CONSTRUCTS for engine in construct.engines]
ENGINES = ("minijinja", "hf-jinja", "llama.cpp")
# beyond parity.json: the inputs on which a flagged construct shows (list system content with tools)
EXTRA_CASES = json.dumps(
    [
        {
            "id": "parts-system-with-tools",
            "add_generation_prompt": True,
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": "Hi"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ],
        },
    ]
)
# corpus inputs on which an engine differs for reasons the table does not name yet (counted, kept
# from growing): minijinja on a Cohere tool template's whitespace and Gemma 3's content check with
# null content; @huggingface/jinja on GigaChat3's calls, Cohere's whitespace-only content, MiniCPM3
UNEXPLAINED_AT_MOST = {"minijinja": 3, "hf-jinja": 11, "llama.cpp": 0}


def needs(engine: str) -> None:
    problem = engine_status(engine)
    if problem is not None:
        pytest.skip(problem)


@pytest.mark.parametrize(("construct", "engine"), ROWS, ids=[f"{c.key}-{e}" for c, e in ROWS])
def test_every_row_holds_in_the_real_engine(construct, engine: str) -> None:
    needs(engine)
    case = {"messages": [], "kwargs": dict(construct.variables)}
    expected, actual = outcome("jinja2", construct.probe, case), outcome(engine, construct.probe, case)
    effect = construct.engines[engine]
    assert expected != actual, (construct.key, engine, expected)
    if effect == "differs":
        assert actual[0] == "ok", (construct.key, engine, actual)
    else:
        assert actual[0] == "error", (construct.key, engine, actual)
    if construct.explains is None:  # found in the source
        assert construct.key in {use.construct.key for use in find_constructs(parse(construct.probe), construct.probe)}
    else:
        assert construct.explains(expected, actual), (construct.key, engine, expected, actual)
        assert explain(engine, (), expected, actual) is not None


def test_rows_that_jinja2_renders_identically_are_not_recognised() -> None:
    identical = ("ok", "same text")
    for construct in CONSTRUCTS:
        if construct.explains is not None:
            assert not construct.explains(identical, identical), construct.key


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_every_corpus_difference_is_explained_by_a_row(corpus, engine: str) -> None:
    needs(engine)
    expected, actual = corpus_outcomes("jinja2", EXTRA_CASES), corpus_outcomes(engine, EXTRA_CASES)
    uses = {path.name: find_constructs(parse(read_template(path)), read_template(path)) for path in corpus}
    counts: Counter[str] = Counter()
    unexplained = []
    parity = {case["id"] for case in PARITY_CASES}
    for key, result in actual.items():
        if key[1] not in parity:
            continue  # the extra case serves the false-positive count only
        if same(expected[key], result):
            counts["equal"] += 1
            continue
        row = explain(engine, uses[key[0]], expected[key], result)
        counts["explained" if row else "unexplained"] += 1
        if row is None:
            unexplained.append((key, expected[key][1][:80], result[1][:120]))
    print(f"{engine}: {len(corpus)} templates x {len(PARITY_CASES)} conversations: {dict(counts)}")
    assert len(unexplained) <= UNEXPLAINED_AT_MOST[engine], unexplained


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_static_rows_flag_no_template_the_engine_renders_like_transformers(corpus, engine: str) -> None:
    needs(engine)
    expected, actual = corpus_outcomes("jinja2", EXTRA_CASES), corpus_outcomes(engine, EXTRA_CASES)
    flagged, false_positives = 0, []
    for path in corpus:
        text = read_template(path)
        named = {use.construct.key for use in find_constructs(parse(text), text) if engine in use.construct.engines}
        if not named:
            continue
        flagged += 1
        if all(same(expected[key], result) for key, result in actual.items() if key[0] == path.name):
            false_positives.append((path.name, sorted(named)))
    print(f"{engine}: TK801 flags {flagged} corpus templates, {len(false_positives)} where the engine agrees")
    assert false_positives == []


def test_tk701_names_the_engines_and_their_effect() -> None:
    (finding,) = lint("{% for m in messages %}{{ loop.cycle('a', 'b') }}{% endfor %}", select=["TK801"])
    assert finding.message == (
        "`loop.cycle(...)`: @huggingface/jinja (transformers.js) fails when it runs; "
        "llama.cpp (llama-server) fails when it runs"
    )
    assert (
        lint("{% for m in messages %}{{ m.content if m.content is string else '' }}{% endfor %}", select=["TK801"])
        == []
    )


def test_tk701_leaves_content_concatenation_alone_where_the_template_checked_the_type() -> None:
    guarded = "{% for m in messages %}{% if m.content is string %}{{ 'U: ' + m.content }}{% endif %}{% endfor %}"
    unguarded = "{% for m in messages %}{{ 'U: ' + m.content }}{% endfor %}"
    assert lint(guarded, select=["TK801"]) == []
    assert [finding.line for finding in lint(unguarded, select=["TK801"])] == [1]


def test_rows_match_only_nodes_of_the_classes_they_name(corpus) -> None:
    """find_constructs asks a row only about nodes of its ``on`` classes: no row matches any other
    node of the corpus, the fixtures or the rows' own probes."""
    texts = [read_template(path) for path in [*corpus, *sorted(FIXTURES.rglob("*.jinja"))]]
    texts += [construct.probe for construct in CONSTRUCTS]
    misses = []
    for text in texts:
        try:
            parsed = parse(text)
        except TemplateSyntaxError:
            continue
        for node in parsed.nodes:
            misses += [
                (construct.key, type(node).__name__)
                for construct in CONSTRUCTS
                if construct.matches is not None and not isinstance(node, construct.on) and construct.matches(node)
            ]
    assert misses == []


def test_raw_blocks_are_found_in_the_token_stream() -> None:
    text = "a\n{% raw %}{{ x }}{% endraw %}"
    assert [(use.construct.key, use.line) for use in find_constructs(parse(text), text)] == [("raw-block", 2)]


def test_tk702_reports_the_witness_an_engine_renders_differently() -> None:
    needs("hf-jinja")
    template = "{% for m in messages %}[{{ m.get('name') }}]{{ m.content }}{% endfor %}"
    (found,) = [d for d in divergences(template, {}, ("hf-jinja",))]
    assert found.engine == "hf-jinja" and found.expected.startswith("[None]") and found.output.startswith("[]")
    findings = lint(template, select=["TK802"])
    assert any(f.message.startswith("@huggingface/jinja (transformers.js) renders it differently") for f in findings)
    assert all(f.witness is not None for f in findings)
    assert divergences("{% for m in messages %}{{ m.role }};{% endfor %}", {}, ("hf-jinja",)) == []
