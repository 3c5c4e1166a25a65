package dev.tillgate.sample

import dev.tillgate.QueueError
import dev.tillgate.QueuedTransaction
import dev.tillgate.Submitted
import dev.tillgate.SyncReport
import dev.tillgate.WitnessProblem

/**
 * One sale as the app rang it up. [idempotencyKey] is the key the server stores it
 * under (the same for every repeat of this basket until the cashier has seen a result);
 * pass this to [TillApp.saleShown] once [result] is on the screen.
 */
data class Sale(val idempotencyKey: String, val result: Submitted)

/** A sale the server refused for good: kept in the queue as failed, NOT stored by the server. */
data class RefusedSale(
    val idempotencyKey: String,
    val total: Long,
    val currency: String,
    val code: String,
    val message: String,
    val httpStatus: Int?,
) {
    override fun toString() = "${money(total, currency)}: $code: $message"

    companion object {
        fun of(e: QueuedTransaction) = RefusedSale(
            idempotencyKey = e.idempotencyKey,
            total = e.transaction.total,
            currency = e.transaction.currency,
            code = e.lastError?.code ?: "refused",
            message = e.lastError?.message ?: "refused by the server",
            httpStatus = e.lastError?.httpStatus?.toInt(),
        )
    }
}

/**
 * What the till shows about its queue: sales still waiting to be sent ([pending]),
 * sales the server refused ([refused], kept, never "stored"), records the queue could
 * not read, the error that holds the queue back, and a receipt that did not fit the
 * register's chain. "Every sale is stored" only when there is none of these.
 */
data class QueueSummary(
    val pending: Int,
    val refused: List<RefusedSale>,
    /** The last error a send met, while the queue is not healthy (network down, key expired...). */
    val lastError: QueueError?,
    /** When the queue is next due (Unix ms), null when nothing is pending. */
    val nextAttemptAtMs: Long?,
    /** Queue records that could not be read (they stay until the app removes them). */
    val unreadable: Int,
    /** A receipt the server gave that did not fit the register's witness (a forked chain). */
    val witnessProblem: WitnessProblem?,
) {
    val allStored: Boolean get() = pending == 0 && refused.isEmpty() && unreadable == 0

    /** The lines to show, most important first. */
    fun lines(): List<String> = buildList {
        if (allStored) add("Queue empty: every sale is stored by the server")
        if (pending > 0) {
            add("$pending sale(s) waiting in the offline queue" +
                (lastError?.let { "; last error ${it.code}: ${it.message}" } ?: ""))
        }
        if (refused.isNotEmpty()) {
            add("${refused.size} sale(s) REFUSED by the server, kept in the queue, not stored:")
            refused.forEach { add("  • $it") }
        }
        if (unreadable > 0) add("$unreadable queue record(s) cannot be read")
        witnessProblem?.let { add("A receipt did not fit this register's chain: ${it.code}: ${it.message}") }
    }
}

/** What one sync did, and the queue after it: what the Sync button and the timer show. */
data class SyncOutcome(
    /** Sales the server stored in this run. */
    val sent: Int,
    /** Sales the server refused for good in this run (kept in the queue as failed). */
    val refused: List<RefusedSale>,
    /** The error that stopped the run (the sales behind it stay pending), or null. */
    val stoppedBy: QueueError?,
    /** Another sync was running: this one did nothing. */
    val alreadyRunning: Boolean,
    /** A receipt of this run that did not fit the register's witness (a forked chain). */
    val witnessProblem: WitnessProblem?,
    val report: SyncReport,
    val summary: QueueSummary,
) {
    /** Nothing happened worth telling (a timer's sync with nothing due). */
    val quiet: Boolean get() = sent == 0 && refused.isEmpty() && stoppedBy == null && witnessProblem == null && !alreadyRunning

    fun lines(): List<String> = buildList {
        if (alreadyRunning) add("Sync: another sync is running")
        if (sent > 0) add("Sync: $sent sale(s) stored by the server")
        if (refused.isNotEmpty()) {
            add("Sync: the server REFUSED ${refused.size} sale(s):")
            refused.forEach { add("  • $it") }
        }
        stoppedBy?.let { add("Sync stopped by ${it.code}: ${it.message}; the sales behind it stay queued") }
        witnessProblem?.let { add("Sync: a receipt did not fit this register's chain: ${it.code}: ${it.message}") }
        if (quiet) add("Sync: nothing to send")
    }
}

internal fun money(minor: Long, currency: String): String {
    val a = Math.abs(minor)
    return "${if (minor < 0) "-" else ""}${a / 100}.${"%02d".format(a % 100)} $currency"
}
