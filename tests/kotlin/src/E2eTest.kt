// End-to-end activation against a running tillgate-server through the generated
// Kotlin client (suspend functions). Skipped unless TILLGATE_URL is set.
package dev.tillgate.tests

import dev.tillgate.*
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.LocalDate
import java.time.ZoneOffset
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.Test

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
    }

    @Test
    fun offlineSaleIsQueuedNotLost() = runBlocking {
        val offline = Client(ClientConfig(baseUrl = "http://127.0.0.1:9", timeoutMs = 1000uL), keys())
        offline.setApiKey("Abcdefghij0123456789!@$")
        val dir = Files.createTempDirectory("tillgate-outbox").toString()
        val result = Outbox.openDirectory(dir).submit(offline, transactionFromJson(SALE), "sale-0001", unixTimeMs())
        assertEquals(Submitted.Queued("sale-0001"), result)
        val reopened = Outbox.openDirectory(dir)
        assertEquals(1uL, reopened.len())
    }
}
