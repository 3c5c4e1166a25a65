package dev.tillgate.sample

import com.google.gson.Gson
import com.google.gson.reflect.TypeToken
import dev.tillgate.Transaction
import dev.tillgate.transactionCanonicalJson
import dev.tillgate.validateTransaction
import java.io.IOException
import java.security.SecureRandom

/** One queued sale: its wire JSON and the Idempotency-Key it keeps on every retry. */
data class QueuedSale(
    val key: String,
    val json: String,
    val total: Long,
    var attempts: Int = 0,
    var lastError: String? = null,
    var failed: Boolean = false,
)

/** What one [SaleQueue.drain] did. */
data class DrainReport(val sent: List<StoredSale>, val stoppedBy: String?, val left: Int)

/**
 * The offline queue for sales. A sale is written to the store before its first send,
 * keeps one Idempotency-Key for every retry (the server stores it once per key), and
 * leaves the queue only when the server has stored it. A network failure stops the
 * drain and keeps everything; a refusal of the sale itself (4xx) marks it failed.
 *
 * STAND-IN for tillgate-client's Outbox, which the uniffi bindings do not export yet.
 */
class SaleQueue(private val store: KeyValueStore) {
    private val gson = Gson()
    private val random = SecureRandom()
    private val type = object : TypeToken<MutableList<QueuedSale>>() {}.type

    private fun load(): MutableList<QueuedSale> =
        store.get(Keys.QUEUE)?.let { gson.fromJson<MutableList<QueuedSale>>(it, type) } ?: mutableListOf()

    private fun save(list: List<QueuedSale>) = store.put(Keys.QUEUE, gson.toJson(list))

    @Synchronized fun entries(): List<QueuedSale> = load()
    val size: Int get() = entries().size

    /** Checks the sale with core, then persists it. Throws TillgateException for an invalid sale. */
    @Synchronized fun enqueue(tx: Transaction): QueuedSale {
        validateTransaction(tx)
        val key = ByteArray(16).also(random::nextBytes).joinToString("") { "%02x".format(it) }
        val sale = QueuedSale(key, transactionCanonicalJson(tx), tx.total)
        save(load() + sale)
        return sale
    }

    /** Sends what is queued, oldest first. */
    @Synchronized fun drain(server: PosServer, apiKey: String): DrainReport {
        val list = load()
        val sent = ArrayList<StoredSale>()
        for (sale in list.toList()) {
            if (sale.failed) continue
            sale.attempts += 1
            try {
                sent += server.submitTransaction(apiKey, sale.key, sale.json)
                list.remove(sale)
                save(list)
            } catch (e: IOException) {
                sale.lastError = "offline: ${e.message}"
                save(list)
                return DrainReport(sent, sale.lastError, list.size)
            } catch (e: ServerRefused) {
                sale.lastError = e.message
                val retryable = e.status >= 500 || e.status == 429 || e.status == 401 || e.status == 403
                if (!retryable) sale.failed = true
                save(list)
                if (retryable) return DrainReport(sent, sale.lastError, list.size)
            }
        }
        return DrainReport(sent, null, list.size)
    }
}
