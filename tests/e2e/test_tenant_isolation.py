"""Tenant isolation over the whole API: a key of tenant A walks every route of the served
OpenAPI description, aimed at the objects tenant B made, and can neither read, list, search,
change nor delete any of them; B's objects are all there, unchanged, afterwards.

:data:`ROUTES` says what each route must do for such a caller; a route the description serves
and the table does not name (or the other way round) fails the walk, so the walk covers the API
as it grows. The app runs in-process with authentication on and every engine on its fake
backend.
"""

from __future__ import annotations

import csv
import io
import json
import wave
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from aiplatform.audio.examples import example_wav
from aiplatform.engines.analytics.operations import METHOD_OPERATIONS
from aiplatform.engines.base import ExampleContext, build_request
from aiplatform.server.app import create_app
from aiplatform.settings import Settings
from aiplatform.testing import fake_settings
from tests.e2e.tenant_walk import (
    Expect,
    Fields,
    Owned,
    Probe,
    Walk,
    app_routes,
    document_routes,
    leaked,
    websocket_session,
)

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "an-admin-password-long-enough"
MEMBER_PASSWORD = "a-member-password"
ALPHA, BRAVO = "tenant-alpha", "tenant-bravo"
NOT_FOUND, OK, CREATED = (404,), (200,), (201,)
#: Seconds of the example recording's first turn (its low voice).
FIRST_TURN_S = 1.5

# -- what each route must do for A aimed at B's objects -----------------------------------------


def refused(why: str, *variants: Fields, **probe: Any) -> Expect:
    """404 for each variant of the request: the object is not the caller's, and a 404 (not a
    403) does not even say that it exists."""
    fields = variants or (lambda _: {},)
    return Expect(tuple(Probe(status=NOT_FOUND, fields=f, **probe) for f in fields), why)


def answered(why: str, *variants: Fields, **probe: Any) -> Expect:
    """A success that acts on, or lists, the caller's own (no answer may name B's secrets)."""
    fields = variants or (lambda _: {},)
    return Expect(tuple(Probe(status=OK, fields=f, **probe) for f in fields), why)


def sent(status: tuple[int, ...], why: str, body: Any = None) -> Expect:
    """A route that is no engine operation: ``body`` (a function of B's objects) as JSON."""
    return Expect((Probe(status=status, body=body),), why)


def admin_only(body: Any = None) -> Expect:
    return sent((403,), "the admin API needs an admin's login; a member is refused", body)


def dataset_instead_of_data(b: Owned) -> Mapping[str, Any]:
    return {"data": None, "dataset": b["dataset_id"]}


def dataset_as(param: str) -> Fields:
    """The method's second table (inline in the example) replaced by B's dataset."""
    return lambda b: {f"params.{param}": b["dataset_id"]}


def rag_on(collection: str) -> Fields:
    """Chat answering from B's collection, named by ``collection_id`` or ``collection_name``."""
    return lambda b: {"rag": {"collection": b[collection]}}


def evaluated_collection(b: Owned) -> Mapping[str, Any]:
    """rag_evaluation scoring B's RAG collection (by id or name) on the caller's own queries."""
    return {"params.collection": b["collection_id"], "params.documents": None}


#: Every analytic method: each reads B's dataset by id (titan, scout and lead_scoring also as
#: their second table; rag_evaluation B's collection); each must find nothing.
ANALYTIC_METHODS: dict[str, tuple[Fields, ...]] = {
    "anomaly": (),
    "chaos": (),
    "chronos": (),
    "clustering": (),
    "galileo": (),
    "mirror": (),
    "newton": (),
    "oracle": (),
    "scout": (dataset_as("reference"),),
    "statistical": (),
    "titan": (dataset_as("predict"),),
    "trend": (),
    "budget_variance": (),
    "cash_flow": (),
    "churn": (),
    "cost_optimization": (),
    "customer_ltv": (),
    "faiss_retrieval": (),
    "flash": (),
    "inventory_optimization": (),
    "lead_scoring": (dataset_as("predict"),),
    "market_basket": (),
    "pricing_strategy": (),
    "profit_margin": (),
    "rag_evaluation": (evaluated_collection,),
    "revenue_forecast": (),
    "roi_prediction": (),
    "spend_pattern": (),
    "universal_graph": (),
}

ROUTES: dict[str, Expect] = {
    # -- the server's own ------------------------------------------------------------------------
    "GET /health": answered("open: says nothing of any tenant"),
    "GET /ready": answered("open: engines' readiness, nothing of any tenant"),
    "GET /v1/models": answered("models are shared; no tenant's objects"),
    # -- identities ------------------------------------------------------------------------------
    "POST /v1/auth/login": sent(
        (401,),
        "B's user with a wrong password is refused as any login is",
        lambda b: {"username": b["username"], "password": "not-their-password"},
    ),
    "POST /v1/auth/refresh": sent(
        (401,), "a made-up refresh token", lambda _: {"refresh_token": "not-a-refresh-token"}
    ),
    "POST /v1/auth/logout": sent((400,), "an API key has no login session to end"),
    "GET /v1/keys": answered("the caller's tenant's keys only"),
    # keys are managed with a login (the login walk below: 404 for B's key)
    "POST /v1/keys": sent((403,), "an API key cannot make keys", lambda _: {"name": "alpha-extra"}),
    "DELETE /v1/keys/{key_id}": sent((403,), "an API key cannot revoke keys"),
    "GET /v1/admin/tenants": admin_only(),
    "POST /v1/admin/tenants": admin_only(lambda _: {"name": "tenant-mallory"}),
    "DELETE /v1/admin/tenants/{name}": admin_only(),
    "GET /v1/admin/users": admin_only(),
    "POST /v1/admin/users": admin_only(
        lambda b: {
            "username": "mallory",
            "password": MEMBER_PASSWORD,
            "tenant": b["name"],
            "role": "admin",
        }
    ),
    "GET /v1/admin/users/{username}": admin_only(),
    "PATCH /v1/admin/users/{username}": admin_only(lambda _: {"role": "admin", "tenant": ALPHA}),
    "DELETE /v1/admin/users/{username}": admin_only(),
    # -- stateless engines: nothing stored, nothing of B's in the answer -------------------------
    "POST /v1/embeddings": answered("stateless"),
    "POST /v1/completions": answered("stateless"),
    "POST /v1/rerank": answered("stateless"),
    "POST /v1/emotion": answered("stateless"),
    "POST /v1/audio/diarizations": answered("stateless"),
    "POST /v1/audio/translations": answered("stateless"),
    "POST /v1/speakers/embeddings": answered("stateless"),
    "GET /v1/llm/models": answered("shared model residency, not tenant data"),
    "POST /v1/llm/models/load": sent(
        (403,), "shared model residency: admins only", lambda _: {"model": "fake-llm"}
    ),
    "POST /v1/llm/models/unload": sent(
        (403,), "shared model residency: admins only", lambda _: {"model": "fake-llm"}
    ),
    "GET /v1/analytics/engines": answered("the analytic methods, not tenant data"),
    # -- chat: answers from a collection and a conversation's memory -----------------------------
    "POST /v1/chat/completions": Expect(
        (
            Probe(status=NOT_FOUND, fields=rag_on("collection_id"), control=True),
            Probe(status=NOT_FOUND, fields=rag_on("collection_name"), control=True),
            # A's own collection, remembering into a conversation named as B's: A's own one
            Probe(
                status=OK,
                fields=lambda b: {
                    "rag": {"collection": "alpha-notes", "conversation_id": b["conversation_id"]}
                },
                last=True,
            ),
        ),
        "B's collection is not found; a conversation of B's name is the caller's own",
    ),
    # -- speakers ---------------------------------------------------------------------------------
    "POST /v1/speakers": answered("enrolls a speaker of the caller's own", last=True),
    "GET /v1/speakers": answered("the caller's speakers only"),
    "DELETE /v1/speakers/{speaker_id}": refused("B's speaker"),
    "POST /v1/speakers/identify": answered(
        "B's own voice matches none of the caller's speakers",
        lambda b: {"embeddings": [b["voice"]]},
        control=True,
    ),
    "POST /v1/audio/transcriptions": answered(
        "B's enrolled speaker does not name a voice in the caller's transcript",
        lambda _: {"diarize": True, "response_format": "verbose_json"},
        control=True,
    ),
    # -- datasets ---------------------------------------------------------------------------------
    "POST /v1/datasets": answered("a dataset of the caller's own", last=True),
    "GET /v1/datasets": answered("the caller's datasets only"),
    "GET /v1/datasets/{dataset_id}": refused("B's dataset", control=True),
    "GET /v1/datasets/{dataset_id}/table": refused("B's dataset", control=True),
    "DELETE /v1/datasets/{dataset_id}": refused("B's dataset"),
    # -- analytics --------------------------------------------------------------------------------
    **{
        f"POST /v1/analytics/{name}": refused(
            "B's dataset is not found", dataset_instead_of_data, *more
        )
        for name, more in ANALYTIC_METHODS.items()
    },
    "POST /v1/jobs": refused("a job on B's dataset is refused at once", dataset_instead_of_data),
    "GET /v1/jobs": answered("the caller's jobs only", lambda _: {"limit": 1000}),
    "GET /v1/jobs/{job_id}": refused("B's job and its result", control=True),
    "POST /v1/jobs/{job_id}/cancel": refused("B's job"),
    "DELETE /v1/jobs/{job_id}": refused("B's job"),
    # -- RAG collections and documents ------------------------------------------------------------
    "POST /v1/rag/collections": answered(
        "the caller's own, also under a name B uses (names are per tenant: no 409)",
        lambda _: {},
        lambda b: {"name": b["collection_name"]},
        last=True,
    ),
    "GET /v1/rag/collections": answered("the caller's collections only"),
    "GET /v1/rag/collections/{collection_id}": refused("B's collection", control=True),
    "DELETE /v1/rag/collections/{collection_id}": refused("B's collection"),
    "GET /v1/rag/collections/{collection_id}/documents": refused("B's collection", control=True),
    "POST /v1/rag/collections/{collection_id}/documents": refused("B's collection"),
    "POST /v1/rag/collections/{collection_id}/files": refused("B's collection"),
    "POST /v1/rag/collections/{collection_id}/jobs": refused("B's collection"),
    "POST /v1/rag/collections/{collection_id}/search": refused(
        "B's collection", lambda _: {"query": "What is the vault code?"}, control=True
    ),
    "GET /v1/rag/collections/{collection_id}/documents/{document_id}": refused(
        "B's document", control=True
    ),
    "PATCH /v1/rag/collections/{collection_id}/documents/{document_id}": refused("B's document"),
    "DELETE /v1/rag/collections/{collection_id}/documents/{document_id}": refused("B's document"),
    "GET /v1/rag/jobs/{job_id}": refused(
        "B's ingest job", control=True, ids=lambda b: {"job_id": [b["rag_job_id"]]}
    ),
    # -- RAG conversation memory ------------------------------------------------------------------
    "GET /v1/rag/conversations/{conversation_id}/messages": refused(
        "B's conversation", control=True
    ),
    "POST /v1/rag/conversations/{conversation_id}/search": refused(
        "B's conversation", lambda _: {"query": "What is my locker number?"}, control=True
    ),
    "DELETE /v1/rag/conversations/{conversation_id}": refused("B's conversation"),
    "POST /v1/rag/conversations/{conversation_id}/messages": answered(
        "a conversation of B's name is the caller's own: B's is not appended to", last=True
    ),
}

#: Routes the OpenAPI description does not show, each checked by a test of its own here.
UNDESCRIBED = {
    "WS /v1/ws/transcribe": "test_live_transcription_names_no_speaker_of_another_tenant",
    "WS /v1/ws/chat": "test_websocket_chat_answers_from_no_collection_of_another_tenant",
    "GET /metrics": "test_metrics_name_no_tenant_to_a_caller_without_the_scrape_token",
}
LIVE = "/v1/ws/transcribe?diarize=true"

# -- the server, the tenants, and what B makes --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenants:
    client: httpx.AsyncClient
    app: Litestar
    admin: dict[str, str]
    alpha_key: dict[str, str]
    alpha_login: dict[str, str]
    bravo_key: dict[str, str]
    bravo: Owned


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def auth_settings(folder: Path) -> Settings:
    settings = fake_settings(folder)
    auth = {
        "enabled": True,
        "admin_password": ADMIN_PASSWORD,
        "data_dir": str(folder / "auth"),
        # the cheapest Argon2id the library takes: this checks isolation, not hashing cost
        "password_time_cost": 1,
        "password_memory_kib": 8,
    }
    return msgspec.structs.replace(settings, auth=msgspec.convert(auth, type(settings.auth)))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop for the module, so that the tenants and their objects are made once."""
    return "asyncio"


@pytest.fixture(scope="module")
async def tenants(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tenants]:
    """The app with tenants A and B; B with one object of every kind, A with a collection."""
    app = create_app(auth_settings(tmp_path_factory.mktemp("tenants")))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        await until_ready(client)
        admin = bearer(await login(client, "admin", ADMIN_PASSWORD))
        alpha_login, alpha_key, _ = await member(client, admin, ALPHA, "alpha-member")
        _, bravo_key, bravo_key_id = await member(client, admin, BRAVO, "bravo-member")
        await ok(
            client.post("/v1/rag/collections", json={"name": "alpha-notes"}, headers=alpha_key)
        )
        bravo = await bravo_objects(client, bravo_key, bravo_key_id)
        yield Tenants(client, app, admin, alpha_key, alpha_login, bravo_key, bravo)


async def ok(call: Any) -> Any:
    response: httpx.Response = await call
    assert response.is_success, f"{response.request.url}: {response.status_code} {response.text}"
    return response.json()


async def until_ready(client: httpx.AsyncClient) -> None:
    with anyio.fail_after(30):
        while (await client.get("/ready")).status_code != 200:  # noqa: ASYNC110 (polls the app)
            await anyio.sleep(0.05)


async def login(client: httpx.AsyncClient, username: str, password: str) -> str:
    tokens = await ok(
        client.post("/v1/auth/login", json={"username": username, "password": password})
    )
    return str(tokens["access_token"])


async def member(
    client: httpx.AsyncClient, admin: dict[str, str], tenant: str, username: str
) -> tuple[dict[str, str], dict[str, str], str]:
    """A tenant with a member user: the user's login, an API key the user made, its id."""
    await ok(client.post("/v1/admin/tenants", json={"name": tenant}, headers=admin))
    user = {"username": username, "password": MEMBER_PASSWORD, "tenant": tenant}
    await ok(client.post("/v1/admin/users", json=user, headers=admin))
    signed_in = bearer(await login(client, username, MEMBER_PASSWORD))
    key = await ok(client.post("/v1/keys", json={"name": f"{username}-key"}, headers=signed_in))
    return signed_in, bearer(key["key"]), str(key["id"])


async def bravo_objects(client: httpx.AsyncClient, key: dict[str, str], key_id: str) -> Owned:
    """One object of every kind the API stores, made with B's key."""
    rag = await bravo_rag(client, key)
    voice = await ok(client.post("/v1/speakers/embeddings", files={"file": wav()}, headers=key))
    speaker = await ok(
        client.post(
            "/v1/speakers", files={"file": wav()}, data={"name": "Speaker Okapi"}, headers=key
        )
    )
    dataset = await ok(
        client.post(
            "/v1/datasets",
            files={"file": ("kestrel.csv", bravo_csv(), "text/csv")},
            data={"name": "dataset-kestrel"},
            headers=key,
        )
    )
    params = {"columns": ["kestrel_score", "hours"], "value": "kestrel_score", "group": "team"}
    job = {"engine": "statistical", "dataset": dataset["id"], "params": params}
    analytics_job = await ok(client.post("/v1/jobs", json=job, headers=key))
    await settled(client, f"/v1/jobs/{analytics_job['id']}", key)
    ids: dict[str, list[str]] = {
        **rag,
        "speaker_id": [speaker["id"]],
        "dataset_id": [dataset["id"]],
        "job_id": [analytics_job["id"]],
        "key_id": [key_id],
        "name": [BRAVO],
        "username": ["bravo-member"],
    }
    secrets = {value for values in ids.values() for value in values}
    secrets |= {
        # names and contents A never sends
        "tamarind-4040",
        "marzipan-7731",
        "cobalt-8086",
        "obsidian-2210",
        "saffron-5512",
        "walrus-4471",
        "Speaker Okapi",
        "dataset-kestrel",
        "kestrel_score",
        "bravo-member-key",
    }
    extra = {
        "voice": voice["embedding"],
        "collection_name": rag["collection_id"][1],
    }
    return Owned(ids=ids, secrets=frozenset(secrets), extra=extra)


async def bravo_rag(client: httpx.AsyncClient, key: dict[str, str]) -> dict[str, list[str]]:
    """A collection with a document of each way in (JSON, file, ingest job), and a
    conversation."""
    collection = await ok(
        client.post(
            "/v1/rag/collections",
            json={"name": "quokka-handbook", "metadata": {"keeper": "tamarind-4040"}},
            headers=key,
        )
    )
    base = f"/v1/rag/collections/{collection['id']}"
    document = {
        "id": "doc-narwhal",
        "text": "The vault code is marzipan-7731.",
        "metadata": {"shelf": "cobalt-8086"},
    }
    await ok(client.post(f"{base}/documents", json={"documents": [document]}, headers=key))
    upload = ("notes.md", b"# Notes\n\nPangolin archive: obsidian-2210.\n", "text/markdown")
    file = {"file": upload}
    await ok(client.post(f"{base}/files", files=file, data={"id": "doc-pangolin"}, headers=key))
    ingest = {"documents": [{"id": "doc-axolotl", "text": "Axolotl ledger: saffron-5512."}]}
    rag_job = await ok(client.post(f"{base}/jobs", json=ingest, headers=key))
    await settled(client, f"/v1/rag/jobs/{rag_job['id']}", key)
    turn = {"role": "user", "content": "My locker number is walrus-4471."}
    await ok(
        client.post(
            "/v1/rag/conversations/chat-ibex/messages", json={"messages": [turn]}, headers=key
        )
    )
    return {
        "collection_id": [collection["id"], collection["name"]],
        "document_id": ["doc-narwhal", "doc-pangolin", "doc-axolotl"],
        "conversation_id": ["chat-ibex"],
        "rag_job_id": [rag_job["id"]],
    }


async def settled(client: httpx.AsyncClient, path: str, key: dict[str, str]) -> None:
    """Wait for a background job to succeed."""
    with anyio.fail_after(30):
        while (job := await ok(client.get(path, headers=key)))["status"] != "succeeded":
            assert job["status"] not in ("failed", "cancelled"), job
            await anyio.sleep(0.05)


def wav() -> tuple[str, bytes, str]:
    """The first turn of the example recording: one voice alone, which the diarized example
    recording then names after B's speaker (for B)."""
    with wave.open(io.BytesIO(example_wav())) as recording:
        rate = recording.getframerate()
        frames = recording.readframes(int(FIRST_TURN_S * rate))
    out = io.BytesIO()
    with wave.open(out, "wb") as voice:
        voice.setnchannels(1)
        voice.setsampwidth(2)
        voice.setframerate(rate)
        voice.writeframes(frames)
    return ("voice.wav", out.getvalue(), "audio/wav")


def bravo_csv() -> bytes:
    """The statistical method's example table, its score column renamed to a name of B's."""
    op = METHOD_OPERATIONS["statistical"]
    assert op.example is not None
    rows = build_request(op.example.request, ExampleContext(model=None)).data
    out = io.StringIO()
    fields = ["kestrel_score" if name == "score" else name for name in rows[0]]
    writer = csv.writer(out)
    writer.writerow(fields)
    writer.writerows(list(row.values()) for row in rows)
    return out.getvalue().encode()


async def bravo_state(tenants: Tenants) -> dict[str, Any]:
    """Everything B can read of its own, and B's user as the admin sees it."""
    b, key = tenants.bravo, tenants.bravo_key
    collection = f"/v1/rag/collections/{b['collection_id']}"
    paths = [
        "/v1/rag/collections",
        collection,
        f"{collection}/documents",
        *(f"{collection}/documents/{document}" for document in b.ids["document_id"]),
        f"/v1/rag/conversations/{b['conversation_id']}/messages",
        f"/v1/rag/jobs/{b['rag_job_id']}",
        "/v1/speakers",
        "/v1/datasets",
        f"/v1/datasets/{b['dataset_id']}",
        f"/v1/datasets/{b['dataset_id']}/table",
        "/v1/jobs",
        f"/v1/jobs/{b['job_id']}",
        "/v1/keys",
    ]
    state = {path: await ok(tenants.client.get(path, headers=key)) for path in paths}
    user = f"/v1/admin/users/{b['username']}"
    state[user] = await ok(tenants.client.get(user, headers=tenants.admin))
    return state


# -- the tests ----------------------------------------------------------------------------------


async def described_routes(client: httpx.AsyncClient) -> list[str]:
    """The routes of the OpenAPI description the app serves."""
    document = await ok(client.get("/docs/openapi.json"))
    return document_routes(document)


async def test_the_table_names_every_route_the_api_serves(tenants: Tenants) -> None:
    described = set(await described_routes(tenants.client))
    assert sorted(described - ROUTES.keys()) == [], "routes the isolation walk does not know"
    assert sorted(ROUTES.keys() - described) == [], "routes the walk names that are not served"
    served = {route for route in app_routes(tenants.app) if " /docs" not in route}
    assert sorted(served - described - UNDESCRIBED.keys()) == [], "routes no test here checks"


async def test_a_key_of_one_tenant_reaches_nothing_of_another_on_any_route(
    tenants: Tenants,
) -> None:
    before = await bravo_state(tenants)
    described = await described_routes(tenants.client)
    unknown = [route for route in described if route not in ROUTES]
    assert not unknown, f"routes the walk does not know what to expect of: {unknown}"
    walk = Walk(
        tenants.client,
        tenants.app.state.engines,
        tenants.bravo,
        caller=tenants.alpha_key,
        owner=tenants.bravo_key,
    )
    await walk.run({route: ROUTES[route] for route in described})
    assert not walk.failures, "\n".join(walk.failures)
    assert walk.sent >= len(described)
    assert await bravo_state(tenants) == before, "B's objects changed"


@pytest.mark.parametrize("credential", ["api key", "login"])
async def test_a_member_manages_neither_another_tenants_keys_nor_the_admin_api(
    tenants: Tenants, credential: str
) -> None:
    client, b = tenants.client, tenants.bravo
    caller = tenants.alpha_key if credential == "api key" else tenants.alpha_login
    keys = await ok(client.get("/v1/keys", headers=caller))
    assert keys["data"], "A lists its own keys"
    assert {key["tenant"] for key in keys["data"]} == {ALPHA}
    assert b["key_id"] not in {key["id"] for key in keys["data"]}
    deleted = await client.delete(f"/v1/keys/{b['key_id']}", headers=caller)
    # a login is told B's key does not exist; an API key may not revoke keys at all
    assert deleted.status_code == (404 if credential == "login" else 403), deleted.text
    assert (await client.get("/v1/keys", headers=tenants.bravo_key)).status_code == 200
    admin_routes = {route: expect for route, expect in ROUTES.items() if " /v1/admin/" in route}
    assert admin_routes
    walk = Walk(client, tenants.app.state.engines, b, caller=caller, owner=tenants.bravo_key)
    await walk.run(admin_routes)
    assert not walk.failures, "\n".join(walk.failures)
    users = await ok(client.get("/v1/admin/users", headers=tenants.admin))
    assert "mallory" not in {user["username"] for user in users["data"]}


async def test_live_transcription_names_no_speaker_of_another_tenant(tenants: Tenants) -> None:
    async def live(headers: dict[str, str]) -> tuple[list[Any], str]:
        """The speaker events of a live session hearing B's voice, and all it was sent."""
        with wave.open(io.BytesIO(wav()[1])) as recording:
            audio = recording.readframes(recording.getnframes()) + bytes(2 * 16_000)
        step = 3_200  # 100 ms messages, as a microphone sends them
        chunks: list[bytes | str] = [audio[at : at + step] for at in range(0, len(audio), step)]
        messages = await websocket_session(
            tenants.app, LIVE, headers, [*chunks, json.dumps({"type": "end"})]
        )
        texts = [m["text"] for m in messages if m["type"] == "websocket.send" and "text" in m]
        events = [json.loads(text) for text in texts]
        assert events[-1] == {"type": "session.done"}, events
        return [e["speaker"] for e in events if e["type"] == "speaker"], "".join(texts)

    owner_speakers, _ = await live(tenants.bravo_key)
    assert owner_speakers == ["Speaker Okapi"], "B's own session names B's speaker"
    speakers, answer = await live(tenants.alpha_key)
    assert len(speakers) == 1
    assert leaked(tenants.bravo.secrets, answer, LIVE) == []


def ended(message: dict[str, Any]) -> bool:
    """A chat's last event: its ``done`` or its ``error``."""
    text = message.get("text")
    return text is not None and json.loads(text)["type"] in ("done", "error")


async def test_websocket_chat_answers_from_no_collection_of_another_tenant(
    tenants: Tenants,
) -> None:
    def chat(headers: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
        request = {
            "model": "fake-llm",
            "messages": [{"role": "user", "content": "what is in the archive?"}],
            "rag": {"collection": tenants.bravo["collection_id"]},
        }
        sent = json.dumps({"type": "chat", "id": "c1", "request": request})
        # in the client's own event loop, where the engines (and their batchers) run
        messages = tenants.client.blocking_portal.call(
            websocket_session, tenants.app, "/v1/ws/chat", headers, [sent], ended
        )
        texts = [m["text"] for m in messages if m["type"] == "websocket.send" and "text" in m]
        return [json.loads(text) for text in texts], "".join(texts)

    owner, _ = await anyio.to_thread.run_sync(chat, tenants.bravo_key)
    assert owner[-1]["type"] == "done", "B chats over its own collection"
    events, answer = await anyio.to_thread.run_sync(chat, tenants.alpha_key)
    assert [event["type"] for event in events] == ["error"]
    assert events[0]["error"]["code"] == "collection_not_found"
    assert leaked(tenants.bravo.secrets, answer, tenants.bravo["collection_id"]) == []


async def test_metrics_name_no_tenant_to_a_caller_without_the_scrape_token(
    tenants: Tenants,
) -> None:
    text = (await tenants.client.get("/metrics", headers=tenants.alpha_key)).text
    assert "aiplatform_requests_total" in text
    assert leaked(tenants.bravo.secrets, text, "") == []
    assert BRAVO not in text
