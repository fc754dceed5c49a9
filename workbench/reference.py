"""The CLI reference page (docs/reference/cli.md), made from the typer app itself.

Every command and subcommand of `workbench`, with its usage line, its help text and each
option's help and default, as `--help` would show them but as Markdown. The output does not
depend on the terminal: usage lines are formatted at a fixed width and Rich markup is reduced
to plain text. Regenerate the page after changing a command or a `RunSpec` field:

    python -m workbench.reference --write

(or `python -m workbench.reference > docs/reference/cli.md`); `tests/test_docs.py`
fails while the committed page differs from this module's output.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from workbench.cli import app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "cli.md"
REGENERATE = "python -m workbench.reference --write"
WIDTH = 100  # usage lines are wrapped by click's formatter: a fixed width keeps the page the same everywhere
OPTIONS_PANEL = "Options"
ARGUMENTS_PANEL = "Arguments"
TRAILING_DEFAULT = re.compile(r"\s*\[default: ([^\]]*)\]\s*$")
CODE_SPAN = re.compile(r"(`[^`]*`)")


def cli_reference() -> str:
    """The whole page: the root command, a table of commands, then one section per command."""
    root = typer.main.get_command(app)
    root_ctx = context_for(root, "workbench", None)
    lines = [
        "# CLI reference",
        "",
        "<!-- Generated from the typer app by `workbench/reference.py`; do not edit by hand.",
        f"     Regenerate: {REGENERATE} -->",
        "",
        "Every command also takes `--help`, which prints the same text in the terminal. The guide",
        "explains what the commands are for: [guide.md](../guide.md).",
        "",
    ]
    lines += command_section(root, root_ctx, "workbench", level=2)
    for path, command, ctx in walk(root, root_ctx, "workbench"):
        lines += command_section(command, ctx, path, level=2)
    return "\n".join(lines).rstrip("\n") + "\n"


def context_for(command: Any, name: str, parent: Any) -> Any:
    return command.context_class(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)


def subcommands(group: Any, ctx: Any) -> list[tuple[str, Any]]:
    """A group's visible commands in the order `--help` lists them."""
    if not hasattr(group, "list_commands"):
        return []
    found = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    return [(name, command) for name, command in found if command is not None and not command.hidden]


def walk(group: Any, ctx: Any, path: str) -> list[tuple[str, Any, Any]]:
    """Every command under the group, depth first: (command path, command, its context)."""
    found = []
    for name, command in subcommands(group, ctx):
        child_ctx = context_for(command, name, ctx)
        found.append((f"{path} {name}", command, child_ctx))
        found += walk(command, child_ctx, f"{path} {name}")
    return found


def command_section(command: Any, ctx: Any, path: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{path}`", "", "```", command.get_usage(ctx).strip(), "```", ""]
    for paragraph in help_paragraphs(command.help or ""):
        lines += [markdown_text(paragraph), ""]
    for panel, rows in parameter_panels(command, ctx):
        kind = "argument" if panel == ARGUMENTS_PANEL else "option"
        lines += [f"{'#' * (level + 1)} {panel}", "", f"| {kind} | description | default |", "|---|---|---|"]
        lines += [f"| {cell(name, code=True)} | {cell(text)} | {cell(default, code=True)} |" for name, text, default in rows]
        lines.append("")
    children = subcommands(command, ctx)
    if children:
        lines += [f"{'#' * (level + 1)} Commands", "", "| command | what it does |", "|---|---|"]
        lines += [f"| [`{path} {name}`](#{anchor(f'{path} {name}')}) | {cell(plain(child.get_short_help_str(limit=300)))} |"
                  for name, child in children]
        lines.append("")
    return lines


def help_paragraphs(text: str) -> list[str]:
    """A docstring's paragraphs as `--help` shows them: single line breaks joined, markup dropped."""
    text = inspect.cleandoc(text).partition("\f")[0]
    return [plain(" ".join(paragraph.split())) for paragraph in text.split("\n\n") if paragraph.strip()]


def parameter_panels(command: Any, ctx: Any) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(panel title, rows) in `--help`'s order: arguments, options, then the named panels."""
    panels: dict[str, list[tuple[str, str, str]]] = {ARGUMENTS_PANEL: [], OPTIONS_PANEL: []}
    for param in command.get_params(ctx):
        row = parameter_row(param, ctx)
        if row is None:
            continue
        default_panel = ARGUMENTS_PANEL if param.param_type_name == "argument" else OPTIONS_PANEL
        panels.setdefault(getattr(param, "rich_help_panel", None) or default_panel, []).append(row)
    return [(title, rows) for title, rows in panels.items() if rows]


def parameter_row(param: Any, ctx: Any) -> tuple[str, str, str] | None:
    """(names and type, help, default) of one parameter; None for hidden ones and `--help`."""
    record = param.get_help_record(ctx)
    if record is None or "--help" in getattr(param, "opts", ()):
        return None
    names, shown = record
    own = param.help or ""
    extras = shown[len(own):] if shown.startswith(own) else ""
    text = plain(" ".join(own.split()))
    default = ""
    embedded = TRAILING_DEFAULT.search(text)  # spec flags carry their default in the help: the flag itself defaults to "unset"
    if embedded:
        default, text = embedded.group(1), text[: embedded.start()]
    for extra in re.findall(r"\[([^\]]*)\]", extras):
        for part in extra.split("; "):
            if part.startswith("default: "):
                default = part.removeprefix("default: ")
            elif part == "required":
                text = f"{text} (required)".strip()
            else:
                names = f"{names} [{part}]"
    if not default and getattr(param, "is_flag", False) and not param.secondary_opts and param.default is False:
        default = "off"
    return names, text, default


def plain(text: str) -> str:
    """Rich markup as the terminal shows it: escaped brackets unescaped, style tags dropped."""
    return Text.from_markup(text).plain


def markdown_text(text: str) -> str:
    """Prose made safe for Markdown outside its `code spans`: no stray HTML tags or emphasis."""
    parts = CODE_SPAN.split(text)
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;").replace("*", r"\*")
    return "".join(parts)


def cell(text: str, code: bool = False) -> str:
    """A table cell: pipes escaped (GitHub splits cells on them even inside code)."""
    if not text:
        return ""
    body = f"`{text}`" if code else markdown_text(text)
    return body.replace("|", r"\|")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading `workbench corpora show`: lower case, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    page = cli_reference()
    if args == ["--write"]:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page, encoding="utf-8")
        print(f"wrote {PAGE}")
    elif not args:
        sys.stdout.write(page)
    else:
        print("usage: python -m workbench.reference [--write]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
