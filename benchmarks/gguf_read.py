"""Reading a large GGUF file's templates, and writing its relaxed copy: bytes read, time, peak memory.

Usage: python benchmarks/gguf_read.py [--vocab N] [--data-gib G] [--runs R] [--reader-runs K]

Builds (with gguf.GGUFWriter, in a temporary folder) a GGUF file with a vocabulary of N tokens,
scores, token types and N merges (Gemma 3 has 262,144 tokens), a chat template, and a G GiB
tensor that is a hole of a sparse file, then measures in the same run:

* ``os.stat`` of the file and one ``read`` of its metadata bytes (the baselines),
  ``templatekit.sources.load`` (our reader) and ``gguf.GGUFReader`` reading the same template
  and BOS/EOS text: median time and ratios to the raw read;
* bytes read by our reader (``rchar`` of /proc/self/io) against the size of the metadata,
  and the bytes of the file GGUFReader's memory map made resident (``Rss`` in /proc/self/smaps);
* ``templatekit relax FILE -o COPY --no-verify`` in a subprocess: wall time and peak RSS
  (``RUSAGE_CHILDREN``), against a subprocess that only imports templatekit's GGUF module.

Exits 1 when our reader reads more than the metadata plus two read chunks (it must never touch
the tensor data), or the copy's peak RSS exceeds 200 MiB. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "fixtures" / "templates" / "parity_check.jinja"
PEAK_RSS_TARGET_MIB = 200
READ_SLACK = 2 << 16  # two read chunks of gguf_file


def build(path: Path, vocab: int, data_bytes: int) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>" if index == 1 else f"token{index}" for index in range(vocab)])
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types([1] * vocab)
    writer.add_token_merges([f"t{index} k{index}" for index in range(vocab)])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(TEMPLATE.read_text(encoding="utf-8"))
    writer.add_tensor_info("big.weight", (data_bytes,), np.dtype(np.int8), data_bytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    alignment = gguf.GGUF_DEFAULT_ALIGNMENT
    data_offset = -(-path.stat().st_size // alignment) * alignment
    with path.open("r+b") as handle:
        handle.truncate(data_offset + data_bytes)


def read_prefix(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def bytes_read() -> int:
    with open("/proc/self/io", encoding="ascii") as handle:
        return int(dict(line.split(": ") for line in handle.read().splitlines())["rchar"])


def resident_bytes_of(path: Path) -> int:
    """Resident bytes of this process's memory maps of ``path``."""
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                inside = len(fields) >= 6 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def timed(function, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def with_gguf_reader(path: Path) -> tuple[str, str, str, int]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    bos = tokens.contents(reader.fields["tokenizer.ggml.bos_token_id"].contents())
    eos = tokens.contents(reader.fields["tokenizer.ggml.eos_token_id"].contents())
    return reader.fields["tokenizer.chat_template"].contents(), bos, eos, resident_bytes_of(path)


def peak_rss_kib(command: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS of ``command``, run from a fresh interpreter that has no other child."""
    code = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        f"subprocess.run({command!r}, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    seconds, peak = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(seconds), int(peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=262_144, help="vocabulary size (default 262144, Gemma 3)")
    parser.add_argument("--data-gib", type=float, default=8, help="size of the sparse tensor data (default 8)")
    parser.add_argument("--runs", type=int, default=5, help="runs of stat and our reader (default 5)")
    parser.add_argument("--reader-runs", type=int, default=1, help="runs of gguf.GGUFReader (default 1: slow)")
    options = parser.parse_args()

    from templatekit import gguf_file
    from templatekit.sources import load

    with tempfile.TemporaryDirectory(dir=ROOT) as folder:
        path = Path(folder) / "large.gguf"
        build(path, options.vocab, int(options.data_gib * (1 << 30)))
        metadata = gguf_file.read_metadata(path)

        stat_time, _ = timed(lambda: os.stat(path), options.runs)
        raw_time, _ = timed(lambda: read_prefix(path, metadata.data_offset), options.runs)
        before = bytes_read()
        ours_time, source = timed(lambda: load(str(path)), options.runs)
        ours_bytes = (bytes_read() - before) // options.runs
        template = source.get()
        reader_time, (text, bos, eos, reader_resident) = timed(lambda: with_gguf_reader(path), options.reader_runs)
        assert (text, bos, eos) == (
            template.text,
            template.special_tokens["bos_token"],
            template.special_tokens["eos_token"],
        ), "the readers disagree"

        templatekit = [sys.executable, "-c", "from templatekit_cli.main import main; main()"]
        baseline_time, baseline_peak = peak_rss_kib([sys.executable, "-c", "import templatekit.gguf_file, gguf"])
        copy_time, copy_peak = peak_rss_kib(
            [*templatekit, "relax", str(path), "-o", str(Path(folder) / "copy.gguf"), "--no-verify"]
        )

    size = metadata.file_size
    print(
        f"GGUF file: {size / 2**30:.2f} GiB, {options.vocab} tokens, metadata {metadata.data_offset / 2**20:.2f} MiB "
        f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print(f"{'reading template + BOS/EOS':<34} {'median':>10} {'vs raw read':>12} {'bytes of the file':>20}")
    print(f"{'os.stat (baseline)':<34} {stat_time * 1000:>8.2f}ms {stat_time / raw_time:>11.3f}x {0:>20}")
    print(
        f"{'read(metadata size) (baseline)':<34} {raw_time * 1000:>8.2f}ms {1:>11.3f}x {metadata.data_offset:>14} read"
    )
    print(
        f"{'templatekit.sources.load':<34} {ours_time * 1000:>8.1f}ms {ours_time / raw_time:>11.1f}x "
        f"{ours_bytes:>14} read"
    )
    print(
        f"{'gguf.GGUFReader':<34} {reader_time * 1000:>8.1f}ms {reader_time / raw_time:>11.1f}x "
        f"{reader_resident:>10} resident"
    )
    print(
        f"GGUFReader / templatekit: {reader_time / ours_time:.1f}x the time; "
        f"templatekit read {ours_bytes / metadata.data_offset:.3f}x the metadata, "
        f"{ours_bytes / size:.2e}x the file"
    )
    print(
        f"relaxed copy (templatekit relax -o, --no-verify): {copy_time:.2f} s, peak RSS {copy_peak / 1024:.0f} MiB "
        f"({copy_peak / baseline_peak:.2f}x importing the GGUF module: {baseline_peak / 1024:.0f} MiB)"
    )
    failed = False
    if ours_bytes > metadata.data_offset + READ_SLACK:
        print(f"MISSED: read {ours_bytes} bytes, more than the metadata ({metadata.data_offset}) + {READ_SLACK}")
        failed = True
    if copy_peak > PEAK_RSS_TARGET_MIB * 1024:
        print(f"MISSED: the copy's peak RSS {copy_peak / 1024:.0f} MiB exceeds {PEAK_RSS_TARGET_MIB} MiB")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
