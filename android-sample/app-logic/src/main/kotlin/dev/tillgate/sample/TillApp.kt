package dev.tillgate.sample

import dev.tillgate.Activation
import dev.tillgate.ActivationRequest
import dev.tillgate.Client
import dev.tillgate.ClientConfig
import dev.tillgate.Item
import dev.tillgate.Outbox
import dev.tillgate.QueueError
import dev.tillgate.QueuedTransaction
import dev.tillgate.ReceiptClaims
import dev.tillgate.TillgateException
import dev.tillgate.Transaction
import dev.tillgate.TransactionType
import dev.tillgate.TrustedKeys
import dev.tillgate.VatLine
import dev.tillgate.WitnessProblem
import dev.tillgate.transactionCanonicalJson
import dev.tillgate.transactionFromJson
import dev.tillgate.unixTimeMs
import dev.tillgate.validateTransaction
import java.io.File
import java.net.URLDecoder
import java.net.URLEncoder
import java.util.UUID
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

    /**
     * The activation form. After a registration that got no answer (see
     * [unansweredRegistration]) it is filled in with that request, so that pressing
     * Register again repeats it with the same key.
     */
    fun newActivationScreen(): ActivationScreen {
        val screen = ActivationScreen(deviceId, applicationPackage)
        val r = unansweredRegistration
        if (r != null && r.deviceId == deviceId && r.applicationPackage == applicationPackage) {
            screen.cashRegisterName = r.cashRegisterName
            screen.corporateId = r.corporateId
            screen.country = r.country ?: screen.country
            screen.validFrom = r.validFrom
            screen.validTo = r.validTo
        }
        return screen
    }

    /** A registration sent (maybe received by the server) whose answer never came: show it, offer to repeat it. */
    val unansweredRegistration: ActivationRequest?
        get() = if (isRegistered) null else store.get(Keys.ACTIVATION_ATTEMPT)?.let { decodeAttempt(it)?.second }

    /**
     * Registers this register (the client checks the request with core first); it is
     * pending until an admin approves it.
     *
     * Sent with an Idempotency-Key (a UUID) that is stored with the request before the
     * first send. When no answer arrives (timeout, no network, the app killed meanwhile)
     * the server may have registered the till all the same: registering again with the
     * same request, while no API key is stored, sends the same key, and the server
     * answers with that one registration and a fresh API key instead of creating
     * another. The key is forgotten once an answer arrives, or when the server refuses
     * for good (an error with an HTTP status that is not transient: 400, 409
     * `activation_not_repeatable`, 422 `idempotency_key_reused`...); the next try then
     * draws a new key.
     */
    suspend fun register(screen: ActivationScreen): Activation {
        val errors = screen.errors()
        if (errors.isNotEmpty()) throw InvalidForm(errors)
        val request = screen.request()
        val key = activationKeyFor(request)
        val a = try {
            client.activateWithKey(request, key)
        } catch (e: TillgateException.Failed) {
            // Refused for good (a 4xx: a bad field, a decided registration); not a
            // redirect (`unexpected_redirect`, 3xx: the server URL needs fixing).
            if (!e.transient && (e.httpStatus?.toInt() ?: 0) >= 400) forgetAttempt(key)
            throw e
        }
        store.put(Keys.ACTIVATION_ID, a.activationId)
        store.put(Keys.PRODUCTION_NUMBER, a.productionNumber)
        store.put(Keys.API_KEY, a.apiKey)
        store.put(Keys.STATUS, a.status)
        // Answered and kept: a later registration is a new one, with a new key.
        forgetAttempt(key)
        store.remove(Keys.DESCRIPTOR)
        // A new registration starts a new receipt chain. The registration stands if this
        // fails: the old witness then shows up as a problem at the first sale. The old
        // chain's problem goes with it (nothing was asked of the operator here; a screen
        // that shows the problem first passes the one it showed to resetWitnessSeen).
        runCatching { queue.resetWitness() }
        handshake = HandshakeStatus.Pending
        return a
    }

    private val attemptLock = Mutex()

    /** The stored key when the same request was sent without an answer and no API key is stored; else a new key, stored first. */
    private suspend fun activationKeyFor(request: ActivationRequest): String = attemptLock.withLock {
        val kept = store.get(Keys.ACTIVATION_ATTEMPT)?.let { decodeAttempt(it) }
        if (kept != null && kept.second == request && !isRegistered) return@withLock kept.first
        UUID.randomUUID().toString().also { store.put(Keys.ACTIVATION_ATTEMPT, "$it\n${encodeRequest(request)}") }
    }

    private suspend fun forgetAttempt(key: String) = attemptLock.withLock {
        if (store.get(Keys.ACTIVATION_ATTEMPT)?.substringBefore('\n') == key) store.remove(Keys.ACTIVATION_ATTEMPT)
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
                // The server URL answers with a redirect: not this register's refusal.
                e.code == "unexpected_redirect" -> HandshakeStatus.Unreachable(e.reason, e.code, null)
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

    /**
     * Rings up a sale: checked by core, persisted in the queue, then sent if the server
     * is reachable. [Sale.result]: sent, queued, or refused by the server (kept as
     * failed); an exception means the sale was not kept.
     *
     * The sale's Idempotency-Key is the app's: a new one (a UUID) is stored with the
     * basket before the sale is submitted, and the same basket is submitted with it
     * again until the cashier has seen a result ([saleShown]). So when the first try's
     * result never reached the screen (the call cancelled with its Activity, the app
     * killed, the answer lost), selling the same basket again, also after a restart,
     * resubmits that one sale: the server answers the sale it stored, it books no
     * second one. A different basket replaces the unseen one with a new key.
     */
    suspend fun sell(lines: List<Pair<Product, Long>>): Sale {
        val items = lines.map { (p, qty) -> Item(name = p.name, quantity = qty, amount = p.price * qty) }
        val vat = lines.groupBy { it.first.vatRateBasisPoints }.toSortedMap().map { (rate, ls) ->
            val gross = ls.sumOf { (p, q) -> p.price * q }
            VatLine(rate = rate.toUInt(), amount = Math.round(gross * rate / (10_000.0 + rate)))
        }
        val tx = Transaction(kind = TransactionType.SALE, currency = "SEK", total = items.sumOf { it.amount }, items = items, vat = vat)
        validateTransaction(tx)
        val key = saleKeyFor(tx)
        val result = try {
            queue.submit(client, tx, key, unixTimeMs())
        } catch (e: TillgateException.Failed) {
            // Not kept (refused before it was queued): nothing to resubmit under this key.
            forgetSale(key)
            throw e
        }
        return Sale(key, result)
    }

    /**
     * The sale rung up whose result the cashier has not seen (the app stopped before it
     * showed one): show it; selling the same basket resubmits it with its key.
     */
    val unconfirmedSale: Transaction?
        get() = store.get(Keys.SALE_IN_PROGRESS)?.let { v -> runCatching { transactionFromJson(v.substringAfter('\n')) }.getOrNull() }

    /**
     * The cashier has seen [sale]'s result: its key is forgotten, and the same basket
     * sold again is a new sale. (A newer sale's key, if one was rung up since, stays.)
     */
    suspend fun saleShown(sale: Sale) = forgetSale(sale.idempotencyKey)

    private suspend fun forgetSale(key: String) = saleLock.withLock {
        if (store.get(Keys.SALE_IN_PROGRESS)?.substringBefore('\n') == key) store.remove(Keys.SALE_IN_PROGRESS)
    }

    private val saleLock = Mutex()

    /** The unseen sale's key when [tx] is its basket; else a new key, stored with [tx] first. */
    private suspend fun saleKeyFor(tx: Transaction): String = saleLock.withLock {
        val basket = transactionCanonicalJson(tx)
        val kept = store.get(Keys.SALE_IN_PROGRESS)?.split('\n', limit = 2)
        if (kept != null && kept.size == 2 && kept[1] == basket) return@withLock kept[0]
        UUID.randomUUID().toString().also { store.put(Keys.SALE_IN_PROGRESS, "$it\n$basket") }
    }

    /**
     * Sends the queue: at once ([force], the sync button or "back online"), or when the
     * oldest sale is due after a failure (the periodic timer). Answers what to show:
     * what was stored, what the server refused, the error that stopped the run, a
     * receipt that did not fit, and the queue after it.
     */
    suspend fun sync(force: Boolean = true): SyncOutcome {
        val now = unixTimeMs()
        val r = if (force) queue.syncNow(client, now) else queue.sync(client, now)
        val entries = queue.entries()
        val refused = r.failed.mapNotNull { k -> entries.find { it.idempotencyKey == k }?.let(RefusedSale::of) }
        val stoppedBy = r.stoppedBy?.let { code ->
            queue.lastError()?.takeIf { it.code == code } ?: QueueError(code, code, now, null, emptyList())
        }
        return SyncOutcome(r.sent.size, refused, stoppedBy, r.alreadyRunning, r.witnessProblem, r, queueSummary(entries))
    }

    /** What the till shows about its queue: pending, refused (failed) sales, the error holding it back. */
    fun queueSummary(): QueueSummary = queueSummary(queue.entries())

    private fun queueSummary(entries: List<QueuedTransaction>): QueueSummary {
        val pending = entries.count { !it.failed }
        return QueueSummary(
            pending = pending,
            refused = entries.filter { it.failed }.map(RefusedSale::of),
            lastError = if (pending > 0) queue.lastError() else null,
            nextAttemptAtMs = queue.nextAttemptAt(),
            unreadable = queue.corruptRecords().size,
            witnessProblem = queue.witnessProblem(),
        )
    }

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

/** The stored activation attempt: its key, a newline, then the request. */
private fun decodeAttempt(value: String): Pair<String, ActivationRequest>? {
    val parts = value.split('\n', limit = 2)
    if (parts.size != 2) return null
    return decodeRequest(parts[1])?.let { parts[0] to it }
}

/** The request as `field=value&...` (URL-encoded values; a missing optional field is left out). */
private fun encodeRequest(r: ActivationRequest): String = listOf(
    "cashRegisterName" to r.cashRegisterName, "deviceId" to r.deviceId, "validFrom" to r.validFrom,
    "validTo" to r.validTo, "corporateId" to r.corporateId, "applicationPackage" to r.applicationPackage,
    "country" to r.country, "extrasJson" to r.extrasJson,
).filter { it.second != null }.joinToString("&") { (k, v) -> "$k=${URLEncoder.encode(v, "UTF-8")}" }

private fun decodeRequest(text: String): ActivationRequest? {
    val m = text.split('&').filter { it.isNotEmpty() }.associate {
        val (k, v) = (it.split('=', limit = 2) + "").take(2)
        k to URLDecoder.decode(v, "UTF-8")
    }
    return ActivationRequest(
        cashRegisterName = m["cashRegisterName"] ?: return null,
        deviceId = m["deviceId"] ?: return null,
        validFrom = m["validFrom"] ?: return null,
        validTo = m["validTo"] ?: return null,
        corporateId = m["corporateId"] ?: return null,
        applicationPackage = m["applicationPackage"] ?: return null,
        country = m["country"],
        extrasJson = m["extrasJson"],
    )
}
