"""``templatekit relax``: rewrite role-structure checks, verify, then write atomically."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from templatekit.output import write_output

from .common import (
    Progress,
    checked_template,
    error_message,
    fail,
    handle_errors,
    source_options,
    timeout_option,
    unified_diff,
)
from .report import EXIT_BUDGET, EXIT_CODES_HELP, EXIT_FINDINGS, EXIT_OUTPUT, EXIT_USAGE
from .verify import echo_counterexample

FORMATS = ("jinja", "tokenizer-config", "chat-template-json", "gguf")

HELP = """Rewrite role-structure checks so that any history renders.

\b
Templates such as Gemma 2/3, Mistral, Llama 2 and Qwen 3.5 call raise_exception(...) on two
user turns in a row, a leading assistant turn, a system message mid-conversation or a
developer message; servers then answer HTTP 400 to every later request. relax edits the
template text (everything else stays byte-identical) so that, per conversation:

\b
  - a history the original renders renders exactly as before;
  - a history it refuses for its roles is normalised and rendered: developer read as
    system (unless the template handles developer itself), system messages the template
    cannot place become user messages, and
      --strategy merge  (default) joins runs of same-role messages (texts joined with a
                        blank line, list-of-parts concatenated);
      --strategy skip   joins only system runs: every user and assistant message keeps its
                        own turn, so prompts stay prefix-stable for a server's prefix cache.
  - other checks (content types, tool calls) keep raising.

\b
Before writing, the result is verified against the original on generated conversations
(fidelity, tolerance, normalisation, nothing dropped). If verification fails nothing is
written and the counterexample is printed.

\b
Examples:
  templatekit relax google/gemma-3-12b-it -o gemma3.jinja
  vllm serve google/gemma-3-12b-it --chat-template gemma3.jinja
  templatekit relax ./my-model --diff
  templatekit relax ./my-model --all --format tokenizer-config -o tokenizer_config.json
  templatekit relax ./my-model --in-place          # keeps *.orig backups
  templatekit relax chat_template.jinja --check    # exit 1 if it would change (CI)
  templatekit relax model.gguf -o model.relaxed.gguf   # a GGUF copy, tensors byte-identical
  templatekit relax model.gguf --format jinja -o relaxed.jinja
  llama-server -m model.gguf --jinja --chat-template-file relaxed.jinja

\b
A GGUF SOURCE (a .gguf file, or a Hub repo with --file NAME.gguf) is written as a GGUF copy
by default: its metadata carries the relaxed template(s), every other key, the tensor infos,
the alignment and the tensor data stay byte-identical; the copy is streamed (constant memory)
to a temporary file beside the output, renamed when complete. --in-place keeps model.gguf.orig
(a hard link: no extra space).
"""


@click.command(help=HELP, epilog=EXIT_CODES_HELP)
@click.argument("source")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write here (atomically). Default: stdout.",
)
@click.option(
    "--strategy",
    type=click.Choice(["merge", "skip"]),
    default="merge",
    show_default=True,
    help="merge same-role runs, or skip the checks only (prefix-stable).",
)
@click.option(
    "--template-name",
    "-n",
    "template_name",
    default=None,
    metavar="NAME",
    help="Which named template (default, tool_use, rag, ...). Default: the default one.",
)
@click.option("--all", "all_templates", is_flag=True, help="Relax every template of the source.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default=None,
    help="jinja (default; gguf for a GGUF source): the template text; tokenizer-config: a copy of "
    "tokenizer_config.json with the relaxed template(s); chat-template-json: "
    '{"chat_template": ...}; gguf: a copy of the GGUF source with the relaxed template(s).',
)
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of the change; write nothing.")
@click.option("--check", is_flag=True, help="Exit 1 if the template would change; write nothing.")
@click.option(
    "--in-place",
    is_flag=True,
    help="Rewrite a local file or model folder's template files (a .orig backup of each is kept).",
)
@click.option("--no-verify", is_flag=True, help="Skip verification before writing (not recommended).")
@click.option(
    "--examples",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="Conversations generated for verification.",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the verification run.")
@timeout_option
@click.option(
    "--allow-sandbox-escape",
    is_flag=True,
    help="Relax a template even though lint reports a sandbox-escape attempt (TK601/TK602) in it.",
)
@source_options
@handle_errors
def relax(
    source: str,
    output: str | None,
    strategy: str,
    template_name: str | None,
    all_templates: bool,
    output_format: str | None,
    show_diff: bool,
    check: bool,
    in_place: bool,
    no_verify: bool,
    examples: int,
    seed: int,
    timeout: float,
    allow_sandbox_escape: bool,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    from templatekit.environment import command_budget

    for first, second, given in (
        ("--all", "--template-name", all_templates and template_name),
        ("--in-place", "-o/--output", in_place and output),
        ("--diff", "--check", show_diff and check),
        ("--in-place", "--check", in_place and check),
        ("--in-place", "--diff", in_place and show_diff),
    ):
        if given:
            fail(f"{first} and {second} exclude each other", EXIT_USAGE)
    with command_budget(timeout, "relax"):
        _relax(
            source,
            output,
            strategy,
            template_name,
            all_templates,
            output_format,
            show_diff,
            check,
            in_place,
            no_verify,
            examples,
            seed,
            allow_sandbox_escape,
            revision,
            token,
            filename,
        )


def _relax(
    source: str,
    output: str | None,
    strategy: str,
    template_name: str | None,
    all_templates: bool,
    output_format: str | None,
    show_diff: bool,
    check: bool,
    in_place: bool,
    no_verify: bool,
    examples: int,
    seed: int,
    allow_sandbox_escape: bool,
    revision: str | None,
    token: str | None,
    filename: str | None,
) -> None:
    from templatekit.output import is_special_file
    from templatekit.rewrite import relax as relax_template
    from templatekit.sources import load

    loaded = load(source, revision=revision, token=token, filename=filename)
    from_gguf = loaded.templates[0].container == "gguf"
    output_format = output_format or ("gguf" if from_gguf else "jinja")
    writes = not (in_place or show_diff or check)
    if output_format == "gguf" and writes and (not from_gguf or output in (None, "-")):
        fail(
            "a GGUF source is written as a GGUF copy: pass -o FILE (or --format jinja for the template text)"
            if from_gguf
            else f"--format gguf needs a GGUF source; {source} is not one",
            EXIT_USAGE,
        )
    templates = [
        checked_template(template)
        for template in (list(loaded.templates) if all_templates else [loaded.get(template_name)])
    ]
    if not allow_sandbox_escape:
        _refuse_sandbox_escapes(templates)
    if len(templates) > 1 and output_format in ("jinja", "chat-template-json") and writes:
        fail(
            f"{source} has {len(templates)} templates ({', '.join(loaded.names)}) and --format {output_format} "
            "holds one; pick one with --template-name, or use --format tokenizer-config / --in-place",
            EXIT_USAGE,
        )
    if in_place and not all(
        template.path and Path(template.path).exists() and template.repo_id is None for template in templates
    ):
        fail("--in-place works on local files and folders only; use -o for Hub sources", EXIT_USAGE)
    if output not in (None, "-") and not (check or show_diff):
        _check_output(output, templates)

    results = []
    for template in templates:
        result = relax_template(template, strategy=strategy)  # type: ignore[arg-type]
        if result.status == "failed":
            fail(f"{template.origin}: cannot relax: {result.reason}", EXIT_FINDINGS)
        _report(template, result)
        if result.changed and not no_verify:
            _verify_or_exit(template, result.text, strategy, examples, seed)
        results.append((template, result))
    verified = not no_verify and any(result.changed for _, result in results)

    if check:
        changed = [template.name for template, result in results if result.changed]
        if changed:
            click.echo(f"would relax: {', '.join(changed)}", err=True)
            sys.exit(EXIT_FINDINGS)
        return
    if show_diff:
        for template, result in results:
            name = template.path or template.origin
            click.echo(unified_diff(template.text, result.text, f"a/{name}", f"b/{name}"), nl=False)
        return
    if in_place:
        from templatekit.sources import write_in_place

        for target, backup in write_in_place(
            [(template, result.text) for template, result in results if result.changed]
        ):
            click.echo(f"rewrote {target} (backup: {backup.name})", err=True)
        return
    if output_format == "gguf":
        from templatekit.gguf_file import read_metadata, write_copy

        write_copy(
            read_metadata(templates[0].path), output, {template.name: result.text for template, result in results}
        )
        click.echo(f"wrote {output}", err=True)
        click.echo(f"use it with:\n  llama-server -m {output} --jinja", err=True)
        return
    text = _serialise(loaded, results, output_format)
    if output in (None, "-"):
        click.echo(text, nl=False)
        return
    write_output(output, text)
    click.echo(f"wrote {output}", err=True)
    if output_format == "jinja" and verified and not is_special_file(output):  # a verified file only
        click.echo(_usage_hint(source, output), err=True)


def _refuse_sandbox_escapes(templates: list) -> None:
    """Exit 1 when the escape gate finds a sandbox-escape attempt (lint's TK601/TK602) in a template to relax."""
    from templatekit.escapes import find_escapes
    from templatekit.syntax import parse

    for template in templates:
        escapes = find_escapes(parse(template.text, name=template.origin))
        if escapes:
            first = escapes[0]
            fail(
                f"{template.origin}:{first.line}: {first.summary}; refusing to relax a template that tries to "
                f"escape the sandbox ({len(escapes)} attempt(s): TK601/TK602 in `templatekit lint`; "
                "--allow-sandbox-escape relaxes it anyway)",
                EXIT_FINDINGS,
            )


def _report(template: Any, result: Any) -> None:
    if result.status == "unchanged":
        click.echo(f"{template.origin} [{template.name}]: nothing to relax (no role-structure check)", err=True)
    elif result.status == "already-relaxed":
        click.echo(f"{template.origin} [{template.name}]: already relaxed, left as is", err=True)
    else:
        where = ", ".join(f"line {site.line}:{site.column} ({site.check_class})" for site in result.sites)
        policy = f"; {result.policy.describe()}" if result.policy else ""
        click.echo(
            f"{template.origin} [{template.name}]: relaxed {len(result.sites)} role-structure "
            f"check(s) at {where} with strategy {result.strategy}{policy}",
            err=True,
        )


def _verify_or_exit(template: Any, relaxed: str, strategy: str, examples: int, seed: int) -> None:
    from templatekit.errors import RenderBudgetExceeded
    from templatekit.verification import verify

    try:
        with Progress("verifying", examples) as progress:
            outcome = verify(
                template,
                relaxed,
                examples=examples,
                seed=seed,
                normalize=strategy,  # type: ignore[arg-type]
                progress=lambda done: progress.step("conversations", done),
            )
    except RenderBudgetExceeded as error:
        fail(f"{template.origin}: verification stopped: {error_message(error)}; nothing written", EXIT_BUDGET)
    if outcome.ok and not outcome.accepted_by_original:
        fail(
            f"{template.origin}: verification checked nothing: the original rendered none of the "
            f"{outcome.checked} generated conversations (does it need variables such as tools or documents?); "
            "nothing written",
            EXIT_FINDINGS,
        )
    if outcome.ok:
        checks = f"fidelity, tolerance, {strategy} normalisation, nothing dropped"
        click.echo(
            f"verified {outcome.checked} conversations ({outcome.accepted_by_original} accepted by the "
            f"original; {outcome.compared} compared): {checks} hold",
            err=True,
        )
        _verify_under_servers(template, relaxed, strategy, seed)
        return
    click.echo("verification failed: nothing written.", err=True)
    echo_counterexample(outcome, examples=examples, compared="text", err=True)
    sys.exit(EXIT_FINDINGS)


SERVER_EXAMPLES = 100


def _verify_under_servers(template: Any, relaxed: str, strategy: str, seed: int) -> None:
    """The same properties through each server's pipeline whose engine is installed here, as
    information: a server that rewrites requests from what the template accepts (llama-server's
    capability probe) may see the two differently, which docs/relax.md explains."""
    from templatekit.servers import available_servers
    from templatekit.verification import verify

    checked, differing = [], []
    for server in available_servers():
        if server == "transformers":
            continue  # what the verification above did
        outcome = verify(
            template,
            relaxed,
            examples=SERVER_EXAMPLES,
            seed=seed,
            normalize=strategy,  # type: ignore[arg-type]
            server=server,
        )
        if outcome.ok:
            checked.append(server)
        else:
            differing.append((server, outcome.counterexample.summary))  # type: ignore[union-attr]
    if checked:
        click.echo(f"also verified under {', '.join(checked)} ({SERVER_EXAMPLES} conversations each)", err=True)
    for server, summary in differing:
        click.echo(
            f"templatekit: warning: under {server} ({summary}); replay with `templatekit verify ORIGINAL "
            f"RELAXED --servers {server}` (see docs/relax.md)",
            err=True,
        )


def _serialise(loaded: Any, results: list, output_format: str) -> str:
    from templatekit.sources import chat_template_json_text, tokenizer_config_text

    relaxed = {template.name: result.text for template, result in results}
    if output_format == "jinja":
        return next(iter(relaxed.values()))
    if output_format == "chat-template-json":
        return chat_template_json_text(next(iter(relaxed.values())))
    tokenizer_templates = {template.name: result.text for template, result in results if template.kind == "tokenizer"}
    if len(tokenizer_templates) < len(relaxed):
        click.echo(
            "note: processor templates belong in chat_template.json and were left out "
            "(use --template-name processor --format chat-template-json)",
            err=True,
        )
    return tokenizer_config_text(loaded, tokenizer_templates)


def _check_output(output: str, templates: list) -> None:
    """Fail before any work when ``output`` is an input or its folder does not exist."""
    target = Path(output).resolve()
    if not target.parent.is_dir():
        fail(f"cannot write {output}: folder {target.parent} does not exist", EXIT_OUTPUT)
    for template in templates:
        if template.path and Path(template.path).resolve() == target:
            fail(f"refusing to overwrite the input {output}; use --in-place to rewrite it (with a backup)", EXIT_OUTPUT)


def _usage_hint(source: str, output: str) -> str:
    model = source if "/" in source and not Path(source).exists() else "MODEL"
    path = Path(output).resolve()
    return (
        "use it with:\n"
        f"  vllm serve {model} --chat-template {output}\n"
        f"  docker run ... -v {path}:/templates/{path.name} vllm/vllm-openai --model {model} "
        f"--chat-template /templates/{path.name}\n"
        f"  python -m sglang.launch_server --model-path {model} --chat-template {output}\n"
        f"  llama-server -m MODEL.gguf --jinja --chat-template-file {output}"
    )
