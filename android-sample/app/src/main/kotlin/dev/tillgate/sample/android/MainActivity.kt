package dev.tillgate.sample.android

import android.annotation.SuppressLint
import android.app.Activity
import android.graphics.Color
import android.os.Bundle
import android.provider.Settings
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import dev.tillgate.Submitted
import dev.tillgate.TrustedKeys
import dev.tillgate.sample.ActivationScreen
import dev.tillgate.sample.FileStore
import dev.tillgate.sample.HandshakeStatus
import dev.tillgate.sample.InvalidForm
import dev.tillgate.sample.Product
import dev.tillgate.sample.Sale
import dev.tillgate.sample.StartupDecision
import dev.tillgate.sample.SyncOutcome
import dev.tillgate.sample.TillApp
import kotlinx.coroutines.Job
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filterNotNull
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import java.time.Instant

/**
 * The thin Android layer: it opens a [TillApp] (all logic lives in :app-logic), shows
 * what it returns and runs the client's suspend calls in a coroutine (the client does
 * its network work on its own threads). Nothing here decides.
 *
 * Screen work runs in this Activity's [scope] (cancelled with it); a sale runs in the
 * application's scope ([TillApplication]), so a rotation never cancels one half-sent.
 */
class MainActivity : Activity() {
    private val scope = MainScope()
    private val till get() = application as TillApplication
    private var syncLoop: Job? = null
    private var refused = false
    private lateinit var app: TillApp
    private lateinit var screen: ActivationScreen
    private val coffee = Product("Kaffe", 3200, 1200)
    private val bag = Product("Tygkasse", 4900, 2500)

    private fun <T : View> v(id: Int): T = findViewById(id)

    @SuppressLint("HardwareIds")
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        // The server's public keys are built into the app (assets/trusted-keys.json).
        val trusted = TrustedKeys.fromJwksJson(assets.open("trusted-keys.json").reader().readText())
        val deviceId = Settings.Secure.getString(contentResolver, Settings.Secure.ANDROID_ID) ?: "unknown-device"
        scope.launch {
            // One app per process: an Activity recreated (rotation) takes the open one,
            // whose queue holds the lock on its directory.
            app = TillApp.shared {
                TillApp.open(FileStore(filesDir.resolve("tillgate")), BuildConfig.SERVER_URL, trusted, deviceId,
                    packageName, filesDir.resolve("tillgate-queue"))
            }
            screen = app.newActivationScreen()
            startUp()
        }
    }

    private fun startUp() {
        // Protection against malware usage: a stored descriptor that fails stops the app here.
        when (val d = app.start()) {
            is StartupDecision.Refuse -> return refuse(d)
            is StartupDecision.Run -> showDescriptor(d)
            StartupDecision.NotActivated -> Unit
        }
        bindForm()
        v<Button>(R.id.handshakeButton).setOnClickListener { scope.launch { showHandshake(app.refreshHandshake()) } }
        v<Button>(R.id.descriptorButton).setOnClickListener {
            scope.launch {
                runCatching { app.fetchDescriptor() }
                    .onSuccess { d -> if (d is StartupDecision.Refuse) refuse(d) else showDescriptor(d) }
                    .onFailure { e -> v<TextView>(R.id.descriptorStatus).text = "Descriptor not fetched: ${e.message}" }
            }
        }
        v<Button>(R.id.sellCoffee).setOnClickListener { sell(coffee) }
        v<Button>(R.id.sellBag).setOnClickListener { sell(bag) }
        v<Button>(R.id.syncButton).setOnClickListener { scope.launch { showSync(app.sync(force = true), always = true) } }
        v<Button>(R.id.receiptsButton).setOnClickListener {
            scope.launch {
                v<TextView>(R.id.receiptsStatus).text = runCatching { app.verifyReceipts() }.fold(
                    { "Receipt chain verified: ${it.size} receipts" + (app.witnessProblem?.let { p -> "; a receipt was refused: $p" } ?: "") },
                    { "Receipt chain NOT verified: ${it.message}" })
            }
        }
        v<View>(R.id.activation).visibility = if (app.isRegistered) View.GONE else View.VISIBLE
        showQueue()
        app.unansweredRegistration?.let {
            v<TextView>(R.id.handshakeStatus).text =
                "The registration of ${it.cashRegisterName} got no answer: press Register again to repeat it (the server keeps it once)"
        }
        // A sale whose result was never shown (the app stopped), unless it is still being sent.
        if (till.saleJob?.isActive != true && till.saleResult.value == null) app.unconfirmedSale?.let {
            v<TextView>(R.id.receiptsStatus).text =
                "The last sale (${it.items.joinToString { i -> i.name }}, ${it.total / 100}.${"%02d".format(it.total % 100)} ${it.currency}) " +
                    "has no result yet: sell the same again to resend it under its key; it is booked once"
        }
        // A sale's result, whenever it comes back (also one started by an Activity since destroyed).
        scope.launch { till.saleResult.filterNotNull().collect { showSale(it) } }
        if (app.isRegistered) scope.launch { showHandshake(app.refreshHandshake()) }
    }

    private fun bindForm() {
        val fields = mapOf(
            "cashRegisterName" to v<EditText>(R.id.cashRegisterName),
            "corporateId" to v<EditText>(R.id.corporateId),
            "validFrom" to v<EditText>(R.id.validFrom),
            "validTo" to v<EditText>(R.id.validTo),
        )
        fields.getValue("validFrom").setText(screen.validFrom)
        fields.getValue("validTo").setText(screen.validTo)
        v<Button>(R.id.registerButton).setOnClickListener {
            screen.cashRegisterName = fields.getValue("cashRegisterName").text.toString()
            screen.corporateId = fields.getValue("corporateId").text.toString()
            screen.validFrom = fields.getValue("validFrom").text.toString()
            screen.validTo = fields.getValue("validTo").text.toString()
            // Every error next to its field, computed by core.
            val errors = screen.errors()
            fields.forEach { (name, field) -> field.error = errors[name]?.joinToString("; ") }
            if (errors.isEmpty()) {
                scope.launch {
                    runCatching { app.register(screen) }
                        .onSuccess { v<View>(R.id.activation).visibility = View.GONE; showHandshake(app.handshake) }
                        .onFailure { e ->
                            if (e is InvalidForm) fields.forEach { (n, f) -> f.error = e.errors[n]?.joinToString("; ") }
                            else v<TextView>(R.id.handshakeStatus).text = "Not registered: ${e.message}"
                        }
                }
            }
        }
    }

    /**
     * Sends the sale in the application's scope: it goes on when this Activity is
     * destroyed, and its result is shown by the Activity on screen then. While one is
     * being sent, taps wait for it. (TillApp keeps the basket's key until the result is
     * shown: a tap after a restart resubmits the same sale, never a second one.)
     */
    private fun sell(p: Product) {
        if (till.saleJob?.isActive == true) {
            v<TextView>(R.id.receiptsStatus).text = "A sale is being sent; its result follows"
            return
        }
        val app = app // the process's app, not this Activity
        val till = till
        till.saleJob = till.scope.launch { till.saleResult.value = runCatching { app.sell(listOf(p to 1L)) } }
    }

    private suspend fun showSale(r: Result<Sale>) {
        showQueue()
        r.onSuccess { sale ->
            when (val it = sale.result) {
                is Submitted.Sent -> v<TextView>(R.id.receiptsStatus).text = "Sale stored by the server (seq ${it.stored.sequence})" + (app.witnessProblem?.let { p -> "; its receipt was refused: $p" } ?: "")
                // Kept in the queue as failed: the app decides (retryFailed or discard).
                is Submitted.Refused -> v<TextView>(R.id.receiptsStatus).text = "The server REFUSED the sale (kept in the queue, marked failed, not stored): ${it.error.code}: ${it.error.message}"
                is Submitted.Queued -> v<TextView>(R.id.receiptsStatus).text = "Sale kept in the offline queue; it is sent when the server answers"
            }
        }
        // Not kept: nothing was stored (the basket stays).
        r.onFailure { e -> v<TextView>(R.id.receiptsStatus).text = "Sale not saved: ${e.message}" }
        // On screen now: the next sale of the same basket is a new one.
        till.saleResult.compareAndSet(r, null)
        r.getOrNull()?.let { app.saleShown(it) }
    }

    /** Pending and refused sales apart, the error holding the queue back, a forked receipt chain. */
    private fun showQueue() {
        v<TextView>(R.id.queueStatus).text = app.queueSummary().lines().joinToString("\n")
    }

    /** What a sync did (the button's always; the timer's only when something happened), and the queue after it. */
    private fun showSync(o: SyncOutcome, always: Boolean) {
        v<TextView>(R.id.queueStatus).text = o.summary.lines().joinToString("\n")
        if (always || !o.quiet) v<TextView>(R.id.syncStatus).text = o.lines().joinToString("\n")
    }

    /** Sends the queue every few seconds while the app is in the foreground (the queue keeps its own backoff). */
    override fun onStart() {
        super.onStart()
        syncLoop = scope.launch {
            while (isActive) {
                delay(SYNC_EVERY_MS)
                if (::app.isInitialized && app.isRegistered && !refused) showSync(app.sync(force = false), always = false)
            }
        }
    }

    override fun onStop() {
        syncLoop?.cancel()
        syncLoop = null
        super.onStop()
    }

    private fun showHandshake(h: HandshakeStatus) {
        val t = v<TextView>(R.id.handshakeStatus)
        val (text, color) = when (h) {
            is HandshakeStatus.Approved -> "● Approved (server time ${Instant.ofEpochSecond(h.serverTime)}, signature verified)" to Color.rgb(24, 121, 78)
            HandshakeStatus.Pending -> "● Pending approval" to Color.rgb(138, 90, 0)
            HandshakeStatus.NotRegistered -> "● Not registered" to Color.GRAY
            is HandshakeStatus.Refused -> "● Refused: ${h.code}" to Color.rgb(180, 35, 24)
            is HandshakeStatus.Unreachable -> {
                val wait = h.retryAfterMs?.let { ", try again in ${(it + 999) / 1000} s" } ?: ""
                "● Server not available now (${h.code})$wait; sales are queued" to Color.rgb(180, 35, 24)
            }
        }
        t.text = text
        t.setTextColor(color)
    }

    private fun showDescriptor(d: StartupDecision) {
        if (d is StartupDecision.Run) {
            v<TextView>(R.id.descriptorStatus).text =
                "Descriptor VALID: ${d.descriptor.sub}, ${d.descriptor.cashRegisterName}, until ${d.descriptor.exp}"
        }
    }

    private fun refuse(d: StartupDecision.Refuse) {
        refused = true
        v<TextView>(R.id.refused).apply {
            visibility = View.VISIBLE
            text = "This cash register cannot run: ${d.code}. ${d.reason}"
        }
        listOf(R.id.activation, R.id.handshakeButton, R.id.descriptorButton, R.id.sellCoffee, R.id.sellBag,
            R.id.syncButton, R.id.receiptsButton).forEach { v<View>(it).isEnabled = false; v<View>(it).visibility = View.GONE }
    }

    override fun onDestroy() {
        // Screen work only: a sale runs on in the application's scope.
        scope.cancel()
        super.onDestroy()
    }

    private companion object {
        const val SYNC_EVERY_MS = 5_000L
    }
}
