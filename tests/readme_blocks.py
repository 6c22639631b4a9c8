"""The README's command blocks, run as written: bash expands each block (quoting, variables,
line continuations, the shell steps between commands) while a `feedwise` shell function
records the argument list of every `feedwise` command, which the tests then run through the
same CLI in their own process (one interpreter instead of one per command)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# `type -P` records the path `feedwise` resolves to on the PATH the block sees
SHIM = r"""feedwise() { printf '%s\0' "$#" "$@" >> "$ARGV_LOG"; }
type -P feedwise > "$ARGV_LOG.exe" || true
"""


def readme_block(heading: str) -> str:
    """The first bash block of the README section that starts with ``heading``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "the section has no bash block"
    return m.group(1)


def feedwise_calls(block: str, cwd: Path, env: dict[str, str]) -> tuple[list[list[str]], str]:
    """The argument lists of the block's `feedwise` commands, as bash expands them, and the
    path `feedwise` resolves to ("" when it is on no PATH)."""
    log = cwd / "argv.log"
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", SHIM + block], cwd=cwd,
                         env={**env, "ARGV_LOG": str(log)}, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    words = log.read_text().split("\0")[:-1] if log.exists() else []
    commands = []
    while words:
        n, words = int(words[0]), words[1:]
        commands.append(words[:n])
        words = words[n:]
    return commands, Path(f"{log}.exe").read_text().strip()
