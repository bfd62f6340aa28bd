"""A single analytic engine forwarded to a pod that requires authentication: the gateway's
analytics engine presents the service credential, exactly as the other forwarded engines do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.operations import METHOD_OPERATIONS
from aiplatform.engines.analytics.settings import AnalyticsSettings
from aiplatform.engines.base import Engine
from aiplatform.engines.datasets.engine import LocalDatasetsEngine
from aiplatform.engines.datasets.settings import DatasetsSettings
from aiplatform.engines.registry import engine_kind
from aiplatform.errors import PermissionDeniedError
from aiplatform.server.wiring import build_engine
from tests.support import ServerProcess

pytestmark = pytest.mark.anyio

FORWARDED = "galileo"
SERVICE_TOKEN = "analytics-gateway-" + "s" * 32


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("pod")
    env = {
        "AIPLATFORM_AUTH__ENABLED": "true",
        "AIPLATFORM_AUTH__ADMIN_PASSWORD": "not-used-" + "p" * 20,
        "AIPLATFORM_AUTH__SERVICE_TOKEN": SERVICE_TOKEN,
        "AIPLATFORM_AUTH__DATA_DIR": str(folder / "auth"),
    }
    with ServerProcess(["--engines", "analytics"], env) as server:
        yield server


def gateway(folder: Path, pod: ServerProcess, service_token: str | None) -> Engine:
    settings = AnalyticsSettings(data_dir=str(folder / "analytics"), forward={FORWARDED: pod.url})
    # the examples send their rows inline: the datasets engine is never entered nor called
    datasets = LocalDatasetsEngine(DatasetsSettings(data_dir=str(folder / "datasets")))
    return build_engine(
        engine_kind("analytics"), settings, needs={"datasets": datasets},
        service_token=service_token,
    )  # fmt: skip


def example() -> msgspec.Struct:
    request = METHODS[FORWARDED].example
    operation = METHOD_OPERATIONS[FORWARDED]
    return msgspec.convert(
        {"data": request.data, "params": msgspec.to_builtins(request.params)},
        operation.request,
    )


async def test_a_forwarded_engine_presents_the_service_credential(
    tmp_path: Path, pod: ServerProcess
) -> None:
    async with gateway(tmp_path, pod, SERVICE_TOKEN) as engine:
        answer = await engine.invoke(METHOD_OPERATIONS[FORWARDED], example())
    assert answer.engine == FORWARDED


async def test_without_it_the_pod_refuses_the_forwarded_call(
    tmp_path: Path, pod: ServerProcess
) -> None:
    async with gateway(tmp_path, pod, None) as engine:
        with pytest.raises(PermissionDeniedError) as refused:
            await engine.invoke(METHOD_OPERATIONS[FORWARDED], example())
    # the call names its tenant, which only the service credential may do
    assert refused.value.code == "tenant_header_not_allowed"
