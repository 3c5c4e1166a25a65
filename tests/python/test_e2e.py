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
            reopened = await t.Outbox.open_directory(queue_dir)
            assert reopened.len() == 1

    asyncio.run(run())
