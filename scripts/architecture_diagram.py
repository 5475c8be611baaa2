"""Regenerate the asset-graph diagrams of docs/architecture.md from the Dagster definitions, or, with
--check, fail when the committed page differs from them.

    .venv/bin/python scripts/architecture_diagram.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dei_pipeline.config import REPO_ROOT
from dei_pipeline.docgen.architecture import generated_sections, update_architecture

PAGE = REPO_ROOT / "docs" / "architecture.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the page is stale")
    args = parser.parse_args(argv)
    from dei_pipeline.definitions import defs  # loads the code location, as the UI does

    current = args.page.read_text(encoding="utf-8")
    updated = update_architecture(current, generated_sections(defs))
    if args.check:
        if updated != current:
            print(
                f"architecture_diagram: {args.page} is stale; run scripts/architecture_diagram.py",
                file=sys.stderr,
            )
            return 1
        print(f"architecture_diagram: {args.page} is up to date")
        return 0
    args.page.write_text(updated, encoding="utf-8")
    print(f"architecture_diagram: wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
