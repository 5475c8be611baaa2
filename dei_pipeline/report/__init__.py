"""What people look at, made from the warehouse and the code.

- ``rows``: reads one edition's marts (the only module here that touches DuckDB);
- ``tables``: the white paper's figures as tables, pure polars;
- ``charts``: those figures as Altair charts, rendered offline to SVG (and PNG on request) by vl-convert;
- ``html``: the self-contained edition report page, from the Jinja2 template in ``templates/``;
- ``publish``: writes ``reports/<edition>.html`` and ``reports/<edition>/<chart>.svg``, and on request
  ``reports/<edition>/<chart>.png``.
"""
