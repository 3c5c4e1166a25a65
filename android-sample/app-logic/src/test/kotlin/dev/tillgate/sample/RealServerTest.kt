package dev.tillgate.sample

import dev.tillgate.Submitted
import dev.tillgate.TrustedKeys
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.net.HttpURLConnection
import java.net.URL

/**
 * The whole flow against a real tillgate-server (HTTP), when scripts/test-android-sample.sh
 * started one: TILLGATE_TEST_URL and TILLGATE_TEST_ADMIN_KEY. Skipped otherwise. The
 * app talks through tillgate-client; only the test's admin approval and fetching the
 * server's public keys use plain HTTP.
 */
class RealServerTest {
    private val url = System.getenv("TILLGATE_TEST_URL")
    private val adminKey = System.getenv("TILLGATE_TEST_ADMIN_KEY")

    private fun approve(activationId: String) {
        val c = URL("$url/admin/activations/$activationId/approve").openConnection() as HttpURLConnection
        c.requestMethod = "POST"
        c.setRequestProperty("Authorization", "Bearer $adminKey")
        c.setRequestProperty("Content-Type", "application/json")
        c.doOutput = true
        c.outputStream.use { it.write("""{"decidedBy":"android-sample test"}""".toByteArray()) }
        assertEquals(200, c.responseCode)
        c.disconnect()
    }

    private fun jwks(): String = URL("$url/.well-known/jwks.json").openStream().use { it.readBytes().toString(Charsets.UTF_8) }

    @Test fun theWholeFlowAgainstTheRealServer() = runBlocking {
        assumeTrue("TILLGATE_TEST_URL not set: no server to talk to", url != null && adminKey != null)
        // Built into a real app; fetched once here.
        val trusted = TrustedKeys.fromJwksJson(jwks())
        val store = MemoryStore()
        val deviceId = "jvm-${System.nanoTime()}"
        val app = TillApp.open(store, url!!, trusted, deviceId, "com.example.pos", tempDir("till-queue"))

        val reg = app.register(app.newActivationScreen().apply { cashRegisterName = "Android sample"; corporateId = "556036-0793" })
        assertEquals("pending", reg.status)
        assertEquals(HandshakeStatus.Pending, app.refreshHandshake())
        approve(reg.activationId)
        val h = app.refreshHandshake()
        assertTrue("$h", h is HandshakeStatus.Approved)

        val d = app.fetchDescriptor()
        assertTrue("$d", d is StartupDecision.Run)
        assertEquals(reg.productionNumber, (d as StartupDecision.Run).descriptor.sub)
        assertEquals(deviceId, d.descriptor.deviceId)
        // The same descriptor on another device is refused.
        val elsewhere = StartupGuard(store, trusted, "another-device", "com.example.pos").check(System.currentTimeMillis() / 1000)
        assertEquals("device_mismatch", (elsewhere as StartupDecision.Refuse).code)

        val coffee = Product("Kaffe", 3200, 1200)
        val first = app.sell(listOf(coffee to 1L))
        assertTrue("$first", first is Submitted.Sent)
        assertEquals(1uL, (first as Submitted.Sent).stored.sequence)

        // Offline: the client cannot reach the server; sales wait in the file queue.
        app.serverUrl = OFFLINE_URL
        val queued = listOf(app.sell(listOf(coffee to 2L)), app.sell(listOf(Product("Tygkasse", 4900, 2500) to 1L)))
        assertTrue("$queued", queued.all { it is Submitted.Queued })
        assertEquals(2uL, app.queue.len())
        assertTrue(app.refreshHandshake() is HandshakeStatus.Unreachable)

        // Back online: the queue drains in order of sale.
        app.serverUrl = url
        val r = app.sync()
        assertEquals(0uL, r.remaining)
        assertEquals(queued.map { (it as Submitted.Queued).idempotencyKey }, r.sent)

        // The register's witness moved to the last synced sale's receipt.
        assertEquals(listOf(2uL, 3uL), r.stored.map { it.sequence })
        assertEquals(r.stored.last().receipt, app.queue.witness())
        assertEquals(null, app.witnessProblem)
        val claims = app.verifyReceipts()
        assertEquals(listOf(1uL, 2uL, 3uL), claims.map { it.seq })
        assertEquals(listOf(3200L, 6400L, 4900L), claims.map { it.total })
        assertEquals(r.stored.last().receipt, app.queue.witness())
    }
}
