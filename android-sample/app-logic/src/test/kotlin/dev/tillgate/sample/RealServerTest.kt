package dev.tillgate.sample

import dev.tillgate.ActivationRequest
import dev.tillgate.TrustedKeys
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.IOException
import java.net.HttpURLConnection
import java.net.URL

/** Switches a real server "off" for the app, like a lost network. */
class Switchable(private val real: PosServer) : PosServer {
    var online = true
    private fun net() { if (!online) throw IOException("offline (switched off in the test)") }
    override fun activate(request: ActivationRequest) = net().let { real.activate(request) }
    override fun handshake(apiKey: String, deviceId: String, nonce: String) = net().let { real.handshake(apiKey, deviceId, nonce) }
    override fun activationCode(apiKey: String) = net().let { real.activationCode(apiKey) }
    override fun jwksJson() = net().let { real.jwksJson() }
    override fun submitTransaction(apiKey: String, idempotencyKey: String, transactionJson: String) =
        net().let { real.submitTransaction(apiKey, idempotencyKey, transactionJson) }
    override fun receipts(apiKey: String) = net().let { real.receipts(apiKey) }
}

/**
 * The whole flow against a real tillgate-server (HTTP), when scripts/test-android-sample.sh
 * started one: TILLGATE_TEST_URL and TILLGATE_TEST_ADMIN_KEY. Skipped otherwise.
 */
class RealServerTest {
    private val url = System.getenv("TILLGATE_TEST_URL")
    private val adminKey = System.getenv("TILLGATE_TEST_ADMIN_KEY")

    private fun approve(activationId: String) {
        val c = URL("$url/admin/activations/$activationId/approve").openConnection() as HttpURLConnection
        c.requestMethod = "POST"
        c.setRequestProperty("Authorization", "Bearer $adminKey")
        c.doOutput = true
        c.outputStream.use { it.write("""{"decidedBy":"android-sample test"}""".toByteArray()) }
        assertEquals(200, c.responseCode)
        c.disconnect()
    }

    @Test fun theWholeFlowAgainstTheRealServer() {
        assumeTrue("TILLGATE_TEST_URL not set: no server to talk to", url != null && adminKey != null)
        val http = HttpPosServer(url!!)
        // Built into a real app; fetched once here.
        val trusted = TrustedKeys.fromJwksJson(http.jwksJson())
        val server = Switchable(http)
        val store = MemoryStore()
        val deviceId = "jvm-${System.nanoTime()}"
        val app = TillApp(store, server, trusted, deviceId, "com.example.pos")

        val reg = app.register(app.newActivationScreen().apply { cashRegisterName = "Android sample"; corporateId = "556036-0793" })
        assertEquals("pending", reg.status)
        assertEquals(HandshakeStatus.Pending, app.refreshHandshake())
        approve(reg.activationId)
        assertTrue(app.refreshHandshake() is HandshakeStatus.Approved)

        val d = app.fetchDescriptor()
        assertTrue("$d", d is StartupDecision.Run)
        assertEquals(reg.productionNumber, (d as StartupDecision.Run).descriptor.sub)
        assertEquals(deviceId, d.descriptor.deviceId)
        // The same descriptor on another device is refused.
        val elsewhere = StartupGuard(store, trusted, "another-device", "com.example.pos").check(System.currentTimeMillis() / 1000)
        assertEquals("device_mismatch", (elsewhere as StartupDecision.Refuse).code)

        val coffee = Product("Kaffe", 3200, 1200)
        assertEquals(1, app.sell(listOf(coffee to 1L)).second.sent.size)
        server.online = false
        app.sell(listOf(coffee to 2L))
        app.sell(listOf(Product("Tygkasse", 4900, 2500) to 1L))
        assertEquals(2, app.queue.size)
        server.online = true
        val r = app.sync()
        assertEquals(0, r.left)
        assertEquals(listOf(2L, 3L), r.sent.map { it.sequence })

        val claims = app.verifyReceipts()
        assertEquals(listOf(1uL, 2uL, 3uL), claims.map { it.seq })
        assertEquals(listOf(3200L, 6400L, 4900L), claims.map { it.total })
    }
}
