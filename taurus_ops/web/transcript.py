"""A session document as the session page shows it.

Each message becomes a *unit* numbered as in the file (message 1 is ``messages[0]``, so
permalinks and search hits point at the same message ``jq '.messages[0]'`` shows). A
tool call is shown once, with its input and its result together: a user message that
holds nothing but the results of the calls just before it is folded into the unit of
those calls (its number still leads there). A tool_use left without a result by a
stopped chat is shown with the "interrupted" result Taurus gives it on resume, marked
as not saved.

Long sessions are cut into chunks of at most ``MAX_UNITS`` units and about
``MAX_WEIGHT`` characters, from any starting unit forwards or backwards, so a 20 MB
session opens with one chunk and loads the next as the reader scrolls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from taurus_ops.web.data import INTERRUPTED_RESULT

MAX_UNITS = 40
MAX_WEIGHT = 120_000
SHOWN_CHARS = 20_000  # a longer text, input or output is cut on the page (the rest on request)
UNIT_WEIGHT = 400  # the markup around every unit


@dataclass
class Result:
    """What a tool call returned."""

    output: str
    is_error: bool
    number: int  # the message that holds it (0: none was saved)
    block: int
    interrupted: bool = False  # the "interrupted" result: the tool did not finish
    anchor: bool = False  # carries the id of its (folded) message


@dataclass
class Call:
    """A tool_use block and, once found, its result and its ``toolCalls`` record."""

    id: str
    name: str
    input: Any
    number: int
    block: int
    result: Result | None = None
    record: dict[str, Any] | None = None

    @property
    def outcome(self) -> str:
        """ok, error, refused, interrupted or pending (no result yet)."""
        record = self.record or {}
        outcome = record.get("outcome")
        if isinstance(outcome, str) and outcome in ("ok", "error", "refused", "interrupted"):
            return outcome
        if self.result is None:
            return "pending"
        if self.result.interrupted:
            return "interrupted"
        return "error" if self.result.is_error else "ok"

    @property
    def duration_ms(self) -> int | None:
        value = (self.record or {}).get("durationMs")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Block:
    kind: str  # text | thinking | tool | result | other
    number: int
    index: int
    text: str = ""
    call: Call | None = None
    is_error: bool = False


@dataclass
class Unit:
    number: int
    role: str
    blocks: list[Block]
    timestamp: str = ""
    usage: dict[str, Any] | None = None
    interrupted: bool = False
    replaced: bool = False  # holds U+FFFD: bytes that could not be read were replaced
    folded: list[int] = field(default_factory=list)  # numbers of the result messages folded in
    weight: int = UNIT_WEIGHT

    @property
    def numbers(self) -> list[int]:
        return [self.number, *self.folded]


def _close(calls: list[Call]) -> None:
    """Give the calls left without a result the "interrupted" result (not saved in the file)."""
    for call in calls:
        if call.result is None:
            call.result = Result(INTERRUPTED_RESULT, True, 0, 0, interrupted=True)


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                parts.append(text if isinstance(text, str) else "")
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'block')} block]")
        return "\n".join(parts)
    return "" if content is None else str(content)


def _cost(text: str) -> int:
    return min(len(text), SHOWN_CHARS)


def _result(block: dict[str, Any], number: int, k: int) -> Result:
    output = _result_text(block.get("content"))
    return Result(
        output=output,
        is_error=bool(block.get("is_error")),
        number=number,
        block=k,
        interrupted=output == INTERRUPTED_RESULT,
    )


def _plain_block(block: Any, number: int, k: int) -> Block:
    """A block that is neither a tool call nor a result: text, thinking, or a placeholder."""
    if isinstance(block, str):
        return Block("text", number, k, text=block)
    if not isinstance(block, dict):
        return Block("other", number, k, text="[a block Taurus cannot show]")
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return Block("text", number, k, text=text if isinstance(text, str) else "")
    if kind == "thinking":
        text = block.get("thinking")
        return Block("thinking", number, k, text=text if isinstance(text, str) else "")
    if kind == "redacted_thinking":
        return Block("other", number, k, text="[redacted thinking]")
    label = kind if isinstance(kind, str) and kind else "unknown"
    return Block("other", number, k, text=f"[{label} block]")


class Transcript:
    """The units of one session, and the chunks they are shown in."""

    def __init__(self, data: dict[str, Any], running: bool = False) -> None:
        """``running``: a chat has the session open, so a last tool call may still be running."""
        self.running = running
        raw = data.get("messages")
        self.messages: list[Any] = raw if isinstance(raw, list) else []
        calls = data.get("toolCalls")
        self.records: dict[str, dict[str, Any]] = {}
        for record in calls if isinstance(calls, list) else []:
            if isinstance(record, dict) and isinstance(record.get("toolUseId"), str):
                self.records[record["toolUseId"]] = record
        self.units_read: list[Unit] = []  # the units read so far (``units``: all of them)
        self.unit_of: dict[int, int] = {}  # message number -> unit index, as far as read
        self.tool_count = 0
        self.complete = False
        self._next = 0  # the next message to read
        self._pending: dict[str, Call] = {}  # the calls of the message before, by id
        self._unanswered: list[Call] = []  # every call of the message before
        self._grow(units=0)

    @property
    def units(self) -> list[Unit]:
        """Every unit (reads the whole session)."""
        self._grow()
        return self.units_read

    def unit(self, index: int) -> Unit | None:
        """Unit ``index`` (final), or None past the end."""
        self._grow(units=index)
        return self.units_read[index] if index < len(self.units_read) else None

    def _grow(self, units: int | None = None, number: int | None = None) -> None:
        """Read on until there are more than ``units`` units (or message ``number`` is placed).

        A unit is final once the message after it is read (its results may be folded in),
        so the first page of a 20 MB session reads only the messages it shows.
        """
        while self._next < len(self.messages):
            if units is not None and len(self.units_read) > units + 1:
                break
            if number is not None and self._next >= number + 1:
                break
            index = self._next
            self._next += 1
            self._read(index)
        if self._next >= len(self.messages) and not self.complete:
            self.complete = True
            if not self.running:  # the last calls: still running in an open chat, else interrupted
                _close(self._unanswered)

    def _read(self, index: int) -> None:
        """Place message ``index``: a unit of its own, or, when it holds nothing but results
        of the calls just before it, folded into their unit."""
        message = self.messages[index]
        if not isinstance(message, dict):
            message = {"role": "?", "content": message}
        number = index + 1
        role = str(message.get("role", "?"))
        blocks, folded, calls = self._blocks(message.get("content"), number, role)
        _close(self._unanswered)  # answered by this message, or never: as Taurus mends it on resume
        self._pending = calls if role == "assistant" else {}
        self._unanswered = (
            [b.call for b in blocks if b.call is not None] if role == "assistant" else []
        )
        weight = sum(_cost(b.text) for b in blocks) + sum(_cost(r.output) for r in folded)
        if not blocks and folded and self.units_read:
            folded[0].anchor = True
            unit = self.units_read[-1]
            unit.folded.append(number)
            unit.weight += weight
            self.unit_of[number] = len(self.units_read) - 1
            return
        for block in blocks:
            if block.call is not None:
                weight += _cost(_input_text(block.call.input))
        stamp = message.get("timestamp")
        usage = message.get("usage")
        unit = Unit(
            number=number,
            role=role,
            blocks=blocks,
            timestamp=stamp if isinstance(stamp, str) else "",
            usage=usage if isinstance(usage, dict) else None,
            interrupted=bool(message.get("interrupted")),
            replaced=any("\ufffd" in b.text for b in blocks),
            weight=UNIT_WEIGHT + weight,
        )
        self.unit_of[number] = len(self.units_read)
        self.units_read.append(unit)

    def _blocks(
        self, content: Any, number: int, role: str
    ) -> tuple[list[Block], list[Result], dict[str, Call]]:
        """A message's blocks as shown, the results it gives the calls of the message before
        (folded into theirs), and its own calls by id."""
        blocks: list[Block] = []
        folded: list[Result] = []
        calls: dict[str, Call] = {}
        parts = [content] if isinstance(content, str) else content
        for k, block in enumerate(parts if isinstance(parts, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use":
                call = self._call(block, number, k)
                if call.id:
                    calls[call.id] = call
                blocks.append(Block("tool", number, k, call=call))
            elif kind == "tool_result":
                result = _result(block, number, k)
                owner = self._pending.get(str(block.get("tool_use_id")))
                if role == "user" and owner is not None and owner.result is None:
                    owner.result = result
                    folded.append(result)
                else:
                    blocks.append(
                        Block("result", number, k, text=result.output, is_error=result.is_error)
                    )
            else:
                blocks.append(_plain_block(block, number, k))
        return blocks, folded, calls

    def _call(self, block: dict[str, Any], number: int, k: int) -> Call:
        """A tool_use block as a call, with its ``toolCalls`` record."""
        ident = block.get("id")
        ident = ident if isinstance(ident, str) else ""
        name = block.get("name")
        self.tool_count += 1
        return Call(
            id=ident,
            name=name if isinstance(name, str) else "?",
            input=block.get("input", {}),
            number=number,
            block=k,
            record=self.records.get(ident) if ident else None,
        )

    # -- chunks ------------------------------------------------------------------------------
    def unit_for(self, number: int) -> int:
        """The unit showing message ``number`` (clamped to the session)."""
        self._grow(number=number)
        if number in self.unit_of:
            self._grow(units=self.unit_of[number])
            return self.unit_of[number]
        if number < 1 or not self.units_read:
            return 0
        return len(self.units) - 1

    def forward(self, start: int) -> tuple[int, int]:
        """The chunk ``[start, end)`` of units from ``start`` on."""
        start = max(0, start)
        end, weight = start, 0
        while end - start < MAX_UNITS:
            unit = self.unit(end)
            if unit is None:
                break
            if end > start and weight + unit.weight > MAX_WEIGHT:
                break
            weight += unit.weight
            end += 1
        return min(start, end), end

    def backward(self, end: int) -> tuple[int, int]:
        """The chunk ``[start, end)`` of units ending just before ``end``."""
        self._grow(units=end)
        end = max(0, min(end, len(self.units_read)))
        start, weight = end, 0
        while start > 0 and end - start < MAX_UNITS:
            cost = self.units_read[start - 1].weight
            if start < end and weight + cost > MAX_WEIGHT:
                break
            weight += cost
            start -= 1
        return start, end


@dataclass
class Card:
    """Units shown under one speaker: a user message, or a run of assistant work."""

    role: str
    units: list[Unit]


def cards(units: list[Unit]) -> list[Card]:
    """Consecutive assistant units (their tool results folded in) share one card."""
    out: list[Card] = []
    for unit in units:
        if out and unit.role == "assistant" and out[-1].role == "assistant":
            out[-1].units.append(unit)
        else:
            out.append(Card(unit.role, [unit]))
    return out


def _input_text(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(str(v) for v in value.values())
    return str(value)


def block_text(data: dict[str, Any], number: int, index: int) -> str | None:
    """The whole text of block ``index`` of message ``number`` (for "show all"), or None."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not 1 <= number <= len(messages):
        return None
    message = messages[number - 1]
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content if index == 0 else None
    if not isinstance(content, list) or not 0 <= index < len(content):
        return None
    block = content[index]
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "thinking":
        return str(block.get("thinking", ""))
    if kind == "tool_result":
        return _result_text(block.get("content"))
    if kind == "tool_use":
        value = block.get("input")
        if isinstance(value, dict):
            for key in ("content", "new_string", "command"):
                if isinstance(value.get(key), str) and len(value[key]) > SHOWN_CHARS:
                    return value[key]
        return json.dumps(value, indent=2, ensure_ascii=False)
    return None
