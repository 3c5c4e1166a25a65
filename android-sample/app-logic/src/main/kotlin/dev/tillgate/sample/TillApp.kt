package dev.tillgate.sample

import dev.tillgate.Item
import dev.tillgate.ReceiptClaims
import dev.tillgate.TillgateException
import dev.tillgate.Transaction
import dev.tillgate.TransactionType
import dev.tillgate.TrustedKeys
import dev.tillgate.VatLine
import dev.tillgate.verifyReceiptChain
import dev.tillgate.verifyServerTime
import java.io.IOException
import java.security.SecureRandom

/** The handshake light on the main screen. */
sealed class HandshakeStatus {
    object NotRegistered : HandshakeStatus() { override fun toString() = "NotRegistered" }
    object Pending : HandshakeStatus() { override fun toString() = "Pending" }
    data class Approved(val serverTime: String, val trustedTimeFloor: Long) : HandshakeStatus()
    data class Refused(val code: String, val message: String) : HandshakeStatus()
    data class Unreachable(val message: String) : HandshakeStatus()
}

/** The activation form is not valid; field name to messages. */
class InvalidForm(val errors: Map<String, List<String>>) : Exception("invalid activation form: ${errors.keys}")

/** A product on the sale buttons; prices include VAT, in minor units. */
data class Product(val name: String, val price: Long, val vatRateBasisPoints: Int)

/**
 * The app's logic, with no Android in it: the Activity only shows what this returns.
 * Every rule comes from tillgate-core through the uniffi bindings.
 */
class TillApp(
    private val store: KeyValueStore,
    private val server: PosServer,
    private val trustedKeys: TrustedKeys,
    val deviceId: String,
    val applicationPackage: String,
    private val clock: () -> Long = { System.currentTimeMillis() / 1000 },
) {
    val queue = SaleQueue(store)
    private val guard = StartupGuard(store, trustedKeys, deviceId, applicationPackage)
    var handshake: HandshakeStatus = if (store.get(Keys.API_KEY) == null) HandshakeStatus.NotRegistered else HandshakeStatus.Pending
        private set

    val productionNumber: String? get() = store.get(Keys.PRODUCTION_NUMBER)
    val isRegistered: Boolean get() = store.get(Keys.API_KEY) != null

    /** The start-up check: run, show the activation screen, or refuse to run. */
    fun start(): StartupDecision = guard.check(clock())

    fun newActivationScreen() = ActivationScreen(deviceId, applicationPackage)

    /** Registers this register; it is pending until an admin approves it. */
    fun register(screen: ActivationScreen): Registration {
        val errors = screen.errors()
        if (errors.isNotEmpty()) throw InvalidForm(errors)
        val r = server.activate(screen.request())
        store.put(Keys.ACTIVATION_ID, r.activationId)
        store.put(Keys.PRODUCTION_NUMBER, r.productionNumber)
        store.put(Keys.API_KEY, r.apiKey)
        store.put(Keys.STATUS, r.status)
        store.remove(Keys.DESCRIPTOR)
        handshake = HandshakeStatus.Pending
        return r
    }

    /** Asks the server; a signed, nonce-bound server time becomes the trusted time floor. */
    fun refreshHandshake(): HandshakeStatus {
        val key = store.get(Keys.API_KEY) ?: return HandshakeStatus.NotRegistered.also { handshake = it }
        val nonce = ByteArray(12).also(SecureRandom()::nextBytes).joinToString("") { "%02x".format(it) }
        handshake = try {
            val h = server.handshake(key, deviceId, nonce)
            val t = verifyServerTime(h.signedTime, trustedKeys, nonce)
            val floor = maxOf(t.iat, store.get(Keys.TRUSTED_TIME_FLOOR)?.toLongOrNull() ?: 0)
            store.put(Keys.TRUSTED_TIME_FLOOR, floor.toString())
            store.put(Keys.STATUS, h.status)
            HandshakeStatus.Approved(h.serverTime, floor)
        } catch (e: ServerRefused) {
            if (e.code == "pending_approval") HandshakeStatus.Pending else HandshakeStatus.Refused(e.code, e.message ?: "")
        } catch (e: TillgateException.Failed) {
            HandshakeStatus.Refused(e.code, "the server's signed time does not verify: ${e.reason}")
        } catch (e: IOException) {
            HandshakeStatus.Unreachable(e.message ?: "network error")
        }
        return handshake
    }

    /** Fetches the signed descriptor, keeps it, and checks it as at start. */
    fun fetchDescriptor(): StartupDecision {
        val key = store.get(Keys.API_KEY) ?: return StartupDecision.NotActivated
        store.put(Keys.DESCRIPTOR, server.activationCode(key))
        return start()
    }

    /** Rings up a sale: checked by core, queued, then sent if the server is reachable. */
    fun sell(lines: List<Pair<Product, Long>>): Pair<QueuedSale, DrainReport> {
        val items = lines.map { (p, qty) -> Item(name = p.name, quantity = qty, amount = p.price * qty) }
        val vat = lines.groupBy { it.first.vatRateBasisPoints }.toSortedMap().map { (rate, ls) ->
            val gross = ls.sumOf { (p, q) -> p.price * q }
            VatLine(rate = rate.toUInt(), amount = Math.round(gross * rate / (10_000.0 + rate)))
        }
        val tx = Transaction(kind = TransactionType.SALE, currency = "SEK", total = items.sumOf { it.amount }, items = items, vat = vat)
        val queued = queue.enqueue(tx)
        return queued to sync()
    }

    /** Drains the queue (the sale button, a timer, or "back online" call this). */
    fun sync(): DrainReport {
        val key = store.get(Keys.API_KEY) ?: return DrainReport(emptyList(), "not registered", queue.size)
        return queue.drain(server, key)
    }

    /** Fetches every receipt of this register and verifies the chain with core. */
    fun verifyReceipts(): List<ReceiptClaims> {
        val key = store.get(Keys.API_KEY) ?: return emptyList()
        val receipts = server.receipts(key)
        return if (receipts.isEmpty()) emptyList() else verifyReceiptChain(receipts, trustedKeys, null)
    }
}
