"""``python -m dovetail.docgen [--check] [DIR]``: regenerate or verify docs/reference/."""

from __future__ import annotations

import sys
from pathlib import Path

from dovetail.docgen.reference import check, write


def main(argv: list[str]) -> int:
    checking = "--check" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = Path(args[0]) if args else Path("docs/reference")
    if checking:
        differences = check(root)
        if differences:
            print("docs/reference is out of date; run `make docs`:", file=sys.stderr)
            for name in differences:
                print(f"  {name}", file=sys.stderr)
            return 1
        print("docs/reference is up to date")
        return 0
    written = write(root)
    print(f"wrote {len(written)} files under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
