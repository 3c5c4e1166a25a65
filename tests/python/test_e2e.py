"""End-to-end activation against a running tillgate-server through the generated async
Python client (TILLGATE_URL, TILLGATE_ADMIN_KEY, TILLGATE_JWKS; skipped without them)."""
import asyncio
import datetime
import json
import os
import tempfile
import urllib.request

import pytest

import tillgate_ffi as t

URL = os.environ.get("TILLGATE_URL")
pytestmark = pytest.mark.skipif(not URL, reason="no TILLGATE_URL: no server to test against")

SALE = '{"type":"sale","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}]}'


# A refund naming a transaction that does not exist: valid for core, refused by the server
# (400 invalid_transaction, field `reference`: unknown_reference).
REFUND_OF_UNKNOWN = '{"type":"refund","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}],"reference":"tx_does_not_exist"}'


def keys_from_env():
    return t.TrustedKeys.from_jwks_json(os.environ["TILLGATE_JWKS"])


def approve(activation_id):
    req = urllib.request.Request(
        f"{URL}/admin/activations/{activation_id}/approve", data=b"{}", method="POST",
        headers={"Authorization": "Bearer " + os.environ["TILLGATE_ADMIN_KEY"], "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def request(device_id):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return t.ActivationRequest(
        cash_register_name="Kassa Python", device_id=device_id,
        valid_from=f"{today}T00:00:00Z", valid_to=f"{today + datetime.timedelta(days=180)}T00:00:00Z",
        corporate_id="556036-0793", application_package="com.example.pos", extras_json='{"lane":"py"}')


def test_activation_handshake_code_and_transaction():
    async def run():
        keys = t.TrustedKeys.from_jwks_json(os.environ["TILLGATE_JWKS"])
        device = "py-" + os.urandom(6).hex()
        client = t.Client(t.ClientConfig(base_url=URL, device_id=device), keys)

        activation = await client.activate(request(device))
        assert activation.status == "pending"
        assert client.api_key() == activation.api_key
        # A key the server issued: printing the activation never shows it.
        for shown in (str(activation), repr(activation), f"{[activation]}"):
            assert activation.api_key not in shown and activation.production_number in shown, shown

        with pytest.raises(t.TillgateError.Failed) as refused:
            await client.handshake()
        assert refused.value.code == "pending_approval"

        approve(activation.activation_id)
        hs = await client.handshake()
        assert hs.status == "approved"
        assert client.trusted_time_floor() == hs.server_time

        now = t.unix_time_ms() // 1000
        code = await client.activation_code(now)
        assert code.descriptor.claims.device_id == device
        assert json.loads(code.descriptor.claims.extras_json) == {"lane": "py"}
        assert client.verify_stored_descriptor(code.jws, now).claims.sub == activation.production_number

        with tempfile.TemporaryDirectory() as queue_dir:
            outbox = await t.Outbox.open_directory(queue_dir)
            sent = await outbox.submit(client, t.transaction_from_json(SALE), None, t.unix_time_ms())
            assert isinstance(sent, t.Submitted.SENT)
            assert outbox.len() == 0
            claims = t.verify_receipt_chain([sent.stored.receipt], keys)
            assert claims[0].seq == 1 and claims[0].total == 12500
            stored = await client.get_transaction(sent.stored.id)
            assert stored.receipt == sent.stored.receipt and stored.transaction.total == 12500
            # The register's kept receipt is its witness of the server's history.
            history = await client.verify_history(sent.stored.receipt)
            assert [c.seq for c in history.receipts] == [1]
            assert history.transactions[0].receipt == sent.stored.receipt
            assert len((await client.verify_history()).transactions) == 1
            assert [c.seq for c in (await client.verify_history_since(sent.stored.receipt)).receipts] == [1]
            assert (await refusal(client.verify_history("not.a.receipt"))).code == "invalid_witness"
            # The outbox keeps that receipt as the register's witness, with its queue.
            assert outbox.witness() == sent.stored.receipt and outbox.witness_problem() is None
            assert [c.seq for c in (await outbox.verify_history(client)).receipts] == [1]
            assert [c.seq for c in (await outbox.verify_history_since(client)).receipts] == [1]
            # One outbox per queue directory: a second one is refused while this one lives.
            assert (await refusal(t.Outbox.open_directory(queue_dir))).code == "queue_in_use"
            await outbox.reset_witness()
            assert outbox.witness() is None
            await outbox.verify_history(client)
            assert outbox.witness() == sent.stored.receipt
            # A witness the app kept itself is adopted only when the outbox keeps none.
            pn = activation.production_number
            assert await outbox.adopt_witness(client, sent.stored.receipt, pn) is False
            await outbox.reset_witness()
            assert (await refusal(outbox.adopt_witness(client, sent.stored.receipt, "TG-OTHR-0001"))).code == "invalid_witness"
            assert await outbox.adopt_witness(client, sent.stored.receipt, pn) is True
            assert outbox.witness() == sent.stored.receipt
            assert (await refusal(outbox.adopt_witness(client, "not.a.receipt", pn))).code == "invalid_witness"

    asyncio.run(run())


def test_the_outbox_checks_with_its_witness():
    async def run():
        keys = t.TrustedKeys.from_jwks_json(os.environ["TILLGATE_JWKS"])
        registers = []
        for _ in range(2):
            device = "py-" + os.urandom(6).hex()
            client = t.Client(t.ClientConfig(base_url=URL, device_id=device), keys)
            activation = await client.activate(request(device))
            approve(activation.activation_id)
            outbox = await t.Outbox.open_in_memory()
            sent = await outbox.submit(client, t.transaction_from_json(SALE), None, t.unix_time_ms())
            assert isinstance(sent, t.Submitted.SENT) and outbox.witness() == sent.stored.receipt
            registers.append((client, sent.stored.receipt, activation.production_number))
        (client_a, receipt_a, pn_a), (client_b, _, _) = registers
        # An outbox whose witness is register A's receipt checks register B's history:
        # both forms refuse it, so the witness is what they check with.
        stranger = await t.Outbox.open_in_memory()
        assert await stranger.adopt_witness(client_b, receipt_a, pn_a) is True
        for check in (stranger.verify_history, stranger.verify_history_since):
            assert (await refusal(check(client_b))).code == "witness_mismatch"
        assert stranger.witness() == receipt_a
        # The same witness with its own register's history passes.
        assert [c.seq for c in (await stranger.verify_history(client_a)).receipts] == [1]
        # Register B's sale answered to that outbox does not fit its witness: kept as the
        # problem. A reset erases only the problem the operator was shown.
        sent = await stranger.submit(client_b, t.transaction_from_json(SALE), None, t.unix_time_ms())
        assert isinstance(sent, t.Submitted.SENT)
        shown = stranger.witness_problem()
        assert shown.code == "receipt_chain_broken" and shown.receipt == sent.stored.receipt
        assert await stranger.reset_witness_seen(None) == shown
        assert stranger.witness() is None and stranger.witness_problem() == shown
        assert await stranger.reset_witness_seen(shown) is None
        assert stranger.witness_problem() is None

    asyncio.run(run())


def test_offline_sale_is_queued_not_lost():
    async def run():
        keys = t.TrustedKeys.from_jwks_json(os.environ["TILLGATE_JWKS"])
        offline = t.Client(t.ClientConfig(base_url="http://127.0.0.1:9", timeout_ms=1000), keys)
        offline.set_api_key("Abcdefghij0123456789!@$")
        with tempfile.TemporaryDirectory() as queue_dir:
            outbox = await t.Outbox.open_directory(queue_dir)
            result = await outbox.submit(offline, t.transaction_from_json(SALE), "sale-0001", t.unix_time_ms())
            assert isinstance(result, t.Submitted.QUEUED) and result.idempotency_key == "sale-0001"
            assert outbox.len() == 1 and outbox.last_error().code == "network"
            del outbox  # the app stops: the directory's lock goes with the outbox
            reopened = await t.Outbox.open_directory(queue_dir)
            assert reopened.len() == 1

    asyncio.run(run())


def test_an_activation_repeated_with_its_key_answers_the_same_registration():
    async def run():
        import uuid
        device = "py-repeat-" + os.urandom(6).hex()
        key = str(uuid.uuid4())
        first = await new_client(device).activate_with_key(request(device), key)
        # The answer was lost; a moment later the app sends the same request with the key
        # it stored (keys issued before the repeat reached the server stop working).
        await asyncio.sleep(1.1)
        client = new_client(device)
        again = await client.activate_with_key(request(device), key)
        assert again.activation_id == first.activation_id
        assert again.production_number == first.production_number
        assert again.api_key != first.api_key and client.api_key() == again.api_key
        assert (await refusal(client.handshake())).code == "pending_approval"
        stale = new_client(device)
        stale.set_api_key(first.api_key)
        assert (await refusal(stale.handshake())).code == "invalid_credentials"
        # The key names one request; a guessable key is refused before sending.
        e = await refusal(client.activate_with_key(request(device + "-other"), key))
        assert (e.code, e.http_status) == ("idempotency_key_reused", 422)
        e = await refusal(client.activate_with_key(request(device), "receipt-42"))
        assert e.code == "invalid_idempotency_key" and e.http_status is None
        # Once approved, the key is not issued again.
        approve(again.activation_id)
        e = await refusal(client.activate_with_key(request(device), key))
        assert (e.code, e.http_status) == ("activation_not_repeatable", 409)
        assert (await client.handshake()).status == "approved"

    asyncio.run(run())


def test_a_pending_registration_is_an_auth_error_not_a_transient_one():
    async def run():
        device = "py-pending-" + os.urandom(6).hex()
        client = new_client(device)
        await client.activate(request(device))
        e = await refusal(client.handshake())
        assert e.code == "pending_approval"
        assert e.http_status == 403 and e.auth is True and e.transient is False
        assert e.retry_after_ms is None

    asyncio.run(run())


def test_an_unreachable_server_is_transient_without_a_status():
    async def run():
        offline = t.Client(t.ClientConfig(base_url="http://127.0.0.1:9", timeout_ms=1000), keys_from_env())
        offline.set_api_key("Abcdefghij0123456789!@$")
        e = await refusal(offline.handshake())
        assert e.code in ("network", "timeout"), e.code
        assert e.transient is True and e.auth is False
        assert e.http_status is None and e.retry_after_ms is None

    asyncio.run(run())


def test_a_server_being_upgraded_is_transient_and_says_when_to_try_again():
    import http.server
    import threading

    class Upgrading(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"code":"schema_newer","detail":"upgrading","status":503}'
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upgrading)
    threading.Thread(target=stub.serve_forever, daemon=True).start()

    async def run():
        client = t.Client(t.ClientConfig(base_url=f"http://127.0.0.1:{stub.server_port}"), keys_from_env())
        client.set_api_key("Abcdefghij0123456789!@$")
        e = await refusal(client.handshake())
        assert e.code == "schema_newer"
        assert (e.http_status, e.retry_after_ms, e.transient, e.auth) == (503, 7000, True, False)

    try:
        asyncio.run(run())
    finally:
        stub.shutdown()
        stub.server_close()


def test_a_sale_the_server_refuses_is_kept_as_failed_with_its_fields():
    async def run():
        client, _ = await approved_register("py-refused-" + os.urandom(6).hex(), day(180))
        outbox = await t.Outbox.open_in_memory()
        # Core accepts it (a well-formed reference); the server knows no such transaction.
        refund = t.transaction_from_json(REFUND_OF_UNKNOWN)
        t.validate_transaction(refund)
        r = await outbox.submit(client, refund, "py-refund-0001", t.unix_time_ms())
        assert isinstance(r, t.Submitted.REFUSED), r
        assert r.idempotency_key == "py-refund-0001"
        assert r.error.code == "invalid_transaction" and r.error.http_status == 400
        assert [(f.field, f.code) for f in r.error.fields] == [("reference", "unknown_reference")]
        # Kept, marked failed (not pending).
        [entry] = outbox.entries()
        assert entry.idempotency_key == "py-refund-0001" and entry.failed is True
        assert entry.last_error.code == "invalid_transaction"
        assert [f.field for f in entry.last_error.fields] == ["reference"]
        assert outbox.len() == 0
        # Submitting the same key again answers the refusal again; nothing new is kept.
        again = await outbox.submit(client, refund, "py-refund-0001", t.unix_time_ms())
        assert isinstance(again, t.Submitted.REFUSED) and again.error.code == "invalid_transaction"
        assert len(outbox.entries()) == 1

    asyncio.run(run())


def test_an_answer_over_max_response_bytes_is_refused():
    async def run():
        keys = t.TrustedKeys.from_jwks_json(os.environ["TILLGATE_JWKS"])
        device = "py-" + os.urandom(6).hex()
        # The activation answer is a few hundred bytes: over a 64-byte cap, under the default.
        small = t.Client(t.ClientConfig(base_url=URL, device_id=device, max_response_bytes=64), keys)
        with pytest.raises(t.TillgateError.Failed) as refused:
            await small.activate(request(device))
        assert refused.value.code == "invalid_response"
        assert "larger than 64 bytes" in refused.value.reason
        roomy = t.Client(t.ClientConfig(base_url=URL, device_id=device + "b"), keys)
        assert (await roomy.activate(request(device + "b"))).status == "pending"

    asyncio.run(run())


TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def day(d):
    return f"{TODAY + datetime.timedelta(days=d)}T00:00:00Z"


def new_client(device):
    return t.Client(t.ClientConfig(base_url=URL, device_id=device), t.TrustedKeys.from_jwks_json(os.environ["TILLGATE_JWKS"]))


async def approved_register(device, valid_to):
    """A new register valid until valid_to, approved; its client has the key."""
    client = new_client(device)
    activation = await client.activate(t.ActivationRequest(
        cash_register_name="Kassa Python", device_id=device, valid_from=day(0), valid_to=valid_to,
        corporate_id="556036-0793", application_package="com.example.pos", extras_json=None))
    approve(activation.activation_id)
    assert (await client.handshake()).status == "approved"
    return client, activation


def renewal(activation, device, valid_from, valid_to):
    return t.RenewRequest(production_number=activation.production_number, device_id=device,
                          valid_from=valid_from, valid_to=valid_to)


async def refusal(call):
    with pytest.raises(t.TillgateError.Failed) as e:
        await call
    return e.value


def server_clock(offset):
    """Moves the server's wall clock (libfaketime offset, see bindings/test-common.sh)."""
    with open(os.environ["TILLGATE_SERVER_CLOCK"], "w") as f:
        f.write(offset + "\n")


@pytest.mark.skipif(not os.environ.get("TILLGATE_SERVER_CLOCK"), reason="no TILLGATE_SERVER_CLOCK: the server's clock cannot move")
def test_expired_key_is_renewed_and_the_old_key_stops_working():
    async def run():
        device = "py-renew-" + os.urandom(6).hex()
        client, activation = await approved_register(device, day(1))
        old_key = client.api_key()
        try:
            server_clock("+2d")  # the key's period (until tomorrow midnight) is over
            assert (await refusal(client.handshake())).code == "key_expired"
            # A period that does not end after the current one: the server's fields come through.
            e = await refusal(client.renew(renewal(activation, device, day(0), day(1))))
            assert e.code == "invalid_renewal_request" and [f.field for f in e.fields] == ["validTo"]
            assert client.api_key() == old_key
            renewed = await client.renew(renewal(activation, device, day(0), day(181)))
            assert renewed.status == "approved" and renewed.activation_id == activation.activation_id
            assert renewed.api_key != old_key and client.api_key() == renewed.api_key
            assert (await client.handshake()).valid_to == day(181)
            old = new_client(device)
            old.set_api_key(old_key)
            assert (await refusal(old.handshake())).code == "key_replaced"
        finally:
            server_clock("+0")
        # Back at today (a fresh client: this one trusts the server time two days on), the
        # renewed key works and the signed activation code carries the new period.
        after = new_client(device)
        after.set_api_key(renewed.api_key)
        now = t.unix_time_ms() // 1000
        assert abs((await after.handshake()).server_time - now) < 600
        code = await after.activation_code(now)
        assert code.descriptor.claims.exp == int(datetime.datetime.fromisoformat(day(181).replace("Z", "+00:00")).timestamp())

    asyncio.run(run())


def test_renewal_with_the_stored_descriptor_waits_for_approval_again():
    async def run():
        device = "py-lost-" + os.urandom(6).hex()
        client, activation = await approved_register(device, day(10))  # within the renewal window
        jws = (await client.activation_code(t.unix_time_ms() // 1000)).jws
        # The device lost its key: a fresh client proves itself with the stored descriptor.
        fresh = new_client(device)
        renewed = await fresh.renew_with_descriptor(
            renewal(activation, device, day(0), day(190)), jws)
        assert renewed.status == "pending" and fresh.api_key() == renewed.api_key
        assert (await refusal(fresh.handshake())).code == "pending_approval"
        assert (await refusal(client.handshake())).code == "key_replaced"
        approve(activation.activation_id)
        assert (await fresh.handshake()).valid_to == day(190)

    asyncio.run(run())


def test_products_put_and_delta_sync():
    async def run():
        client, _ = await approved_register("py-products-" + os.urandom(6).hex(), day(180))
        kaffe = await client.put_product(t.Product(id="py-kaffe", name="Kaffe", price=2500, currency="SEK", vat_rate=1200))
        assert kaffe.updated_at and kaffe.active
        await client.put_product(t.Product(id="py-bulle", name="Bulle", price=3000, currency="SEK", vat_rate=1200,
                                           barcode="7310000000017"))
        # Changes come in the order they were made (the RVE is a version, no waiting).
        first = await client.sync_products(None)
        assert [p.id for p in first.products] == ["py-kaffe", "py-bulle"]
        assert first.products[1].barcode == "7310000000017"
        assert first.more is False
        rve = first.rve
        assert rve
        await client.put_product(t.Product(id="py-te", name="Te", price=2000, currency="SEK", vat_rate=1200))
        bulle = first.products[1]
        bulle.active = False  # withdrawn
        await client.put_product(bulle)
        delta = await client.sync_products(rve)
        assert [p.id for p in delta.products] == ["py-te", "py-bulle"]  # not Kaffe
        assert delta.products[1].active is False
        assert delta.more is False
        assert delta.rve > rve

    asyncio.run(run())
