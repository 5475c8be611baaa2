"""Generated blocks inside hand-written Markdown: the text between
``<!-- BEGIN GENERATED: <name> (by <generator>; ...) -->`` and ``<!-- END GENERATED: <name> -->`` is
rewritten by a generator, the rest of the document is left as written. A test regenerates the blocks
and compares, so documentation made from the code or the database cannot drift from it."""

from __future__ import annotations

import re


def markers(name: str, generator: str) -> tuple[str, str]:
    return (
        f"<!-- BEGIN GENERATED: {name} (by {generator}; edit the generator, not this block) -->",
        f"<!-- END GENERATED: {name} -->",
    )


def update_generated_sections(document: str, sections: dict[str, str], generator: str) -> str:
    """The document with the content between each section's markers replaced."""
    for name, content in sections.items():
        begin, end = markers(name, generator)
        block = re.search(re.escape(begin) + r"\n.*?" + re.escape(end), document, re.DOTALL)
        if block is None:
            raise ValueError(f"the document has no block {begin!r} ... {end!r}")
        document = f"{document[: block.start()]}{begin}\n{content}\n{end}{document[block.end() :]}"
    return document
