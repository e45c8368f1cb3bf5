"""Routing rules (field conditions, fan-out, fallbacks) and delivery shaping (concurrency, rate, ordering)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import BreakerSettings, Target, check_deployment, load_deployment
from gateway.config_routes import Flow
from gateway.errors import RoutingError
from gateway.model import Channel, Document, Received
from gateway.pipeline import process
from gateway.retry import RateLimit, RetryPolicy
from harness import edifact_order
from test_worker import make_worker, stop, wait_until

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path):
    for part in ("gateway.toml", "partners", "mappings"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    with (tmp_path / "gateway.toml").open("a") as fh:
        for name in ("branch-north", "branch-south", "audit"):
            fh.write(f'\n[targets.{name}]\ntype = "file"\npath = "var/{name}"\n')
    return tmp_path


EXAMPLE_ROUTE = '[[routes]]\ndocument = "order"\ntargets = ["erp"]\n'


def set_routes(home: Path, routes: str) -> None:
    """Replace the example's one route of partners/ACME.toml (kept in the repo's copy) with ``routes``."""
    acme = home / "partners" / "ACME.toml"
    text = (REPO / "partners" / "ACME.toml").read_text()
    assert EXAMPLE_ROUTE in text
    acme.write_text(text.replace(EXAMPLE_ROUTE, routes.strip() + "\n"))


ROUTES = '''
[[routes]]
document = "order"
when = { "buyer.id" = ["5412345000013", "5412345000020"] }
targets = ["branch-north", "audit"]

[[routes]]
document = "order"
when = { "buyer.id" = "4000000000001" }
targets = ["branch-south"]

[[routes]]
document = "order"
fallback = true
targets = ["erp"]

[[routes]]
document = "*"
when = { "currency" = "USD" }
targets = ["audit"]
'''


def test_routes_choose_targets_by_field_fan_out_and_fall_back(home):
    set_routes(home, ROUTES)
    assert check_deployment(home) == []
    acme = load_deployment(home).partners["ACME"]
    north = {"buyer": {"id": "5412345000013", "scheme": "GLN", "name": None}, "currency": "EUR"}
    assert acme.targets_for("order", north) == ("branch-north", "audit")
    south = {"buyer": {"id": "4000000000001", "scheme": "GLN", "name": None}, "currency": "USD"}
    assert acme.targets_for("order", south) == ("branch-south", "audit")
    nobody = {"buyer": None, "currency": "EUR"}
    assert acme.targets_for("order", nobody) == ("erp",)          # only the fallback
    assert acme.targets_for("invoice", {"currency": "USD"}) == ("audit",)
    assert acme.targets_for("invoice", {"currency": "EUR"}) == ()


def test_route_conditions_are_checked_against_the_canonical_schema(home):
    set_routes(home, '''
[[routes]]
document = "order"
when = { "buyer.idd" = "1", "lines" = "2", "currency" = true }
targets = ["erp"]

[[routes]]
document = "order"
fallback = true
when = { "currency" = "EUR" }
targets = ["nowhere"]
''')
    problems = [str(p) for p in check_deployment(home)]
    assert "partners/ACME.toml: routes[0].when.buyer.idd: no such field in order documents (a dotted path to a " \
           "text field of the canonical schema, e.g. ship_to.id)" in problems
    assert any(p.startswith("partners/ACME.toml: routes[0].when.lines: no such field") for p in problems), problems
    assert "partners/ACME.toml: routes[0].when.currency: must be a value or a non-empty list of values, got True" \
        in problems
    assert "partners/ACME.toml: routes[1].targets: no target 'nowhere' in gateway.toml [targets]" in problems
    assert any(p.startswith("partners/ACME.toml: routes[1].fallback: a fallback route") for p in problems), problems


def test_the_pipeline_routes_a_real_order_by_its_buyer(home):
    set_routes(home, ROUTES)
    deployment = load_deployment(home)
    outcome = process(edifact_order("PO-NORTH"), deployment, partner_id="ACME", channel="inbox", message_id="m1")
    [doc] = outcome.documents
    assert doc.envelope["document"]["buyer"]["id"] == "5412345000013"
    assert doc.targets == ["branch-north", "audit"]
    set_routes(home, ROUTES.split("[[routes]]\ndocument = \"order\"\nfallback")[0])   # no fallback any more
    other = edifact_order("PO-X").replace(b"NAD+BY+5412345000013", b"NAD+BY+9999999999999")
    with pytest.raises(RoutingError, match=r"no route in partners/ACME.toml takes order PO-X: the `when` conditions"):
        process(other, load_deployment(home), partner_id="ACME", channel="inbox", message_id="m2")


def test_target_flow_settings_are_read_and_checked(home):
    config = home / "gateway.toml"
    with config.open("a") as fh:
        fh.write('\n[targets.paced]\ntype = "file"\npath = "var/p"\nconcurrency = 1\nrate_limit = 2.5\n'
                 'ordered = "document"\n')
    good = config.read_text()
    with config.open("a") as fh:
        fh.write('\n[targets.wrong]\ntype = "file"\npath = "var/w"\nconcurrency = 0\nrate_limit = -1\n'
                 'ordered = "sometimes"\n')
    problems = [str(p) for p in check_deployment(home)]
    assert "gateway.toml: targets.wrong.concurrency: must be at least 1, got 0" in problems
    assert "gateway.toml: targets.wrong.rate_limit: must be a positive number of deliveries per second, got -1.0" \
        in problems
    assert "gateway.toml: targets.wrong.ordered: must be one of none, partner, document, got 'sometimes'" in problems
    config.write_text(good)
    paced = load_deployment(home).settings.targets["paced"]
    assert paced.flow == Flow(concurrency=1, rate=2.5, ordered="document")
    assert "rate_limit" not in paced.options   # shaping settings are not the connector's options


def test_rate_limit_bucket_paces_starts():
    bucket = RateLimit(2.0)
    assert bucket.available(100.0) == 2       # starts full: one second's worth
    bucket.take(100.0)
    bucket.take(100.0)
    assert bucket.available(100.0) == 0
    assert bucket.wait(100.0) == pytest.approx(0.5)
    assert bucket.available(100.5) == 1
    assert bucket.available(200.0) == 2       # never more than the burst


# ----------------------------------------------------------------------- the worker, with real HTTP


@pytest.fixture
async def recorder():
    """A real HTTP target on 127.0.0.1 that records arrivals; /flaky answers 503 to a document's first try."""
    seen: list[tuple[str, float]] = []
    tried: set[str] = set()
    active = {"now": 0, "max": 0}

    async def record(request, *, flaky: bool, slow: float):
        key = request.headers["Idempotency-Key"]
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        try:
            await asyncio.sleep(slow)
            if flaky and key.startswith("A0") and key not in tried:
                tried.add(key)
                return web.Response(status=503, text="try later")
            seen.append((key, time.monotonic()))
            return web.Response(text="ok")
        finally:
            active["now"] -= 1

    def handler(flaky: bool, slow: float):
        async def handle(request):
            return await record(request, flaky=flaky, slow=slow)
        return handle

    app = web.Application()
    app.router.add_post("/fast", handler(False, 0))
    app.router.add_post("/flaky", handler(True, 0.02))
    app.router.add_post("/slow", handler(False, 0.2))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", seen, active
    await runner.cleanup()


def target(name: str, url: str, flow: Flow) -> Target:
    return Target(name=name, type="rest", options={"url": url, "timeout": 5},
                  retry=RetryPolicy(initial_delay=0.3, jitter=0.0, max_attempts=10),
                  breaker=BreakerSettings(failure_threshold=50), flow=flow)


def queue(store, target_name: str, docs: list[tuple[str, str]], flow: Flow) -> None:
    """Queue (tag, number) documents in this order, one message each, as the pipeline would."""
    from gateway.config_routes import sequence_key

    for n, (tag, number) in enumerate(docs):
        message = store.receive(Received(raw=f"{tag}-{n}".encode(), channel=Channel.CLI, partner="ACME",
                                         filename=tag)).message
        key = tag.ljust(32, "0")
        envelope = {"id": f"doc_{key[:24]}", "idempotency_key": key, "type": "order", "document": {"number": number}}
        seq = sequence_key(flow, "ACME", number)
        store.record_processed(message.id, format="edifact", standard="ORDERS D96A", interchange=str(n),
                               documents=[Document("order", "ACME", key, envelope, number, [target_name],
                                                   sequence={target_name: seq} if seq else {})])


async def test_ordered_target_keeps_order_per_document_while_other_documents_pass(store, recorder):
    base, seen, _ = recorder
    flow = Flow(ordered="document")
    # A0 fails once (503, retried after 0.3 s): A1 and A2 share its PO and must wait; B0 must not.
    queue(store, "flaky", [("A0", "PO-A"), ("A1", "PO-A"), ("B0", "PO-B"), ("A2", "PO-A")], flow)
    worker = make_worker(store, {"flaky": target("flaky", base + "/flaky", flow)}, workers=4, per_target=4)
    worker.start()
    try:
        await wait_until(lambda: len(seen) == 4, 10, "four deliveries")
    finally:
        await stop(worker)
    order = [key[:2] for key, _ in seen]
    assert [k for k in order if k.startswith("A")] == ["A0", "A1", "A2"]
    assert order[0] == "B0"          # not held back by PO-A's retry
    assert [d.status.value for d in store.deliveries(target="flaky")] == ["delivered"] * 4


async def test_unordered_target_lets_later_documents_overtake_a_retry(store, recorder):
    base, seen, _ = recorder
    flow = Flow()
    queue(store, "flaky", [("A0", "PO-A"), ("A1", "PO-A"), ("A2", "PO-A")], flow)
    worker = make_worker(store, {"flaky": target("flaky", base + "/flaky", flow)}, workers=4, per_target=4)
    worker.start()
    try:
        await wait_until(lambda: len(seen) == 3, 10, "three deliveries")
    finally:
        await stop(worker)
    assert [key[:2] for key, _ in seen][-1] == "A0"   # the control case: without ordering A0 arrives last


async def test_ordered_by_partner_waits_behind_a_dead_letter_only_until_it_is_dead(store, recorder):
    base, seen, _ = recorder
    flow = Flow(ordered="partner")
    queue(store, "gone", [("X0", "PO-1"), ("X1", "PO-2")], flow)
    # X0 goes to a path that does not exist (404: permanent), X1 to the same target: it must follow.
    worker = make_worker(store, {"gone": target("gone", base + "/missing", flow)}, workers=2, per_target=2)
    worker.start()
    try:
        await wait_until(lambda: all(d.status.value == "dead" for d in store.deliveries(target="gone")), 10,
                         "both dead-lettered in turn")
    finally:
        await stop(worker)
    deaths = sorted(store.deliveries(target="gone"), key=lambda d: d.id)
    assert deaths[0].updated_at <= deaths[1].updated_at


async def test_concurrency_cap_of_a_target_replaces_per_target(store, recorder):
    base, seen, active = recorder
    flow = Flow(concurrency=1)
    queue(store, "slow", [(f"S{n}", f"PO-{n}") for n in range(4)], flow)
    worker = make_worker(store, {"slow": target("slow", base + "/slow", flow)}, workers=8, per_target=4)
    worker.start()
    try:
        await wait_until(lambda: len(seen) == 4, 10, "four slow deliveries")
    finally:
        await stop(worker)
    assert active["max"] == 1


async def test_rate_limited_target_is_paced_and_others_are_not(store, recorder):
    base, seen, _ = recorder
    paced, free = Flow(rate=5.0), Flow()
    queue(store, "paced", [(f"P{n:02d}", f"PO-{n}") for n in range(15)], paced)
    queue(store, "free", [(f"F{n:02d}", f"PO-{n}") for n in range(15)], free)
    worker = make_worker(store, {"paced": target("paced", base + "/fast", paced),
                                 "free": target("free", base + "/fast", free)}, workers=8, per_target=8)
    worker.start()
    try:
        await wait_until(lambda: len(seen) == 30, 10, "thirty deliveries")
    finally:
        await stop(worker)
    paced_at = sorted(at for key, at in seen if key.startswith("P"))
    free_at = sorted(at for key, at in seen if key.startswith("F"))
    # 5 at once (the burst), then 5 per second: the 15th starts >= 2 s after the first.
    assert paced_at[-1] - paced_at[0] >= 1.8
    assert sum(1 for at in paced_at if at - paced_at[0] < 0.9) <= 10
    assert free_at[-1] < paced_at[-1]
