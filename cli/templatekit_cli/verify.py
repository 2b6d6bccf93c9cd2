"""``templatekit verify``, ``render`` and ``diff``: compare templates on conversations."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

from templatekit.environment import DEFAULT_PROFILE, PROFILES
from templatekit.output import write_output

from .common import Progress, checked_template, fail, handle_errors, source_options, timeout_option, unified_diff
from .report import EXIT_CODES_HELP, EXIT_FINDINGS

VERIFY_HELP = """Fuzz a relaxed template against its original.

\b
Generates conversations (system/developer/user/assistant/tool turns, list-of-parts
content with images, tool calls, reasoning fields, unicode, empty and long texts, runs of
same-role messages) and renders both templates exactly as servers do. Checks:
  fidelity   wherever ORIGINAL renders, RELAXED renders byte-identical output;
  tolerance  RELAXED raises no role-structure error (alternation, system placement,
             unsupported role) on any user/assistant/system/developer sequence;
  normalize  (--normalize merge|skip) wherever ORIGINAL refuses C for its roles and
             renders N(C), RELAXED(C) == ORIGINAL(N(C)) - what `templatekit relax
             --strategy merge|skip` promises (N: docs/relax.md);
  drops      (with --normalize) every message text ORIGINAL(N(C)) shows is in RELAXED(C).

\b
On a failure it prints the seed and a minimal counterexample as JSON that
`templatekit render` replays, with the text diff (and, with --tokenizer, the
token-by-token diff). The same --seed gives the same result, whatever --jobs.

\b
Examples:
  templatekit verify google/gemma-3-12b-it gemma3.jinja --normalize merge
  templatekit verify chat_template.jinja relaxed.jinja --examples 5000 --jobs 4
  templatekit verify ./my-model relaxed.jinja --tokenizer ./my-model --save-counterexample case.json
  templatekit render relaxed.jinja --messages case.json
"""

RENDER_HELP = """Render a template on a conversation, as servers render it.

\b
FILE (--messages) holds a JSON list of messages, or a replay object
{"messages": [...], "tools": [...], "add_generation_prompt": true, "kwargs": {...}}
as `templatekit verify` prints. Special tokens (bos_token, ...) come from the source's
tokenizer_config.json, else placeholders (<s>, </s>); the file's "kwargs" override them.
The prompt is printed exactly (no newline added); with --tokenizer, the token ids and
the text each covers follow it.

\b
Examples:
  templatekit render google/gemma-3-12b-it --messages conv.json --add-generation-prompt
  templatekit render gemma3.jinja --messages case.json --tokenizer google/gemma-3-12b-it
"""

DIFF_HELP = """Show how two templates differ, or render one conversation differently.

\b
Without --messages: a unified diff of the two template texts and of the special tokens
both name (bos_token, eos_token, ...) - e.g. a GGUF file against the Hub repo it was
converted from (`templatekit lint model.gguf --against org/repo` reports it as TK701).
With --messages: a unified diff of the two prompts and, with --tokenizer, the
token-by-token diff (aligned ids and text, first divergence marked >>); special tokens
(bos_token, ...) come from A. Exit 0 when identical, 1 when they differ.

\b
Examples:
  templatekit diff model.gguf google/gemma-3-12b-it      # drift after conversion
  templatekit diff google/gemma-3-12b-it gemma3.jinja --messages case.json
  templatekit diff a.jinja b.jinja --messages conv.json --tokenizer ./tokenizer.json
"""


def _template_options(command: Any) -> Any:
    command = click.option(
        "--profile",
        type=click.Choice(PROFILES),
        default=DEFAULT_PROFILE,
        show_default=True,
        help="Renderer behaviour of that transformers release range.",
    )(command)
    command = click.option(
        "--template-name",
        default=None,
        metavar="NAME",
        help="Which named template of the source(s) (default, tool_use, rag, ...).",
    )(command)
    return command


def _server_option(command: Any) -> Any:
    from templatekit.servers import SERVERS

    return click.option(
        "--server",
        type=click.Choice(list(SERVERS)),
        default=None,
        help="Render as this server does (default: as transformers).",
    )(command)


def _servers_list(value: str | None) -> list[str]:
    from templatekit.servers import SERVERS

    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        raise click.BadParameter(
            f"unknown server {unknown[0]!r}; expected one of {', '.join(SERVERS)}", param_hint="--servers"
        )
    return names


def _tokenizer_option(command: Any) -> Any:
    return click.option(
        "--tokenizer",
        "tokenizer_source",
        default=None,
        metavar="SOURCE",
        help="tokenizer.json, a model folder or a Hub repo id: compare token ids too.",
    )(command)


def _messages_options(command: Any, *, required: bool = True) -> Any:
    command = click.option(
        "--add-generation-prompt/--no-add-generation-prompt",
        "add_generation_prompt",
        default=None,
        help="Override the file's add_generation_prompt (default: off).",
    )(command)
    command = click.option(
        "--messages",
        "messages_file",
        required=required,
        metavar="FILE",
        help="JSON list of messages, or a replay object from `templatekit verify`"
        + ("." if required else " (default: compare the template texts)."),
    )(command)
    return command


def _load_template(
    reference: str,
    name: str | None,
    *,
    revision: str | None,
    token: str | None,
    filename: str | None = None,
    fallback_to_default: bool = False,
) -> Any:
    from templatekit.sources import load

    source = load(reference, revision=revision, token=token, filename=filename)
    if fallback_to_default and name is not None and name not in source.names:
        name = None
    return checked_template(source.get(name))


def _load_tokenizer(source: str | None, *, revision: str | None, token: str | None) -> Any:
    if source is None:
        return None
    from templatekit.tokens import load_tokenizer

    return load_tokenizer(source, revision=revision, token=token)


def _read_case(path: str, add_generation_prompt: bool | None) -> dict[str, Any]:
    """The replay case of ``path`` (``-``: stdin), as the render input ``TemplateInputs.render`` takes."""
    from templatekit.cases import Case
    from templatekit.errors import MalformedFileError, SourceNotFoundError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceNotFoundError(f"no such messages file: {path}", source=path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise MalformedFileError(f"cannot read messages file {path}: {error}", path=path) from None
    case = Case.from_json(text, path)
    if add_generation_prompt is not None:
        case = case._replace(add_generation_prompt=add_generation_prompt)
    return case.to_dict()


def _render(inputs: Any, case: dict[str, Any]) -> tuple[str | None, str | None]:
    """(output, None) or (None, how it failed); a missing engine propagates."""
    from templatekit.errors import TemplatekitError
    from templatekit.verification import describe_error

    try:
        return inputs.render(case), None
    except TemplatekitError:
        raise
    except Exception as error:  # noqa: BLE001 - a template failing on this input is the answer
        return None, describe_error(error)


def _show_texts(
    expected: str | None,
    actual: str | None,
    expected_label: str,
    actual_label: str,
    tokenizer: Any,
    *,
    err: bool = False,
) -> None:
    if expected is None or actual is None:
        return
    click.echo(unified_diff(expected, actual, expected_label, actual_label), nl=False, err=err)
    if tokenizer is not None:
        from templatekit.tokens import diff_tokens, format_token_diff

        click.echo(
            format_token_diff(
                diff_tokens(tokenizer.encode(expected), tokenizer.encode(actual)),
                left_label=expected_label,
                right_label=actual_label,
            ),
            err=err,
        )


def echo_counterexample(result: Any, *, examples: int, compared: str, tokenizer: Any = None, err: bool = False) -> None:
    """Print a failed verification: seed, property, the replayable case, both outputs, the diff."""
    example = result.counterexample
    seed = result.seed

    def echo(text: str) -> None:
        click.echo(text, err=err)

    echo(
        f"FAILED at conversation {result.checked} of {examples} (seed {seed}; replay with "
        f"--seed {seed} --examples {result.checked}); compared {compared}"
    )
    echo(example.summary)
    echo("minimal counterexample (replay with `templatekit render SOURCE --messages FILE`):")
    echo(example.to_json())
    if example.normalized is not None:
        from templatekit.cases import messages_json

        echo("normalized conversation given to ORIGINAL:")
        echo(messages_json(example.normalized))
    expected_label = "ORIGINAL" if example.property == "fidelity" else "ORIGINAL(normalized)"
    for label, output in ((expected_label, example.expected), ("RELAXED", example.actual)):
        if output is not None:
            echo(f"{label}: {json.dumps(output, ensure_ascii=False)}")
    if example.error is not None:
        echo(f"RELAXED raised: {example.error}")
    _show_texts(example.expected, example.actual, expected_label, "RELAXED", tokenizer, err=err)


@click.command(help=VERIFY_HELP, epilog=EXIT_CODES_HELP)
@click.argument("original")
@click.argument("relaxed")
@click.option(
    "--normalize",
    type=click.Choice(["merge", "skip"]),
    default=None,
    help="Also check RELAXED(C) == ORIGINAL(normalize(C)) with this strategy.",
)
@_tokenizer_option
@click.option("--examples", type=click.IntRange(1), default=500, show_default=True, help="Conversations to generate.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the run.")
@click.option(
    "--jobs", type=click.IntRange(1), default=1, show_default=True, help="Worker processes (same result as --jobs 1)."
)
@click.option(
    "--save-counterexample",
    default=None,
    metavar="FILE",
    help="Write a counterexample's replay JSON to FILE (atomically).",
)
@click.option(
    "--servers",
    "servers_option",
    default=None,
    metavar="NAME,...",
    help="Check under these servers' pipelines (vllm, llama-server, sglang, tgi, transformers.js, "
    "transformers) instead of transformers alone.",
)
@timeout_option
@_template_options
@source_options
@handle_errors
def verify(
    original: str,
    relaxed: str,
    normalize: str | None,
    tokenizer_source: str | None,
    examples: int,
    seed: int,
    jobs: int,
    save_counterexample: str | None,
    servers_option: str | None,
    timeout: float,
    template_name: str | None,
    profile: str,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    from templatekit.environment import command_budget
    from templatekit.verification import verify as run_verify

    servers: list[str | None] = list(_servers_list(servers_option)) or [None]
    original_template = _load_template(original, template_name, revision=revision, token=token, filename=filename)
    relaxed_template = _load_template(relaxed, template_name, revision=revision, token=token, fallback_to_default=True)
    tokenizer = _load_tokenizer(tokenizer_source, revision=revision, token=token)
    failed = None
    with command_budget(timeout, "verify"):
        for server in servers:
            with Progress("verifying", examples) as progress:
                result = run_verify(
                    original_template,
                    relaxed_template,
                    examples=examples,
                    seed=seed,
                    normalize=normalize,
                    tokenizer=tokenizer,
                    jobs=jobs,
                    profile=profile,
                    server=server,
                    progress=lambda done: progress.step("conversations", done),
                )
            counts = ", ".join(
                f"{name} {count}"
                for name, count in result.checks.items()
                if name not in ("normalize", "drops") or normalize
            )
            compared = (
                "text and token ids"
                if result.compared == "tokens"
                else "text (no --tokenizer given, so token ids were not compared)"
            )
            under = "" if server is None else f"{server}: "
            if result.ok and not result.accepted_by_original:
                fail(
                    f"{under}verification checked nothing: ORIGINAL rendered none of the {result.checked} generated "
                    "conversations, so fidelity was not checked (does it need variables such as tools or "
                    "documents?)",
                    EXIT_FINDINGS,
                )
            if result.ok:
                click.echo(
                    f"{under}ok: {result.checked} conversations (seed {seed}), {result.accepted_by_original} "
                    f"accepted by ORIGINAL; checked {counts}; compared {compared}"
                )
                continue
            if under:
                click.echo(f"{under}FAILED")
            echo_counterexample(result, examples=examples, compared=compared, tokenizer=tokenizer)
            failed = failed or result.counterexample
    if failed is None:
        return
    if save_counterexample:
        write_output(save_counterexample, failed.to_json() + "\n")
        click.echo(f"counterexample written to {save_counterexample}")
    sys.exit(EXIT_FINDINGS)


@click.command(help=RENDER_HELP, epilog=EXIT_CODES_HELP)
@click.argument("source")
@_messages_options
@_tokenizer_option
@_server_option
@_template_options
@source_options
@handle_errors
def render(
    source: str,
    messages_file: str,
    add_generation_prompt: bool | None,
    tokenizer_source: str | None,
    server: str | None,
    template_name: str | None,
    profile: str,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    from templatekit.probes.harness import template_inputs

    template = _load_template(source, template_name, revision=revision, token=token, filename=filename)
    case = _read_case(messages_file, add_generation_prompt)
    tokenizer = _load_tokenizer(tokenizer_source, revision=revision, token=token)
    output, error = _render(template_inputs(template, profile=profile, server=server), case)
    if error is not None:
        click.echo(f"templatekit: the template does not render this conversation: {error}", err=True)
        sys.exit(EXIT_FINDINGS)
    click.echo(output, nl=False)
    if tokenizer is not None:
        tokens = tokenizer.encode(output)
        click.echo(f"\n--- {len(tokens.ids)} tokens ({tokenizer.origin}) ---")
        for position, (token_id, piece) in enumerate(zip(tokens.ids, tokens.pieces)):
            click.echo(f"{position:>5} {token_id:>7} {json.dumps(piece, ensure_ascii=False)}")


@click.command(help=DIFF_HELP, epilog=EXIT_CODES_HELP)
@click.argument("a")
@click.argument("b")
@functools.partial(_messages_options, required=False)
@_tokenizer_option
@_server_option
@_template_options
@source_options
@handle_errors
def diff(
    a: str,
    b: str,
    messages_file: str | None,
    add_generation_prompt: bool | None,
    tokenizer_source: str | None,
    server: str | None,
    template_name: str | None,
    profile: str,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    from templatekit.probes.harness import TemplateInputs, template_inputs

    first = _load_template(a, template_name, revision=revision, token=token, filename=filename)
    second = _load_template(b, template_name, revision=revision, token=token, fallback_to_default=True)
    if messages_file is None:
        _diff_templates(first, second)
        return
    case = _read_case(messages_file, add_generation_prompt)
    tokenizer = _load_tokenizer(tokenizer_source, revision=revision, token=token)
    first_inputs = template_inputs(first, profile=profile, server=server)
    second_inputs = TemplateInputs(second.text, first_inputs.special_tokens, first_inputs.profile, server)
    (first_output, first_error), (second_output, second_error) = (
        _render(first_inputs, case),
        _render(second_inputs, case),
    )
    if first_output == second_output and first_error == second_error:
        click.echo(
            f"identical: both raise {first_error}"
            if first_error
            else f"identical: {len(first_output or '')} characters"
        )
        return
    for label, output, error in (("A", first_output, first_error), ("B", second_output, second_error)):
        click.echo(
            f"{label} raised: {error}" if error is not None else f"{label}: {json.dumps(output, ensure_ascii=False)}"
        )
    _show_texts(first_output, second_output, "A", "B", tokenizer)
    sys.exit(EXIT_FINDINGS)


def _diff_templates(first: Any, second: Any) -> None:
    """The unified diff of two template texts and their differing special tokens; exit 1 if any."""
    tokens = [
        f"{name}: {value!r} (A) != {second.special_tokens[name]!r} (B)"
        for name, value in first.special_tokens.items()
        if name in second.special_tokens and second.special_tokens[name] != value
    ]
    if first.text == second.text and not tokens:
        click.echo(f"identical: {len(first.text)} characters")
        return
    if first.text != second.text:
        click.echo(unified_diff(first.text, second.text, f"A {first.origin}", f"B {second.origin}"), nl=False)
    for line in tokens:
        click.echo(line)
    sys.exit(EXIT_FINDINGS)
