"""Where a corpus name points: a built-in folder, a local path, or a hub dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.errors import CorpusError

HUB_PREFIX = "hf:"


def builtin_dir() -> Path:
    """The repository's ``corpora/`` folder (built-ins plus the user's drop-ins)."""
    return Path(__file__).resolve().parents[2] / "corpora"


def search_dirs() -> list[Path]:
    dirs = [builtin_dir()]
    local = (Path.cwd() / "corpora").resolve()
    if local != dirs[0]:
        dirs.append(local)
    return [d for d in dirs if d.is_dir()]


@dataclass(frozen=True)
class CorpusSource:
    """A resolved corpus name. ``kind`` is builtin, local or hub."""

    name: str
    kind: str
    path: Path | None = None
    hub_name: str | None = None
    hub_config: str | None = None

    @property
    def location(self) -> str:
        if self.kind == "hub":
            return f"{HUB_PREFIX}{self.hub_name}" + (f":{self.hub_config}" if self.hub_config else "")
        return str(self.path)


BUILTIN_NAMES = ("general", "domain")


def resolve(name: str) -> CorpusSource:
    """Turn what the user typed into a source, or fail with the names that would work."""
    name = name.strip()
    if not name:
        raise CorpusError("no corpus given", fix="pass --corpus NAME (see `workbench corpora`)")
    if name.startswith(HUB_PREFIX):
        rest = name[len(HUB_PREFIX):]
        hub_name, _, config = rest.partition(":")
        if not hub_name:
            raise CorpusError(f"hub corpus {name!r} has no dataset name", fix="write hf:NAME or hf:NAME:CONFIG")
        return CorpusSource(name=name, kind="hub", hub_name=hub_name, hub_config=config or None)
    path = Path(name).expanduser()
    if path.exists():
        return CorpusSource(name=path.stem if path.is_file() else path.name, kind="local", path=path.resolve())
    for directory in search_dirs():
        candidate = directory / name
        if candidate.exists():
            kind = "builtin" if directory == builtin_dir() and name in BUILTIN_NAMES else "local"
            return CorpusSource(name=name, kind=kind, path=candidate)
    looks_like_path = any(sep in name for sep in "/\\") or Path(name).suffix
    if looks_like_path:
        raise CorpusError("file not found", where=name, fix="check the path, or run `workbench corpora` for names")
    known = ", ".join(list_names()) or "none"
    raise CorpusError(
        f"unknown corpus {name!r}",
        fix=f"use a built-in name ({known}), a path, or hf:NAME[:CONFIG]",
    )


def list_names() -> list[str]:
    names: list[str] = []
    for directory in search_dirs():
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith((".", "_")) or entry.name in ("README.md", "generate.py"):
                continue
            if entry.is_dir() or entry.suffix.lower() in (".txt", ".md", ".rst", ".csv", ".tsv", ".jsonl", ".json", ".parquet"):
                if entry.name not in names:
                    names.append(entry.name)
    return names
