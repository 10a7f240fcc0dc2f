"""The repo is both a pip-installable library and a ComfyUI custom-node folder."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]

LOAD_LIKE_COMFYUI = """
import importlib.util, sys
pack = sys.argv[1]
name = pack.rstrip("/").split("/")[-1]
spec = importlib.util.spec_from_file_location(name, pack + "/__init__.py")
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
import dragpd
assert dragpd.__file__.startswith(pack), dragpd.__file__
assert pack not in sys.path and pack + "/" not in sys.path
assert "nodes" not in sys.modules, "the pack's nodes/ must not shadow ComfyUI's nodes"
assert isinstance(module.NODE_CLASS_MAPPINGS, dict)
assert isinstance(module.NODE_DISPLAY_NAME_MAPPINGS, dict)
print(module.WEB_DIRECTORY, dragpd.DragPoints.__module__)
"""


def test_pack_loads_like_comfyui_loads_a_clone_under_any_name(tmp_path):
    clone = tmp_path / "custom_nodes" / "ComfyUI-DragPD-main"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info"))
    out = subprocess.run(
        [sys.executable, "-c", LOAD_LIKE_COMFYUI, str(clone)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["./js", "dragpd.points"]


def test_core_never_imports_comfyui():
    banned = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes"}
    for path in (ROOT / "dragpd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path}: imports {name}"


def test_packaging_metadata():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    comfy = pyproject["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon"} <= set(comfy)
    deps = {
        d.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for d in pyproject["project"]["dependencies"]
    }
    assert {
        "torch",
        "diffusers",
        "transformers",
        "peft",
        "open_clip_torch",
        "safetensors",
        "numpy",
        "pillow",
    } <= deps
    lines = [
        ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
    ]
    requirements = {
        ln.split(">")[0].split("=")[0].split("<")[0].strip().lower() for ln in lines if ln
    }
    assert "torch" not in requirements  # ComfyUI brings its own torch
    assert requirements == deps - {"torch"}


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    check = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([ruff, "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
