"""A content-addressed cache for built ONNX models.

An entry is a directory `<cache_root>/<key>/` holding the model file(s) and `manifest.json`, which records the key,
the recipe that produced it and the sha256 of every file. The key is a hash of everything that changes the built
model (config, weights, opset, dtype, device, library versions), so a changed model or library gets a new entry;
the per-file checksums catch entries that were truncated or edited after they were written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

MANIFEST = "manifest.json"
_CHUNK = 1 << 22


def digest_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict (names, dtypes, shapes and raw bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())  # hashed in place: .tobytes() would copy the 768 MB embedding
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _entry_problem(entry: Path, key: str) -> str | None:
    """Why an existing entry cannot be used, or None when it is intact."""
    manifest_path = entry / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return "its manifest is missing or unreadable"
    if manifest.get("key") != key:
        return "its manifest belongs to another key (stale entry)"
    for name, expected in manifest.get("files", {}).items():
        path = entry / name
        if not path.is_file():
            return f"file '{name}' is missing"
        if file_sha256(path) != expected:
            return f"file '{name}' does not match its recorded checksum"
    if not manifest.get("files"):
        return "its manifest lists no files"
    return None


def read_manifest(entry: Path) -> dict[str, Any]:
    return json.loads((entry / MANIFEST).read_text())


def get_or_build(cache_root: str | Path, key: str, build: Callable[[Path], dict[str, Any]],
                 recipe: dict[str, Any]) -> tuple[Path, bool]:
    """Return (entry directory, built_now). `build(tmp_dir)` writes the model files into tmp_dir and returns
    extra facts for the manifest. A damaged or stale entry is reported with a warning and rebuilt."""
    root = Path(cache_root)
    entry = root / key
    if entry.exists():
        problem = _entry_problem(entry, key)
        if problem is None:
            return entry, False
        warnings.warn(f"ONNX cache entry {entry} is unusable ({problem}); rebuilding it", stacklevel=3)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
    try:
        facts = build(tmp)
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"key": key, "recipe": recipe, "files": files, **facts}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(tmp, entry)  # atomic on one filesystem: readers never see a half-written entry
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry, True
