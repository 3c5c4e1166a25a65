// Runs every shared vector in tests/vectors/*.json against the Kotlin binding
// (dev.tillgate), one JUnit test per vector. Mirrors core/tests/vectors.rs.
//
// The pure functions go through JNI (bindings/ffi/kotlin/dev/tillgate/Jni.kt, the public
// names apps call); each such call here goes through `Both`, which also makes the same
// call through the generated JNA function (renamed `...Jna`, Kotlin only) and requires
// the same result, byte for byte in uniffi's serialised form, or the same error (every
// field of TillgateException.Failed; class and message of anything else), so that the
// two paths cannot drift.
package dev.tillgate.tests

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.google.gson.JsonPrimitive
import dev.tillgate.*
import java.io.File
import java.nio.ByteBuffer
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/** One named check. */
class Case(val name: String, val run: () -> Unit) {
    override fun toString() = name
}

fun vectorsDir(): File =
    File(System.getProperty("tillgate.vectors") ?: System.getenv("TILLGATE_VECTORS") ?: "tests/vectors")

/** Members of a vector file, or of its cases, written for people, which no case reads (a
 * case's name too, see [VectorCase]). The Rust, Swift, Python and JS runners allow the
 * same names. */
val forPeople = setOf("description", "comment")

/** The vector files the cases were built from, with their top-level members (see [everyFileIsRead]). */
val loaded: MutableMap<String, Set<String>> = java.util.Collections.synchronizedMap(mutableMapOf<String, Set<String>>())

/** The top-level members of each file that were read (see [everyMemberIsRead]). */
val membersRead: MutableMap<String, MutableSet<String>> = java.util.concurrent.ConcurrentHashMap()

/** A vector file that records which of its top-level members were read. */
class VectorFile(val name: String, private val json: JsonObject) {
    operator fun get(k: String): JsonElement? {
        membersRead.getOrPut(name) { java.util.Collections.synchronizedSet(mutableSetOf()) } += k
        return json.get(k)
    }
    fun str(k: String): String = get(k)!!.asString
    fun obj(k: String): JsonObject = get(k)!!.asJsonObject
    /** The cases under [k] as they are, for a check that reads only part of one. */
    fun list(k: String): List<JsonObject> {
        val list = (get(k) ?: throw AssertionError("$name: no member $k")).asJsonArray.map { it.asJsonObject }
        assertTrue("no cases under $k", list.isNotEmpty())
        return list
    }
    /** One [Case] for each case under [k], made by [make]; when it has run, it must have
     * read every member of its case ([VectorCase]). */
    fun cases(k: String, make: (VectorCase) -> Case): List<Case> = list(k).mapIndexed { i, o ->
        val c = VectorCase("tests/vectors/$name $k[$i]" + (o.get("name")?.let { " $it" } ?: ""), o, i)
        val case = make(c)
        Case(case.name) {
            case.run()
            c.assertAllRead()
        }
    }
}

/**
 * One case of a vector file, or an object in one that a check reads member by member
 * ([obj]), that records which of its members were read. When its [Case] has run
 * ([VectorFile.cases]), every member must have been read, but those for people: a file's
 * ([forPeople]) and a case's name, which messages print. So a case that gains a member (an
 * `error` where none was, a new expected value) fails until a check reads it. The Rust,
 * Swift, Python and JS runners have the same guard.
 */
class VectorCase(val at: String, private val json: JsonObject, val index: Int = 0, private val isCase: Boolean = true) {
    private val read: MutableSet<String> = java.util.concurrent.ConcurrentHashMap.newKeySet()
    private val objs = java.util.concurrent.ConcurrentHashMap<String, VectorCase>()

    fun get(k: String): JsonElement? {
        read += k
        return json.get(k)
    }
    fun has(k: String): Boolean = json.has(k)
    fun str(k: String): String = get(k)!!.asString
    fun strOrNull(k: String): String? = get(k)?.takeIf { !it.isJsonNull }?.asString
    fun long(k: String): Long = get(k)!!.asLong
    fun longOrNull(k: String): Long? = get(k)?.takeIf { !it.isJsonNull }?.asLong
    fun bool(k: String): Boolean = get(k)!!.asBoolean
    fun array(k: String): JsonArray = get(k)!!.asJsonArray
    /** The object under [k], whose members must each be read too. */
    fun obj(k: String): VectorCase = objs.getOrPut(k) { VectorCase("$at $k", get(k)!!.asJsonObject, index, false) }

    fun unread(): List<String> =
        json.keySet().filter { it !in read && it !in forPeople && !(isCase && it == "name") }.sorted() +
            objs.flatMap { (k, o) -> o.unread().map { "$k.$it" } }

    fun assertAllRead() = assertEquals("$at: members read by no Kotlin check", emptyList<String>(), unread())
}

fun load(name: String): VectorFile {
    val json = JsonParser.parseString(File(vectorsDir(), name).readText()).asJsonObject
    loaded[name] = json.keySet().toSet()
    return VectorFile(name, json)
}

fun unhex(s: String): ByteArray = ByteArray(s.length / 2) { s.substring(2 * it, 2 * it + 2).toInt(16).toByte() }

fun JsonObject.str(k: String): String = get(k).asString
fun JsonObject.strOrNull(k: String): String? = get(k)?.takeIf { !it.isJsonNull }?.asString
fun JsonObject.long(k: String): Long = get(k).asLong
fun JsonObject.longOrNull(k: String): Long? = get(k)?.takeIf { !it.isJsonNull }?.asLong
fun JsonObject.bool(k: String): Boolean = get(k).asBoolean
fun JsonObject.obj(k: String): JsonObject = getAsJsonObject(k)

/** A value in uniffi's serialised form, written by its generated converter. */
fun <T> encoder(conv: FfiConverter<T, *>): (T) -> ByteArray = { v ->
    val buf = ByteBuffer.allocate(conv.allocationSize(v).toInt())
    conv.write(v, buf)
    buf.array().copyOf(buf.position())
}

val noValue: (Unit) -> ByteArray = { ByteArray(0) }

fun outcome(r: Result<*>): String = r.exceptionOrNull()?.let { "threw $it" } ?: "returned"

/**
 * Makes one call through JNI ([jni], the public function) and through the generated JNA
 * function ([jna]); both must return the same value ([encode]: its serialised form) or
 * throw the same error. Returns what the JNI call returned, or throws what it threw.
 */
fun <T> agree(what: String, encode: (T) -> ByteArray, jni: () -> T, jna: () -> T): T {
    val viaJni = runCatching(jni)
    val viaJna = runCatching(jna)
    val e = viaJni.exceptionOrNull()
    val f = viaJna.exceptionOrNull()
    when {
        e == null && f == null ->
            assertArrayEquals("$what: JNI and JNA results differ", encode(viaJna.getOrThrow()), encode(viaJni.getOrThrow()))
        e is TillgateException && f is TillgateException ->
            assertArrayEquals(
                "$what: JNI and JNA errors differ ($e / $f)",
                encoder(FfiConverterTypeTillgateError)(f),
                encoder(FfiConverterTypeTillgateError)(e),
            )
        e != null && f != null -> {
            assertEquals("$what: JNI and JNA throw different classes", f.javaClass, e.javaClass)
            assertEquals("$what: JNI and JNA throw different messages", f.message, e.message)
        }
        else -> fail("$what: JNI ${outcome(viaJni)}, JNA ${outcome(viaJna)}")
    }
    return viaJni.getOrThrow()
}

/** The pure functions, each through JNI and JNA at once ([agree]). */
object Both {
    fun verifyEd25519(publicKey: ByteArray, message: ByteArray, signature: ByteArray) =
        agree("verifyEd25519", noValue, { dev.tillgate.verifyEd25519(publicKey, message, signature) }, {
            verifyEd25519Jna(publicKey, message, signature)
        })

    fun verifyDescriptor(jws: String, keys: TrustedKeys, now: Long, options: VerifyOptions) =
        agree("verifyDescriptor", encoder(FfiConverterTypeVerifiedDescriptor), {
            dev.tillgate.verifyDescriptor(jws, keys, now, options)
        }, { verifyDescriptorJna(jws, keys, now, options) })

    fun validateApiKey(key: String) =
        agree("validateApiKey", encoder(FfiConverterString), { dev.tillgate.validateApiKey(key) }, { validateApiKeyJna(key) })

    fun parseUrlToken(path: String) =
        agree("parseUrlToken", encoder(FfiConverterTypeUrlToken), { dev.tillgate.parseUrlToken(path) }, { parseUrlTokenJna(path) })

    fun encodeUrlToken(token: UrlToken) =
        agree("encodeUrlToken", encoder(FfiConverterString), { dev.tillgate.encodeUrlToken(token) }, { encodeUrlTokenJna(token) })

    fun validateActivationRequest(request: ActivationRequest, rule: CorporateIdRule) =
        agree("validateActivationRequest", encoder(FfiConverterTypeValidActivationRequest), {
            dev.tillgate.validateActivationRequest(request, rule)
        }, { validateActivationRequestJna(request, rule) })

    fun verifyDynamicApiKey(key: String, publicKey: ByteArray, system: String, now: Long, windowSecs: Long) =
        agree("verifyDynamicApiKey", encoder(FfiConverterTypeDynamicKeyClaims), {
            dev.tillgate.verifyDynamicApiKey(key, publicKey, system, now, windowSecs)
        }, { verifyDynamicApiKeyJna(key, publicKey, system, now, windowSecs) })

    fun validateTransaction(tx: Transaction) =
        agree("validateTransaction", noValue, { dev.tillgate.validateTransaction(tx) }, { validateTransactionJna(tx) })

    fun transactionHash(tx: Transaction) =
        agree("transactionHash", encoder(FfiConverterString), { dev.tillgate.transactionHash(tx) }, { transactionHashJna(tx) })

    fun transactionCanonicalJson(tx: Transaction) =
        agree("transactionCanonicalJson", encoder(FfiConverterString), { dev.tillgate.transactionCanonicalJson(tx) }, {
            transactionCanonicalJsonJna(tx)
        })

    fun transactionFromJson(json: String) =
        agree("transactionFromJson", encoder(FfiConverterTypeTransaction), { dev.tillgate.transactionFromJson(json) }, {
            transactionFromJsonJna(json)
        })

    fun validateProduct(product: Product) =
        agree("validateProduct", noValue, { dev.tillgate.validateProduct(product) }, { validateProductJna(product) })

    fun productFromJson(id: String, json: String) =
        agree("productFromJson", encoder(FfiConverterTypeProduct), { dev.tillgate.productFromJson(id, json) }, {
            productFromJsonJna(id, json)
        })

    fun productToJson(product: Product) =
        agree("productToJson", encoder(FfiConverterString), { dev.tillgate.productToJson(product) }, {
            productToJsonJna(product)
        })

    fun verifyReceiptChain(receipts: List<String>, keys: TrustedKeys, previous: String? = null) =
        agree("verifyReceiptChain", encoder(FfiConverterSequenceTypeReceiptClaims), {
            dev.tillgate.verifyReceiptChain(receipts, keys, previous)
        }, { verifyReceiptChainJna(receipts, keys, previous) })

    fun verifyReceiptChainWitnessed(receipts: List<String>, keys: TrustedKeys, witness: String) =
        agree("verifyReceiptChainWitnessed", encoder(FfiConverterSequenceTypeReceiptClaims), {
            dev.tillgate.verifyReceiptChainWitnessed(receipts, keys, witness)
        }, { verifyReceiptChainWitnessedJna(receipts, keys, witness) })

    fun advancesWitness(current: String?, received: String, keys: TrustedKeys) =
        agree("advancesWitness", encoder(FfiConverterBoolean), {
            dev.tillgate.advancesWitness(current, received, keys)
        }, { advancesWitnessJna(current, received, keys) })

    fun receiptLink(receipt: String) =
        agree("receiptLink", encoder(FfiConverterString), { dev.tillgate.receiptLink(receipt) }, { receiptLinkJna(receipt) })

    fun verifyServerTime(jws: String, keys: TrustedKeys, expectedNonce: String? = null) =
        agree("verifyServerTime", encoder(FfiConverterTypeServerTimeClaims), {
            dev.tillgate.verifyServerTime(jws, keys, expectedNonce)
        }, { verifyServerTimeJna(jws, keys, expectedNonce) })
}

/** Runs [block], which must fail with [code]; returns the error. */
fun expectErr(name: String, code: String, block: () -> Unit): TillgateException.Failed {
    try {
        block()
    } catch (e: TillgateException.Failed) {
        assertEquals("$name: ${e.reason}", code, e.code)
        // Core's errors never carry what only a server's answer has.
        assertEquals(name, listOf(null, null, false, false), listOf(e.httpStatus, e.retryAfterMs, e.transient, e.auth))
        return e
    }
    fail("$name: expected $code, got success")
    throw IllegalStateException()
}

fun fieldsJson(fields: List<FieldError>): JsonArray = JsonArray().apply {
    fields.forEach { f -> add(JsonObject().apply { addProperty("field", f.field); addProperty("code", f.code) }) }
}

fun ed25519Cases(): List<Case> = load("ed25519.json").cases("cases") { c ->
    Case("ed25519: ${c.str("name")}") {
        val pk = unhex(c.str("publicKey"))
        val msg = unhex(c.str("message"))
        val sig = unhex(c.str("signature"))
        if (c.bool("valid")) {
            Both.verifyEd25519(pk, msg, sig)
            val key = SigningKey.fromSeed(unhex(c.str("secretKey")))
            assertArrayEquals(pk, key.publicKey())
            assertArrayEquals(sig, key.signRaw(msg))
        } else {
            expectErr(c.str("name"), c.str("error")) { Both.verifyEd25519(pk, msg, sig) }
        }
    }
}

fun apiKeyCases(): List<Case> {
    val v = load("api_key.json")
    // Read while the cases are built, as everything the cases use ([everyMemberIsRead]).
    val alphabets = listOf(ApiKeyAlphabet.FULL to v.str("alphabet"), ApiKeyAlphabet.URL_SAFE to v.str("urlSafeAlphabet"))
    val reserved = v.str("reserved")
    return v.cases("cases") { c ->
        Case("api_key: ${c.str("name")}") {
            val key = c.str("key")
            if (c.bool("valid")) {
                assertEquals(key, Both.validateApiKey(key))
            } else {
                val e = expectErr(c.str("name"), c.str("error")) { Both.validateApiKey(key) }
                if (c.has("position")) {
                    assertEquals(c.long("position"), e.position?.toLong())
                    assertEquals(c.str("char"), e.character)
                }
            }
        }
    } + alphabets.map { (alphabet, chars) ->
        Case("api_key: generated keys use exactly the $alphabet alphabet") {
            // The binding exposes no alphabet, so enough keys are generated to see every
            // character: 40 keys of 256 miss one of ~78 characters with odds below 1e-55.
            assertEquals("$alphabet: a character twice in $chars", chars.length, chars.toSet().size)
            val keys = List(40) { generateApiKey(256u, alphabet) }
            for (k in keys) {
                assertEquals(256, k.length)
                assertEquals(k, Both.validateApiKey(k))
            }
            assertEquals(chars.toSortedSet(), keys.joinToString("").toSortedSet())
            assertEquals(40, generateApiKey(40u, alphabet).length)
            expectErr("generate 19", "api_key_too_short") { generateApiKey(19u, alphabet) }
        }
    } + Case("api_key: every reserved character is refused") {
        // Every character the vectors call reserved, not only those with a case of their own.
        assertTrue("no reserved characters", reserved.isNotEmpty())
        for (ch in reserved) {
            val key = "Abcdefghij${ch}0123456789"
            val e = expectErr("reserved '$ch'", "api_key_reserved_char") { Both.validateApiKey(key) }
            assertEquals("reserved '$ch'", 10L, e.position?.toLong())
            assertEquals("reserved '$ch'", ch.toString(), e.character)
        }
    }
}

/** The rule a vector names; an unknown name fails (never read as another rule). */
fun corporateIdRule(name: String): CorporateIdRule = when (name) {
    "generic" -> CorporateIdRule.GENERIC
    "swedishOrgNumber" -> CorporateIdRule.SWEDISH_ORG_NUMBER
    else -> throw AssertionError("unknown corporateIdRule in the vectors: $name")
}

fun prefixName(p: UrlTokenPrefix) = when (p) {
    UrlTokenPrefix.OPEN_API -> "OpenApi"
    UrlTokenPrefix.ANYWHERE -> "Anywhere"
    UrlTokenPrefix.GNAP -> "Gnap"
}

fun tokenJson(t: UrlToken): JsonObject = JsonObject().apply {
    addProperty("prefix", prefixName(t.prefix))
    add("version", t.version?.let { JsonPrimitive(it.toLong()) } ?: JsonNull.INSTANCE)
    add("rmSystem", JsonArray().apply { t.rmSystem.forEach { add(it.toLong()) } })
    add("rve", t.rve?.let { JsonPrimitive(it) } ?: JsonNull.INSTANCE)
    add("params", JsonArray().apply {
        t.params.forEach { p -> add(JsonObject().apply { addProperty("id", p.id); addProperty("value", p.value) }) }
    })
    add("token", t.token?.let { JsonPrimitive(it) } ?: JsonNull.INSTANCE)
    addProperty("rest", t.rest)
}

fun urlTokenCases(): List<Case> = load("url_token.json").cases("cases") { c ->
    Case("url_token: ${c.str("name")}") {
        val path = c.str("path")
        if (c.bool("valid")) {
            val t = Both.parseUrlToken(path)
            assertEquals(c.get("expected"), tokenJson(t))
            val encoded = Both.encodeUrlToken(t)
            assertEquals(c.str("encoded"), encoded)
            assertEquals(t, Both.parseUrlToken(encoded))
        } else {
            val e = expectErr(c.str("name"), c.str("error")) { Both.parseUrlToken(path) }
            assertEquals(c.long("position"), e.position?.toLong())
        }
    }
}

fun activationCases(): List<Case> = load("activation.json").cases("cases") { c ->
    Case("activation: ${c.str("name")}") {
        val r = c.obj("request")
        val req = ActivationRequest(
            cashRegisterName = r.strOrNull("cashRegisterName") ?: "",
            deviceId = r.strOrNull("deviceId") ?: "",
            validFrom = r.strOrNull("validFrom") ?: "",
            validTo = r.strOrNull("validTo") ?: "",
            corporateId = r.strOrNull("corporateId") ?: "",
            applicationPackage = r.strOrNull("applicationPackage") ?: "",
            country = r.strOrNull("country"),
            extrasJson = r.get("extras")?.takeIf { !it.isJsonNull }?.toString(),
        )
        val rule = corporateIdRule(c.str("corporateIdRule"))
        if (c.bool("valid")) {
            val ok = Both.validateActivationRequest(req, rule)
            val e = c.obj("expected")
            assertEquals(e.str("corporateId"), ok.corporateId)
            assertEquals(e.str("country"), ok.country)
            assertEquals(e.str("validFrom"), ok.validFrom)
            assertEquals(e.str("validTo"), ok.validTo)
        } else {
            val e = expectErr(c.str("name"), c.str("error")) { Both.validateActivationRequest(req, rule) }
            assertEquals(c.get("fields"), fieldsJson(e.fields))
        }
    }
}

fun transactionCases(): List<Case> {
    val v = load("transaction.json")
    return v.cases("cases") { c ->
        Case("transaction: ${c.str("name")}") {
            val tx = Both.transactionFromJson(c.get("transaction").toString())
            if (c.bool("valid")) {
                Both.validateTransaction(tx)
                assertEquals(c.str("canonical"), Both.transactionCanonicalJson(tx))
                assertEquals(c.str("hash"), Both.transactionHash(tx))
            } else {
                val e = expectErr(c.str("name"), c.str("error")) { Both.validateTransaction(tx) }
                assertEquals(c.get("fields"), fieldsJson(e.fields))
            }
        }
    } + v.cases("unparsable") { c ->
        Case("transaction unparsable: ${c.str("name")}") {
            expectErr(c.str("name"), "invalid_argument") { Both.transactionFromJson(c.str("json")) }
        }
    }
}

fun productCases(): List<Case> {
    val v = load("product.json")
    return v.cases("cases") { c ->
        Case("product: ${c.str("name")}") {
            val p = Both.productFromJson(c.str("id"), c.get("product").toString())
            assertEquals(c.str("id"), p.id)
            if (c.bool("valid")) {
                Both.validateProduct(p)
                c.strOrNull("canonical")?.let { assertEquals(it, Both.productToJson(p)) }
            } else {
                val e = expectErr(c.str("name"), c.str("error")) { Both.validateProduct(p) }
                assertEquals(c.get("fields"), fieldsJson(e.fields))
            }
        }
    } + v.cases("unparsable") { c ->
        Case("product unparsable: ${c.str("name")}") {
            expectErr(c.str("name"), "invalid_argument") { Both.productFromJson("p", c.str("json")) }
        }
    }
}

fun descriptorJson(d: ActivationDescriptor): JsonObject = JsonObject().apply {
    addProperty("iss", d.iss); addProperty("sub", d.sub)
    addProperty("iat", d.iat); addProperty("nbf", d.nbf); addProperty("exp", d.exp)
    addProperty("ver", d.ver.toLong())
    addProperty("activationId", d.activationId); addProperty("cashRegisterName", d.cashRegisterName)
    addProperty("deviceId", d.deviceId); addProperty("corporateId", d.corporateId)
    addProperty("country", d.country); addProperty("applicationPackage", d.applicationPackage)
    add("features", JsonArray().apply { d.features.forEach { add(it) } })
    addProperty("status", d.status)
    add("extras", JsonParser.parseString(d.extrasJson))
}

fun descriptorFromJson(o: VectorCase) = ActivationDescriptor(
    iss = o.str("iss"), sub = o.str("sub"), iat = o.long("iat"), nbf = o.long("nbf"), exp = o.long("exp"),
    ver = o.long("ver").toUInt(), activationId = o.str("activationId"),
    cashRegisterName = o.str("cashRegisterName"), deviceId = o.str("deviceId"),
    corporateId = o.str("corporateId"), country = o.str("country"),
    applicationPackage = o.str("applicationPackage"),
    features = o.get("features")?.asJsonArray?.map { it.asString } ?: emptyList(),
    status = o.str("status"), extrasJson = (o.get("extras") ?: JsonObject()).toString(),
)

fun descriptorCases(): List<Case> {
    val v = load("descriptor.json")
    val keys = TrustedKeys.fromJwksJson(v.obj("jwks").toString())
    return v.cases("cases") { c ->
        Case("descriptor: ${c.str("name")}") {
            val o = c.obj("options")
            val options = VerifyOptions(
                trustedTimeFloor = o.longOrNull("trustedTimeFloor"),
                clockToleranceSecs = o.longOrNull("clockToleranceSecs"),
                leewaySecs = o.longOrNull("leewaySecs"),
                expectedDeviceId = o.strOrNull("expectedDeviceId"),
                expectedApplicationPackage = o.strOrNull("expectedApplicationPackage"),
            )
            if (c.bool("valid")) {
                val d = Both.verifyDescriptor(c.str("jws"), keys, c.long("now"), options)
                assertEquals(c.get("expected"), descriptorJson(d.claims))
            } else {
                expectErr(c.str("name"), c.str("error")) { Both.verifyDescriptor(c.str("jws"), keys, c.long("now"), options) }
            }
        }
    } + v.cases("jwksCases") { c ->
        Case("jwks: ${c.str("name")}") {
            val json = c.get("jwks").toString()
            if (c.bool("valid")) {
                TrustedKeys.fromJwksJson(json)
            } else {
                expectErr(c.str("name"), c.str("error")) { TrustedKeys.fromJwksJson(json) }
            }
        }
    } + v.cases("signing") { c ->
        Case("descriptor signing: ${c.str("name")}") {
            val key = SigningKey.fromSeed(unhex(c.str("seed")))
            assertEquals(c.str("kid"), key.kid())
            assertEquals(c.str("jws"), signDescriptor(descriptorFromJson(c.obj("claims")), key))
        }
    }
}

fun receiptCases(): List<Case> {
    val v = load("receipt.json")
    val keys = TrustedKeys.fromJwksJson(v.obj("jwks").toString())
    return v.cases("cases") { c ->
        Case("receipt: ${c.str("name")}") {
            val receipts = c.array("receipts").map { it.asString }
            val previous = c.strOrNull("previous")
            if (c.bool("valid")) {
                assertEquals(c.long("count"), Both.verifyReceiptChain(receipts, keys, previous).size.toLong())
            } else {
                val e = expectErr(c.str("name"), c.str("error")) { Both.verifyReceiptChain(receipts, keys, previous) }
                assertEquals(c.long("index"), e.index?.toLong())
            }
        }
    } + v.cases("witnessed") { c ->
        Case("receipt witnessed: ${c.str("name")}") {
            val receipts = c.array("receipts").map { it.asString }
            val witness = c.str("witness")
            if (c.bool("valid")) {
                assertEquals(c.long("count"), Both.verifyReceiptChainWitnessed(receipts, keys, witness).size.toLong())
            } else {
                expectErr(c.str("name"), c.str("error")) { Both.verifyReceiptChainWitnessed(receipts, keys, witness) }
            }
        }
    } + v.cases("advance") { c ->
        Case("receipt advance: ${c.str("name")}") {
            val current = c.strOrNull("current")
            val received = c.str("received")
            if (c.bool("valid")) {
                assertEquals(c.bool("advances"), Both.advancesWitness(current, received, keys))
            } else {
                expectErr(c.str("name"), c.str("error")) { Both.advancesWitness(current, received, keys) }
            }
        }
    } + v.cases("links") { l ->
        Case("receipt link ${l.index}") { assertEquals(l.str("link"), Both.receiptLink(l.str("receipt"))) }
    }
}

fun dynamicKeyCases(): List<Case> {
    val v = load("dynamic_key.json")
    return v.cases("derive") { c ->
        Case("dynamic_key derive ${c.index}: ${c.str("login")}") {
            val p = c.obj("params")
            val pair = deriveDynamicKeyPair(
                c.str("system"), c.str("login"), c.str("password"),
                DynamicKeyParams(p.long("memoryKib").toUInt(), p.long("iterations").toUInt(), p.long("parallelism").toUInt()),
            )
            assertArrayEquals(unhex(c.str("seed")), pair.seed())
            assertArrayEquals(unhex(c.str("publicKey")), pair.publicKey())
        }
    } + v.cases("create") { c ->
        Case("dynamic_key create ${c.index}") {
            val pair = DynamicKeyPair.fromSeed(c.str("system"), c.str("login"), unhex(c.str("seed")))
            assertEquals(c.str("key"), createDynamicApiKeyWithNonce(pair, c.long("now"), unhex(c.str("nonce"))))
        }
    } + v.cases("deriveRefused") { c ->
        Case("dynamic_key derive refused: ${c.str("name")}") {
            val p = c.obj("params")
            expectErr(c.str("name"), c.str("error")) {
                deriveDynamicKeyPair(
                    c.str("system"), c.str("login"), c.str("password"),
                    DynamicKeyParams(p.long("memoryKib").toUInt(), p.long("iterations").toUInt(), p.long("parallelism").toUInt()),
                )
            }
        }
    } + v.cases("verify") { c ->
        Case("dynamic_key verify: ${c.str("name")}") {
            val call = {
                Both.verifyDynamicApiKey(c.str("key"), unhex(c.str("publicKey")), c.str("system"), c.long("now"), c.long("windowSecs"))
            }
            if (c.bool("valid")) {
                val claims = call()
                val e = c.obj("expected")
                assertEquals(e.str("login"), claims.login)
                assertEquals(e.long("issuedAt"), claims.issuedAt)
                assertArrayEquals(unhex(e.str("nonce")), claims.nonce)
            } else {
                expectErr(c.str("name"), c.str("error")) { call() }
            }
        }
    }
}

fun serverTimeCases(): List<Case> {
    val v = load("server_time.json")
    val keys = TrustedKeys.fromJwksJson(v.obj("jwks").toString())
    return v.cases("cases") { c ->
        Case("server_time: ${c.str("name")}") {
            val call = { Both.verifyServerTime(c.str("jws"), keys, c.strOrNull("expectedNonce")) }
            if (c.bool("valid")) {
                assertEquals(c.long("iat"), call().iat)
            } else {
                expectErr(c.str("name"), c.str("error")) { call() }
            }
        }
    }
}

/** The claims of the first signing case, for checks that read only part of it. */
fun sampleClaims() = VectorCase("descriptor.json signing[0] claims", load("descriptor.json").list("signing")[0].obj("claims"))

/** Exports without their own vector file, checked for shape and error mapping. */
fun smokeCases(): List<Case> = listOf(
    Case("smoke: generated signing key signs a descriptor the app verifies") {
        val key = generateSigningKey()
        val keys = TrustedKeys()
        assertEquals(key.kid(), keys.addRawWithThumbprint(key.publicKey()))
        assertTrue(keys.contains(key.kid()))
        val d = descriptorFromJson(sampleClaims())
        val jws = signDescriptor(d, key)
        val ok = Both.verifyDescriptor(jws, keys, d.nbf, VerifyOptions())
        assertEquals(key.kid(), ok.kid)
        assertEquals(d, ok.claims)
    },
    Case("smoke: verifyServerTime maps core errors") {
        val keys = TrustedKeys.fromJwksJson(load("descriptor.json").obj("jwks").toString())
        expectErr("server time", "malformed_jws") { Both.verifyServerTime("not.a.jws", keys, "n") }
        // A descriptor is not a server time.
        val jws = load("descriptor.json").list("cases")[0].str("jws")
        expectErr("server time typ", "wrong_token_type") { Both.verifyServerTime(jws, keys) }
    },
    Case("smoke: createDynamicApiKey round trip") {
        val pair = deriveDynamicKeyPair("1,2,3,4", "anna", "pw", DynamicKeyParams(64u, 1u, 1u))
        val key = createDynamicApiKey(pair, 1_700_000_000)
        assertEquals("anna", Both.verifyDynamicApiKey(key, pair.publicKey(), "1,2,3,4", 1_700_000_010, 300).login)
        expectErr("nonce length", "invalid_argument") { createDynamicApiKeyWithNonce(pair, 1, ByteArray(3)) }
    },
    Case("jni: unixTimeMs agrees with the JNA call") {
        val before = unixTimeMsJna()
        val t = unixTimeMs()
        val after = unixTimeMsJna()
        assertTrue("$before <= $t <= $after", t in before..after)
    },
    Case("jni: a TrustedKeys is the same Rust object on both paths") {
        val key = generateSigningKey()
        val keys = TrustedKeys()
        val d = descriptorFromJson(sampleClaims())
        val jws = signDescriptor(d, key)
        expectErr("no key yet", "unknown_kid") { Both.verifyDescriptor(jws, keys, d.nbf, VerifyOptions()) }
        // Added after its first JNI call: both paths see it (a handle, not a copy).
        keys.addRaw(key.kid(), key.publicKey())
        assertEquals(key.kid(), Both.verifyDescriptor(jws, keys, d.nbf, VerifyOptions()).kid)
        assertEquals(1u, keys.len())
        keys.destroy()
        try {
            verifyDescriptor(jws, keys, d.nbf, VerifyOptions())
            fail("a destroyed TrustedKeys was accepted")
        } catch (e: IllegalStateException) {
            assertEquals("TrustedKeys object has already been destroyed", e.message)
        }
        // An object without a Rust side fails as the JNA path fails.
        val e = runCatching { Both.verifyDescriptor(jws, TrustedKeys(NoHandle), d.nbf, VerifyOptions()) }.exceptionOrNull()
        assertTrue("$e", e is InternalException)
    },
    Case("jni: TrustedKeys handles across threads and collections") {
        val v = load("descriptor.json")
        val jwks = v.obj("jwks").toString()
        val c = v.list("cases").first { it.bool("valid") }
        val o = c.obj("options")
        val options = VerifyOptions(
            trustedTimeFloor = o.longOrNull("trustedTimeFloor"), clockToleranceSecs = o.longOrNull("clockToleranceSecs"),
            leewaySecs = o.longOrNull("leewaySecs"), expectedDeviceId = o.strOrNull("expectedDeviceId"),
            expectedApplicationPackage = o.strOrNull("expectedApplicationPackage"),
        )
        val shared = TrustedKeys.fromJwksJson(jwks)
        val kid = verifyDescriptor(c.str("jws"), shared, c.long("now"), options).kid
        val failures = java.util.concurrent.atomic.AtomicInteger()
        val threads = (0 until 4).map {
            Thread {
                repeat(300) { i ->
                    // A shared set, and sets used once and left to the collector.
                    val keys = if (i % 3 == 0) TrustedKeys.fromJwksJson(jwks) else shared
                    if (verifyDescriptor(c.str("jws"), keys, c.long("now"), options).kid != kid) failures.incrementAndGet()
                    if (i % 100 == 0) System.gc()
                }
            }.apply { start() }
        }
        threads.forEach { it.join() }
        System.gc()
        Thread.sleep(100)
        assertEquals(0, failures.get())
        assertEquals(kid, Both.verifyDescriptor(c.str("jws"), shared, c.long("now"), options).kid)
    },
    Case("redaction: an Activation prints without its API key") {
        val secret = "Abcdefghij0123456789!@\$SecretKey"
        val a = Activation(
            activationId = "act_1", productionNumber = "TG-7Q2M-K4PX", apiKey = secret,
            status = "pending", validFrom = "2025-01-01T00:00:00Z", validTo = null,
        )
        // What Log.d(TAG, "$activation") and friends print.
        for (shown in listOf(a.toString(), "$a", "${listOf(a)}", String.format("%s", a), "${mapOf("a" to a)}")) {
            assertFalse(shown, shown.contains(secret))
            for (part in listOf("<redacted>", "act_1", "TG-7Q2M-K4PX", "pending", "2025-01-01T00:00:00Z")) {
                assertTrue("$part in $shown", shown.contains(part))
            }
        }
        // Only printing changes: the key is there to store, and a data class still.
        assertEquals(secret, a.apiKey)
        assertEquals(a, a.copy())
        assertEquals(a.hashCode(), a.copy().hashCode())
        assertFalse(a == a.copy(apiKey = "Abcdefghij0123456789!@\$OtherKey"))
    },
    Case("redaction: a UrlToken prints without its access token") {
        val path = "/OpenApi_1,2,3,4\$R20201201134216\$\$Mysecrettoken/Products"
        // Both paths: the JNI one apps call and the generated JNA one.
        for (t in listOf(parseUrlToken(path), parseUrlTokenJna(path))) {
            assertEquals("Mysecrettoken", t.token)
            for (shown in listOf(t.toString(), "$t", "${listOf(t)}")) {
                assertFalse(shown, shown.contains("Mysecrettoken"))
                for (part in listOf("<redacted>", "OpenApi", "20201201134216", "/Products")) {
                    assertTrue("$part in $shown", shown.contains(part))
                }
            }
            assertEquals(t, t.copy())
        }
    },
    Case("jni: a string that is not UTF-16 fails as on the JNA path") {
        val e = runCatching { Both.validateApiKey("K7x!Qp2@Lm9#Vb4\uD800Nc6%Zt8^Wr1&Ys3") }.exceptionOrNull()
        assertTrue("$e", e is java.nio.charset.CharacterCodingException)
    },
)

/**
 * Every file in the vectors directory was read while the cases were built (all of them are
 * built before any runs), so that a new file cannot go unchecked in Kotlin.
 */
fun everyFileIsRead(): Case {
    val read = synchronized(loaded) { loaded.keys.toSet() }
    return Case("every vector file is read") {
        val files = vectorsDir().listFiles { f -> f.name.endsWith(".json") }?.map { it.name }?.toSet() ?: emptySet()
        assertTrue("no vector files in ${vectorsDir()}", files.isNotEmpty())
        assertEquals("vector files no Kotlin case reads", emptyList<String>(), (files - read).sorted())
    }
}

/**
 * Every top-level member of every file (a list of cases, a key set, an alphabet) was read
 * while the cases were built, but those [forPeople]: a new one cannot go unchecked in
 * Kotlin. Taken when this case is built, after all others: a member read only while a
 * case runs does not count.
 */
fun everyMemberIsRead(): Case {
    val unread = synchronized(loaded) { loaded.toMap() }.toSortedMap().flatMap { (file, members) ->
        val read = membersRead[file]?.let { synchronized(it) { it.toSet() } } ?: emptySet()
        (members - read - forPeople).sorted().map { "$file: $it" }
    }
    return Case("every top-level vector member is read") {
        assertEquals("top-level members of tests/vectors no Kotlin case reads", emptyList<String>(), unread)
    }
}

@RunWith(Parameterized::class)
class VectorsTest(private val case: Case) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun data(): List<Array<Any>> =
            (ed25519Cases() + apiKeyCases() + urlTokenCases() + activationCases() + transactionCases() +
                productCases() + descriptorCases() + receiptCases() + dynamicKeyCases() + serverTimeCases() +
                smokeCases() + everyFileIsRead() + everyMemberIsRead()).map { arrayOf<Any>(it) }
    }

    @Test
    fun vector() = case.run()
}
