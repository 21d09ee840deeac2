"""Custom text corpora: UTF-8 `.txt` files and folders of them, turned into documents.

Two ways to cut a file into documents:

- ``"line"``: every non-blank line is one document.
- ``"paragraph"``: runs of non-blank lines separated by one or more blank lines are one
  document each; the lines inside a paragraph are joined with "\\n", so poems, dialogue and
  lists keep their shape (the tokenizer sees the newline like any other character).

In both modes line endings are normalised (CRLF and lone CR become LF), trailing whitespace is
removed from every line, and surrounding whitespace from every document. A UTF-8 byte-order mark
at the start of a file is ignored.

Every problem with the user's files is reported as a one-sentence `PicoError` that names the
file (and the byte offset or line where it matters) and says what is accepted instead.
"""

from __future__ import annotations

from pathlib import Path

from picollm.errors import PicoError

MODES = ("line", "paragraph")

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # also the first two bytes of the UTF-32 marks
_UTF8_REQUIRED = "pico-llm reads only UTF-8 text, so re-save it as UTF-8"


def load_text_documents(
    paths: list[str],
    *,
    mode: str,
    key: str = "data.text.paths",
    max_document_bytes: int = 1_000_000,
) -> list[str]:
    """Read every `.txt` file named by `paths` (files, or folders searched recursively).

    Files come in the order given; inside a folder they are sorted by path, so the corpus is
    the same on every machine. A file reached twice (named directly and through its folder)
    is read once, at its first position.
    """
    if mode not in MODES:
        # The mode sits beside the paths in the config (data.text.mode next to data.text.paths).
        mode_key = key.rsplit(".", 1)[0] + ".mode" if "." in key else "mode"
        raise PicoError(f"{mode_key} {mode!r} is unknown; allowed modes are {', '.join(map(repr, MODES))}")
    if isinstance(paths, (str, Path)):
        # A bare string would otherwise be iterated character by character.
        paths = [paths]
    if not paths:
        raise PicoError(f"{key} is empty; list at least one UTF-8 .txt file or a folder containing .txt files")

    documents: list[str] = []
    for file in discover_text_files(paths, key=key):
        documents.extend(_documents_in_file(file, mode=mode, max_document_bytes=max_document_bytes))
    return documents


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


def _documents_in_file(file: Path, *, mode: str, max_document_bytes: int) -> list[str]:
    text = _read_utf8_text(file)
    if mode == "line":
        documents = [(number, line.strip()) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    else:
        documents = _paragraphs(text)
    if not documents:
        raise PicoError(f"{file} is empty or holds only whitespace; remove it from the corpus or add text to it")
    for first_line, document in documents:
        size = len(document.encode("utf-8"))
        if size > max_document_bytes:
            raise PicoError(
                f"{file} line {first_line} starts a document of {size} bytes, longer than the limit of "
                f"{max_document_bytes} bytes; split it into shorter lines or paragraphs"
            )
    return [document for _, document in documents]


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """(first line number, paragraph) for each run of non-blank lines."""
    paragraphs: list[tuple[int, str]] = []
    current: list[str] = []
    first_line = 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip()
        if line.strip():
            if not current:
                first_line = number
            current.append(line)
        elif current:
            paragraphs.append((first_line, "\n".join(current).strip()))
            current = []
    if current:
        paragraphs.append((first_line, "\n".join(current).strip()))
    return paragraphs


def _read_utf8_text(file: Path) -> str:
    """Decode a file as UTF-8 with LF line endings, or explain precisely why it is not text."""
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise PicoError(f"{file} could not be read ({err.strerror or err}); check that it exists and is readable") from None

    # UTF-16 is valid-looking bytes to a lenient reader and NUL-heavy, so catch it before the
    # generic binary check to give the more useful explanation.
    if raw.startswith(_UTF16_BOMS):
        raise PicoError(f"{file} starts with a UTF-16 byte-order mark; {_UTF8_REQUIRED}")
    nul_offset = raw.find(b"\x00")
    if nul_offset != -1:
        if _looks_like_utf16(raw):
            raise PicoError(f"{file} looks like UTF-16 (NUL bytes between characters); {_UTF8_REQUIRED}")
        raise PicoError(f"{file} contains a NUL byte at byte offset {nul_offset}, so it looks binary; {_UTF8_REQUIRED}")

    # Decode the BOM-less bytes so that an error offset is still an offset into the file.
    bom_length = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    try:
        text = raw[bom_length:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = bom_length + err.start
        line = raw[:offset].count(b"\n") + 1
        raise PicoError(
            f"{file} is not valid UTF-8: byte 0x{raw[offset]:02x} at byte offset {offset} (line {line}) "
            f"cannot be decoded; {_UTF8_REQUIRED}"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _looks_like_utf16(raw: bytes) -> bool:
    """ASCII-range UTF-16 without a BOM puts a NUL in every other byte, all at one parity."""
    sample = raw[:4096]
    nuls_even = sample[0::2].count(0)
    nuls_odd = sample[1::2].count(0)
    half = len(sample) // 2
    return half > 0 and max(nuls_even, nuls_odd) >= 0.3 * half and min(nuls_even, nuls_odd) <= 0.05 * half
