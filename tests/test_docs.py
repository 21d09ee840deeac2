"""The docs stay true: the README's size, file map, results table and every relative link."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_BYTES = 12_288  # the README is a guide; detail lives in docs/
MAPPED_PACKAGES = ("picollm",)  # stages/ is one line: the stage table names its modules
UNMAPPED = ("__init__.py", "__main__.py")

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.I)  # a scheme (https:, mailto:) or an anchor


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text (up to the next `## `)."""
    match = re.search(rf"^## {re.escape(heading)}[ \t]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def first_table(text: str) -> list[str]:
    """The lines of the first Markdown table outside code blocks."""
    lines = FENCE.sub("", text).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    assert start is not None, "no Markdown table"
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def first_code_block(text: str) -> str:
    match = FENCE.search(text)
    assert match, "no code block"
    return match.group(0).split("\n", 1)[1].rsplit("\n", 1)[0]


def mapped_paths(block: str) -> list[str]:
    """The paths a file map names: two spaces of indent per folder level, the name first on its line."""
    paths, folders = [], []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0 and indent // 2 <= len(folders), f"file map line badly indented: {line!r}"
        name = line.split()[0]
        folders = folders[: indent // 2]
        paths.append("/".join([*folders, name]))
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
    return paths


def modules() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for package in MAPPED_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in UNMAPPED and "__pycache__" not in path.parts
    }


def broken_links(page: Path) -> list[str]:
    """The relative link targets of a Markdown page that name no existing file or folder."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    targets = [target for target in LINK.findall(text) if not EXTERNAL.match(target)]
    return [t for t in targets if not (page.parent / t.split("#", 1)[0]).exists()]


def test_readme_is_a_guide_of_at_most_12_kib():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}: move detail to docs/"


def test_file_map_names_every_module_and_only_existing_files():
    listed = mapped_paths(first_code_block(section(README.read_text(encoding="utf-8"), "File map")))
    missing = sorted(modules() - set(listed))
    assert not missing, f"README's file map lacks {missing}: run `python scripts/file_map.py`"
    stale = [p for p in listed if not ((ROOT / p).is_dir() if p.endswith("/") else (ROOT / p).is_file())]
    assert not stale, f"README's file map names what does not exist: {stale}"


def test_results_table_is_the_compare_stage_table():
    readme_table = first_table(section(README.read_text(encoding="utf-8"), "Results"))
    compare_table = first_table((ROOT / "reports" / "models.md").read_text(encoding="utf-8"))
    assert readme_table == compare_table, "README's results table differs from reports/models.md's first table"


def test_the_stage_table_names_every_stage_of_dvc_yaml_and_no_other():
    import yaml

    rows = first_table(section(README.read_text(encoding="utf-8"), "The pipeline"))[2:]
    listed = [re.match(r"\| `([^`]+)`", row).group(1).split("@")[0] for row in rows]
    patterns = {name: re.compile(re.sub(r"<\w+>", r"\\w+", name)) for name in listed}
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
    unlisted = [stage for stage in stages if not any(p.fullmatch(stage) for p in patterns.values())]
    assert not unlisted, f"README's stage table lacks {unlisted}"
    stale = [name for name, p in patterns.items() if not any(p.fullmatch(stage) for stage in stages)]
    assert not stale, f"README's stage table names stages dvc.yaml does not have: {stale}"


def test_the_bench_block_of_performance_md_is_the_committed_bench_report():
    report = (ROOT / "reports" / "bench.md").read_text(encoding="utf-8").removeprefix("# Speed\n\n")
    page = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    block = page.split("<!-- bench:begin -->\n", 1)[1].split("<!-- bench:end -->", 1)[0]
    assert block.strip() == report.strip(), "copy reports/bench.md into docs/performance.md's bench block"


def test_relative_links_point_to_existing_files():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    broken = {page.relative_to(ROOT).as_posix(): links for page in pages if (links := broken_links(page))}
    assert not broken, f"links to missing files: {broken}"
