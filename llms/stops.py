"""Stop strings, applied the same way to whole answers and to streams."""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest occurrence of any stop string.

    Args:
        text: Generated text.
        stops: Stop strings; empty strings are ignored.

    Returns:
        The text before the first stop string, and whether one was found.
    """
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class StopFilter:
    """Cuts a stream of text deltas at the first stop string.

    Text that might be the beginning of a stop string is held back until the next delta shows
    whether it is, so the emitted deltas join to ``cut_at_stop(whole_text, stops)[0]``.

    Attributes:
        stopped: True once a stop string was seen; feed nothing more after that.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Take the next delta and return the text now safe to emit (possibly empty).

        Args:
            delta: The next piece of generated text.

        Returns:
            Text to pass on.
        """
        if self.stopped:
            return ""
        if not self._stops:
            return delta
        buffer = self._held + delta
        text, found = cut_at_stop(buffer, self._stops)
        if found:
            self.stopped = True
            self._held = ""
            return text
        keep = self._partial_stop_len(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """Return the held-back text at the end of the stream.

        Returns:
            Text held back because it could have begun a stop string.
        """
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_stop_len(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that is a proper prefix of a stop."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
