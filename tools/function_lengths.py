"""List the Python functions longer than a limit (default 60 lines), longest first.

    python tools/function_lengths.py [--limit N] [PATH ...]

PATH: files or folders (default: the repository's Python outside .venv and
build/). A function's length counts from its ``def`` line to its last line,
decorators and docstring included; nested functions are listed on their own too.
"""

import argparse
import ast
import pathlib
import sys
from typing import Iterator, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIPPED = {".venv", "build", ".git", "node_modules"}


def python_files(paths: List[pathlib.Path]) -> Iterator[pathlib.Path]:
    """The .py files under ``paths``, skipping environments and build output."""
    for path in paths:
        if path.is_file():
            yield path
            continue
        for found in sorted(path.rglob("*.py")):
            parts = found.relative_to(path).parts
            if not any(part in SKIPPED or part.startswith(".venv") for part in parts):
                yield found


def long_functions(path: pathlib.Path, limit: int) -> Iterator[Tuple[int, str]]:
    """(length, "path:line qualified.name") of each function of ``path`` over ``limit`` lines."""
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    length = child.end_lineno - child.lineno + 1
                    if length > limit:
                        yield length, f"{path}:{child.lineno} {name}"
                yield from visit(child, name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=pathlib.Path, default=[ROOT])
    parser.add_argument("--limit", type=int, default=60, help="longest allowed function, lines")
    args = parser.parse_args(argv)
    found = [item for path in python_files(args.paths) for item in long_functions(path, args.limit)]
    for length, where in sorted(found, reverse=True):
        print(f"{length:5d}  {where}")
    print(f"{len(found)} functions over {args.limit} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
