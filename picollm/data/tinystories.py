"""TinyStories through the Hugging Face `datasets` library.

`iter_tinystories` is the one loading path for the hub dataset and for a local copy laid out
like the hub repository (`data/train-00000-of-00001.parquet`, ... with a `text` column), which
is also how the tests exercise the real `datasets` code without a network.

Without network access `datasets` retries the hub with exponential back-off for about 25 s
before giving up (observed here: `ConnectionError` "Couldn't reach ... on the Hub" after
~23 s). So before loading by name we ask the hub once, with a short timeout; if it does not
answer, the load runs in `datasets`' offline mode, which still uses a previously cached copy
and otherwise fails at once. Either way the user gets one sentence pointing at the offline
alternatives.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from picollm.config import END_OF_TEXT
from picollm.errors import PicoError

DEFAULT_NAME = "roneneldan/TinyStories"
HUB_PROBE_TIMEOUT_SECONDS = 3.0
ROW_BATCH = 1024  # rows decoded at a time where the Arrow cache cannot be read directly

_OFFLINE_ALTERNATIVES = (
    "set data.source: stories for the embedded offline corpus, data.source: text for local "
    "files, or data.tinystories.path to a local copy"
)


def load_tinystories(**options) -> list[str]:
    """Every story of `iter_tinystories` (same options), as a list."""
    return list(iter_tinystories(**options))


def iter_tinystories(
    *,
    subset: int | None,
    path: str | None = None,
    name: str = DEFAULT_NAME,
    split: str = "train",
    cache_dir: str | None = None,
) -> Iterator[str]:
    """Stream the stripped, non-empty stories in the `text` values of the first `subset` rows of `split`.

    `path` (a local dataset folder) wins over `name` (a hub id). `subset=None` takes the whole
    split; empty stories are dropped after taking the rows, so there can be fewer than `subset`.
    A row holding the end-of-text text is cut there, as TinyStories' own text format is (its
    separator never reaches a story). `cache_dir` is where `datasets` keeps its Arrow cache
    (default: its home cache). The rows are read in batches (`text_batches`), never all at once.
    The arguments are checked before anything is loaded.
    """
    dataset = _open_dataset(subset=subset, path=path, name=name, split=split, cache_dir=cache_dir)
    for batch in text_batches(dataset):
        for row in batch:
            for story in row.split(END_OF_TEXT) if row is not None else ():
                story = story.strip()
                if story:
                    yield story


def text_batches(dataset) -> Iterator[list[str | None]]:
    """The `text` column of `dataset`, a record batch at a time.

    A split (or its first rows) that is a prefix of its Arrow cache files is read from those files
    with plain reads: iterating the memory-mapped table instead would map every page it touches
    into this process, so its resident memory would grow to the size of the data. Anything else
    (an index mapping, a table held in memory) is read through `Dataset.iter`.
    """
    import pyarrow as pa

    files = [cache["filename"] for cache in dataset.cache_files]
    if dataset._indices is not None or not files:  # datasets keeps no public flag for either
        yield from (batch["text"] for batch in dataset.select_columns(["text"]).iter(batch_size=ROW_BATCH))
        return
    remaining = len(dataset)
    for filename in files:
        with pa.OSFile(filename) as source:
            for batch in pa.ipc.open_stream(source):  # datasets writes its cache as an Arrow stream
                if remaining <= 0:
                    return
                rows = batch.column("text").slice(0, remaining).to_pylist()
                remaining -= len(rows)
                yield rows


def _open_dataset(*, subset: int | None, path: str | None, name: str, split: str, cache_dir: str | None):
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise PicoError(f"data.tinystories.subset is {subset!r}; it must be a positive whole number of stories, or null for all")
    if path is not None and not Path(path).is_dir():
        raise PicoError(
            f"data.tinystories.path {path} is not a folder; point it at a local copy of the dataset "
            f"(a folder with data/train-*.parquet files) or remove it to download {name}"
        )

    import datasets  # deferred: importing it costs about a second, and most runs never need it

    source = path or name
    split_spec = split if subset is None else f"{split}[:{subset}]"
    offline = path is None and not hub_is_reachable()
    try:
        with _hub_offline_mode(offline):
            dataset = datasets.load_dataset(source, split=split_spec, cache_dir=cache_dir)
    except ConnectionError:  # also OfflineModeIsEnabled, a ConnectionError subclass
        raise PicoError(
            f"TinyStories ({name}) could not be downloaded or loaded because the Hugging Face Hub "
            f"is unreachable (no network?) and no cached copy exists; {_OFFLINE_ALTERNATIVES}"
        ) from None
    except datasets.exceptions.DatasetNotFoundError:
        raise PicoError(f"data.tinystories.name {name!r} is not a dataset on the Hugging Face Hub; use {DEFAULT_NAME!r} or {_OFFLINE_ALTERNATIVES}") from None
    except (FileNotFoundError, datasets.exceptions.DataFilesNotFoundError) as err:
        remedy = (
            "point data.tinystories.path at a folder laid out like the hub repository (data/train-*.parquet with a text column)"
            if path is not None
            else _OFFLINE_ALTERNATIVES
        )
        raise PicoError(f"TinyStories could not be loaded from {source} ({_first_line(err)}); {remedy}") from None
    except ValueError as err:  # e.g. 'Unknown split "dev". Should be one of [...]'
        raise PicoError(f"TinyStories split {split!r} could not be read from {source}: {_first_line(err)}") from None

    if "text" not in dataset.column_names:
        raise PicoError(f"the dataset at {source} has no 'text' column (it has {dataset.column_names}); TinyStories stores each story in 'text'")
    return dataset


def write_local_hub_layout(directory: str | Path, stories_by_split: dict[str, list[str]]) -> Path:
    """Write `stories_by_split` the way the hub repo stores its parquet config.

    `{"train": [...], "validation": [...]}` becomes `directory/data/train-00000-of-00001.parquet`
    and `directory/data/validation-00000-of-00001.parquet`, each with one `text` column; the
    file names are what `datasets` uses to infer the split names. Returns `directory`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, stories in stories_by_split.items():
        table = pa.table({"text": pa.array(stories, type=pa.string())})
        pq.write_table(table, data_dir / f"{split}-00000-of-00001.parquet")
    return directory


def hub_is_reachable(timeout_seconds: float = HUB_PROBE_TIMEOUT_SECONDS) -> bool:
    """True when the hub answers an HTTP request (any status) within the timeout.

    Uses huggingface_hub's own session, so its proxy and endpoint settings apply. The request
    runs in a daemon thread because a hanging DNS lookup ignores socket timeouts.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return False
    answered: list[bool] = []

    def probe() -> None:
        try:
            get_session().head(constants.ENDPOINT, timeout=timeout_seconds)
            answered.append(True)
        except Exception:  # any failure to get a response means "not reachable"
            answered.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_seconds)  # returns early when the probe fails fast (no DNS, refused)
    return answered == [True]


@contextlib.contextmanager
def _hub_offline_mode(enabled: bool) -> Iterator[None]:
    """Temporarily switch `datasets` and `huggingface_hub` to offline mode (cache only).

    Both libraries read their environment variable once at import, so the module flags are
    what counts; they are restored afterwards so a later call can still go online.
    """
    if not enabled:
        yield
        return
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _first_line(err: BaseException) -> str:
    """The library's message as one clause, so the PicoError stays a single sentence."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
    return line.replace(". ", "; ")
