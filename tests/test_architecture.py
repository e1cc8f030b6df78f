"""The house rules a reviewer would otherwise check by memory: imports at module level, and no import cycles.

The layering itself (`mcphub` -> `monitoring` -> `servers` -> `logs`) is import-linter's (pyproject.toml,
`lint-imports` in `make lint` and `make test`); these two rules are the ones it has no contract type for.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from pathlib import Path

import grimp

BASE_DIR = Path(__file__).resolve().parent.parent
APPS = ("mcphub", "monitoring", "servers", "logs")


def source_files() -> Iterator[Path]:
    """The hub's own modules: the four apps, migrations excluded (generated, and never imported by the code)."""
    for app in APPS:
        for path in sorted((BASE_DIR / app).rglob("*.py")):
            if "migrations" not in path.relative_to(BASE_DIR).parts:
                yield path


def comment_lines(source: str) -> tuple[set[int], set[int]]:
    """Line numbers holding a comment, and those holding nothing but a comment."""
    any_comment: set[int] = set()
    comment_only: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            any_comment.add(row)
            if not token.line[:col].strip():
                comment_only.add(row)
    return any_comment, comment_only


def imports_inside_functions(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in the body of a function (at any depth, nested classes and functions included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield inner


def unexplained_function_imports(path: Path) -> list[str]:
    """`path:line: statement` for each import inside a function that no comment explains.

    The why belongs on the import's own line(s) or on a comment line directly above it; one comment above a run of
    consecutive imports explains the whole run.
    """
    source = path.read_text()
    any_comment, comment_only = comment_lines(source)
    imports = {node.lineno: node for node in imports_inside_functions(ast.parse(source, filename=str(path)))}
    starts_by_end = {(node.end_lineno or line): line for line, node in imports.items()}
    found = []
    for line, node in sorted(imports.items()):
        if any(row in any_comment for row in range(line, (node.end_lineno or line) + 1)):
            continue
        first = line
        while first - 1 in starts_by_end:  # walk up the run of imports this one ends
            first = starts_by_end[first - 1]
        if first - 1 not in comment_only:
            found.append(f"{path.relative_to(BASE_DIR)}:{line}: {ast.unparse(node)}")
    return found


def test_no_import_inside_a_function_without_a_comment_saying_why() -> None:
    found = [entry for path in source_files() for entry in unexplained_function_imports(path)]
    assert not found, (
        f"{len(found)} import(s) inside a function with no comment saying why "
        "(move it to the top of the module, or say why it must wait):\n" + "\n".join(found)
    )


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the module graph is deep enough to hit the recursion limit)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = lowlink[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = lowlink[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    lowlink[node] = min(lowlink[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[node])
                if lowlink[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def import_cycles() -> list[list[str]]:
    """Each group of modules that import each other in a circle, as lines `a -> b (l.N)` of the imports inside it.

    Imports inside functions count (they run, only later); imports under `if TYPE_CHECKING:` never run, so they don't.
    """
    graph = grimp.build_graph(*APPS, exclude_type_checking_imports=True, cache_dir=None)
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles = []
    for component in strongly_connected_components(edges):
        members = set(component)
        if len(component) == 1 and component[0] not in edges[component[0]]:
            continue  # a module alone, importing nothing that imports it back
        lines = []
        for importer in component:
            for imported in sorted(edges[importer] & members):
                where = ", ".join(
                    f"l.{d['line_number']}" for d in graph.get_import_details(importer=importer, imported=imported)
                )
                lines.append(f"{importer} -> {imported} ({where})")
        cycles.append(lines)
    return sorted(cycles)


def test_no_import_cycle() -> None:
    cycles = import_cycles()
    assert not cycles, f"{len(cycles)} import cycle(s) (groups of modules that reach each other):\n" + "\n\n".join(
        "\n".join(cycle) for cycle in cycles
    )
