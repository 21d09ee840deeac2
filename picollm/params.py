"""`params.yaml`, read and validated whole: the schema, the models, and the plans of the studies and the bench.

Every stage calls `load_params()` first, so a bad value fails before any work with one sentence
naming the file, the key, the value and what is allowed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from picollm.bench.plan import check_bench
from picollm.config import PARAMS_FILE, Params, validate_schema
from picollm.errors import PicoError
from picollm.studies.plan import check_studies


def parse_params(raw: object, source: str = PARAMS_FILE) -> Params:
    """Validated params from a parsed YAML document; `source` names it in errors."""
    params = validate_schema(raw, source)
    for check in (check_bench, check_studies):
        try:
            check(params)
        except PicoError as err:
            message = str(err)
            raise PicoError(message if message.startswith(source) else f"{source}: {message}") from None
    return params


@lru_cache(maxsize=4)
def load_cached(path: str, mtime_ns: int) -> Params:
    """Parsed once per file version: a stage, a test or the CLI may ask many times."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PicoError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    return parse_params(raw, source=path)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.is_file():
        raise PicoError(f"{path} does not exist; run from the project root, which holds params.yaml")
    return load_cached(str(path.resolve()), path.stat().st_mtime_ns)
