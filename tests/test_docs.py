"""The README stays a short front page, its quickstart stays CI's command, and docs/ holds together.

Checks behaviour, not wording: the README's length and its two quickstart lines, that the
generated CLI reference is current, and that every relative link in the README and docs/
reaches a file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from workbench.reference import PAGE, REGENERATE, cli_reference

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def quickstart_lines() -> list[str]:
    """The command lines of the first code block under the README's Quickstart heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quickstart", 1)[1]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.DOTALL)
    assert block, "README's Quickstart has no code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def relative_links(text: str) -> list[str]:
    """Link targets outside code: not URLs, not mailto, not bare anchors; the anchor dropped."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_quickstart_is_the_two_install_lines_ci_runs() -> None:
    first, second, *rest = quickstart_lines()
    assert not rest, rest
    assert first == "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && workbench run"
    assert second == 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && pytest'
    readme = README.read_text(encoding="utf-8")
    assert first in readme.splitlines() and second in readme.splitlines()


def test_readme_links_into_every_docs_page() -> None:
    linked = {(README.parent / target).resolve() for target in relative_links(README.read_text(encoding="utf-8"))}
    for page in ("index.md", "guide.md", "run-directory.md", "design.md", "results.md", "development.md", "reference/cli.md"):
        assert (DOCS / page).resolve() in linked, f"README.md does not link docs/{page}"


def test_every_relative_link_reaches_a_file() -> None:
    broken = []
    for page in markdown_pages():
        for target in relative_links(page.read_text(encoding="utf-8")):
            if target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_the_link_checker_finds_a_broken_link() -> None:
    text = "see [a](missing.md#part), [b](https://example.com), [c](#here), `[d](in-code.md)`, ![e](img/x.svg)"
    assert relative_links(text) == ["missing.md", "img/x.svg"]


def test_cli_reference_is_current() -> None:
    committed = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    assert committed == cli_reference(), f"docs/reference/cli.md is out of date; regenerate it: {REGENERATE}"


def test_cli_reference_lists_every_command_and_run_flag() -> None:
    import typer

    from workbench.cli import app

    page = cli_reference()
    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        assert f"## `workbench {name}`" in page, name
        for sub in getattr(command, "commands", {}):
            assert f"## `workbench {name} {sub}`" in page, f"{name} {sub}"
    for param in root.commands["run"].params:
        for flag in param.opts:
            assert re.search(rf"`[^`]*{re.escape(flag)}\b[^`]*`", page), flag
    assert "| `-c, --corpus <str>` |" in page and "| `general` |" in page  # a spec flag's default, out of its help text
    assert "\\[" not in page  # Rich's escaped brackets are not shown to the reader


def test_cli_reference_does_not_depend_on_the_terminal() -> None:
    """The same page at any terminal width, made without importing torch, transformers or Textual."""
    code = (
        "import sys; from workbench.reference import cli_reference; sys.stdout.write(cli_reference()); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'datasets', 'textual'}), file=sys.stderr)"
    )
    pages = set()
    for columns in ("40", "250"):
        env = dict(os.environ, COLUMNS=columns, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", env=env, cwd=ROOT,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().endswith("[]"), f"the reference imports a heavy library: {done.stderr}"
        pages.add(done.stdout)
    assert pages == {cli_reference()}
