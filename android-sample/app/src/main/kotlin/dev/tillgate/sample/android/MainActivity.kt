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
import dev.tillgate.TrustedKeys
import dev.tillgate.sample.ActivationScreen
import dev.tillgate.sample.FileStore
import dev.tillgate.sample.HandshakeStatus
import dev.tillgate.sample.HttpPosServer
import dev.tillgate.sample.InvalidForm
import dev.tillgate.sample.Product
import dev.tillgate.sample.StartupDecision
import dev.tillgate.sample.TillApp
import java.util.concurrent.Executors

/**
 * The thin Android layer: it builds a [TillApp] (all logic lives in :app-logic), shows
 * what it returns and runs network calls off the main thread. Nothing here decides.
 */
class MainActivity : Activity() {
    private val io = Executors.newSingleThreadExecutor()
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
        app = TillApp(FileStore(filesDir.resolve("tillgate")), HttpPosServer(BuildConfig.SERVER_URL), trusted, deviceId, packageName)
        screen = app.newActivationScreen()

        // Protection against malware usage: a stored descriptor that fails stops the app here.
        when (val d = app.start()) {
            is StartupDecision.Refuse -> return refuse(d)
            is StartupDecision.Run -> showDescriptor(d)
            StartupDecision.NotActivated -> Unit
        }
        bindForm()
        v<Button>(R.id.handshakeButton).setOnClickListener { background({ app.refreshHandshake() }, ::showHandshake) }
        v<Button>(R.id.descriptorButton).setOnClickListener {
            background({ runCatching { app.fetchDescriptor() } }) { r ->
                r.onSuccess { d -> if (d is StartupDecision.Refuse) refuse(d) else showDescriptor(d) }
                r.onFailure { e -> v<TextView>(R.id.descriptorStatus).text = "Descriptor not fetched: ${e.message}" }
            }
        }
        v<Button>(R.id.sellCoffee).setOnClickListener { sell(coffee) }
        v<Button>(R.id.sellBag).setOnClickListener { sell(bag) }
        v<Button>(R.id.syncButton).setOnClickListener { background({ app.sync() }) { showQueue() } }
        v<Button>(R.id.receiptsButton).setOnClickListener {
            background({ runCatching { app.verifyReceipts() } }) { r ->
                v<TextView>(R.id.receiptsStatus).text = r.fold(
                    { "Receipt chain verified: ${it.size} receipts" },
                    { "Receipt chain NOT verified: ${it.message}" })
            }
        }
        v<View>(R.id.activation).visibility = if (app.isRegistered) View.GONE else View.VISIBLE
        showQueue()
        if (app.isRegistered) background({ app.refreshHandshake() }, ::showHandshake)
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
                background({ runCatching { app.register(screen) } }) { r ->
                    r.onSuccess { v<View>(R.id.activation).visibility = View.GONE; showHandshake(app.handshake) }
                    r.onFailure { e ->
                        if (e is InvalidForm) fields.forEach { (n, f) -> f.error = e.errors[n]?.joinToString("; ") }
                        else v<TextView>(R.id.handshakeStatus).text = "Not registered: ${e.message}"
                    }
                }
            }
        }
    }

    private fun sell(p: Product) = background({ runCatching { app.sell(listOf(p to 1L)) } }) { showQueue() }

    private fun showQueue() {
        val n = app.queue.size
        v<TextView>(R.id.queueStatus).text = if (n == 0) "Queue empty: every sale is stored by the server" else "$n sale(s) waiting in the offline queue"
    }

    private fun showHandshake(h: HandshakeStatus) {
        val t = v<TextView>(R.id.handshakeStatus)
        val (text, color) = when (h) {
            is HandshakeStatus.Approved -> "● Approved (server time ${h.serverTime}, signature verified)" to Color.rgb(24, 121, 78)
            HandshakeStatus.Pending -> "● Pending approval" to Color.rgb(138, 90, 0)
            HandshakeStatus.NotRegistered -> "● Not registered" to Color.GRAY
            is HandshakeStatus.Refused -> "● Refused: ${h.code}" to Color.rgb(180, 35, 24)
            is HandshakeStatus.Unreachable -> "● Server unreachable; sales are queued" to Color.rgb(180, 35, 24)
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
        v<TextView>(R.id.refused).apply {
            visibility = View.VISIBLE
            text = "This cash register cannot run: ${d.code}. ${d.reason}"
        }
        listOf(R.id.activation, R.id.handshakeButton, R.id.descriptorButton, R.id.sellCoffee, R.id.sellBag,
            R.id.syncButton, R.id.receiptsButton).forEach { v<View>(it).isEnabled = false; v<View>(it).visibility = View.GONE }
    }

    private fun <T> background(work: () -> T, then: (T) -> Unit) {
        io.execute { val r = work(); runOnUiThread { then(r) } }
    }

    override fun onDestroy() {
        io.shutdown()
        super.onDestroy()
    }
}
