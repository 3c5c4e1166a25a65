package dev.tillgate.sample

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.sun.net.httpserver.HttpExchange
import com.sun.net.httpserver.HttpServer
import dev.tillgate.ActivationDescriptor
import dev.tillgate.ApiKeyAlphabet
import dev.tillgate.SigningKey
import dev.tillgate.TrustedKeys
import dev.tillgate.generateApiKey
import dev.tillgate.signDescriptor
import java.net.InetSocketAddress
import java.nio.file.Files
import java.util.Base64

/** The server's signing key in these tests, and the app's built-in trust in it. */
object TestKeys {
    val server: SigningKey = SigningKey.fromSeed(ByteArray(32) { 7 })
    val other: SigningKey = SigningKey.fromSeed(ByteArray(32) { 9 })
    fun trusted(): TrustedKeys = TrustedKeys.fromJwksJson("""{"keys":[${server.publicJwkJson()}]}""")

    private val b64 = Base64.getUrlEncoder().withoutPadding()

    /** A compact JWS signed like the server does (`{"alg":"Ed25519","typ":…,"kid":…}`). */
    fun jws(key: SigningKey, typ: String, payloadJson: String): String {
        val head = b64.encodeToString("""{"alg":"Ed25519","typ":"$typ","kid":"${key.kid()}"}""".toByteArray())
        val body = b64.encodeToString(payloadJson.toByteArray())
        val sig = key.signRaw("$head.$body".toByteArray())
        return "$head.$body.${b64.encodeToString(sig)}"
    }

    fun descriptor(
        deviceId: String = "device-1",
        app: String = "com.example.pos",
        nbf: Long = NOW - 86_400,
        exp: Long = NOW + 300 * 86_400L,
        key: SigningKey = server,
        status: String = "approved",
        sub: String = "TG-TEST-0001",
    ): String = signDescriptor(
        ActivationDescriptor(
            iss = "test", sub = sub, iat = NOW - 60, nbf = nbf, exp = exp, ver = 1u,
            activationId = "act_1", cashRegisterName = "Kassa 1", deviceId = deviceId,
            corporateId = "556036-0793", country = "SE", applicationPackage = app,
            features = emptyList(), status = status, extrasJson = "{}",
        ),
        key,
    )

    const val NOW = 1_767_225_600L // 2026-01-01T00:00:00Z
}

/** Where tests point the client to be offline: port 9 (discard), where nothing answers. */
const val OFFLINE_URL = "http://127.0.0.1:9"

fun tempDir(name: String) = Files.createTempDirectory(name).toFile()

/**
 * A small Tillgate server over HTTP (the JDK's built-in server) for the app's tests: the
 * register's endpoints as tillgate-client calls them (activation, approval, handshake
 * with a signed, nonce-bound time, the signed descriptor, idempotent transactions).
 * Receipts are placeholders: the chain is checked against the real server
 * (RealServerTest).
 */
class FakeTillgateServer(private val now: () -> Long = { TestKeys.NOW }) : AutoCloseable {
    /** Stores the next sale, then drops the connection as if the answer was lost on the way back. */
    @Volatile var loseNextAnswer = false
    /**
     * While set, every request is answered with this status and problem code, and a
     * `Retry-After` (seconds) when given: a server being upgraded (503 `schema_newer`)
     * or a busy one (429).
     */
    @Volatile var unavailable: Triple<Int, String, Int?>? = null
    /** While set, every sale is refused for good with this status and problem code (e.g. 400 `invalid_transaction`). */
    @Volatile var refuseSales: Pair<Int, String>? = null
    /**
     * Registers the next this-many activations, then drops the connection: the answer
     * is lost.
     */
    @Volatile var loseActivationAnswers = 0
    /** Stores each sale, then waits this long before answering (a slow network). */
    @Volatile var saleAnswerDelayMs = 0L
    /** Activation requests received. */
    @Volatile var activationPosts = 0
    /** Idempotency-Key to the stored transaction (JSON, as answered). */
    val stored = LinkedHashMap<String, JsonObject>()
    @Volatile var posts = 0
    private class Reg(val request: JsonObject, var status: String, val number: String, val id: String)
    private val regs = HashMap<String, Reg>() // apiKey -> registration
    private val byIdempotencyKey = HashMap<String, Reg>()

    /** Registrations created (a repeat with the same Idempotency-Key creates none). */
    @get:Synchronized val registrations: Int get() = regs.values.toSet().size

    private val http: HttpServer = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0).apply {
        createContext("/") { ex -> try { handle(ex) } finally { ex.close() } }
        start()
    }
    val url: String get() = "http://127.0.0.1:${http.address.port}"

    @Synchronized fun approveAll() { regs.values.forEach { it.status = "approved" } }

    override fun close() = http.stop(0)

    private fun send(ex: HttpExchange, status: Int, body: JsonObject) {
        val bytes = body.toString().toByteArray()
        ex.responseHeaders.add("Content-Type", if (status >= 400) "application/problem+json" else "application/json")
        ex.sendResponseHeaders(status, bytes.size.toLong())
        ex.responseBody.use { it.write(bytes) }
    }

    private fun problem(ex: HttpExchange, status: Int, code: String, detail: String) =
        send(ex, status, JsonObject().apply { addProperty("code", code); addProperty("detail", detail); addProperty("status", status) })

    private fun query(ex: HttpExchange): Map<String, String> =
        (ex.requestURI.rawQuery ?: "").split("&").filter { it.isNotEmpty() }.associate {
            val (k, v) = (it.split("=", limit = 2) + "").take(2)
            java.net.URLDecoder.decode(k, "UTF-8") to java.net.URLDecoder.decode(v, "UTF-8")
        }

    @Synchronized private fun handle(ex: HttpExchange) {
        val path = ex.requestURI.path
        val body = ex.requestBody.readBytes().toString(Charsets.UTF_8)
        unavailable?.let { (status, code, retryAfter) ->
            retryAfter?.let { ex.responseHeaders.add("Retry-After", "$it") }
            return problem(ex, status, code, "not now")
        }
        if (ex.requestMethod == "POST" && path == "/activations-advanced") {
            activationPosts += 1
            val req = JsonParser.parseString(body).asJsonObject
            val key = generateApiKey(40u, ApiKeyAlphabet.URL_SAFE)
            val idem = ex.requestHeaders.getFirst("Idempotency-Key")
            // As the real server: a repeat (same key, same request, still pending) answers
            // the registration it created with a fresh API key; the old key stops working.
            val earlier = idem?.let { byIdempotencyKey[it] }
            val reg = when {
                earlier == null -> {
                    val n = registrations + 1
                    Reg(req, "pending", "TG-TEST-000$n", "act_$n").also { r -> idem?.let { byIdempotencyKey[it] = r } }
                }
                earlier.request != req -> return problem(ex, 422, "idempotency_key_reused", "another request under this key")
                earlier.status != "pending" -> return problem(ex, 409, "activation_not_repeatable", "decided")
                else -> earlier.also { r -> regs.values.removeIf { it === r } }
            }
            regs[key] = reg
            if (loseActivationAnswers > 0) {
                loseActivationAnswers -= 1
                throw IllegalStateException("activation answer lost on the way back (test)")
            }
            return send(ex, 201, JsonObject().apply {
                addProperty("activationId", reg.id); addProperty("productionNumber", reg.number)
                addProperty("apiKey", key); addProperty("status", "pending")
                addProperty("validFrom", req.get("validFrom").asString); addProperty("validTo", req.get("validTo").asString)
                addProperty("corporateId", req.get("corporateId").asString)
            })
        }
        val reg = regs[ex.requestHeaders.getFirst("Authorization")?.removePrefix("Bearer ")]
            ?: return problem(ex, 401, "invalid_credentials", "unknown key")
        val device = reg.request.get("deviceId").asString
        when {
            ex.requestMethod == "GET" && path == "/auth/handshake" -> {
                if (reg.status != "approved") return problem(ex, 403, "pending_approval", "waits for approval")
                val q = query(ex)
                if (q["deviceId"] != null && q["deviceId"] != device) return problem(ex, 403, "device_mismatch", "other device")
                val t = TestKeys.jws(TestKeys.server, "tillgate-time+jwt", """{"iss":"test","sub":"${reg.number}","iat":${now()},"nonce":"${q["nonce"]}"}""")
                send(ex, 200, JsonObject().apply {
                    addProperty("status", reg.status); addProperty("activationId", reg.id); addProperty("productionNumber", reg.number)
                    addProperty("validFrom", reg.request.get("validFrom").asString); addProperty("validTo", reg.request.get("validTo").asString)
                    addProperty("serverTime", "2026-01-01T00:00:00Z"); addProperty("signedTime", t)
                })
            }
            ex.requestMethod == "GET" && path == "/activations/activation-code" -> {
                if (reg.status != "approved") return problem(ex, 403, "pending_approval", "waits for approval")
                val jws = TestKeys.descriptor(deviceId = device, app = reg.request.get("applicationPackage").asString, sub = reg.number)
                send(ex, 200, JsonObject().apply { addProperty("descriptor", jws); addProperty("kid", TestKeys.server.kid()) })
            }
            ex.requestMethod == "POST" && path == "/transactions" -> {
                posts += 1
                val key = ex.requestHeaders.getFirst("Idempotency-Key") ?: return problem(ex, 400, "missing_idempotency_key", "no key")
                refuseSales?.let { (status, code) -> return problem(ex, status, code, "refused (test)") }
                val out = stored.getOrPut(key) {
                    val n = stored.size + 1
                    JsonParser.parseString(body).asJsonObject.apply {
                        addProperty("id", "tx_$n"); addProperty("sequence", n); addProperty("createdAt", "2026-01-01T00:00:00Z")
                        addProperty("productionNumber", reg.number); addProperty("txh", "test"); addProperty("receipt", "receipt-$n")
                    }
                }
                if (saleAnswerDelayMs > 0) Thread.sleep(saleAnswerDelayMs)
                if (loseNextAnswer) {
                    loseNextAnswer = false
                    // No answer: the JDK server drops the connection when a handler throws.
                    throw IllegalStateException("answer lost on the way back (test)")
                }
                send(ex, 201, out)
            }
            else -> problem(ex, 404, "not_found", path)
        }
    }
}
