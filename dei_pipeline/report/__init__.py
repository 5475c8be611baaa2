"""What people look at (GitHub issue #7), made from the warehouse and the code.

- ``rows``: reads one edition's marts (the only module here that touches DuckDB);
- ``figures``: the white paper's figures as tables, pure polars;
- ``svg`` and ``charts``: those figures as inline SVG charts;
- ``html``: the self-contained edition report page;
- ``chromium``: headless Chromium over the DevTools pipe (chart PNGs, screenshots, page text);
- ``publish``: writes ``reports/<edition>.html`` and ``reports/<edition>/<chart>.png``;
- ``bi_guide``, ``architecture`` and ``generated_blocks``: the generated parts of docs/bi.md
  (mart documentation, example queries) and docs/architecture.md (asset-graph diagrams).
"""
