package dev.tillgate.sample

import dev.tillgate.ActivationDescriptor
import dev.tillgate.ActivationRequest
import dev.tillgate.SigningKey
import dev.tillgate.TrustedKeys
import dev.tillgate.signDescriptor
import java.io.IOException
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

/** An in-memory server: registrations, approval, signed time and descriptors, idempotent sales. */
class FakePosServer(private val now: () -> Long = { TestKeys.NOW }) : PosServer {
    var online = true
    /** Stores the next sale, then fails as if the answer was lost on the way back. */
    var loseNextAnswer = false
    val stored = LinkedHashMap<String, StoredSale>()
    var posts = 0
    private val regs = HashMap<String, Pair<ActivationRequest, String>>() // apiKey -> (request, status)

    private fun net() { if (!online) throw IOException("connection refused (offline in the test)") }

    fun approveAll() { regs.replaceAll { _, v -> v.first to "approved" } }

    override fun activate(request: ActivationRequest): Registration {
        net()
        val key = "test-api-key-${regs.size + 1}-abcdefghijklmnop"
        regs[key] = request to "pending"
        return Registration("act_${regs.size}", "TG-TEST-000${regs.size}", key, "pending")
    }

    private fun reg(apiKey: String) = regs[apiKey] ?: throw ServerRefused(401, "invalid_credentials", "unknown key")

    override fun handshake(apiKey: String, deviceId: String, nonce: String): HandshakeAnswer {
        net()
        val (req, status) = reg(apiKey)
        if (status != "approved") throw ServerRefused(403, "pending_approval", "waits for approval")
        if (req.deviceId != deviceId) throw ServerRefused(403, "device_mismatch", "other device")
        val t = TestKeys.jws(TestKeys.server, "tillgate-time+jwt", """{"iss":"test","sub":"TG-TEST-0001","iat":${now()},"nonce":"$nonce"}""")
        return HandshakeAnswer(status, "2026-01-01T00:00:00Z", t)
    }

    override fun activationCode(apiKey: String): String {
        net()
        val (req, status) = reg(apiKey)
        if (status != "approved") throw ServerRefused(403, "pending_approval", "waits for approval")
        return TestKeys.descriptor(deviceId = req.deviceId, app = req.applicationPackage)
    }

    override fun jwksJson(): String = """{"keys":[${TestKeys.server.publicJwkJson()}]}"""

    override fun submitTransaction(apiKey: String, idempotencyKey: String, transactionJson: String): StoredSale {
        net()
        reg(apiKey)
        posts += 1
        val sale = stored.getOrPut(idempotencyKey) { StoredSale("tx_${stored.size + 1}", stored.size + 1L, "receipt-${stored.size + 1}") }
        if (loseNextAnswer) {
            loseNextAnswer = false
            throw IOException("connection reset after the server stored the sale")
        }
        return sale
    }

    override fun receipts(apiKey: String): List<String> = emptyList()
}
