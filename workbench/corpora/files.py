"""Local corpus files -> ``datasets.Dataset``, one loader per format.

``datasets`` does the parsing and Arrow caching; ``validate`` runs first so errors are
one line with a file and line number instead of a pandas/pyarrow traceback.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from workbench.corpora import cache, validate
from workbench.errors import CorpusError

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + TABLE_SUFFIXES

EVAL_STEMS = ("valid", "validation", "val", "dev", "eval", "test")


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _library_error(path: Path, exc: Exception) -> CorpusError:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return CorpusError(f"could not parse the file ({reason})", where=str(path), fix="check the file's format")


def _builder_folder(builder: str, path: Path, options: dict) -> Path | None:
    """Where ``datasets`` keeps the prepared Arrow copy of ``path`` (None if it cannot say)."""
    try:
        return Path(datasets.load_dataset_builder(builder, data_files=str(path), **options).cache_dir)
    except Exception:  # noqa: BLE001 - only asked after a failure, to look for a bad cache
        return None


def load_builder(builder: str, path: Path, **options: object) -> datasets.Dataset:
    """``datasets.load_dataset(builder)`` on one file. If it fails because its prepared Arrow
    copy (a cache) is unreadable, the copy is discarded and rebuilt from the file; any other
    failure is one line naming the file."""
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as exc:  # noqa: BLE001 - any library failure becomes one line
        folder = _builder_folder(builder, path, options)
        bad = cache.discard_unreadable([folder]) if folder is not None and folder.is_dir() else []
        if not bad:
            raise _library_error(path, exc) from None
    cache.notice(cache.healed_text(bad))
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", download_mode="force_redownload", **options)
    except Exception as exc:  # noqa: BLE001
        raise _library_error(path, exc) from None


def load_text_file(path: Path) -> datasets.Dataset:
    """Plain text: one document per paragraph (blank-line separated)."""
    has_bom = validate.check_utf8(path)
    return load_builder("text", path, sample_by="paragraph", encoding="utf-8-sig" if has_bom else "utf-8")


def load_table_file(path: Path) -> datasets.Dataset:
    """CSV, TSV, JSON Lines, JSON or Parquet, with every column kept."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            delimiter = "\t" if suffix == ".tsv" else ","
            header = validate.check_delimited(path, delimiter)
            has_bom = validate.check_utf8(path)
            ds = load_builder("csv", path, delimiter=delimiter, encoding="utf-8-sig" if has_bom else "utf-8",
                              keep_default_na=False, na_filter=False)
            del header
        elif suffix == ".jsonl":
            validate.check_jsonl(path)
            ds = load_builder("json", path)
        elif suffix == ".json":
            ds = datasets.Dataset.from_list(validate.load_json_records(path))
        elif suffix == ".parquet":
            validate.check_parquet(path)
            ds = load_builder("parquet", path)
        else:
            raise CorpusError(
                f"unsupported file type {suffix!r}",
                where=str(path),
                fix=f"use one of {', '.join(SUPPORTED_SUFFIXES)}",
            )
    except CorpusError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _library_error(path, exc) from None
    if len(ds) == 0:
        raise CorpusError("file has no records", where=str(path), fix="add data rows")
    return ds


def load_file(path: Path) -> datasets.Dataset:
    if validate.check_file_kind(path).st_size == 0:
        raise CorpusError("file is empty", where=str(path), fix="pass a file with text in it")
    if path.suffix.lower() in TEXT_SUFFIXES:
        return load_text_file(path)
    return load_table_file(path)


def split_directory(directory: Path) -> tuple[list[Path], list[Path]]:
    """Files of a corpus folder, as (train files, eval files) by their names.

    ``valid*``/``dev*``/``eval*`` files are the evaluation split; ``test*`` files are used
    for evaluation only when there is no validation file. Only regular files count (a FIFO
    or a device in the folder is skipped unread).
    """
    validate.check_file_kind(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and is_supported(p) and not p.name.startswith("."))
    files = [p for p in files if p.name.lower() != "readme.md"]
    if not files:
        raise CorpusError(
            "folder holds no corpus files",
            where=str(directory),
            fix=f"add files ending in {', '.join(SUPPORTED_SUFFIXES)}",
        )

    def stem_kind(path: Path) -> str | None:
        stem = path.stem.lower()
        for kind in EVAL_STEMS:
            if stem == kind or stem.startswith(kind + "_") or stem.startswith(kind + "-") or stem.startswith(kind + "."):
                return kind
        return None

    valid = [p for p in files if stem_kind(p) not in (None, "test")]
    test = [p for p in files if stem_kind(p) == "test"]
    train = [p for p in files if stem_kind(p) is None]
    if not train:
        raise CorpusError(
            "folder has evaluation files but no training file",
            where=str(directory),
            fix="add a train file (any name not starting with valid/dev/eval/test)",
        )
    return train, (valid or test)


def load_files(paths: list[Path]) -> datasets.Dataset:
    parts = [load_file(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    try:
        return datasets.concatenate_datasets(parts)
    except Exception as exc:  # noqa: BLE001 - mismatched columns across files
        raise CorpusError(
            f"files have different columns ({' '.join(str(exc).split())[:200]})",
            where=str(paths[0].parent),
            fix="give every file in the folder the same columns",
        ) from None
