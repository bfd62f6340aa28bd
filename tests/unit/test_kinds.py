"""One source of truth per kind: the registry, its order, its settings and their documentation."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from aiplatform import settings_docs
from aiplatform.engines.base import EngineKind, Operation
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.registry import ENGINE_KINDS, ordered_by_use
from aiplatform.engines.settings import EngineSettings
from aiplatform.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"


def _kind(name: str, uses: tuple[str, ...] = ()) -> EngineKind[EngineSettings]:
    return EngineKind(
        name=name,
        summary=name,
        operations=(),
        settings_type=EngineSettings,
        build_local=lambda *_: None,  # type: ignore[arg-type,return-value]
        uses=uses,
    )


def test_every_kind_comes_after_the_kinds_it_uses() -> None:
    order = list(ENGINE_KINDS)
    for kind in ENGINE_KINDS.values():
        for used in kind.uses:
            assert order.index(used) < order.index(kind.name), (kind.name, used)


def test_order_is_derived_from_uses_not_from_the_listing() -> None:
    listed = [_kind("chat", uses=("search",)), _kind("search", uses=("vectors",)), _kind("vectors")]
    assert list(ordered_by_use(listed)) == ["vectors", "search", "chat"]


def test_a_cycle_or_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        ordered_by_use([_kind("a", uses=("b",)), _kind("b", uses=("a",))])
    with pytest.raises(ValueError, match="unknown"):
        ordered_by_use([_kind("a", uses=("nowhere",))])


def test_a_need_must_be_declared() -> None:
    kind = dataclasses.replace(_kind("a", uses=("b",)), needs_when=lambda _: ("c",))
    with pytest.raises(ValueError, match="does not declare"):
        kind.needs(EngineSettings())


def test_engine_settings_are_built_from_the_registry() -> None:
    settings = load_settings(env={})
    for name, kind in ENGINE_KINDS.items():
        assert type(settings.engine(name)) is kind.settings_type
        assert settings.section(kind) is settings.engine(name)


def test_a_section_of_every_kind_decodes_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "all.toml"
    path.write_text("".join(f"[engines.{name}]\nenabled = false\n" for name in ENGINE_KINDS))
    settings = load_settings(path, env={})
    assert not any(settings.engine(name).enabled for name in ENGINE_KINDS)
    assert isinstance(settings, Settings)


def test_configuration_reference_matches_the_code() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert settings_docs.render(text) == text, (
        "docs/configuration.md differs from the settings in the code: "
        "run python -m aiplatform.settings_docs docs/configuration.md"
    )


def test_every_kind_has_its_settings_documented() -> None:
    documented = settings_docs.documented_kinds(CONFIGURATION.read_text(encoding="utf-8"))
    assert documented == set(ENGINE_KINDS)


def test_a_kind_without_a_table_of_its_own_gets_a_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class ExtraSettings(EngineSettings, kw_only=True):
        #: How hard to try.
        effort: int = 3

    extra = dataclasses.replace(_kind("extra"), settings_type=ExtraSettings)
    monkeypatch.setitem(ENGINE_KINDS, "extra", extra)
    text = "# Conf\n\n<!-- settings other-kinds -->\n<!-- /settings -->\n"
    rendered = settings_docs.render(text)
    assert "### `[engines.extra]`" in rendered
    assert "| `effort` | `3` | How hard to try. |" in rendered
    assert "extra" in settings_docs.documented_kinds(rendered)


def test_an_undocumented_setting_is_refused() -> None:
    class Undocumented(EngineSettings, kw_only=True):
        #: documented
        good: int = 1
        bad: int = 2

    with pytest.raises(ValueError, match=r"Undocumented\.bad has no"):
        settings_docs.table(Undocumented)


@pytest.mark.parametrize("name", list(ENGINE_KINDS))
def test_operations_module_is_a_leaf(name: str) -> None:
    """A kind's operation table imports nothing of its engine (no import cycle through it)."""
    path = ROOT / "src" / "aiplatform" / "engines" / name / "operations.py"
    imported = {
        node.module or ""
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
    }
    package = f"aiplatform.engines.{name}"
    engine_modules = (f"{package}.engine", f"{package}.kind")
    assert not {module for module in imported if module.startswith(engine_modules)}, imported
    code = f"import sys, {package}.operations\nprint('{package}.engine' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


class _Ping(msgspec.Struct):
    text: str = ""


_PING = Operation(name="ping", method="POST", path="/v1/test/ping", request=_Ping, response=_Ping)
_PONG = Operation(name="pong", method="POST", path="/v1/test/pong", request=_Ping, response=_Ping)


class _HalfBound(LocalEngine):
    def __init__(self) -> None:
        kind = dataclasses.replace(_kind("half"), operations=(_PING, _PONG))
        super().__init__(kind)
        self.bind(_PING, self.ping)

    def load(self) -> None:
        pass

    async def ping(self, request: _Ping) -> _Ping:
        return request


@pytest.mark.anyio
async def test_an_engine_that_leaves_an_operation_unbound_fails_at_start() -> None:
    with pytest.raises(TypeError, match=r"does not bind every operation.*pong"):
        async with _HalfBound():
            pass
