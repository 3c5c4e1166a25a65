package dev.tillgate.sample

import dev.tillgate.Activation
import dev.tillgate.Client
import dev.tillgate.ClientConfig
import dev.tillgate.Item
import dev.tillgate.Outbox
import dev.tillgate.ReceiptClaims
import dev.tillgate.Submitted
import dev.tillgate.SyncReport
import dev.tillgate.TillgateException
import dev.tillgate.Transaction
import dev.tillgate.TransactionType
import dev.tillgate.TrustedKeys
import dev.tillgate.VatLine
import dev.tillgate.WitnessProblem
import dev.tillgate.unixTimeMs
import dev.tillgate.validateTransaction
import java.io.File
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock

/** The handshake light on the main screen. */
sealed class HandshakeStatus {
    object NotRegistered : HandshakeStatus() { override fun toString() = "NotRegistered" }
    object Pending : HandshakeStatus() { override fun toString() = "Pending" }
    /** [serverTime]: the server's signed time (Unix seconds), verified by the client. */
    data class Approved(val serverTime: Long, val trustedTimeFloor: Long) : HandshakeStatus()
    data class Refused(val code: String, val message: String) : HandshakeStatus()
    /**
     * The server cannot answer now: unreachable, timed out, busy (429) or unavailable
     * (5xx, e.g. while it is upgraded); sales are queued. [code] is the client's code
     * (`network`, `timeout`, `rate_limited`, `schema_newer`, ...), [retryAfterMs] the
     * server's Retry-After when it named one: ask again no sooner.
     */
    data class Unreachable(val message: String, val code: String = "network", val retryAfterMs: Long? = null) : HandshakeStatus()
}

/** The activation form is not valid; field name to messages. */
class InvalidForm(val errors: Map<String, List<String>>) : Exception("invalid activation form: ${errors.keys}")

/** A product on the sale buttons; prices include VAT, in minor units. */
data class Product(val name: String, val price: Long, val vatRateBasisPoints: Int)

/**
 * The app's logic, with no Android in it: the Activity only shows what this returns.
 * Every call to the server goes through tillgate-client ([Client]) and every sale
 * through its durable offline queue ([Outbox], one file per sale in [queueDir]); every
 * rule comes from tillgate-core. Both through the uniffi bindings (`dev.tillgate`).
 *
 * Network calls are `suspend` functions (the Activity runs them in a coroutine).
 */
class TillApp private constructor(
    private val store: KeyValueStore,
    serverUrl: String,
    private val trustedKeys: TrustedKeys,
    val deviceId: String,
    val applicationPackage: String,
    /** The offline queue: persisted before anything is sent, one Idempotency-Key per sale. */
    val queue: Outbox,
    private val clock: () -> Long,
) : AutoCloseable {
    /** Closes the queue: its directory is free for the next [open] (a restart). */
    override fun close() = queue.close()

    companion object {
        private val sharedLock = Mutex()
        private var shared: TillApp? = null

        /**
         * The process's one [TillApp], opened by [open] at the first call. The queue locks
         * its directory (a second outbox on it fails with `queue_in_use`: two outboxes
         * would give two sales one record), so an Activity recreated on rotation takes
         * the app already open instead of opening another.
         */
        suspend fun shared(open: suspend () -> TillApp): TillApp =
            sharedLock.withLock { shared ?: open().also { shared = it } }

        /** Opens the app over its stored state and its queue directory (`filesDir` on Android). */
        suspend fun open(
            store: KeyValueStore,
            serverUrl: String,
            trustedKeys: TrustedKeys,
            deviceId: String,
            applicationPackage: String,
            queueDir: File,
            clock: () -> Long = { unixTimeMs() / 1000 },
        ): TillApp {
            queueDir.mkdirs()
            return TillApp(store, serverUrl, trustedKeys, deviceId, applicationPackage, Outbox.openDirectory(queueDir.path), clock)
                .also { it.adoptOwnWitness() }
        }

        /** Where earlier versions of this app kept the register's witness (now the queue's). */
        const val OLD_WITNESS = "witness_receipt"
    }

    /**
     * Earlier versions kept the register's witness in [store]: the queue takes it once
     * (only if it keeps none yet), and the old entry goes once the queue has answered.
     * A receipt that can never be adopted (not one the app trusts, or of an earlier
     * registration) is dropped; after any other failure (storage) it stays for the next
     * start.
     */
    private suspend fun adoptOwnWitness() {
        val own = store.get(OLD_WITNESS) ?: return
        val register = store.get(Keys.PRODUCTION_NUMBER)
        if (register != null) {
            try {
                queue.adoptWitness(client, own, register)
            } catch (e: TillgateException.Failed) {
                if (e.code != "invalid_witness") return
            } catch (e: Exception) {
                return
            }
        }
        store.remove(OLD_WITNESS)
    }

    private var client: Client = newClient(serverUrl)

    /**
     * The server the register talks to (a settings screen can change it). Setting it
     * builds a new [Client] with the same API key and trusted time floor.
     */
    var serverUrl: String = serverUrl
        set(value) {
            field = value
            client.close()
            client = newClient(value)
        }

    private val guard = StartupGuard(store, trustedKeys, deviceId, applicationPackage)
    var handshake: HandshakeStatus = if (store.get(Keys.API_KEY) == null) HandshakeStatus.NotRegistered else HandshakeStatus.Pending
        private set

    val productionNumber: String? get() = store.get(Keys.PRODUCTION_NUMBER)
    val isRegistered: Boolean get() = store.get(Keys.API_KEY) != null

    /** A client for [url] that knows what the app kept: API key and trusted time floor. */
    private fun newClient(url: String): Client {
        val c = Client(ClientConfig(baseUrl = url, deviceId = deviceId, applicationPackage = applicationPackage), trustedKeys)
        store.get(Keys.API_KEY)?.let { c.setApiKey(it) }
        store.get(Keys.TRUSTED_TIME_FLOOR)?.toLongOrNull()?.let { c.restoreTrustedTimeFloor(it) }
        return c
    }

    /** The start-up check: run, show the activation screen, or refuse to run. */
    fun start(): StartupDecision = guard.check(clock())

    fun newActivationScreen() = ActivationScreen(deviceId, applicationPackage)

    /** Registers this register (the client checks the request with core first); it is pending until an admin approves it. */
    suspend fun register(screen: ActivationScreen): Activation {
        val errors = screen.errors()
        if (errors.isNotEmpty()) throw InvalidForm(errors)
        val a = client.activate(screen.request())
        store.put(Keys.ACTIVATION_ID, a.activationId)
        store.put(Keys.PRODUCTION_NUMBER, a.productionNumber)
        store.put(Keys.API_KEY, a.apiKey)
        store.put(Keys.STATUS, a.status)
        store.remove(Keys.DESCRIPTOR)
        // A new registration starts a new receipt chain. The registration stands if this
        // fails: the old witness then shows up as a problem at the first sale. The old
        // chain's problem goes with it (nothing was asked of the operator here; a screen
        // that shows the problem first passes the one it showed to resetWitnessSeen).
        runCatching { queue.resetWitness() }
        handshake = HandshakeStatus.Pending
        return a
    }

    /** Asks the server; the client verifies the signed, nonce-bound server time, which becomes the trusted time floor (kept). */
    suspend fun refreshHandshake(): HandshakeStatus {
        if (!isRegistered) return HandshakeStatus.NotRegistered.also { handshake = it }
        handshake = try {
            val h = client.handshake()
            val floor = maxOf(client.trustedTimeFloor() ?: h.serverTime, store.get(Keys.TRUSTED_TIME_FLOOR)?.toLongOrNull() ?: 0)
            store.put(Keys.TRUSTED_TIME_FLOOR, floor.toString())
            store.put(Keys.STATUS, h.status)
            HandshakeStatus.Approved(h.serverTime, floor)
        } catch (e: TillgateException.Failed) {
            when {
                e.code == "pending_approval" -> HandshakeStatus.Pending
                // Unreachable, 429, 5xx (an upgrade under way): not a refusal, try later.
                e.transient -> HandshakeStatus.Unreachable(e.reason, e.code, e.retryAfterMs?.toLong())
                else -> HandshakeStatus.Refused(e.code, e.reason)
            }
        }
        return handshake
    }

    /** Fetches the signed descriptor (verified by the client), keeps it, and checks it as at start. */
    suspend fun fetchDescriptor(): StartupDecision {
        if (!isRegistered) return StartupDecision.NotActivated
        store.put(Keys.DESCRIPTOR, client.activationCode(clock()).jws)
        return start()
    }

    /** Rings up a sale: checked by core, persisted in the queue, then sent if the server is reachable. */
    suspend fun sell(lines: List<Pair<Product, Long>>): Submitted {
        val items = lines.map { (p, qty) -> Item(name = p.name, quantity = qty, amount = p.price * qty) }
        val vat = lines.groupBy { it.first.vatRateBasisPoints }.toSortedMap().map { (rate, ls) ->
            val gross = ls.sumOf { (p, q) -> p.price * q }
            VatLine(rate = rate.toUInt(), amount = Math.round(gross * rate / (10_000.0 + rate)))
        }
        val tx = Transaction(kind = TransactionType.SALE, currency = "SEK", total = items.sumOf { it.amount }, items = items, vat = vat)
        validateTransaction(tx)
        return queue.submit(client, tx, null, unixTimeMs())
    }

    /**
     * Sends the queue: at once ([force], the sync button or "back online"), or when the
     * oldest sale is due after a failure (a timer).
     */
    suspend fun sync(force: Boolean = true): SyncReport =
        if (force) queue.syncNow(client, unixTimeMs()) else queue.sync(client, unixTimeMs())

    /**
     * What was wrong with a receipt the server gave (`witness_mismatch`: it forks the
     * chain from the register's witness; `invalid_receipt`...), or null. The queue keeps
     * the register's witness (the newest receipt it accepted, moved by every sale it
     * sends) and the first receipt that did not fit, as evidence. The sale itself stays
     * stored: this is to show, not a reason to ring it up again.
     */
    val witnessProblem: String? get() = queue.witnessProblem()?.let { "${it.code}: ${it.message}" }

    /** The problem [witnessProblem] describes, as the queue keeps it: what to pass to [resetWitness]. */
    val witnessProblemRecord: WitnessProblem? get() = queue.witnessProblem()

    /**
     * Once the operator has dealt with the problem the app showed them ([witnessProblemRecord]:
     * reported it, registered the till again, ...): forgets the register's witness and
     * that problem, and only that one. A different problem found meanwhile (by a sync
     * running at the same time), or one kept when `shown` is null, stays and is returned,
     * to show in its turn; null when none is left.
     */
    suspend fun resetWitness(shown: WitnessProblem?): WitnessProblem? = queue.resetWitnessSeen(shown)

    /**
     * Fetches every stored transaction of this register and verifies it against its
     * receipt, the receipt chain, and that the chain still holds the newest receipt this
     * register saw (the queue's witness): a history cut back or rewritten on the server
     * since throws `witness_mismatch`. What verifies becomes the next witness.
     */
    suspend fun verifyReceipts(): List<ReceiptClaims> {
        if (!isRegistered) return emptyList()
        return queue.verifyHistory(client).receipts
    }
}
