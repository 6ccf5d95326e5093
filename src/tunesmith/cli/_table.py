"""Tables that fit the terminal without breaking a word: ids and dates never wrap, names wrap
between words, and when even that is too wide the columns that do not fit are left out (said
on stderr) rather than an id being cut in two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from ._common import err_console, escape, out_console

GAP = 2  # rich's padding between two columns of a box-less table


@dataclasses.dataclass(frozen=True)
class Column:
    header: str
    keep: bool = False
    """Never left out (the row's id and its state)."""
    wrap: bool = False
    """May wrap between words (a display name); other columns are one line, whole."""


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    console: Console = out_console,
    more: str = "",
) -> None:
    """Print ``rows`` under ``columns`` within ``console``'s width. Columns are given in
    order of display and of need: after those to ``keep``, each other column is shown if it
    still fits beside the ones before it. ``more`` tells where to find what was left out
    (``"--json shows everything"``)."""
    shown = [i for i, column in enumerate(columns) if column.keep]
    for i, column in enumerate(columns):
        if not column.keep and _width(columns, rows, sorted([*shown, i])) <= console.width:
            shown = sorted([*shown, i])
    table = Table(box=None, header_style="bold", pad_edge=False)
    for i in shown:
        column = columns[i]
        table.add_column(column.header, no_wrap=not column.wrap, overflow="fold")
    for row in rows:
        table.add_row(*(escape(row[i]) for i in shown))
    console.print(table)
    left_out = [columns[i].header for i in range(len(columns)) if i not in shown]
    if left_out:
        err_console.print(
            f"[dim]({', '.join(left_out)} left out to fit {console.width} columns"
            f"{'; ' + more if more else ''})[/]"
        )


def _width(columns: Sequence[Column], rows: Sequence[Sequence[str]], shown: list[int]) -> int:
    """The narrowest the ``shown`` columns can be: whole cells, or a wrapping column's longest
    word."""
    total = GAP * (len(shown) - 1)
    for i in shown:
        cells = [columns[i].header, *(row[i] for row in rows)]
        if columns[i].wrap:
            cells = [word for cell in cells for word in cell.split()]
        total += max((cell_len(c) for c in cells), default=0)
    return total
