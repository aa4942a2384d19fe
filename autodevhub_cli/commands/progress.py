"""Progress display: a live Rich table on a terminal, plain timestamped lines in CI logs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table


class Progress:
    """Shows the latest status of each item; with `verbose`, every detail line as well."""

    def __init__(self, items: list[str] | None = None, verbose: bool = False) -> None:
        self.verbose = verbose
        self.status: dict[str, str] = dict.fromkeys(items or [], "waiting")
        self.started = time.monotonic()
        self.interactive = sys.stderr.isatty()
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __call__(self, item: str, message: str) -> None:
        detail = message.startswith("  ")
        with self._lock:
            if self._live is None:
                if detail and not self.verbose:
                    return
                elapsed = time.monotonic() - self.started
                sys.stderr.write(f"[{elapsed:6.1f}s] {item}: {message.strip()}\n")
                sys.stderr.flush()
                return
            if detail:
                if self.verbose:
                    from rich.text import Text

                    # Names and messages carry outside text (check names, server answers):
                    # printed literally, never read as markup.
                    line = Text.assemble((f"{item}:", "dim"), " ", message.strip())
                    self._live.console.print(line)
                return
            self.status[item] = message
            self._live.update(self._table())

    def _table(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=False, box=None, padding=(0, 1))
        for item, message in self.status.items():
            table.add_row(Text(item, style="bold"), Text(message))
        return table

    @contextmanager
    def live(self) -> Iterator[Progress]:
        """Run with a live table when stderr is a terminal."""
        if not self.interactive:
            yield self
            return
        from rich.console import Console
        from rich.live import Live

        with Live(self._table(), console=Console(stderr=True), refresh_per_second=8) as live:
            self._live = live
            try:
                yield self
            finally:
                self._live = None
