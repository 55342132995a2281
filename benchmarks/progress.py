"""Progress display on stderr: a bar redrawn in place on a terminal, one line
per finished row otherwise (CI logs)."""

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class Progress:
    """``start(label)`` when a row begins, ``done(label, text)`` when it ends."""

    def __init__(self, total: int, stream=None, enabled: bool = True, width: int = 24):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.width = width
        self.finished = 0
        self.started = time.monotonic()
        self.current = ""
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def _bar(self) -> str:
        filled = int(self.width * self.finished / max(self.total, 1))
        elapsed = time.monotonic() - self.started
        if self.finished:
            left = elapsed / self.finished * (self.total - self.finished)
            eta = f" ~{_clock(left)} left"
        else:
            eta = ""
        return (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {self.finished}/{self.total} "
            f"{_clock(elapsed)}{eta}"
        )

    def start(self, label: str):
        self.current = label
        if self.tty:
            self._redraw(f"{self._bar()}  {label}")

    def done(self, label: str, text: str):
        self.finished += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"[{self.finished:>3}/{self.total}] {label}: {text}\n")
        if self.tty and self.finished < self.total:
            self._redraw(self._bar())
        self.stream.flush()

    def note(self, text: str):
        """A message that does not advance the bar."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r\033[K")
        if self.enabled:
            self.stream.write(
                f"{self.finished}/{self.total} rows in {_clock(time.monotonic() - self.started)}\n"
            )
            self.stream.flush()

    def _redraw(self, text: str):
        self.stream.write("\r\033[K" + text[:150])
        self.stream.flush()
