package dev.tillgate.sample

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.file.Files

/** The app's flow against an in-memory server: activation, handshake, descriptor, sales. */
class TillAppTest {
    private val coffee = Product("Kaffe", 3200, 1200)
    private val bag = Product("Tygkasse", 4900, 2500)

    private fun app(store: KeyValueStore, server: FakePosServer) =
        TillApp(store, server, TestKeys.trusted(), "device-1", "com.example.pos") { TestKeys.NOW }

    private fun registered(store: KeyValueStore, server: FakePosServer): TillApp {
        val app = app(store, server)
        app.register(app.newActivationScreen().apply { cashRegisterName = "Kassa 1"; corporateId = "5560360793" })
        return app
    }

    @Test fun registerThenPendingThenApprovedThenTheDescriptorRuns() {
        val store = MemoryStore()
        val server = FakePosServer()
        val app = app(store, server)
        assertEquals(HandshakeStatus.NotRegistered, app.handshake)
        assertEquals(StartupDecision.NotActivated, app.start())
        app.register(app.newActivationScreen().apply { cashRegisterName = "Kassa 1"; corporateId = "5560360793" })
        assertEquals("TG-TEST-0001", app.productionNumber)
        assertEquals(HandshakeStatus.Pending, app.refreshHandshake())
        server.approveAll()
        val h = app.refreshHandshake()
        assertTrue("$h", h is HandshakeStatus.Approved)
        assertEquals(TestKeys.NOW.toString(), store.get(Keys.TRUSTED_TIME_FLOOR))
        val d = app.fetchDescriptor()
        assertTrue("$d", d is StartupDecision.Run)
        // The next start (a new process) runs offline from the stored descriptor.
        server.online = false
        assertTrue(app(store, server).start() is StartupDecision.Run)
    }

    @Test fun aHandshakeWithoutTheServerSaysUnreachable() {
        val server = FakePosServer()
        val app = registered(MemoryStore(), server)
        server.online = false
        assertTrue(app.refreshHandshake() is HandshakeStatus.Unreachable)
    }

    @Test fun salesWaitInTheQueueWhileOfflineAndDrainWhenBackOnline() {
        val dir = Files.createTempDirectory("till-store").toFile()
        val server = FakePosServer()
        registered(FileStore(dir), server).also { server.approveAll() }
        server.online = false
        val app = app(FileStore(dir), server)
        val (_, r1) = app.sell(listOf(coffee to 2L))
        val (_, r2) = app.sell(listOf(bag to 1L, coffee to 1L))
        assertNotNull(r1.stoppedBy)
        assertEquals(2, r2.left)
        assertEquals(2, app.queue.size)
        assertEquals(0, server.stored.size)
        // The app is restarted while still offline: the queue is on disk.
        val restarted = app(FileStore(dir), server)
        assertEquals(2, restarted.queue.size)
        assertEquals(listOf(6400L, 8100L), restarted.queue.entries().map { it.total })
        server.online = true
        val r = restarted.sync()
        assertNull(r.stoppedBy)
        assertEquals(0, r.left)
        assertEquals(listOf(1L, 2L), r.sent.map { it.sequence })
        assertEquals(2, server.stored.size)
    }

    @Test fun aLostAnswerIsRetriedWithTheSameKeyAndStoredOnce() {
        val server = FakePosServer()
        val app = registered(MemoryStore(), server).also { server.approveAll() }
        server.loseNextAnswer = true
        val (queued, first) = app.sell(listOf(coffee to 1L))
        assertNotNull(first.stoppedBy)
        assertEquals(1, app.queue.size)
        assertEquals(queued.key, app.queue.entries().single().key)
        val second = app.sync()
        assertEquals(0, second.left)
        assertEquals(2, server.posts)
        assertEquals(1, server.stored.size)
        assertEquals(setOf(queued.key), server.stored.keys)
    }

    @Test fun anInvalidSaleNeverEntersTheQueue() {
        val server = FakePosServer()
        val app = registered(MemoryStore(), server)
        try {
            app.sell(emptyList())
            throw AssertionError("an empty sale must be refused by core")
        } catch (e: dev.tillgate.TillgateException.Failed) {
            assertEquals("invalid_transaction", e.code)
        }
        assertEquals(0, app.queue.size)
    }
}
