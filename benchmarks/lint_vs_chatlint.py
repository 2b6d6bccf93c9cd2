"""Single-file ``templatekit lint`` against ``chatlint check`` (PyPI chatlint 0.1.2), paired runs.

Usage: python benchmarks/lint_vs_chatlint.py [--runs N] [--corpus-runs M] [--chatlint PATH] [--templatekit PATH]

chatlint is the peer a user would pick for a pre-commit hook.  It is installed into a
throwaway venv made by the Python templatekit runs on (``pip install chatlint==0.1.2``; skipped
with a reason, exit 0, when pip cannot get it: two interpreter builds differ by 15% in start-up)
unless ``--chatlint`` names an installed ``chatlint`` executable.  Both run as
whole processes on the same file, in pairs (templatekit then chatlint, back to back), so load
drifts hit both alike; a pair's ratio is ``templatekit wall / chatlint wall`` (the target), and
the same for CPU time (user + system), which a loaded machine disturbs less.

Prints min/median/max of the pair ratios on Gemma 3 (``--runs`` pairs) and over the corpus
(the median of ``--corpus-runs`` pairs per template, then min/median/max over templates), twice:
cold (each templatekit run with a new, empty findings cache: it lints and stores the entry) and
cached (a cache that already holds the file's entry, as when a hook runs again on the same
file).  Bytecode is written to a temporary ``PYTHONPYCACHEPREFIX`` and warmed up first, as in
an installed package.
Run it with the Python of a regular install (``pip install .``, what pre-commit installs) or
pass ``--templatekit``; the ``templatekit`` beside the running interpreter is the default.
Also prints, for Gemma 3, the same ratio for a script that only imports jinja2, compiles the
template and renders it 80 times (:data:`FLOOR`): what any linter that renders with jinja2 pays.
Exits 1 when a cold median ratio is above the target (0.8).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from startup import console_script  # benchmarks/ is on sys.path when run as a script

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
GEMMA3 = CORPUS / "google--gemma-3-27b-it.jinja"
CHATLINT = "chatlint==0.1.2"
TARGET = 0.8
# The floor of any linter that renders with jinja2, printed beside the ratios: import jinja2 as
# templatekit and chatlint do, parse and compile the template once, render it 80 times (on
# alternating conversations of 1, 3 and 5 messages, which Gemma 3 accepts).
FLOOR = """
import sys, jinja2, jinja2.ext, jinja2.sandbox
env = jinja2.sandbox.ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
)
template = env.from_string(open(sys.argv[1], encoding="utf-8").read())
turns = [{"role": ("user", "assistant")[index % 2], "content": "hi"} for index in range(5)]
for count in range(80):
    template.render(messages=turns[: count % 3 * 2 + 1], bos_token="<s>", add_generation_prompt=True)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one whole process.

    Waited for with a blocking ``wait()``: ``subprocess.run(timeout=...)`` polls with sleeps that
    grow to 50 ms, which rounds every run of 64-113 ms up to the same wall time (a 1.00x ratio).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    process.wait()
    wall = time.perf_counter() - start
    watchdog.cancel()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def paired_ratios(
    command: list[str], chatlint: str, template: Path, pairs: int, env: dict[str, str], cache: Path | None
) -> tuple[list[float], list[float]]:
    """``pairs`` ratios of ``command`` (``templatekit lint``, or the floor) to chatlint, of wall and of
    CPU time on ``template`` (appended to both commands), from back-to-back runs; templatekit's
    findings cache is ``cache`` (``None``: a new empty folder for every run)."""
    ours, theirs = [*command, str(template)], [chatlint, "check", str(template)]
    walls, cpus = [], []
    for _ in range(pairs):
        folder = cache or Path(tempfile.mkdtemp(dir=env["PYTHONPYCACHEPREFIX"] + "-caches"))
        ours_env = {**env, "TEMPLATEKIT_CACHE_DIR": str(folder)}
        (our_wall, our_cpu), (their_wall, their_cpu) = timed(ours, ours_env), timed(theirs, env)
        walls.append(our_wall / their_wall)
        cpus.append(our_cpu / max(their_cpu, 1e-6))
    return walls, cpus


def interpreter_of(script: str) -> str:
    """The Python a console script runs on (its ``#!`` line), else this one."""
    with open(script, "rb") as handle:
        first = handle.readline().decode("utf-8", "replace")
    return first[2:].strip() if first.startswith("#!") and "python" in first else sys.executable


def install_chatlint(folder: Path, interpreter: str) -> tuple[str | None, str]:
    """``(path of chatlint, "")`` after installing it into a venv of ``interpreter`` in ``folder``, or
    ``(None, reason)``."""
    subprocess.run([interpreter, "-m", "venv", str(folder)], check=True, capture_output=True, timeout=600)
    python = folder / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", CHATLINT], capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        return None, f"pip install {CHATLINT} failed: {result.stderr.strip().splitlines()[-1:] or '?'}"
    return str(folder / "bin" / "chatlint"), ""


def spread(label: str, ratios: list[float]) -> str:
    return (
        f"{label:<50} min {min(ratios):5.2f}x  median {statistics.median(ratios):5.2f}x  "
        f"max {max(ratios):5.2f}x  ({len(ratios)} ratios)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="pairs on Gemma 3 (default 20)")
    parser.add_argument("--corpus-runs", type=int, default=3, help="pairs per corpus template (default 3)")
    parser.add_argument("--chatlint", default=None, help="an installed chatlint executable (default: install one)")
    parser.add_argument("--templatekit", default=None, help="the templatekit executable (default: beside python)")
    arguments = parser.parse_args()
    if not GEMMA3.is_file():
        raise SystemExit(f"corpus not found at {CORPUS} (clone with ../shared beside the checkout)")
    templatekit = arguments.templatekit or console_script("templatekit")
    lint = [templatekit, "lint"]
    with tempfile.TemporaryDirectory(prefix="templatekit-vs-chatlint-") as scratch:
        chatlint, reason = arguments.chatlint, ""
        if chatlint is None:
            chatlint, reason = install_chatlint(Path(scratch) / "venv", interpreter_of(templatekit))
        if chatlint is None:
            print(f"skipped: {reason}")
            return 0
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
        Path(env["PYTHONPYCACHEPREFIX"] + "-caches").mkdir()
        cache = Path(scratch) / "cache"  # the cached runs' findings cache, filled by the warm-up
        templates = sorted(CORPUS.glob("*.jinja"))
        for template in templates:  # warm up: bytecode, file system cache, findings cache
            paired_ratios(lint, chatlint, template, 1, env, cache)
        print(
            f"templatekit lint / chatlint check, whole processes, paired ({templatekit} and chatlint "
            f"on {interpreter_of(templatekit)})"
        )
        verdicts = {}
        for mode, folder in (("cold", None), ("cached", cache)):
            gemma, gemma_cpu = paired_ratios(lint, chatlint, GEMMA3, arguments.runs, env, folder)
            per_template = {
                template.name: paired_ratios(lint, chatlint, template, arguments.corpus_runs, env, folder)
                for template in templates
            }
            corpus = [statistics.median(walls) for walls, _ in per_template.values()]
            corpus_cpu = [statistics.median(cpus) for _, cpus in per_template.values()]
            print(spread(f"{mode}: Gemma 3 (gemma-3-27b-it.jinja), wall", gemma))
            print(spread(f"{mode}: Gemma 3, CPU", gemma_cpu))
            print(spread(f"{mode}: corpus ({len(templates)} templates), wall", corpus))
            print(spread(f"{mode}: corpus, CPU", corpus_cpu))
            slowest = max(per_template, key=lambda name: statistics.median(per_template[name][0]))
            print(f"{mode}: slowest (wall): {slowest} {statistics.median(per_template[slowest][0]):.2f}x")
            if mode == "cold":
                floor, _ = paired_ratios(
                    [interpreter_of(templatekit), "-c", FLOOR], chatlint, GEMMA3, arguments.runs, env, None
                )
                print(spread("floor: import jinja2, compile, 80 renders (Gemma 3)", floor))
            verdicts[f"{mode}: Gemma 3"] = statistics.median(gemma) <= TARGET
            verdicts[f"{mode}: corpus median"] = statistics.median(corpus) <= TARGET
    for label, met in verdicts.items():
        print(f"target: {label} <= {TARGET}x: {'OK' if met else 'MISSED'}")
    return 0 if verdicts["cold: Gemma 3"] and verdicts["cold: corpus median"] else 1


if __name__ == "__main__":
    sys.exit(main())
