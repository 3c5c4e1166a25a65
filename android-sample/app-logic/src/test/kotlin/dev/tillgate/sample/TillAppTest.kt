package dev.tillgate.sample

import dev.tillgate.Submitted
import dev.tillgate.TillgateException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/**
 * The app's flow through the real client and its file queue, against a small HTTP
 * server ([FakeTillgateServer]): activation, handshake, descriptor, sales, offline.
 */
class TillAppTest {
    private val coffee = Product("Kaffe", 3200, 1200)
    private val bag = Product("Tygkasse", 4900, 2500)
    private val server = FakeTillgateServer()
    private val queueDir = tempDir("till-queue")

    @After fun stop() = server.close()

    private suspend fun app(store: KeyValueStore, url: String = server.url, dir: File = queueDir) =
        TillApp.open(store, url, TestKeys.trusted(), "device-1", "com.example.pos", dir) { TestKeys.NOW }

    private suspend fun registered(store: KeyValueStore): TillApp {
        val app = app(store)
        app.register(app.newActivationScreen().apply { cashRegisterName = "Kassa 1"; corporateId = "5560360793" })
        return app
    }

    @Test fun theProcessOpensOneAppWhateverItsActivitiesDo() = runBlocking {
        var opened = 0
        val open: suspend () -> TillApp = { opened++; app(MemoryStore(), dir = tempDir("till-queue-shared")) }
        val first = TillApp.shared(open)
        assertSame(first, TillApp.shared(open))
        assertEquals(1, opened)
    }

    @Test fun aWitnessKeptByAnEarlierVersionGoesToTheQueueOnce() = runBlocking {
        val receipt = TestKeys.jws(
            TestKeys.server, "tillgate-receipt+jwt",
            """{"iss":"https://pos.example","sub":"TG-TEST-0001","iat":${TestKeys.NOW},"seq":4,"txid":"tx_4",""" +
                """"txh":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","prev":"","txType":"sale","total":3200,"currency":"SEK"}""",
        )
        val store = MemoryStore()
        store.put(Keys.PRODUCTION_NUMBER, "TG-TEST-0001")
        store.put(TillApp.OLD_WITNESS, receipt)
        val app = app(store, dir = tempDir("till-queue-adopt"))
        assertEquals(receipt, app.queue.witness())
        assertNull(store.get(TillApp.OLD_WITNESS))
        // A stored value the app does not trust, or a receipt of an earlier registration,
        // is dropped, never adopted.
        for ((value, register) in listOf("not.a.receipt" to "TG-TEST-0001", receipt to "TG-TEST-0002")) {
            val other = MemoryStore().apply { put(Keys.PRODUCTION_NUMBER, register); put(TillApp.OLD_WITNESS, value) }
            val fresh = app(other, dir = tempDir("till-queue-refuse"))
            assertNull(fresh.queue.witness())
            assertNull(other.get(TillApp.OLD_WITNESS))
        }
    }

    @Test fun registerThenPendingThenApprovedThenTheDescriptorRuns() = runBlocking {
        val store = MemoryStore()
        val app = app(store)
        assertEquals(HandshakeStatus.NotRegistered, app.handshake)
        assertEquals(StartupDecision.NotActivated, app.start())
        val a = app.register(app.newActivationScreen().apply { cashRegisterName = "Kassa 1"; corporateId = "5560360793" })
        assertEquals("pending", a.status)
        assertEquals("TG-TEST-0001", app.productionNumber)
        assertEquals(HandshakeStatus.Pending, app.refreshHandshake())
        server.approveAll()
        val h = app.refreshHandshake()
        assertEquals(HandshakeStatus.Approved(TestKeys.NOW, TestKeys.NOW), h)
        assertEquals(TestKeys.NOW.toString(), store.get(Keys.TRUSTED_TIME_FLOOR))
        val d = app.fetchDescriptor()
        assertTrue("$d", d is StartupDecision.Run)
        // The next start (a new process) runs offline from the stored descriptor.
        app.close()
        assertTrue(app(store, OFFLINE_URL).start() is StartupDecision.Run)
    }

    @Test fun aHandshakeWithoutTheServerSaysUnreachable() = runBlocking {
        val app = registered(MemoryStore())
        app.serverUrl = OFFLINE_URL
        val h = app.refreshHandshake()
        assertTrue("$h", h is HandshakeStatus.Unreachable && h.code == "network" && h.retryAfterMs == null)
    }

    @Test fun aServerBeingUpgradedOrBusyIsNotARefusal() = runBlocking {
        val app = registered(MemoryStore()).also { server.approveAll() }
        // 503 during an upgrade, with the server's Retry-After: try later, not "Refused".
        server.unavailable = Triple(503, "schema_newer", 30)
        assertEquals(HandshakeStatus.Unreachable("server unavailable (HTTP 503, schema_newer)", "schema_newer", 30_000L), app.refreshHandshake())
        server.unavailable = Triple(429, "rate_limited", null)
        val busy = app.refreshHandshake()
        assertTrue("$busy", busy is HandshakeStatus.Unreachable && busy.code == "rate_limited" && busy.retryAfterMs == null)
        // A sale meanwhile is kept in the queue, not refused.
        server.unavailable = Triple(503, "schema_newer", 30)
        val sale = app.sell(listOf(coffee to 1L)).result
        assertTrue("$sale", sale is Submitted.Queued)
        assertEquals(1uL, app.queue.len())
        assertEquals("schema_newer", app.queue.lastError()?.code)
        server.unavailable = null
        assertTrue(app.refreshHandshake() is HandshakeStatus.Approved)
        assertEquals(0uL, app.sync().report.remaining)
    }

    @Test fun salesWaitInTheQueueWhileOfflineAndDrainWhenBackOnline() = runBlocking {
        val dir = tempDir("till-store")
        registered(FileStore(dir)).also { server.approveAll() }.close()
        val app = app(FileStore(dir), OFFLINE_URL)
        val r1 = app.sell(listOf(coffee to 2L)).result
        val r2 = app.sell(listOf(bag to 1L, coffee to 1L)).result
        assertTrue("$r1", r1 is Submitted.Queued)
        assertTrue("$r2", r2 is Submitted.Queued)
        assertEquals(2uL, app.queue.len())
        assertEquals("network", app.queue.lastError()?.code)
        assertEquals(0, server.stored.size)
        // The app is restarted while still offline: the queue is on disk. While the first
        // is open, a second app on the same queue is refused.
        val second = runCatching { app(FileStore(dir), OFFLINE_URL) }.exceptionOrNull()
        assertEquals("queue_in_use", (second as TillgateException.Failed).code)
        app.close()
        val restarted = app(FileStore(dir), OFFLINE_URL)
        assertEquals(2uL, restarted.queue.len())
        assertEquals(listOf(6400L, 8100L), restarted.queue.entries().map { it.transaction.total })
        restarted.serverUrl = server.url
        val r = restarted.sync().report
        assertNull(r.stoppedBy)
        assertEquals(0uL, r.remaining)
        val keys = listOf((r1 as Submitted.Queued).idempotencyKey, (r2 as Submitted.Queued).idempotencyKey)
        assertEquals(keys, r.sent)
        assertEquals(keys, server.stored.keys.toList())
        assertEquals(listOf(1, 2), server.stored.values.map { it.get("sequence").asInt })
        assertNull(restarted.queue.lastError())
        // This fake server's receipts are not signed: the sales stay sent, the receipts
        // are kept out of the witness and reported.
        assertEquals("invalid_receipt", restarted.witnessProblem?.substringBefore(':'))
    }

    @Test fun aLostAnswerIsRetriedWithTheSameKeyAndStoredOnce() = runBlocking {
        val app = registered(MemoryStore()).also { server.approveAll() }
        server.loseNextAnswer = true
        val first = app.sell(listOf(coffee to 1L)).result
        assertTrue("$first", first is Submitted.Queued)
        val key = (first as Submitted.Queued).idempotencyKey
        assertEquals(1uL, app.queue.len())
        assertEquals(key, app.queue.entries().single().idempotencyKey)
        assertEquals(1u, app.queue.entries().single().attempts)
        val second = app.sync().report
        assertEquals(0uL, second.remaining)
        assertEquals(listOf(key), second.sent)
        assertEquals(2, server.posts)
        assertEquals(1, server.stored.size)
        assertEquals(setOf(key), server.stored.keys)
    }

    @Test fun aProblemShownToTheOperatorGoesOnlyWhenTheyResetThatOne() = runBlocking {
        val app = registered(MemoryStore()).also { server.approveAll() }
        // This fake server's receipts are not signed: the sale is stored, its receipt kept
        // as the problem.
        assertTrue(app.sell(listOf(coffee to 1L)).result is Submitted.Sent)
        val shown = app.witnessProblemRecord
        assertEquals("invalid_receipt", shown?.code)
        // Nothing shown yet (null): the kept problem stays, and is answered.
        assertEquals(shown, app.resetWitness(null))
        assertEquals(shown, app.witnessProblemRecord)
        // The one shown: forgotten, with the witness.
        assertNull(app.resetWitness(shown))
        assertNull(app.witnessProblem)
        assertNull(app.queue.witness())
        assertEquals(1, server.stored.size)
    }

    @Test fun anInvalidSaleNeverEntersTheQueue() = runBlocking {
        val app = registered(MemoryStore())
        try {
            app.sell(emptyList())
            throw AssertionError("an empty sale must be refused by core")
        } catch (e: dev.tillgate.TillgateException.Failed) {
            assertEquals("invalid_transaction", e.code)
        }
        assertEquals(0uL, app.queue.len())
        assertTrue(app.queue.entries().isEmpty())
        assertNull(app.unconfirmedSale)
    }

    @Test fun theSameBasketSoldAgainBeforeItsResultWasSeenIsOneSale() = runBlocking {
        val dir = tempDir("till-store-basket")
        val app = registered(FileStore(dir)).also { server.approveAll() }
        // The first tap: the server stores the sale, but its result never reaches the
        // screen (the Activity went with the call: saleShown is not called), and the app
        // is restarted.
        val first = app.sell(listOf(coffee to 1L))
        assertTrue("${first.result}", first.result is Submitted.Sent)
        assertEquals(first.idempotencyKey, FileStore(dir).get(Keys.SALE_IN_PROGRESS)?.substringBefore('\n'))
        app.close()
        val restarted = app(FileStore(dir))
        assertEquals(3200L, restarted.unconfirmedSale?.total)
        // The cashier taps the same basket again: resubmitted under the same key, the
        // server answers the sale it stored.
        val again = restarted.sell(listOf(coffee to 1L))
        assertEquals(first.idempotencyKey, again.idempotencyKey)
        assertEquals((first.result as Submitted.Sent).stored.sequence, (again.result as Submitted.Sent).stored.sequence)
        assertEquals(2, server.posts)
        assertEquals(setOf(first.idempotencyKey), server.stored.keys)
        // Its result shown: the next customer's same basket is a new sale.
        restarted.saleShown(again)
        assertNull(restarted.unconfirmedSale)
        val next = restarted.sell(listOf(coffee to 1L))
        assertNotEquals(first.idempotencyKey, next.idempotencyKey)
        // A different basket while one is unseen replaces it with a new key.
        val other = restarted.sell(listOf(bag to 1L))
        assertNotEquals(next.idempotencyKey, other.idempotencyKey)
        assertEquals(3, server.stored.size)
    }

    @Test fun aSaleCancelledWhileInFlightIsResubmittedWithItsKey() = runBlocking {
        val app = registered(MemoryStore()).also { server.approveAll() }
        // The server stores the sale and answers slowly; the call is cancelled meanwhile
        // (its scope went: the Activity was destroyed, e.g. a rotation).
        server.saleAnswerDelayMs = 1_500
        val job = launch(Dispatchers.Default) { app.sell(listOf(coffee to 1L)) }
        while (server.posts == 0) delay(10)
        delay(200)
        job.cancelAndJoin()
        server.saleAnswerDelayMs = 0
        assertEquals(1, server.stored.size)
        // The cashier saw no result and taps Sell again: the same key, one sale.
        val again = app.sell(listOf(coffee to 1L))
        assertTrue("${again.result}", again.result is Submitted.Sent || again.result is Submitted.Queued)
        assertEquals(0uL, app.sync().report.remaining)
        assertEquals(setOf(again.idempotencyKey), server.stored.keys)
        assertTrue(app.queueSummary().allStored)
    }

    @Test fun aRefusedSaleShowsAsRefusedNotAsStored() = runBlocking {
        val app = registered(MemoryStore()).also { server.approveAll() }
        assertTrue(app.queueSummary().allStored)
        server.refuseSales = 400 to "invalid_transaction"
        val sale = app.sell(listOf(coffee to 1L))
        assertTrue("${sale.result}", sale.result is Submitted.Refused)
        app.saleShown(sale)
        val s = app.queueSummary()
        assertEquals(0, s.pending)
        assertFalse(s.allStored)
        assertEquals(listOf(RefusedSale(sale.idempotencyKey, 3200L, "SEK", "invalid_transaction", s.refused.single().message, 400)), s.refused)
        assertTrue(s.lines().joinToString("\n"), s.lines().none { "every sale is stored" in it })
        assertTrue(s.lines().first().contains("REFUSED"))

        // Sold offline, then refused at the next sync: the sync says why it stopped, then what was refused.
        app.serverUrl = OFFLINE_URL
        val queued = app.sell(listOf(bag to 1L))
        assertTrue(queued.result is Submitted.Queued)
        val offline = app.sync()
        assertEquals("network", offline.stoppedBy?.code)
        assertEquals(1, offline.summary.pending)
        assertTrue(offline.lines().joinToString("\n"), offline.lines().any { it.startsWith("Sync stopped by network") })
        assertTrue(offline.summary.lines().first().startsWith("1 sale(s) waiting"))
        app.serverUrl = server.url
        val back = app.sync()
        assertNull(back.stoppedBy)
        assertEquals(listOf(queued.idempotencyKey), back.refused.map { it.idempotencyKey })
        assertEquals("invalid_transaction", back.refused.single().code)
        assertFalse(back.quiet)
        assertTrue(back.lines().joinToString("\n"), back.lines().any { "REFUSED 1 sale" in it })
        assertEquals(0, back.summary.pending)
        assertEquals(2, back.summary.refused.size)
        assertEquals(0, server.stored.size)
        // The timer's sync with nothing due says nothing new; the refusals stay in the summary.
        val timer = app.sync(force = false)
        assertTrue(timer.quiet)
        assertEquals(2, timer.summary.refused.size)
    }

    @Test fun aRegistrationWhoseAnswerWasLostIsRepeatedWithItsKeyAfterARestart() = runBlocking {
        val dir = tempDir("till-store-reg")
        val app = app(FileStore(dir))
        // The server registers the till, but its answer does not come back.
        server.loseActivationAnswers = 1
        val lost = runCatching {
            app.register(app.newActivationScreen().apply { cashRegisterName = "Kassa 1"; corporateId = "5560360793" })
        }.exceptionOrNull()
        assertTrue("$lost", lost is TillgateException.Failed && lost.transient)
        assertEquals(1, server.registrations)
        assertFalse(app.isRegistered)
        app.close()
        // Restarted: the form comes back filled in; registering again sends the same key.
        val restarted = app(FileStore(dir))
        assertEquals("Kassa 1", restarted.unansweredRegistration?.cashRegisterName)
        val form = restarted.newActivationScreen()
        assertEquals("5560360793", form.corporateId)
        val a = restarted.register(form)
        assertEquals(1, server.registrations)
        assertEquals(2, server.activationPosts)
        assertEquals("TG-TEST-0001", a.productionNumber)
        assertNull(restarted.unansweredRegistration)
        assertNull(FileStore(dir).get(Keys.ACTIVATION_ATTEMPT))
        server.approveAll()
        assertTrue(restarted.refreshHandshake() is HandshakeStatus.Approved)
    }

    @Test fun aRegistrationKeyIsKeptWhileUnansweredAndDroppedOnARefusal() = runBlocking {
        val store = MemoryStore()
        val app = app(store, OFFLINE_URL)
        val form = app.newActivationScreen().apply { cashRegisterName = "Kassa 1"; corporateId = "5560360793" }
        fun key() = store.get(Keys.ACTIVATION_ATTEMPT)?.substringBefore('\n')
        assertEquals("network", (runCatching { app.register(form) }.exceptionOrNull() as TillgateException.Failed).code)
        val first = key()
        assertNotNull(first)
        assertTrue(first!!.length >= 32)
        // Unavailable (503) is no answer: the key stays for the next try.
        app.serverUrl = server.url
        server.unavailable = Triple(503, "schema_newer", null)
        runCatching { app.register(form) }
        assertEquals(first, key())
        // Another request is another registration: a new key.
        form.cashRegisterName = "Kassa 2"
        runCatching { app.register(form) }
        val second = key()
        assertNotEquals(first, second)
        // Refused for good: forgotten, the next try draws a new key.
        server.unavailable = Triple(409, "activation_not_repeatable", null)
        assertEquals("activation_not_repeatable", (runCatching { app.register(form) }.exceptionOrNull() as TillgateException.Failed).code)
        assertNull(key())
        server.unavailable = null
        assertEquals("TG-TEST-0001", app.register(form).productionNumber)
        assertNull(key())
        assertEquals(1, server.registrations)
    }
}
