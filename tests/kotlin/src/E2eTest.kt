// End-to-end activation against a running tillgate-server through the generated
// Kotlin client (suspend functions). Skipped unless TILLGATE_URL is set.
package dev.tillgate.tests

import dev.tillgate.*
import com.sun.net.httpserver.HttpServer
import java.net.InetSocketAddress
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.nio.file.Paths
import java.time.LocalDate
import java.time.ZoneOffset
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.Test

// A refund naming a transaction that does not exist: valid for core, refused by the server
// (400 invalid_transaction, field `reference`: unknown_reference).
const val REFUND_OF_UNKNOWN = """{"type":"refund","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}],"reference":"tx_does_not_exist"}"""
const val SALE = """{"type":"sale","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}]}"""

class E2eTest {
    private val url: String? = System.getenv("TILLGATE_URL")

    @Before
    fun needsServer() = assumeTrue("no TILLGATE_URL: no server to test against", url != null)

    private fun keys() = TrustedKeys.fromJwksJson(System.getenv("TILLGATE_JWKS"))

    private fun approve(activationId: String) {
        val req = HttpRequest.newBuilder(URI.create("$url/admin/activations/$activationId/approve"))
            .header("Authorization", "Bearer " + System.getenv("TILLGATE_ADMIN_KEY"))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString("{}")).build()
        assertEquals(200, HttpClient.newHttpClient().send(req, HttpResponse.BodyHandlers.ofString()).statusCode())
    }

    @Test
    fun activationHandshakeCodeAndTransaction() = runBlocking {
        val keys = keys()
        val device = "kt-" + System.nanoTime()
        val client = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys)
        val today = LocalDate.now(ZoneOffset.UTC)
        val activation = client.activate(
            ActivationRequest(
                cashRegisterName = "Kassa Kotlin", deviceId = device,
                validFrom = "${today}T00:00:00Z", validTo = "${today.plusDays(180)}T00:00:00Z",
                corporateId = "556036-0793", applicationPackage = "com.example.pos",
            ),
        )
        assertEquals("pending", activation.status)
        // A key the server issued: printing the activation never shows it.
        assertEquals(activation.apiKey, client.apiKey())
        assertFalse("$activation".contains(activation.apiKey))
        assertTrue("$activation".contains(activation.productionNumber))

        val refused = try { client.handshake(); null } catch (e: TillgateException.Failed) { e }
        assertEquals("pending_approval", refused?.code)

        approve(activation.activationId)
        val hs = client.handshake()
        assertEquals("approved", hs.status)
        assertEquals(hs.serverTime, client.trustedTimeFloor())

        val now = unixTimeMs() / 1000
        val code = client.activationCode(now)
        assertEquals(device, code.descriptor.claims.deviceId)
        assertEquals(activation.productionNumber, client.verifyStoredDescriptor(code.jws, now).claims.sub)

        val dir = Files.createTempDirectory("tillgate-outbox")
        val outbox = Outbox.openDirectory(dir.toString())
        val sent = outbox.submit(client, transactionFromJson(SALE), null, unixTimeMs())
        assertTrue("$sent", sent is Submitted.Sent)
        val receipt = (sent as Submitted.Sent).stored.receipt
        assertEquals(1uL, verifyReceiptChain(listOf(receipt), keys)[0].seq)
        assertEquals(0uL, outbox.len())
        val stored = client.getTransaction(sent.stored.id)
        assertEquals(receipt, stored.receipt)
        assertEquals(12500L, stored.transaction.total)
        // The register's kept receipt is its witness of the server's history.
        val history = client.verifyHistory(receipt)
        assertEquals(listOf(1uL), history.receipts.map { it.seq })
        assertEquals(receipt, history.transactions[0].receipt)
        assertEquals(1, client.verifyHistory().transactions.size)
        assertEquals(listOf(1uL), client.verifyHistorySince(receipt).receipts.map { it.seq })
        val bad = try { client.verifyHistory("not.a.receipt"); null } catch (e: TillgateException.Failed) { e }
        assertEquals("invalid_witness", bad?.code)
        // The outbox keeps that receipt as the register's witness, with its queue.
        assertEquals(receipt, outbox.witness())
        assertEquals(null, outbox.witnessProblem())
        assertEquals(listOf(1uL), outbox.verifyHistory(client).receipts.map { it.seq })
        assertEquals(listOf(1uL), outbox.verifyHistorySince(client).receipts.map { it.seq })
        // One outbox per queue directory: a second one is refused while this one lives.
        val second = try { Outbox.openDirectory(dir.toString()); null } catch (e: TillgateException.Failed) { e }
        assertEquals("queue_in_use", second?.code)
        outbox.resetWitness()
        assertEquals(null, outbox.witness())
        // A check takes the server's chain as the witness again.
        outbox.verifyHistory(client)
        assertEquals(receipt, outbox.witness())
        // A witness the app kept itself is adopted only when the outbox keeps none.
        val pn = activation.productionNumber
        assertEquals(false, outbox.adoptWitness(client, receipt, pn))
        outbox.resetWitness()
        val elsewhere = try { outbox.adoptWitness(client, receipt, "TG-OTHR-0001"); null } catch (e: TillgateException.Failed) { e }
        assertEquals("invalid_witness", elsewhere?.code)
        assertEquals(true, outbox.adoptWitness(client, receipt, pn))
        assertEquals(receipt, outbox.witness())
        val notAReceipt = try { outbox.adoptWitness(client, "not.a.receipt", pn); null } catch (e: TillgateException.Failed) { e }
        assertEquals("invalid_witness", notAReceipt?.code)
    }

    private val today = LocalDate.now(ZoneOffset.UTC)
    private fun day(d: Long) = "${today.plusDays(d)}T00:00:00Z"

    /** A new register valid until `validTo`, approved; its client has the key. */
    private suspend fun approvedRegister(device: String, validTo: String): Pair<Client, Activation> {
        val client = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys())
        val activation = client.activate(
            ActivationRequest(
                cashRegisterName = "Kassa Kotlin", deviceId = device, validFrom = day(0), validTo = validTo,
                corporateId = "556036-0793", applicationPackage = "com.example.pos",
            ),
        )
        approve(activation.activationId)
        assertEquals("approved", client.handshake().status)
        return client to activation
    }

    private suspend fun refusal(block: suspend () -> Unit): String? =
        try { block(); null } catch (e: TillgateException.Failed) { e.code }

    /** Moves the server's wall clock (libfaketime offset, see bindings/test-common.sh). */
    private fun serverClock(offset: String) =
        Files.writeString(Paths.get(System.getenv("TILLGATE_SERVER_CLOCK")), offset + "\n")

    @Test
    fun expiredKeyIsRenewedAndTheOldKeyStopsWorking() = runBlocking {
        assumeTrue("no TILLGATE_SERVER_CLOCK: the server's clock cannot move", System.getenv("TILLGATE_SERVER_CLOCK") != null)
        val device = "kt-renew-" + System.nanoTime()
        val (client, activation) = approvedRegister(device, day(1))
        val oldKey = client.apiKey()!!
        var newKey = ""
        try {
            serverClock("+2d") // the key's period (until tomorrow midnight) is over
            assertEquals("key_expired", refusal { client.handshake() })
            // A new period that does not end after the current one: the server's failing
            // fields come through.
            val e = try {
                client.renew(RenewRequest(activation.productionNumber, device, day(0), day(1))); null
            } catch (e: TillgateException.Failed) { e }
            assertEquals("invalid_renewal_request", e?.code)
            assertEquals(listOf("validTo"), e?.fields?.map { it.field })
            assertEquals(oldKey, client.apiKey())
            val renewed = client.renew(RenewRequest(activation.productionNumber, device, day(0), day(181)))
            assertEquals("approved", renewed.status)
            assertEquals(activation.activationId, renewed.activationId)
            assertNotEquals(oldKey, renewed.apiKey)
            assertEquals(renewed.apiKey, client.apiKey())
            assertEquals(day(181), client.handshake().validTo)
            newKey = renewed.apiKey
            val old = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys())
            old.setApiKey(oldKey)
            assertEquals("key_replaced", refusal { old.handshake() })
        } finally {
            serverClock("+0")
        }
        // Back at today (a fresh client: this one trusts the server time two days on), the
        // renewed key works and the signed activation code carries the new period.
        val after = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys())
        after.setApiKey(newKey)
        val now = unixTimeMs() / 1000
        assertTrue(Math.abs(after.handshake().serverTime - now) < 600)
        assertEquals(today.plusDays(181).atStartOfDay(ZoneOffset.UTC).toEpochSecond(), after.activationCode(now).descriptor.claims.exp)
    }

    @Test
    fun renewalWithTheStoredDescriptorWaitsForApprovalAgain() = runBlocking {
        val device = "kt-lost-" + System.nanoTime()
        val (client, activation) = approvedRegister(device, day(10)) // within the renewal window
        val jws = client.activationCode(unixTimeMs() / 1000).jws
        // The device lost its key: a fresh client proves itself with the stored descriptor.
        val fresh = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys())
        val request = RenewRequest(activation.productionNumber, device, day(0), day(190))
        val renewed = fresh.renewWithDescriptor(request, jws)
        assertEquals("pending", renewed.status)
        assertEquals(renewed.apiKey, fresh.apiKey())
        assertEquals("pending_approval", refusal { fresh.handshake() })
        assertEquals("key_replaced", refusal { client.handshake() })
        approve(activation.activationId)
        assertEquals(day(190), fresh.handshake().validTo)
    }

    @Test
    fun productsPutAndDeltaSync() = runBlocking {
        val (client, _) = approvedRegister("kt-products-" + System.nanoTime(), day(180))
        val kaffe = client.putProduct(Product(id = "kt-kaffe", name = "Kaffe", price = 2500, currency = "SEK", vatRate = 1200u))
        assertNotNull(kaffe.updatedAt)
        client.putProduct(Product(id = "kt-bulle", name = "Bulle", price = 3000, currency = "SEK", vatRate = 1200u, barcode = "7310000000017"))
        // Changes come in the order they were made (the RVE is a version, no waiting).
        val first = client.syncProducts(null)
        assertEquals(listOf("kt-kaffe", "kt-bulle"), first.products.map { it.id })
        assertEquals("7310000000017", first.products[1].barcode)
        assertFalse(first.more)
        val rve = first.rve!!
        client.putProduct(Product(id = "kt-te", name = "Te", price = 2000, currency = "SEK", vatRate = 1200u))
        client.putProduct(first.products[1].copy(active = false)) // Bulle withdrawn
        val delta = client.syncProducts(rve)
        assertEquals(listOf("kt-te", "kt-bulle"), delta.products.map { it.id }) // not Kaffe
        assertFalse(delta.products[1].active)
        assertFalse(delta.more)
        assertTrue(delta.rve!! > rve)
    }

    @Test
    fun anAnswerOverMaxResponseBytesIsRefused() = runBlocking {
        val device = "kt-cap-" + System.nanoTime()
        val today = LocalDate.now(ZoneOffset.UTC)
        fun request(d: String) = ActivationRequest(
            cashRegisterName = "Kassa Kotlin", deviceId = d,
            validFrom = "${today}T00:00:00Z", validTo = "${today.plusDays(180)}T00:00:00Z",
            corporateId = "556036-0793", applicationPackage = "com.example.pos",
        )
        // The activation answer is a few hundred bytes: over a 64-byte cap, under the default.
        val small = Client(ClientConfig(baseUrl = url!!, deviceId = device, maxResponseBytes = 64uL), keys())
        val refused = try { small.activate(request(device)); null } catch (e: TillgateException.Failed) { e }
        assertEquals("invalid_response", refused?.code)
        assertTrue(refused!!.reason.contains("larger than 64 bytes"))
        val roomy = Client(ClientConfig(baseUrl = url, deviceId = device + "b"), keys())
        assertEquals("pending", roomy.activate(request(device + "b")).status)
    }

    private suspend fun failure(block: suspend () -> Unit): TillgateException.Failed =
        try { block(); throw AssertionError("expected a refusal") } catch (e: TillgateException.Failed) { e }

    @Test
    fun aPendingRegistrationIsAnAuthErrorNotATransientOne() = runBlocking {
        val device = "kt-pending-" + System.nanoTime()
        val client = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys())
        client.activate(
            ActivationRequest(
                cashRegisterName = "Kassa Kotlin", deviceId = device, validFrom = day(0), validTo = day(180),
                corporateId = "556036-0793", applicationPackage = "com.example.pos",
            ),
        )
        val e = failure { client.handshake() }
        assertEquals("pending_approval", e.code)
        assertEquals(403.toUShort(), e.httpStatus)
        assertTrue(e.auth)
        assertFalse(e.transient)
        assertNull(e.retryAfterMs)
    }

    @Test
    fun anActivationRepeatedWithItsKeyAnswersTheSameRegistration() = runBlocking {
        val device = "kt-repeat-" + System.nanoTime()
        fun request(d: String) = ActivationRequest(
            cashRegisterName = "Kassa Kotlin", deviceId = d, validFrom = day(0), validTo = day(180),
            corporateId = "556036-0793", applicationPackage = "com.example.pos",
        )
        fun newClient() = Client(ClientConfig(baseUrl = url!!, deviceId = device), keys())
        val key = java.util.UUID.randomUUID().toString()
        val first = newClient().activateWithKey(request(device), key)
        // The answer was lost; a moment later the app sends the same request with the key
        // it stored (keys issued before the repeat reached the server stop working).
        kotlinx.coroutines.delay(1100)
        val client = newClient()
        val again = client.activateWithKey(request(device), key)
        assertEquals(first.activationId, again.activationId)
        assertEquals(first.productionNumber, again.productionNumber)
        assertTrue(first.apiKey != again.apiKey)
        assertEquals("pending_approval", failure { client.handshake() }.code)
        val stale = newClient()
        stale.setApiKey(first.apiKey)
        assertEquals("invalid_credentials", failure { stale.handshake() }.code)
        // The key names one request; a guessable key is refused before sending.
        val reused = failure { client.activateWithKey(request(device + "-other"), key) }
        assertEquals("idempotency_key_reused", reused.code)
        assertEquals(422.toUShort(), reused.httpStatus)
        val short = failure { client.activateWithKey(request(device), "receipt-42") }
        assertEquals("invalid_idempotency_key", short.code)
        assertNull(short.httpStatus)
        // Once approved, the key is not issued again.
        approve(again.activationId)
        val decided = failure { client.activateWithKey(request(device), key) }
        assertEquals("activation_not_repeatable", decided.code)
        assertEquals(409.toUShort(), decided.httpStatus)
        assertEquals("approved", client.handshake().status)
    }

    @Test
    fun anUnreachableServerIsTransientWithoutAStatus() = runBlocking {
        val offline = Client(ClientConfig(baseUrl = "http://127.0.0.1:9", timeoutMs = 1000uL), keys())
        offline.setApiKey("Abcdefghij0123456789!@$")
        val e = failure { offline.handshake() }
        assertTrue(e.code, e.code in setOf("network", "timeout"))
        assertTrue(e.transient)
        assertFalse(e.auth)
        assertNull(e.httpStatus)
        assertNull(e.retryAfterMs)
    }

    @Test
    fun aServerBeingUpgradedIsTransientAndSaysWhenToTryAgain() = runBlocking {
        // A stub answering every request 503 schema_newer with Retry-After: 7.
        val stub = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        stub.createContext("/") { ex ->
            val body = """{"code":"schema_newer","detail":"upgrading","status":503}""".toByteArray()
            ex.responseHeaders.add("Content-Type", "application/problem+json")
            ex.responseHeaders.add("Retry-After", "7")
            ex.sendResponseHeaders(503, body.size.toLong())
            ex.responseBody.use { it.write(body) }
        }
        stub.start()
        try {
            val client = Client(ClientConfig(baseUrl = "http://127.0.0.1:${stub.address.port}"), keys())
            client.setApiKey("Abcdefghij0123456789!@$")
            val e = failure { client.handshake() }
            assertEquals("schema_newer", e.code)
            assertEquals(503.toUShort(), e.httpStatus)
            assertEquals(7000uL, e.retryAfterMs)
            assertTrue(e.transient)
            assertFalse(e.auth)
        } finally {
            stub.stop(0)
        }
    }

    @Test
    fun aSaleTheServerRefusesIsKeptAsFailedWithItsFields() = runBlocking {
        val (client, _) = approvedRegister("kt-refused-" + System.nanoTime(), day(180))
        val outbox = Outbox.openInMemory()
        // Core accepts it (a well-formed reference); the server knows no such transaction.
        val refund = transactionFromJson(REFUND_OF_UNKNOWN)
        validateTransaction(refund)
        val r = outbox.submit(client, refund, "kt-refund-0001", unixTimeMs())
        assertTrue("$r", r is Submitted.Refused)
        r as Submitted.Refused
        assertEquals("kt-refund-0001", r.idempotencyKey)
        assertEquals("invalid_transaction", r.error.code)
        assertEquals(400.toUShort(), r.error.httpStatus)
        assertEquals(listOf("reference" to "unknown_reference"), r.error.fields.map { it.field to it.code })
        // Kept, marked failed (not pending).
        val entry = outbox.entries().single()
        assertEquals("kt-refund-0001", entry.idempotencyKey)
        assertTrue(entry.failed)
        assertEquals("invalid_transaction", entry.lastError?.code)
        assertEquals(listOf("reference"), entry.lastError?.fields?.map { it.field })
        assertEquals(0uL, outbox.len())
        // The same key again answers the refusal again; nothing new is kept.
        val again = outbox.submit(client, refund, "kt-refund-0001", unixTimeMs())
        assertEquals("invalid_transaction", (again as Submitted.Refused).error.code)
        assertEquals(1, outbox.entries().size)
    }

    @Test
    fun offlineSaleIsQueuedNotLost() = runBlocking {
        val offline = Client(ClientConfig(baseUrl = "http://127.0.0.1:9", timeoutMs = 1000uL), keys())
        offline.setApiKey("Abcdefghij0123456789!@$")
        val dir = Files.createTempDirectory("tillgate-outbox").toString()
        // The first outbox is closed (its directory lock released) before the restart.
        val result = Outbox.openDirectory(dir).use { it.submit(offline, transactionFromJson(SALE), "sale-0001", unixTimeMs()) }
        assertEquals(Submitted.Queued("sale-0001"), result)
        val reopened = Outbox.openDirectory(dir)
        assertEquals(1uL, reopened.len())
    }
}
