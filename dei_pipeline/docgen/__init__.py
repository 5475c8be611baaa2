"""Documentation made from the code and the database, so that it cannot drift from them.

- ``generated_blocks``: rewrites the generated blocks inside hand-written Markdown;
- ``bi_guide``: the generated parts of docs/bi.md (mart documentation, example queries);
- ``architecture``: the asset-graph diagrams of docs/architecture.md.
"""
