"""Sizes: estimates from files, measurements of loads, and the device a model is counted on."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from aiplatform.coordinator.footprint import (
    file_bytes,
    measured_load,
    measured_unload,
    resident_bytes,
)
from aiplatform.engines.llm.residency import footprint_of
from aiplatform.engines.llm.settings import LLMModelSettings

MIB = 2**20


def test_the_estimate_is_the_size_of_the_weights_on_disk(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"x" * 3000)
    assert file_bytes(gguf) == 3000
    folder = tmp_path / "hf"
    (folder / "sub").mkdir(parents=True)
    (folder / "model-00001.safetensors").write_bytes(b"w" * 1000)
    (folder / "sub" / "model-00002.safetensors").write_bytes(b"w" * 500)
    (folder / "tokenizer.json").write_bytes(b"t" * 10_000)  # not weights
    assert file_bytes(folder) == 1500
    assert file_bytes(tmp_path / "missing") == 0


def test_a_load_is_measured_as_the_resident_memory_it_adds() -> None:
    held: list[mmap.mmap] = []

    def load() -> None:
        # Fresh pages from the kernel, every one written: resident whatever the heap held before
        # (a zero-filled bytearray may be mapped lazily, or reuse pages already counted).
        pages = mmap.mmap(-1, 64 * MIB)
        pages.write(b"\1" * len(pages))
        held.append(pages)

    def unload() -> None:
        held.pop().close()

    measured = measured_load("cpu", load)
    assert measured is not None
    assert 60 * MIB <= measured <= 80 * MIB
    before = resident_bytes()
    assert before is not None
    measured_unload("cpu", unload)
    after = resident_bytes()
    assert after is not None
    assert before - after >= 60 * MIB  # given back to the system, not kept by the allocator


def test_a_device_that_cannot_be_read_is_left_to_the_estimate() -> None:
    assert measured_load("tpu:0", lambda: None) is None


def test_the_device_and_size_a_model_is_leased_on() -> None:
    gguf = LLMModelSettings(name="g", path="/m.gguf")
    assert footprint_of(gguf).device == "cpu"
    assert footprint_of(gguf).declared is None
    offloaded = LLMModelSettings(name="g", path="/m.gguf", gpu_layers=-1, priority=3)
    assert (footprint_of(offloaded).device, footprint_of(offloaded).priority) == ("cuda:0", 3)
    assert footprint_of(offloaded).cuda == "used"
    hf = LLMModelSettings(name="h", backend="transformers", path="/hf", device="cuda")
    assert (footprint_of(hf).device, footprint_of(hf).cuda) == ("cuda:0", "allocated")
    second = LLMModelSettings(name="h", backend="transformers", path="/hf", device="cuda:1")
    assert footprint_of(second).device == "cuda:1"
    declared = LLMModelSettings(name="f", backend="fake", memory_mib=300)
    assert footprint_of(declared).declared == 300 * MIB
    assert footprint_of(declared).estimate() == 0


@pytest.mark.slow
def test_a_shipped_gguf_is_estimated_from_its_file() -> None:
    smol = LLMModelSettings(name="s", path="shipped:smollm2-135m-instruct")
    assert 80 * MIB < footprint_of(smol).estimate() < 120 * MIB
