"""Hostile input against the CLI, run as a subprocess, each case within a budget.

Every run is bounded by a wall-clock timeout (the case's budget: 15 s for the render-budget
bombs, whose renders stop at 2 s, 10 s for everything else; going past it fails the test) and
by ``RLIMIT_AS`` (2 GiB of address space), and its peak memory must stay under 400 MB: the
CLI runs under a small launcher process whose ``RUSAGE_CHILDREN`` ``ru_maxrss`` is the CLI's
own peak resident set (measured from pytest itself it would include pytest's memory, which a
forked child's high-water mark inherits). Each case checks the documented exit code, one
clear line on stderr (or a finding on stdout), nothing written on error and no temporary
files left behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO_ROOT

HOSTILE = FIXTURES / "hostile"
PARITY = FIXTURES / "templates" / "parity_check.jinja"
ADDRESS_SPACE = 2 * 1024**3
PEAK_MB = 400
BOMB_SECONDS = 15
SECONDS = 10


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float

    @property
    def error_line(self) -> str:
        lines = self.stderr.splitlines()
        assert len(lines) >= 1 and "Traceback" not in self.stderr, self.stderr
        return lines[-1]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


# Runs the CLI and writes its peak RSS (kB) to argv[1]; exits with the CLI's status.
LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call([sys.executable, "-c", "from templatekit_cli.main import main; main()", *sys.argv[2:]])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


def templatekit(*args: str, cwd: Path, seconds: float = SECONDS, stdin: bytes = b"") -> Run:
    """Run the CLI in ``cwd``; fail past ``seconds``; measure its peak RSS."""
    out, err, peak = cwd / ".stdout", cwd / ".stderr", cwd / ".peak"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(peak), *args],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "tests")},
            preexec_fn=_limit_memory,
        )
        try:
            process.communicate(stdin, timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"{args} ran past its budget of {seconds} s")
    run = Run(
        process.returncode,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        int(peak.read_text()) / 1024,
    )
    for path in (out, err, peak):
        path.unlink()
    assert run.peak_mb < PEAK_MB, f"{args}: peak RSS {run.peak_mb:.0f} MB"
    return run


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "conversation.json").write_text('[{"role": "user", "content": "hi"}]')
    return tmp_path


# --- render budgets: CPU and memory bombs ------------------------------------------------------

TIME_BOMBS = ["cpu_in_message_loop", "cpu_outside_loop", "macro_fork"]
MEMORY_BOMBS = ["string_multiply", "string_doubling", "join_of_ranges"]


@pytest.mark.parametrize("name", TIME_BOMBS + MEMORY_BOMBS)
def test_lint_reports_a_render_bomb_as_tk701(name: str, work: Path) -> None:
    run = templatekit("lint", str(HOSTILE / f"{name}.jinja"), "--format", "json", cwd=work, seconds=BOMB_SECONDS)
    assert run.returncode == 1, run.stderr
    budget = [finding for finding in json.loads(run.stdout)["findings"] if finding["code"] == "TK901"]
    unit = "2000 ms" if name in TIME_BOMBS else "32 MB"
    assert len(budget) == 1 and budget[0]["message"].startswith(f"rendering exceeds {unit} on conversation ")


@pytest.mark.parametrize(
    ("command", "name"),
    [  # relax renders only templates it rewrites (with a check)
        ("render", "cpu_in_message_loop"),
        ("verify", "cpu_in_message_loop"),
        ("relax", "cpu_in_message_loop"),
        ("render", "string_multiply"),
        ("verify", "string_multiply"),
    ],
)
def test_render_verify_relax_stop_a_bomb_with_exit_12(command: str, name: str, work: Path) -> None:
    template = str(HOSTILE / f"{name}.jinja")
    args = {
        "render": [template, "--messages", "conversation.json"],
        "verify": [template, template],
        "relax": [template, "-o", "out.jinja"],
    }[command]
    run = templatekit(command, *args, cwd=work, seconds=BOMB_SECONDS)
    assert run.returncode == 12, run.stderr
    assert "rendering exceeds" in run.error_line and run.stdout == ""
    assert not (work / "out.jinja").exists() and leftovers(work) == []


def test_deep_recursion_is_a_render_error_not_a_crash(work: Path) -> None:
    run = templatekit("render", str(HOSTILE / "deep_recursion.jinja"), "--messages", "conversation.json", cwd=work)
    assert run.returncode == 1 and "RecursionError" in run.error_line


# --- inputs too large, too deep, not text ------------------------------------------------------


def _write(folder: Path, name: str, text: str | bytes) -> str:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


NESTED = {  # parsing fails on the first two; the sums parse but do not compile
    "ifs.jinja": "{% if x %}" * 3000 + "{% endif %}" * 3000,
    "parentheses.jinja": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "sum.jinja": "{{ " + " + ".join(["1"] * 100_000) + " }}",
    "short-sum.jinja": "{{ " + " + ".join(["1"] * 20_000) + " }}",
}


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("lint", "ifs.jinja"),
        ("lint", "parentheses.jinja"),
        ("lint", "sum.jinja"),
        ("render", "ifs.jinja"),
        ("render", "short-sum.jinja"),
        ("relax", "parentheses.jinja"),
        ("relax", "short-sum.jinja"),
        ("show", "short-sum.jinja"),
    ],
)
def test_templates_nested_too_deeply_exit_13(command: str, name: str, work: Path) -> None:
    path = _write(work, name, NESTED[name])
    args = [path, "--messages", "conversation.json"] if command == "render" else [path]
    run = templatekit(command, *args, cwd=work)
    assert run.returncode == 13, run.stderr
    assert "nested too deeply" in run.error_line
    assert command != "show" or run.stdout == NESTED[name]  # show prints it as shipped all the same


@pytest.mark.parametrize("command", ["lint", "show", "relax", "render"])
def test_json_nested_100000_deep_exits_13(command: str, work: Path) -> None:
    path = _write(work, "tokenizer_config.json", '{"chat_template": ' + "[" * 100_000 + "]" * 100_000 + "}")
    args = [path, "--messages", "conversation.json"] if command == "render" else [path]
    run = templatekit(command, *args, cwd=work)
    assert run.returncode == 13 and run.error_line.endswith("JSON nested too deeply"), run.stderr


def test_a_50_mb_template_is_refused_in_bounded_memory(work: Path) -> None:
    path = _write(work, "huge.jinja", b"{{ messages }}" + b"x" * (50 * 1024 * 1024))
    run = templatekit("lint", path, cwd=work)
    assert run.returncode == 13 and "larger than 32 MB" in run.error_line
    assert run.peak_mb < 100, run.peak_mb  # read at most 32 MB + 1 byte, then refused


@pytest.mark.parametrize("command", ["lint", "show", "relax", "render"])
def test_lone_surrogate_in_json_exits_6(command: str, work: Path) -> None:
    path = _write(work, "tokenizer_config.json", '{"chat_template": "{{ messages }} \\ud800"}')
    args = [path, "--messages", "conversation.json"] if command == "render" else [path]
    run = templatekit(command, *args, cwd=work)
    assert run.returncode == 6 and "lone surrogate \\ud800" in run.error_line


def test_lone_surrogate_in_a_messages_file_exits_6(work: Path) -> None:
    _write(work, "bad.json", '[{"role": "user", "content": "\\udc00"}]')
    run = templatekit("render", str(PARITY), "--messages", "bad.json", cwd=work)
    assert run.returncode == 6 and "lone surrogate" in run.error_line


def test_binary_input_exits_6_and_nul_renders(work: Path) -> None:
    binary = _write(work, "binary.jinja", bytes(range(256)) * 4)
    run = templatekit("lint", binary, cwd=work)
    assert run.returncode == 6 and "is not UTF-8 text" in run.error_line
    nul = _write(work, "nul.jinja", b"{{ 'a\x00b' }}{% for m in messages %}{{ m.content }}{% endfor %}")
    rendered = templatekit("render", nul, "--messages", "conversation.json", cwd=work)
    assert rendered.returncode == 0 and rendered.stdout == "a\x00bhi"


def test_a_negative_seed_is_a_usage_error_everywhere(work: Path) -> None:
    for command in (["relax", str(PARITY)], ["verify", str(PARITY), str(PARITY)]):
        run = templatekit(*command, "--seed", "-5", cwd=work)
        assert run.returncode == 2 and "-5 is not in the range x>=0" in run.stderr


# --- one bad file never hides the rest --------------------------------------------------------


def test_lint_reports_a_bad_file_and_lints_the_others(work: Path) -> None:
    (work / "bad").mkdir()
    _write(work, "bad/tokenizer_config.json", "{ not json")
    strict = FIXTURES / "lint" / "strict.jinja"
    run = templatekit("lint", str(strict), "bad/tokenizer_config.json", str(PARITY), "--select", "TK101", cwd=work)
    assert run.returncode == 6  # the worst status: malformed input (6) over findings (1)
    assert "malformed JSON in bad/tokenizer_config.json" in run.error_line
    assert f"{strict}:" in run.stdout and f"{PARITY}:" in run.stdout


def test_missing_ok_skips_a_folder_without_templates(work: Path) -> None:
    (work / "empty").mkdir()
    run = templatekit("lint", "empty", str(PARITY), "--missing-ok", "--select", "TK101", cwd=work)
    assert run.returncode == 1 and "skipped: no chat template in empty" in run.stderr and str(PARITY) in run.stdout


# --- special files and symlinks ---------------------------------------------------------------


def test_output_to_a_fifo_is_written_through(work: Path) -> None:
    fifo = work / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    run = templatekit("relax", str(PARITY), "-o", "pipe", cwd=work, seconds=30)
    reader.join(timeout=10)
    assert run.returncode == 0, run.stderr
    assert received and received[0].startswith(b"{# templatekit") and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert "use it with" not in run.stderr and leftovers(work) == []


def test_output_to_a_character_device_never_replaces_it(work: Path) -> None:
    if os.geteuid() == 0:  # a /dev/full of our own: the same device, in a folder we own
        device = work / "full"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    else:
        device = Path("/dev/full")
    before = device.lstat()
    run = templatekit("relax", str(PARITY), "-o", str(device), cwd=work, seconds=30)
    assert run.returncode == 9 and "No space left on device" in run.error_line
    after = device.lstat()
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert leftovers(device.parent) == []
    null = templatekit("lint", str(PARITY), "-o", "/dev/null", cwd=work)
    assert null.returncode == 1 and stat.S_ISCHR(Path("/dev/null").lstat().st_mode)


def test_output_dash_and_dev_stdout_write_to_stdout(work: Path) -> None:
    for target in ("-", "/dev/stdout"):
        run = templatekit("relax", str(PARITY), "-o", target, cwd=work, seconds=30)
        assert run.returncode == 0 and run.stdout.startswith("{# templatekit"), run.stderr


def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(work: Path) -> None:
    (work / "real.jinja").write_text("old")
    (work / "link.jinja").symlink_to("real.jinja")
    run = templatekit("relax", str(PARITY), "-o", "link.jinja", cwd=work, seconds=30)
    assert run.returncode == 0, run.stderr
    assert (work / "link.jinja").is_symlink() and (work / "real.jinja").read_text().startswith("{# templatekit")
    assert leftovers(work) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_write_leaves_no_temporary_file(signum: int, work: Path) -> None:
    """A 1 MB output: the signal is sent as soon as the temporary file appears (or at the end);
    afterwards the target is either absent or whole, and no temporary file is left."""
    big = work / "big.jinja"
    big.write_text("{# " + "x" * 1_000_000 + " #}" + PARITY.read_text())
    whole = templatekit("relax", "big.jinja", "--no-verify", "-o", "-", cwd=work, seconds=30).stdout
    caught = 0
    for _ in range(2):
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from templatekit_cli.main import main; main()",
                "relax",
                "big.jinja",
                "--no-verify",
                "-o",
                "out.jinja",
            ],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_limit_memory,
        )
        deadline = time.monotonic() + SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if leftovers(work):
                process.send_signal(signum)
                caught += 1
                break
        _, stderr = process.communicate(timeout=SECONDS)
        assert process.returncode in (0, 128 + signum), stderr  # 130 Ctrl-C, 143 SIGTERM
        if process.returncode == 130:
            assert stderr.decode().strip().endswith("interrupted")
        assert b"Traceback" not in stderr
        assert leftovers(work) == []
        out = work / "out.jinja"
        assert not out.exists() or out.read_text() == whole
        out.unlink(missing_ok=True)
    print(f"signal during the write: {caught} of 2 runs")


# --- contracts ---------------------------------------------------------------------------------


def test_relax_refuses_a_sandbox_escape_unless_allowed(work: Path) -> None:
    template = str(HOSTILE / "sandbox_escape.jinja")
    run = templatekit("relax", template, "-o", "out.jinja", cwd=work)
    assert run.returncode == 1 and "TK601" in run.error_line and "--allow-sandbox-escape" in run.error_line
    assert not (work / "out.jinja").exists()
    allowed = templatekit("relax", template, "-o", "out.jinja", "--allow-sandbox-escape", cwd=work, seconds=30)
    assert allowed.returncode == 0 and (work / "out.jinja").exists(), allowed.stderr


def test_a_suppression_comment_does_not_unlock_relax(work: Path) -> None:
    (work / "t.jinja").write_text("{# templatekit: ignore[TK601] reason: trusted #}{{ messages.__class__ }}")
    run = templatekit("relax", "t.jinja", "-o", "out.jinja", cwd=work)
    assert run.returncode == 1 and "refusing to relax" in run.error_line
    assert not (work / "out.jinja").exists()


def test_verification_that_checked_nothing_fails(work: Path) -> None:
    template = str(HOSTILE / "renders_nothing.jinja")
    run = templatekit("relax", template, "-o", "out.jinja", cwd=work, seconds=30)
    assert run.returncode == 1 and "verification checked nothing" in run.error_line
    assert not (work / "out.jinja").exists() and "use it with" not in run.stderr
    verified = templatekit("verify", template, template, cwd=work, seconds=30)
    assert verified.returncode == 1 and "checked nothing" in verified.error_line and "ok:" not in verified.stdout


def test_an_old_jinja2_is_refused(work: Path) -> None:
    """jinja2 3.1.5 has CVE-2025-27516; its version string alone must make render refuse."""
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            "import jinja2; jinja2.__version__ = '3.1.5'; from templatekit_cli.main import main; main()",
            "render",
            str(PARITY),
            "--messages",
            "conversation.json",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=SECONDS,
    )
    assert process.returncode == 14 and process.stdout == ""
    assert process.stderr.strip().splitlines() == [
        "templatekit: error: jinja2 3.1.5 has known sandbox escapes (CVE-2024-56201, CVE-2024-56326, "
        "CVE-2025-27516); refusing to render: install jinja2>=3.1.6"
    ]


@pytest.mark.parametrize("flags", [["--diff", "--check"], ["--in-place", "--check"], ["--in-place", "--diff"]])
def test_conflicting_relax_flags_are_refused(flags: list[str], work: Path) -> None:
    (work / "t.jinja").write_text(PARITY.read_text())
    run = templatekit("relax", "t.jinja", *flags, cwd=work)
    assert run.returncode == 2 and "exclude each other" in run.error_line
    assert (work / "t.jinja").read_text() == PARITY.read_text() and not (work / "t.jinja.orig").exists()


def test_in_place_on_tokenizer_config_changes_only_the_template(work: Path) -> None:
    text = (
        '{\n    "bos_token": "<s>",\n    "note": "caf\\u00e9",\n    "chat_template": '
        + json.dumps(PARITY.read_text())
        + ',\n    "z": [1,2]\n}\n'
    )
    (work / "tokenizer_config.json").write_text(text)
    run = templatekit("relax", "tokenizer_config.json", "--in-place", cwd=work, seconds=30)
    assert run.returncode == 0, run.stderr
    edited = (work / "tokenizer_config.json").read_text()
    start = text.index('"chat_template": ') + len('"chat_template": ')
    assert edited[:start] == text[:start] and edited.endswith(',\n    "z": [1,2]\n}\n')
    assert json.loads(edited)["chat_template"].startswith("{# templatekit")


def test_lint_places_findings_of_a_json_template_on_its_json_line(work: Path) -> None:
    (work / "tokenizer_config.json").write_text(
        '{\n  "eos_token": "</s>",\n  "chat_template": ' + json.dumps(PARITY.read_text()) + "\n}\n"
    )
    run = templatekit("lint", "tokenizer_config.json", "--select", "TK101", "--format", "github", cwd=work)
    assert run.returncode == 1
    assert run.stdout.startswith("::warning file=tokenizer_config.json,line=3,col=20,title=TK101::")
    assert "(template line 13:12)" in run.stdout


def test_empty_template_and_bom_are_findings(work: Path) -> None:
    _write(work, "empty.jinja", "")
    _write(work, "bom.jinja", "\ufeff{{ messages[0]['content'] }}")
    run = templatekit("lint", "empty.jinja", "bom.jinja", "--select", "TK003,TK004", cwd=work)
    assert run.returncode == 1
    assert "empty.jinja:1:1: TK003 the template is empty" in run.stdout
    assert "bom.jinja:1:1: TK004 the template starts with a byte-order mark" in run.stdout
    relaxed = templatekit("relax", "empty.jinja", "-o", "out.jinja", cwd=work)
    assert "use it with" not in relaxed.stderr


def test_tokenizer_under_any_file_name(work: Path) -> None:
    from small_tokenizer import tokenizer_json

    (work / "tok.json").write_text(tokenizer_json(), encoding="utf-8")
    run = templatekit("render", str(PARITY), "--messages", "conversation.json", "--tokenizer", "tok.json", cwd=work)
    assert run.returncode == 0 and "tokens (tok.json)" in run.stdout, run.stderr
