"""The project's shape: no import cycles, small training modules, a README whose layout is the tree,
no benchmark figures in code, and every pointer from code to a benchmark section leads somewhere."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "ddpm_runtime": ROOT / "runtime/src/ddpm_runtime",
    "ddpm_training": ROOT / "training/src/ddpm_training",
    "ddpm_export": ROOT / "export/src/ddpm_export",
}
MAX_TRAINING_MODULE_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, at any depth of its code (a function's import too)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module
            for alias in node.names:
                child = f"{origin}.{alias.name}"
                found.add(child if child in known else origin)
    return {m for m in found if m in known and m != name}


def test_no_import_cycle_in_the_three_packages():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    # a package's __init__ importing its own submodules is how packages are made, not a cycle
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_import_walk_finds_a_cycle_when_there_is_one(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from .b import f\n")
    b.write_text("def f():\n    from .a import g\n")
    known = {"p.a": a, "p.b": b}
    assert imports_of("p.a", a, known) == {"p.b"} and imports_of("p.b", b, known) == {"p.a"}


def test_training_modules_are_small():
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGES["ddpm_training"].rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_TRAINING_MODULE_LINES
    }
    assert long == {}


def readme_layout() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return [line.split()[0] for line in block.splitlines()[1:] if line.strip() and not line.startswith(" ")]


def test_the_readme_layout_is_the_tree():
    """Every folder the README's layout names exists, and every folder of Python modules is named."""
    named = {path.rstrip("/") for path in readme_layout()}
    assert named, "the README has no layout block"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []
    folders = set()
    for folder in PACKAGES.values():
        for init in folder.rglob("__init__.py"):
            folders.add(str(init.parent.relative_to(ROOT)))
    for top in ("tests", "bench", "docs"):
        folders |= {str(p.relative_to(ROOT)) for p in (ROOT / top).iterdir() if p.is_dir() and p.name[0] not in "._"}
    assert sorted(folders - named) == []


# a figure: an FID value, a speed-up, a time or rate with its unit, a share, a machine's name
FIGURE = re.compile(
    r"\bFIDs?\b[^.\n]{0,40}?\d+\.\d"
    r"|\d(\.\d+)?x (faster|slower|the|as|more|less|fewer|speed)"
    r"|\b\d+(\.\d+)? ?(ms|s/step|s/image|steps/s|steps per second|images/s|img/s|seconds|minutes)\b"
    r"|\b(Xeon|EPYC|Zen ?4|H100|H200|Sapphire)\b"
    r"|\b\d+(\.\d+)?%"
    r"|\bbefore [\w ]+ existed\b",
    re.IGNORECASE,
)


def prose(path: Path):
    """(line, text) of each comment block, docstring and click help text of a Python file."""
    source = path.read_text()
    block, start, last = [], 0, -2
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            if token.start[0] != last + 1 and block:
                yield start, " ".join(block)
                block = []
            start = start if block else token.start[0]
            block.append(token.string.lstrip("# "))
            last = token.start[0]
    if block:
        yield start, " ".join(block)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc
        elif isinstance(node, ast.keyword) and node.arg == "help":
            yield node.value.lineno, ast.unparse(node.value)


def code_files() -> list[Path]:
    return sorted(p for folder in PACKAGES.values() for p in folder.rglob("*.py"))


def test_no_benchmark_figures_in_code():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}"
        for path in code_files()
        for line, text in prose(path)
        for match in FIGURE.finditer(text)
    ]
    assert found == []


@pytest.mark.parametrize(
    "text",
    ["FID 8.94 at 4 calls", "took 0.0428 s/image", "1.4x faster", "on the EPYC", "agreement 88.8%"],
)
def test_the_figure_check_can_fail(text):
    assert FIGURE.search(text)


SECTION_POINTER = re.compile(r"(docs/benchmarks/)?([a-z-]+\.md)\W{1,3}\"([^\"]+)\"")


def headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")}


def test_every_pointer_from_code_to_a_benchmark_section_leads_there():
    """ "docs/benchmarks/speed.md, "Presets"" in a comment names a heading of that file."""
    broken = []
    for path in [*code_files(), ROOT / "Makefile"]:
        text = path.read_text().replace("\n", " ").replace("#", " ")
        text = re.sub(r"\s+", " ", text)
        for match in SECTION_POINTER.finditer(text):
            name, heading = match.group(2), match.group(3)
            doc = ROOT / "docs/benchmarks" / name
            if not doc.exists():
                doc = ROOT / "docs" / name
            if not doc.exists() or heading not in headings(doc):
                broken.append(f"{path.relative_to(ROOT)}: {name}, {heading!r}")
    assert broken == []
