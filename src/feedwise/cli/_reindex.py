"""Regenerates :mod:`feedwise.cli._index` from the command modules::

    python -m feedwise.cli._reindex --write
"""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path

import feedwise.cli as cli

HEAD = "COMMANDS: dict[str, tuple[str, str]] = {\n"


def build() -> dict[str, tuple[str, str]]:
    """The index as the command modules define it (imports every one of them)."""
    out = {}
    for mod in sorted(m.name for m in pkgutil.iter_modules(cli.__path__)
                      if not m.name.startswith("_")):
        for name, command in cli.load_module_commands(mod).items():
            text = command.short_help or (command.help or "").strip().split("\n\n")[0]
            # the listing is plain Rich text: code quotes would show as backticks
            out[name] = (mod, " ".join(text.replace("`", "").split()))
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    index = build()
    body = "".join(f"    {name!r}: ({mod!r},\n        {text!r}),\n"
                   for name, (mod, text) in index.items())
    if "--write" in argv:
        path = Path(cli.__file__).with_name("_index.py")
        src = path.read_text()
        start = src.index(HEAD) + len(HEAD)
        end = src.index("}\n", start)
        path.write_text(src[:start] + body + src[end:])
        print(f"wrote {len(index)} commands to {path}")
    else:
        print(body, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
