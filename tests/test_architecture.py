"""The package's layout holds: no import cycles (imports inside functions included), and
data flows one way, app -> formats/serving -> training, datasets -> core
(docs/architecture.md)."""

import ast
from pathlib import Path

import pytest

import grukit

ROOT = Path(grukit.__file__).resolve().parent  # the package under test, installed or in a checkout
RINGS = {"datasets": 1, "training": 1, "formats": 2, "serving": 2, "app": 3}  # the core is 0
CORE_PACKAGES = {"gpu"}  # the GPU engines: part of the core, beside engines.py


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """module -> the grukit modules it imports, anywhere in its code (functions too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                           for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def _ring(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in CORE_PACKAGES:
        return "core", 0
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in RINGS):
        return parts[1], RINGS.get(parts[1], 0)
    return "core", 0


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"grukit.modules", "grukit.training.fit", "grukit.app.cli"} <= set(graph)
    assert "grukit.training.callbacks" in graph["grukit.training.fit"]  # the walk sees imports
    assert find_cycle(graph) == []


def test_data_flows_from_the_rings_to_the_core():
    """A module imports only modules of a lower ring, or of its own ring and package
    (the package root, grukit/__init__.py, gathers the public names, and __main__.py
    runs the command: both are exempt)."""
    wrong = []
    for module, targets in import_graph().items():
        if module in ("grukit", "grukit.__main__"):
            continue
        ring, rank = _ring(module)
        for target in targets:
            if target == "grukit":  # the package root: only for __version__ (app.cli)
                if ring != "app":
                    wrong.append((module, target))
                continue
            t_ring, t_rank = _ring(target)
            if t_rank > rank or (t_rank == rank and t_ring != ring):
                wrong.append((module, target))
    assert wrong == []


def test_the_top_level_holds_the_core_only():
    top = sorted(p.stem for p in ROOT.glob("*.py"))
    assert len(top) <= 14, top
    assert {"reference", "engines", "function", "modules", "mingru"} <= set(top)


@pytest.mark.parametrize("name", ["layers", "callbacks", "losses", "architect", "interop", "export"])
def test_public_modules_keep_their_names(name):
    import importlib

    import grukit

    assert importlib.import_module(f"grukit.{name}") is getattr(grukit, name)


# ---------------------------------------------------- one table of what runs where

def _gru_with(option):
    import grukit as gk

    kwargs = {"reset_before": {"reset_after": False}, "layer_norm": {"layer_norm": True},
              "zoneout": {"zoneout": 0.2}, "recurrent_dropout": {"recurrent_dropout": 0.2},
              "dropout": {"dropout": 0.2, "num_layers": 2}, "resets": {}}[option]
    return gk.GRU(3, 4, **kwargs).eval()


@pytest.mark.parametrize("option", ["reset_before", "layer_norm", "zoneout", "recurrent_dropout", "dropout"])
def test_export_and_quantize_refuse_what_the_table_says(option, tmp_path):
    """gk.export and gk.quantize accept a GRU exactly when engines.SUPPORT says they compute
    its options (training-only options do not count at inference), and name what is missing."""
    import grukit as gk
    from grukit import engines

    pytest.importorskip("onnx")
    gru = _gru_with(option)
    used = engines.options(gru)
    for path, act in (("onnx", lambda: gk.export.onnx(gru, tmp_path / "m.onnx")),
                      ("int8", lambda: gk.quantize(gru))):
        if used <= engines.SUPPORT[path]:
            act()
        else:
            with pytest.raises(ValueError, match=f"which {path} does not compute"):
                act()


@pytest.mark.parametrize("option", ["reset_before", "layer_norm", "zoneout", "resets"])
def test_the_dispatcher_takes_the_one_call_path_where_the_table_says(option, monkeypatch):
    import torch

    from grukit import engines

    if engines.compiled_cpu() is None:
        pytest.skip("the compiled CPU engine is not built")
    gru = _gru_with(option)
    calls = []
    real = engines.stack_inference
    monkeypatch.setattr(engines, "stack_inference", lambda: calls.append(1) or real())
    resets = torch.zeros(5, 2, dtype=torch.bool) if option == "resets" else None
    with torch.no_grad():
        gru(torch.randn(5, 2, 3), resets=resets)
    used = engines.options(gru, resets=resets is not None)
    assert bool(calls) == (used <= engines.SUPPORT["cpu-stack"])
    assert gru.last_engine == "cpu"
