"""A small terminal emulator for pty tests: what a person would see, not the raw bytes.

Raw pty output holds every frame a live display drew and erased again, so counting a
text in it says nothing; feeding it to :class:`Screen` applies the cursor moves and
erases (the subset rich and prompt_toolkit use) and leaves the lines on screen, the
ones scrolled off the top included.
"""

from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[([0-9;?]*)([ -/]*)([@-~])")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class Screen:
    def __init__(self, width: int = 120, height: int = 40) -> None:
        self.width = width
        self.height = height
        self.rows = [[" "] * width for _ in range(height)]
        self.gone: list[str] = []  # lines scrolled off the top
        self.row = 0
        self.col = 0
        self.wrap_next = False  # the last column was written: the next character wraps

    # -- output --------------------------------------------------------------------------
    def feed(self, text: str) -> Screen:
        position = 0
        while position < len(text):
            char = text[position]
            if char == "\x1b":
                match = _CSI.match(text, position) or _OSC.match(text, position)
                if match is None:  # ESC and one character (ESC 7, ESC =, ...): no effect here
                    position += 2
                    continue
                if match.re is _CSI:
                    self._csi(match.group(1), match.group(3))
                position = match.end()
                continue
            self._char(char)
            position += 1
        return self

    def _char(self, char: str) -> None:
        if char == "\r":
            self.col, self.wrap_next = 0, False
        elif char == "\n":
            self._down()
            self.wrap_next = False
        elif char == "\b":
            self.col, self.wrap_next = max(self.col - 1, 0), False
        elif char in "\x07\x00" or ord(char) < 0x20:
            return
        else:
            if self.wrap_next:
                self.col, self.wrap_next = 0, False
                self._down()
            self.rows[self.row][self.col] = char
            if self.col == self.width - 1:
                self.wrap_next = True
            else:
                self.col += 1

    def _down(self) -> None:
        if self.row == self.height - 1:
            self.gone.append("".join(self.rows.pop(0)).rstrip())
            self.rows.append([" "] * self.width)
        else:
            self.row += 1

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return  # modes: cursor shown, bracketed paste, autowrap ...
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = numbers[0] if numbers else 0
        self.wrap_next = False
        if final == "A":
            self.row = max(self.row - max(n, 1), 0)
        elif final == "B":
            self.row = min(self.row + max(n, 1), self.height - 1)
        elif final == "C":
            self.col = min(self.col + max(n, 1), self.width - 1)
        elif final == "D":
            self.col = max(self.col - max(n, 1), 0)
        elif final == "G":
            self.col = min(max(n, 1) - 1, self.width - 1)
        elif final == "H":
            row = numbers[0] if numbers else 1
            col = numbers[1] if len(numbers) > 1 else 1
            self.row = min(max(row, 1) - 1, self.height - 1)
            self.col = min(max(col, 1) - 1, self.width - 1)
        elif final == "K":
            line = self.rows[self.row]
            span = {0: range(self.col, self.width), 1: range(self.col + 1)}.get(
                n, range(self.width)
            )
            for col in span:
                line[col] = " "
        elif final == "J":
            if n == 0:
                self._csi("0", "K")
                for row in range(self.row + 1, self.height):
                    self.rows[row] = [" "] * self.width
            elif n in (2, 3):
                self.rows = [[" "] * self.width for _ in range(self.height)]

    # -- what is seen ----------------------------------------------------------------------
    def lines(self) -> list[str]:
        """Every line shown: those scrolled off, then the screen's (trailing blanks dropped)."""
        shown = self.gone + ["".join(row).rstrip() for row in self.rows]
        while shown and not shown[-1]:
            shown.pop()
        return shown
