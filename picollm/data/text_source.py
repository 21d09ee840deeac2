"""Custom text corpora: UTF-8 `.txt` files and folders of them, streamed as documents.

Three ways to cut a file into documents:

- ``"line"``: every non-blank line is one document.
- ``"paragraph"``: runs of non-blank lines separated by one or more blank lines are one
  document each; the lines inside a paragraph are joined with "\\n", so poems, dialogue and
  lists keep their shape (the tokenizer sees the newline like any other character).
- ``"separator"``: the text between two occurrences of the separator (default
  ``<|endoftext|>``, TinyStories' own text format) is one document, blank lines inside it
  included. The separator itself never reaches a document.

In every mode line endings are normalised (CRLF and lone CR become LF), trailing whitespace is
removed from every line, and surrounding whitespace from every document. A UTF-8 byte-order mark
at the start of a file is ignored.

End-of-text rule: the text ``<|endoftext|>`` is the end-of-text token's text and is never part of
a document (docs/data.md). Where it is not the separator being cut on, it is an error naming the
file and line; when it sits alone on a line, the file looks like TinyStories' text format and
the error says to use separator mode.

Files are read in blocks of READ_BLOCK_BYTES, so memory is bounded by a block, one line (a line
longer than MAX_LINE_BYTES is refused before it is held whole) and one document (at most
`max_document_bytes` of it is held, however long it runs on), never by the file size.

Every problem with the user's files is reported as a one-sentence `PicoError` that names the
file (and the byte offset or line where it matters) and says what is accepted instead. A NUL
byte is looked for in each block before any of it is decoded, so a binary file is called binary
even where its first bytes are not valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from picollm.config import END_OF_TEXT
from picollm.errors import PicoError

MODES = ("line", "paragraph", "separator")
READ_BLOCK_BYTES = 1 << 20
SNIFF_BYTES = 4096  # the start of a file, looked at for byte-order marks and UTF-16
MAX_LINE_BYTES = 64 << 20  # one line without a break is never held beyond this

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # also the first two bytes of the UTF-32 marks
_UTF8_REQUIRED = "pico-llm reads only UTF-8 text, so re-save it as UTF-8"


def load_text_documents(paths: list[str], **options) -> list[str]:
    """Every document of `paths`, as a list (`iter_text_documents`, with the same options)."""
    return list(iter_text_documents(paths, **options))


def iter_text_documents(
    paths: list[str],
    *,
    mode: str,
    key: str = "data.text.paths",
    separator: str = END_OF_TEXT,
    max_document_bytes: int = 1_000_000,
) -> Iterator[str]:
    """Stream the documents of every `.txt` file named by `paths` (files, or folders searched recursively).

    Files come in the order given; inside a folder they are sorted by path, so the corpus is
    the same on every machine. A file reached twice (named directly and through its folder)
    is read once, at its first position. The arguments are checked before anything is read.
    """
    section = key.rsplit(".", 1)[0] if "." in key else ""
    # The mode and separator sit beside the paths in the config (data.text.mode next to data.text.paths).
    mode_key, separator_key = (f"{section}.{name}" if section else name for name in ("mode", "separator"))
    if mode not in MODES:
        raise PicoError(f"{mode_key} {mode!r} is unknown; allowed modes are {', '.join(map(repr, MODES))}")
    if mode == "separator" and (not separator.strip() or "\n" in separator or "\r" in separator):
        raise PicoError(f"{separator_key} {separator!r} is not usable; it must be visible text on one line")
    if isinstance(paths, (str, Path)):
        # A bare string would otherwise be iterated character by character.
        paths = [paths]
    if not paths:
        raise PicoError(f"{key} is empty; list at least one UTF-8 .txt file or a folder containing .txt files")

    files = discover_text_files(paths, key=key)
    rule = _EndOfTextRule(mode, separator, mode_key, separator_key)
    for file in files:
        found = False
        for first_line, document in _documents(file, mode, separator, max_document_bytes):
            rule.check(file, first_line, document)
            found = True
            yield document
        if not found:
            raise PicoError(f"{file} is empty or holds only whitespace; remove it from the corpus or add text to it")


def discover_text_files(paths: list[str], *, key: str = "data.text.paths") -> list[Path]:
    """Expand files and folders into a de-duplicated, deterministic list of files."""
    files: list[Path] = []
    seen: set[Path] = set()
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            # Sorting on the POSIX form gives the same order on every OS and filesystem.
            found = sorted((p for p in path.rglob("*.txt") if p.is_file()), key=lambda p: p.as_posix())
            if not found:
                raise PicoError(f"folder {entry} (in {key}) contains no .txt files; add UTF-8 .txt files or list files directly")
        elif path.is_file():
            found = [path]
        else:
            raise PicoError(f"{entry} (in {key}) does not exist; expected a UTF-8 .txt file or a folder containing .txt files")
        for file in found:
            identity = file.resolve()
            if identity not in seen:
                seen.add(identity)
                files.append(file)
    return files


class _EndOfTextRule:
    """Refuses a document holding the end-of-text text, saying where and what to change."""

    def __init__(self, mode: str, separator: str, mode_key: str, separator_key: str):
        self.suggest_separator_mode = mode != "separator"
        if mode == "separator" and separator == END_OF_TEXT:
            self.remedy = ""  # cut on it, so it can never be inside a document
        elif mode == "separator":
            self.remedy = f"remove it, or make it the separator ({separator_key})"
        else:
            self.remedy = f"remove it, or set {mode_key}: separator if it separates documents"
        self.format_hint = (
            f"the file looks like TinyStories' text format (documents separated by lines holding {END_OF_TEXT}), "
            f"so set {mode_key}: separator"
        )

    def check(self, file: Path, first_line: int, document: str) -> None:
        if not self.remedy:
            return
        at = document.find(END_OF_TEXT)
        if at == -1:
            return
        line = first_line + document.count("\n", 0, at)
        text_of_line = document[document.rfind("\n", 0, at) + 1 :].split("\n", 1)[0]
        alone = text_of_line.strip() == END_OF_TEXT
        remedy = self.format_hint if alone and self.suggest_separator_mode else self.remedy
        raise PicoError(f"{file} line {line} holds {END_OF_TEXT}, the end-of-text token's text, which is never part of a document; {remedy}")


class _DocumentBuilder:
    """One document assembled from rstripped lines: "\\n".join(lines).strip(), in bounded memory.

    Leading blank lines are skipped and blank lines inside are kept; once the document has grown
    past `limit` characters its text is dropped and only its size is counted, for the error.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self.parts: list[str] = []
        self.first_line = 0
        self.chars = 0
        self.blank_run = 0
        self.overflow_bytes = -1  # >= 0: the text was dropped and this many bytes are counted

    def add(self, number: int, line: str) -> None:
        if not line:
            self.blank_run += bool(self.first_line)
            return
        if not self.first_line:
            self.first_line, line = number, line.lstrip()
        else:
            line = "\n" * (self.blank_run + 1) + line
        self.blank_run = 0
        if self.overflow_bytes >= 0:
            self.overflow_bytes += len(line.encode("utf-8"))
            return
        self.parts.append(line)
        self.chars += len(line)
        if self.chars > self.limit:  # characters <= bytes, so it is already too long
            self.overflow_bytes = len("".join(self.parts).encode("utf-8"))
            self.parts = []

    def finish(self, file: Path) -> tuple[int, str] | None:
        """(first line, text) of the document, or None when it holds no text; then start afresh."""
        first_line, text, overflow = self.first_line, "".join(self.parts), self.overflow_bytes
        self.reset()
        if not first_line:
            return None
        size = overflow if overflow >= 0 else len(text.encode("utf-8"))
        if size > self.limit:
            raise PicoError(
                f"{file} line {first_line} starts a document of {size} bytes, longer than the limit of "
                f"{self.limit} bytes; split it into shorter lines or paragraphs"
            )
        return first_line, text


def _documents(file: Path, mode: str, separator: str, max_document_bytes: int) -> Iterator[tuple[int, str]]:
    """(first line number, document) for each document of one file."""
    builder = _DocumentBuilder(max_document_bytes)
    for number, line in _lines(file, max_document_bytes):
        if mode == "line":
            builder.add(number, line.strip())
            document = builder.finish(file)
        elif mode == "paragraph":
            line = line.rstrip()
            if line.strip():
                builder.add(number, line)
                continue
            document = builder.finish(file)
        elif separator in line:
            *ended, rest = line.split(separator)
            for piece in ended:
                builder.add(number, piece.rstrip())
                if (document := builder.finish(file)) is not None:
                    yield document
            builder.add(number, rest.rstrip())
            continue
        else:
            builder.add(number, line.rstrip())
            continue
        if document is not None:
            yield document
    if (document := builder.finish(file)) is not None:
        yield document


def _lines(file: Path, max_document_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a UTF-8 file, decoded one block of lines at a time.

    A block is cut after its last line break, so a multi-byte character or a CRLF is never
    split; a CR that ends the data read so far waits for the next read to see whether LF follows.
    """
    try:
        handle = open(file, "rb")
    except OSError as err:
        raise PicoError(f"{file} could not be read ({err.strerror or err}); check that it exists and is readable") from None
    with handle:
        head = _read_block(file, handle, SNIFF_BYTES)
        if head.startswith(_UTF16_BOMS):
            # UTF-16 is valid-looking bytes to a lenient reader and NUL-heavy, so catch it before
            # the generic binary check to give the more useful explanation.
            raise PicoError(f"{file} starts with a UTF-16 byte-order mark; {_UTF8_REQUIRED}")
        offset = len(_UTF8_BOM) if head.startswith(_UTF8_BOM) else 0
        handle.seek(offset)
        pending, raw_newlines, number, at_end = b"", 0, 1, False
        while pending or not at_end:
            cut = len(pending) if at_end else _last_line_break(pending)
            if not cut:
                if len(pending) > max(MAX_LINE_BYTES, 4 * max_document_bytes):
                    raise PicoError(
                        f"{file} line {number} starts a document of at least {len(pending)} bytes (no line break), longer "
                        f"than the limit of {max_document_bytes} bytes; split it into shorter lines or paragraphs"
                    )
                block = _read_block(file, handle, READ_BLOCK_BYTES)
                _refuse_nul(file, block, offset + len(pending), head)
                at_end = not block
                pending += block
                continue
            block, pending = pending[:cut], pending[cut:]
            lines = _decode(file, block, offset, raw_newlines).replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if not at_end:
                lines.pop()  # the block ends with a line break: the empty piece after it is the next block's
            offset += cut
            raw_newlines += block.count(b"\n")
            for line in lines:
                yield number, line
                number += 1


def _read_block(file: Path, handle: BinaryIO, size: int) -> bytes:
    try:
        return handle.read(size)
    except OSError as err:
        raise PicoError(f"{file} could not be read ({err.strerror or err}); check that it exists and is readable") from None


def _last_line_break(data: bytes) -> int:
    """Where to cut `data` after its last complete line break (0: none is complete yet)."""
    cut = data.rfind(b"\n") + 1
    if not cut:
        cut = data.rfind(b"\r", 0, len(data) - 1) + 1  # a lone CR is complete once a byte follows it
    return cut


def _refuse_nul(file: Path, block: bytes, block_offset: int, head: bytes) -> None:
    nul = block.find(b"\x00")
    if nul == -1:
        return
    if _looks_like_utf16(head):
        raise PicoError(f"{file} looks like UTF-16 (NUL bytes between characters); {_UTF8_REQUIRED}")
    raise PicoError(f"{file} contains a NUL byte at byte offset {block_offset + nul}, so it looks binary; {_UTF8_REQUIRED}")


def _decode(file: Path, block: bytes, block_offset: int, raw_newlines: int) -> str:
    """The block as text, or an error naming the file's byte offset and line of the first bad byte."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw_newlines + block.count(b"\n", 0, err.start) + 1
        raise PicoError(
            f"{file} is not valid UTF-8: byte 0x{block[err.start]:02x} at byte offset {block_offset + err.start} (line {line}) "
            f"cannot be decoded; {_UTF8_REQUIRED}"
        ) from None


def _looks_like_utf16(raw: bytes) -> bool:
    """ASCII-range UTF-16 without a BOM puts a NUL in every other byte, all at one parity."""
    sample = raw[:4096]
    nuls_even = sample[0::2].count(0)
    nuls_odd = sample[1::2].count(0)
    half = len(sample) // 2
    return half > 0 and max(nuls_even, nuls_odd) >= 0.3 * half and min(nuls_even, nuls_odd) <= 0.05 * half
