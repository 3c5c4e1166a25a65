package dev.tillgate.sample

import com.google.gson.JsonParser
import dev.tillgate.Client
import dev.tillgate.ClientConfig
import dev.tillgate.Submitted
import dev.tillgate.TillgateException
import dev.tillgate.TrustedKeys
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertFalse
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

    /** The server's registrations of [deviceId] (the admin list, as the operator sees it). */
    private fun registrationsOf(deviceId: String): List<String> {
        val c = URL("$url/admin/activations?limit=1000").openConnection() as HttpURLConnection
        c.setRequestProperty("Authorization", "Bearer $adminKey")
        val body = c.inputStream.use { it.readBytes().toString(Charsets.UTF_8) }
        return JsonParser.parseString(body).asJsonObject.getAsJsonArray("items").map { it.asJsonObject }
            .filter { it.get("deviceId").asString == deviceId }.map { it.get("activationId").asString }
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
        val first = app.sell(listOf(coffee to 1L)).result
        assertTrue("$first", first is Submitted.Sent)
        assertEquals(1uL, (first as Submitted.Sent).stored.sequence)

        // Offline: the client cannot reach the server; sales wait in the file queue.
        app.serverUrl = OFFLINE_URL
        val queued = listOf(app.sell(listOf(coffee to 2L)).result, app.sell(listOf(Product("Tygkasse", 4900, 2500) to 1L)).result)
        assertTrue("$queued", queued.all { it is Submitted.Queued })
        assertEquals(2uL, app.queue.len())
        assertTrue(app.refreshHandshake() is HandshakeStatus.Unreachable)

        // Back online: the queue drains in order of sale.
        app.serverUrl = url
        val r = app.sync().report
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
        assertTrue(app.queueSummary().allStored)

        // The same basket again before its result was seen (the first call's scope went
        // with its Activity): resubmitted with its key, the server answers the sale it
        // stored, and its receipt is the one the register already holds.
        val tea = listOf(Product("Te", 2800, 1200) to 1L)
        val once = app.sell(tea)
        val twice = app.sell(tea)
        assertEquals(once.idempotencyKey, twice.idempotencyKey)
        assertEquals((once.result as Submitted.Sent).stored.sequence, (twice.result as Submitted.Sent).stored.sequence)
        assertEquals(4uL, (once.result as Submitted.Sent).stored.sequence)
        assertEquals(null, app.witnessProblem)
        assertEquals(listOf(1uL, 2uL, 3uL, 4uL), app.verifyReceipts().map { it.seq })
        app.saleShown(twice)
        assertEquals(5uL, (app.sell(tea).result as Submitted.Sent).stored.sequence)
    }

    /** Kills the app (throws) when the API key is about to be kept, after the server's answer arrived. */
    private class DiesBeforeKeepingTheKey(private val inner: KeyValueStore = MemoryStore()) : KeyValueStore by inner {
        var dies = true
        var lostApiKey: String? = null
        override fun put(key: String, value: String) {
            if (dies && key == Keys.API_KEY) {
                lostApiKey = value
                throw IllegalStateException("the app was killed (test)")
            }
            inner.put(key, value)
        }
    }

    @Test fun aRegistrationWhoseAnswerWasLostEndsAsOneRegistrationWithAWorkingKey() = runBlocking {
        assumeTrue("TILLGATE_TEST_URL not set: no server to talk to", url != null && adminKey != null)
        val trusted = TrustedKeys.fromJwksJson(jwks())
        val deviceId = "jvm-lost-${System.nanoTime()}"
        val store = DiesBeforeKeepingTheKey()
        suspend fun open(at: String) = TillApp.open(store, at, trusted, deviceId, "com.example.pos", tempDir("till-queue-reg"))

        // 1. Offline: nothing reaches the server, the key is kept with the request.
        val offline = open(OFFLINE_URL)
        val form = offline.newActivationScreen().apply { cashRegisterName = "Android sample (lost answer)"; corporateId = "556036-0793" }
        assertEquals("network", (runCatching { offline.register(form) }.exceptionOrNull() as TillgateException.Failed).code)
        val key = store.get(Keys.ACTIVATION_ATTEMPT)?.substringBefore('\n')
        assertNotNull(key)
        offline.close()
        assertEquals(emptyList<String>(), registrationsOf(deviceId))

        // 2. Online, the same form: the server registers the till, and the app dies before
        //    it keeps the API key (the answer is lost to it).
        val dying = open(url!!)
        assertTrue(runCatching { dying.register(dying.newActivationScreen()) }.exceptionOrNull() is IllegalStateException)
        assertFalse(dying.isRegistered)
        assertEquals(key, store.get(Keys.ACTIVATION_ATTEMPT)?.substringBefore('\n'))
        val created = registrationsOf(deviceId)
        assertEquals(1, created.size)
        dying.close()

        // 3. Restarted (a moment later: keys issued before a repeat reaches the server stop
        //    working): the form comes back filled in, registering again sends the same key
        //    and gets that one registration with a fresh API key.
        Thread.sleep(1100)
        store.dies = false
        val app = open(url)
        assertEquals("Android sample (lost answer)", app.unansweredRegistration?.cashRegisterName)
        val a = app.register(app.newActivationScreen())
        assertEquals(created.single(), a.activationId)
        assertEquals(created, registrationsOf(deviceId))
        assertNotEquals(store.lostApiKey, a.apiKey)
        assertNull(app.unansweredRegistration)
        assertNull(store.get(Keys.ACTIVATION_ATTEMPT))
        approve(a.activationId)
        assertTrue("${app.handshake}", app.refreshHandshake() is HandshakeStatus.Approved)
        // Only the newest answer's key works.
        val old = Client(ClientConfig(baseUrl = url, deviceId = deviceId, applicationPackage = "com.example.pos"), trusted)
        old.setApiKey(store.lostApiKey!!)
        assertEquals("invalid_credentials", (runCatching { old.handshake() }.exceptionOrNull() as TillgateException.Failed).code)
        old.close()
        app.close()
    }
}
