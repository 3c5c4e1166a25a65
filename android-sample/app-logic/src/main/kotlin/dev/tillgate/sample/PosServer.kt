package dev.tillgate.sample

import com.google.gson.Gson
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import dev.tillgate.ActivationRequest
import java.io.IOException
import java.net.HttpURLConnection
import java.net.URL
import java.net.URLEncoder

/** What the server answered to `POST /activations-advanced`. */
data class Registration(
    val activationId: String,
    val productionNumber: String,
    val apiKey: String,
    val status: String,
)

/** A `200` handshake: the server's signed time (verified by the app). */
data class HandshakeAnswer(val status: String, val serverTime: String, val signedTime: String)

/** A stored transaction: sequence number and signed receipt. */
data class StoredSale(val id: String, val sequence: Long, val receipt: String)

/** The server refused (problem+json): HTTP status, stable `code`, message, field errors. */
class ServerRefused(
    val status: Int,
    val code: String,
    message: String,
    val fields: Map<String, String> = emptyMap(),
) : Exception("$code: $message")

/**
 * The HTTP calls the app makes. Network failures are [IOException]s; refusals are
 * [ServerRefused].
 *
 * STAND-IN: the uniffi bindings export tillgate-core only, not tillgate-client, so the
 * sample speaks HTTP itself ([HttpPosServer]); every signature is still verified by core.
 */
interface PosServer {
    fun activate(request: ActivationRequest): Registration
    fun handshake(apiKey: String, deviceId: String, nonce: String): HandshakeAnswer
    fun activationCode(apiKey: String): String
    fun jwksJson(): String
    fun submitTransaction(apiKey: String, idempotencyKey: String, transactionJson: String): StoredSale
    fun receipts(apiKey: String): List<String>
}

/** [PosServer] over `java.net.HttpURLConnection` (Android and JVM alike). */
class HttpPosServer(private val baseUrl: String, private val timeoutMs: Int = 10_000) : PosServer {
    private val gson = Gson()

    private fun call(method: String, path: String, bearer: String?, body: String?, headers: Map<String, String> = emptyMap()): JsonObject {
        val c = URL(baseUrl.trimEnd('/') + path).openConnection() as HttpURLConnection
        try {
            c.requestMethod = method
            c.connectTimeout = timeoutMs
            c.readTimeout = timeoutMs
            c.setRequestProperty("Accept", "application/json")
            bearer?.let { c.setRequestProperty("Authorization", "Bearer $it") }
            headers.forEach { (k, v) -> c.setRequestProperty(k, v) }
            if (body != null) {
                c.doOutput = true
                c.setRequestProperty("Content-Type", "application/json")
                c.outputStream.use { it.write(body.toByteArray(Charsets.UTF_8)) }
            }
            val status = c.responseCode
            val stream = if (status < 400) c.inputStream else c.errorStream
            val text = stream?.use { it.readBytes().toString(Charsets.UTF_8) } ?: ""
            val json = runCatching { JsonParser.parseString(text).asJsonObject }.getOrElse { JsonObject() }
            if (status >= 400) {
                val fields = json.getAsJsonArray("fields")?.associate {
                    val o = it.asJsonObject
                    o.get("field").asString to o.get("message").asString
                } ?: emptyMap()
                throw ServerRefused(status, json.str("code") ?: "http_$status", json.str("detail") ?: "HTTP $status", fields)
            }
            return json
        } finally {
            c.disconnect()
        }
    }

    override fun activate(request: ActivationRequest): Registration {
        val body = JsonObject().apply {
            addProperty("cashRegisterName", request.cashRegisterName)
            addProperty("deviceId", request.deviceId)
            addProperty("validFrom", request.validFrom)
            addProperty("validTo", request.validTo)
            addProperty("corporateId", request.corporateId)
            addProperty("applicationPackage", request.applicationPackage)
            request.country?.let { addProperty("country", it) }
        }
        val j = call("POST", "/activations-advanced", null, gson.toJson(body))
        return Registration(j.str("activationId")!!, j.str("productionNumber")!!, j.str("apiKey")!!, j.str("status")!!)
    }

    override fun handshake(apiKey: String, deviceId: String, nonce: String): HandshakeAnswer {
        val q = "nonce=${enc(nonce)}&deviceId=${enc(deviceId)}"
        val j = call("GET", "/auth/handshake?$q", apiKey, null)
        return HandshakeAnswer(j.str("status")!!, j.str("serverTime")!!, j.str("signedTime")!!)
    }

    override fun activationCode(apiKey: String): String =
        call("GET", "/activations/activation-code", apiKey, null).str("descriptor")!!

    override fun jwksJson(): String = gson.toJson(call("GET", "/.well-known/jwks.json", null, null))

    override fun submitTransaction(apiKey: String, idempotencyKey: String, transactionJson: String): StoredSale {
        val j = call("POST", "/transactions", apiKey, transactionJson, mapOf("Idempotency-Key" to idempotencyKey))
        return StoredSale(j.str("id")!!, j.get("sequence").asLong, j.str("receipt")!!)
    }

    override fun receipts(apiKey: String): List<String> {
        val out = ArrayList<String>()
        var after = 0L
        while (true) {
            val j = call("GET", "/transactions?limit=1000&afterSequence=$after", apiKey, null)
            j.getAsJsonArray("items").forEach { out += it.asJsonObject.str("receipt")!! }
            val next = j.get("nextAfterSequence") ?: break
            after = next.asLong
        }
        return out
    }

    private fun enc(s: String) = URLEncoder.encode(s, "UTF-8")
}

internal fun JsonObject.str(name: String): String? = get(name)?.takeIf { !it.isJsonNull }?.asString
