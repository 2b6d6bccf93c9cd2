"""``templatekit engines``: list the Jinja engines servers render with, install the external ones."""

from __future__ import annotations

import click

from .common import fail, handle_errors
from .report import EXIT_ENGINE, EXIT_OK

_EXTERNAL = ("hf-jinja", "llama.cpp")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def engines() -> None:
    """The Jinja engines servers render with: jinja2 (transformers, vLLM, SGLang), minijinja
    (TGI), hf-jinja (@huggingface/jinja: transformers.js) and llama.cpp (llama-server --jinja).

    \b
    Examples:
      templatekit engines list
      templatekit engines install all      # npm for hf-jinja, PyPI + a C++ compiler for llama.cpp

    Engines are built into ~/.cache/templatekit/engines ($TEMPLATEKIT_ENGINES_DIR overrides it).
    """


@engines.command("list")
@handle_errors
def list_engines() -> None:
    """Show each engine and whether it can render here (else what to install)."""
    from templatekit.engines import ENGINES, engine_status

    for engine in ENGINES:
        problem = engine_status(engine)
        click.echo(f"{engine:<10} {'available' if problem is None else 'missing: ' + problem}")


@engines.command("install")
@click.argument("engine", type=click.Choice([*_EXTERNAL, "all"]), default="all")
@handle_errors
def install_engines(engine: str) -> None:
    """Build ENGINE (hf-jinja, llama.cpp or all) into the engines cache; installed ones are skipped."""
    from templatekit.engines import install

    failed = False
    for name in _EXTERNAL if engine == "all" else (engine,):
        try:
            done = install.install(name, log=lambda line: click.echo(line, err=True))
        except install.InstallError as error:
            click.echo(f"templatekit: error: {name}: {error}", err=True)
            failed = True
            continue
        click.echo(f"{name}: {'installed' if done else 'already installed'} in {install.engines_dir() / name}")
    if failed:
        fail("some engines could not be installed (see above)", EXIT_ENGINE)
    raise SystemExit(EXIT_OK)
