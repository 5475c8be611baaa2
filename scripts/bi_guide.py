"""Regenerate the generated blocks of docs/bi.md from the serving snapshot (the marts' COMMENT ON text
and the example queries), or, with --check, fail when the committed guide differs from them.

    .venv/bin/python scripts/bi_guide.py --from-sample   # from a fresh private run of the sample (what the test compares)
    .venv/bin/python scripts/bi_guide.py                 # from data/warehouse/dei_serving.duckdb (after `make run`)
    .venv/bin/python scripts/bi_guide.py --check         # exit 1 if docs/bi.md is stale

--from-sample is the reliable way: an existing warehouse keeps the COMMENT ON text its tables were
created with, so after a change of a comment only a fresh warehouse shows the new text.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dei_pipeline.config import REPO_ROOT, default_serving_path, default_warehouse_path
from dei_pipeline.docgen.bi_guide import generated_sections, update_bi_guide
from dei_pipeline.warehouse import connect

GUIDE = REPO_ROOT / "docs" / "bi.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--serving",
        type=Path,
        help="serving snapshot (default: $DEI_SERVING or data/warehouse/dei_serving.duckdb)",
    )
    parser.add_argument("--guide", type=Path, default=GUIDE)
    parser.add_argument(
        "--from-sample",
        action="store_true",
        help="materialize the committed sample privately and use its snapshot",
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the guide is stale")
    args = parser.parse_args(argv)
    if args.from_sample:
        from sample_run import materialize_sample  # scripts/ is on sys.path when this file runs

        with tempfile.TemporaryDirectory(prefix="dei-bi-guide-") as scratch:
            print("bi_guide: materializing the sample in a private directory ...", flush=True)
            return _generate(materialize_sample(Path(scratch)).serving, args.guide, args.check)
    return _generate(
        (args.serving or default_serving_path(default_warehouse_path())).resolve(), args.guide, args.check
    )


def _generate(serving: Path, guide: Path, check: bool) -> int:
    if not serving.exists():
        print(f"bi_guide: no serving snapshot at {serving}; run `make run` first", file=sys.stderr)
        return 2
    con = connect(serving, read_only=True)
    try:
        sections = generated_sections(con)
    finally:
        con.close()
    current = guide.read_text(encoding="utf-8")
    updated = update_bi_guide(current, sections)
    if check:
        if updated != current:
            print(f"bi_guide: {guide} is stale; run scripts/bi_guide.py --from-sample", file=sys.stderr)
            return 1
        print(f"bi_guide: {guide} is up to date")
        return 0
    guide.write_text(updated, encoding="utf-8")
    print(f"bi_guide: wrote {guide} from {serving}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
