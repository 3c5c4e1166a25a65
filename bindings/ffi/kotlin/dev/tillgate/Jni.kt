// Hand-written part of the Kotlin binding, compiled together with the uniffi-generated
// tillgate_ffi.kt (same package, same module): the synchronous, pure functions an app
// calls often, called through JNI instead of uniffi's JNA path. Why, and what it costs:
// bindings/README.md, "Kotlin call cost". The Rust side is bindings/ffi/src/jni.rs.
//
// One behaviour: the functions below have the names, parameters, defaults and results of
// the uniffi exports (whose generated JNA versions are renamed `...Jna` in
// bindings/ffi/uniffi.toml, Kotlin only). Arguments are written and results read with
// the generated converters (FfiConverter*; a top-level string argument's UTF-8 bytes
// through a faster encoder, see TillgateJni.utf8), so strings, records, options and lists
// take uniffi's own serialised form both ways, and a failure is the very same
// TillgateException.Failed (code, reason, fields, position, character, index) or, for a
// Rust panic, InternalException. On the Rust side each entry point calls the same function
// its uniffi export calls. No logic here.
package dev.tillgate

import java.nio.ByteBuffer

/**
 * The JNI entry points of `libtillgate_ffi` (bindings/ffi/src/jni.rs): the arguments in
 * one byte array (uniffi's serialised form, [len] bytes used) and the answer in another
 * (a tag byte, then the value, the error, or a panic message).
 *
 * @suppress
 */
internal object TillgateJni {
    const val OK: Byte = 0
    const val ERROR: Byte = 1

    init {
        // The generated bindings' own checks first (contract version, API checksums):
        // a library that does not match these bindings fails here as it does there.
        uniffiEnsureInitialized()
        // Then the very library file JNA found (jna.library.path, the
        // uniffi.component.tillgate_ffi.libraryOverride property, the class path); on
        // Android, where JNA reports no path, the app's own native library directory.
        val name = System.getProperty("uniffi.component.tillgate_ffi.libraryOverride") ?: "tillgate_ffi"
        val file = try {
            com.sun.jna.NativeLibrary.getInstance(name).file
        } catch (e: Throwable) {
            null
        }
        if (file != null && file.isAbsolute && file.isFile) System.load(file.path) else System.loadLibrary(name)
    }

    @JvmStatic external fun verifyEd25519(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun verifyDescriptor(args: ByteArray, len: Int, keys: TrustedKeys, handle: Long): ByteArray
    @JvmStatic external fun validateApiKey(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun parseUrlToken(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun encodeUrlToken(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun validateActivationRequest(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun verifyDynamicApiKey(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun validateTransaction(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun transactionHash(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun transactionCanonicalJson(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun transactionFromJson(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun validateProduct(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun productFromJson(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun productToJson(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun verifyReceiptChain(args: ByteArray, len: Int, keys: TrustedKeys, handle: Long): ByteArray
    @JvmStatic external fun verifyReceiptChainWitnessed(args: ByteArray, len: Int, keys: TrustedKeys, handle: Long): ByteArray
    @JvmStatic external fun advancesWitness(args: ByteArray, len: Int, keys: TrustedKeys, handle: Long): ByteArray
    @JvmStatic external fun receiptLink(args: ByteArray, len: Int): ByteArray
    @JvmStatic external fun verifyServerTime(args: ByteArray, len: Int, keys: TrustedKeys, handle: Long): ByteArray
    @JvmStatic external fun unixTimeMs(): Long

    // ---- TrustedKeys handles ----------------------------------------------------------
    //
    // A TrustedKeys crosses JNI as its uniffi handle. The generated class keeps its handle
    // to itself and hands out clones only through JNA (one JNA call each, what this path
    // avoids), so the JNI path takes one clone per TrustedKeys object, the first time the
    // object is used here, through the generated callWithHandle (uniffi's clone, guarded
    // against a concurrent destroy()), and keeps it while the object is reachable: uniffi's
    // cleaner frees it with uniffi's own free function once the object is collected. Each
    // call passes that handle together with the object itself, which keeps the object
    // reachable until the call returns; Rust clones the handle and lifts the clone, as the
    // uniffi scaffolding lifts an object argument. A destroyed object is refused as
    // callWithHandle refuses it; its Rust side lives on until the object is collected.

    private class Free(private val handle: Long) : Runnable {
        override fun run() {
            UniffiLib.uniffi_tillgate_ffi_fn_free_trustedkeys(handle, UniffiRustCallStatus())
        }
    }

    // The handle the JNI path owns, per object; an entry goes when its object is collected.
    private val owned = java.util.WeakHashMap<TrustedKeys, Long>()

    fun handle(keys: TrustedKeys): Long {
        if (keys.uniffiIsDestroyed) {
            throw IllegalStateException("${keys.javaClass.simpleName} object has already been destroyed")
        }
        synchronized(owned) {
            owned[keys]?.let { return it }
            val handle = keys.callWithHandle { it }
            UniffiLib.CLEANER.register(keys, Free(handle))
            owned[keys] = handle
            return handle
        }
    }

    // ---- arguments and answers --------------------------------------------------------

    /** A byte array for arguments of at most [size] bytes (the converters' allocationSize). */
    class Args(size: ULong) {
        val bytes = ByteArray(size.toInt())
        // Big-endian, uniffi's serialised form (ByteBuffer's default order).
        val buf: ByteBuffer = ByteBuffer.wrap(bytes)
        val len: Int get() = buf.position()

        /** A string argument from [utf8], as FfiConverterString.write writes it. */
        fun string(utf8: ByteArray) {
            buf.putInt(utf8.size)
            buf.put(utf8)
        }

        /** A list of strings from [utf8], as FfiConverterSequenceString.write writes it. */
        fun strings(utf8: List<ByteArray>) {
            buf.putInt(utf8.size)
            utf8.forEach { string(it) }
        }
    }

    /**
     * A string in UTF-8, the bytes FfiConverterString.write writes. Its encoder (which
     * refuses a lone surrogate) takes 2 µs for a 700-character JWS; String.toByteArray takes
     * a fraction of that and gives the same bytes for any string without surrogates. A
     * string with one goes through the converter's own encoding, so a lone surrogate fails
     * with the same exception as on the JNA path.
     */
    fun utf8(s: String): ByteArray {
        for (c in s) {
            if (Character.isSurrogate(c)) {
                val encoded = FfiConverterString.toUtf8(s)
                return ByteArray(encoded.remaining()).also { encoded.get(it) }
            }
        }
        return s.toByteArray(Charsets.UTF_8)
    }

    /** The size [Args.string] writes. */
    fun size(utf8: ByteArray): ULong = 4UL + utf8.size.toULong()

    /** Reads an answer: the value, or throws what the JNA path throws. */
    inline fun <T> answer(bytes: ByteArray, read: (ByteBuffer) -> T): T {
        val buf = ByteBuffer.wrap(bytes)
        when (buf.get()) {
            OK -> {
                val value = read(buf)
                if (buf.hasRemaining()) {
                    throw RuntimeException("junk remaining in buffer after lifting, something is very wrong!!")
                }
                return value
            }
            ERROR -> throw FfiConverterTypeTillgateError.read(buf)
            else -> throw InternalException(
                if (bytes.size > 1) String(bytes, 1, bytes.size - 1, Charsets.UTF_8) else "Rust panic",
            )
        }
    }
}

/**
 * Verifies an Ed25519 signature strictly (RFC 8032 with `verify_strict` rules).
 * Fails with `invalid_public_key_length`, `invalid_signature_length`,
 * `weak_public_key` or `bad_signature`.
 */
@Throws(TillgateException::class)
fun verifyEd25519(publicKey: ByteArray, message: ByteArray, signature: ByteArray) {
    val a = TillgateJni.Args(
        FfiConverterByteArray.allocationSize(publicKey) + FfiConverterByteArray.allocationSize(message) +
            FfiConverterByteArray.allocationSize(signature),
    )
    FfiConverterByteArray.write(publicKey, a.buf)
    FfiConverterByteArray.write(message, a.buf)
    FfiConverterByteArray.write(signature, a.buf)
    TillgateJni.answer(TillgateJni.verifyEd25519(a.bytes, a.len)) { }
}

/**
 * Verifies a signed ActivationDescriptor offline; `now` is Unix seconds.
 *
 * Fails with `malformed_jws`, `unsupported_algorithm`, `wrong_token_type`,
 * `unknown_kid`, `bad_signature`, `clock_rolled_back`, `not_yet_valid`, `expired`,
 * `device_mismatch` or `application_package_mismatch`.
 */
@Throws(TillgateException::class)
fun verifyDescriptor(jws: String, trustedKeys: TrustedKeys, now: Long, options: VerifyOptions): VerifiedDescriptor {
    val handle = TillgateJni.handle(trustedKeys)
    val jwsUtf8 = TillgateJni.utf8(jws)
    val a = TillgateJni.Args(
        TillgateJni.size(jwsUtf8) + FfiConverterLong.allocationSize(now) +
            FfiConverterTypeVerifyOptions.allocationSize(options),
    )
    a.string(jwsUtf8)
    FfiConverterLong.write(now, a.buf)
    FfiConverterTypeVerifyOptions.write(options, a.buf)
    return TillgateJni.answer(TillgateJni.verifyDescriptor(a.bytes, a.len, trustedKeys, handle)) {
        FfiConverterTypeVerifiedDescriptor.read(it)
    }
}

/**
 * Validates an API key (Fieldpine charset, 20–256 characters) and returns it.
 * Character errors carry `position` and `character`.
 */
@Throws(TillgateException::class)
fun validateApiKey(key: String): String {
    val keyUtf8 = TillgateJni.utf8(key)
    val a = TillgateJni.Args(TillgateJni.size(keyUtf8))
    a.string(keyUtf8)
    return TillgateJni.answer(TillgateJni.validateApiKey(a.bytes, a.len)) { FfiConverterString.read(it) }
}

/**
 * Parses a URL path whose first segment is a Fieldpine access-token segment. Errors
 * carry the byte `position`.
 */
@Throws(TillgateException::class)
fun parseUrlToken(path: String): UrlToken {
    val pathUtf8 = TillgateJni.utf8(path)
    val a = TillgateJni.Args(TillgateJni.size(pathUtf8))
    a.string(pathUtf8)
    return TillgateJni.answer(TillgateJni.parseUrlToken(a.bytes, a.len)) { FfiConverterTypeUrlToken.read(it) }
}

/**
 * Builds the path for a token; `#`, `%` and `^` are percent-encoded.
 */
@Throws(TillgateException::class)
fun encodeUrlToken(token: UrlToken): String {
    val a = TillgateJni.Args(FfiConverterTypeUrlToken.allocationSize(token))
    FfiConverterTypeUrlToken.write(token, a.buf)
    return TillgateJni.answer(TillgateJni.encodeUrlToken(a.bytes, a.len)) { FfiConverterString.read(it) }
}

/**
 * Validates an activation request; every failing field is listed in the error's
 * `fields` (`invalid_activation_request`).
 */
@Throws(TillgateException::class)
fun validateActivationRequest(request: ActivationRequest, corporateIdRule: CorporateIdRule): ValidActivationRequest {
    val a = TillgateJni.Args(
        FfiConverterTypeActivationRequest.allocationSize(request) +
            FfiConverterTypeCorporateIdRule.allocationSize(corporateIdRule),
    )
    FfiConverterTypeActivationRequest.write(request, a.buf)
    FfiConverterTypeCorporateIdRule.write(corporateIdRule, a.buf)
    return TillgateJni.answer(TillgateJni.validateActivationRequest(a.bytes, a.len)) {
        FfiConverterTypeValidActivationRequest.read(it)
    }
}

/**
 * Parses and verifies a dynamic API key against the login's public key, accepting it
 * `window_secs` either side of `now`.
 */
@Throws(TillgateException::class)
fun verifyDynamicApiKey(key: String, publicKey: ByteArray, system: String, now: Long, windowSecs: Long): DynamicKeyClaims {
    val keyUtf8 = TillgateJni.utf8(key)
    val systemUtf8 = TillgateJni.utf8(system)
    val a = TillgateJni.Args(
        TillgateJni.size(keyUtf8) + FfiConverterByteArray.allocationSize(publicKey) +
            TillgateJni.size(systemUtf8) + FfiConverterLong.allocationSize(now) +
            FfiConverterLong.allocationSize(windowSecs),
    )
    a.string(keyUtf8)
    FfiConverterByteArray.write(publicKey, a.buf)
    a.string(systemUtf8)
    FfiConverterLong.write(now, a.buf)
    FfiConverterLong.write(windowSecs, a.buf)
    return TillgateJni.answer(TillgateJni.verifyDynamicApiKey(a.bytes, a.len)) {
        FfiConverterTypeDynamicKeyClaims.read(it)
    }
}

/**
 * Checks a transaction; every problem is listed in the error's `fields`
 * (`invalid_transaction`).
 */
@Throws(TillgateException::class)
fun validateTransaction(transaction: Transaction) {
    val a = TillgateJni.Args(FfiConverterTypeTransaction.allocationSize(transaction))
    FfiConverterTypeTransaction.write(transaction, a.buf)
    TillgateJni.answer(TillgateJni.validateTransaction(a.bytes, a.len)) { }
}

/**
 * The `txh` receipt claim: base64url SHA-256 of the canonical JSON.
 */
fun transactionHash(transaction: Transaction): String {
    val a = TillgateJni.Args(FfiConverterTypeTransaction.allocationSize(transaction))
    FfiConverterTypeTransaction.write(transaction, a.buf)
    return TillgateJni.answer(TillgateJni.transactionHash(a.bytes, a.len)) { FfiConverterString.read(it) }
}

/**
 * The canonical (RFC 8785 JCS) JSON text of a transaction.
 */
fun transactionCanonicalJson(transaction: Transaction): String {
    val a = TillgateJni.Args(FfiConverterTypeTransaction.allocationSize(transaction))
    FfiConverterTypeTransaction.write(transaction, a.buf)
    return TillgateJni.answer(TillgateJni.transactionCanonicalJson(a.bytes, a.len)) { FfiConverterString.read(it) }
}

/**
 * Reads a transaction from its wire JSON (`invalid_argument` if it does not fit:
 * unknown members, floats, unknown `type`).
 */
@Throws(TillgateException::class)
fun transactionFromJson(json: String): Transaction {
    val jsonUtf8 = TillgateJni.utf8(json)
    val a = TillgateJni.Args(TillgateJni.size(jsonUtf8))
    a.string(jsonUtf8)
    return TillgateJni.answer(TillgateJni.transactionFromJson(a.bytes, a.len)) {
        FfiConverterTypeTransaction.read(it)
    }
}

/**
 * Checks a product and its `id` as `PUT /products/{id}` takes them; every failing field
 * is listed in the error's `fields` (`invalid_product`), in the order id, currency,
 * name, price, vatRate, barcode. `updated_at` is the server's and is not checked.
 */
@Throws(TillgateException::class)
fun validateProduct(product: Product) {
    val a = TillgateJni.Args(FfiConverterTypeProduct.allocationSize(product))
    FfiConverterTypeProduct.write(product, a.buf)
    TillgateJni.answer(TillgateJni.validateProduct(a.bytes, a.len)) { }
}

/**
 * Reads a product from the JSON body of `PUT /products/{id}` and the `id` of its path
 * (`invalid_argument` if the body does not fit: unknown members, a missing one, a
 * fraction or a string for a number). `active` is true when the body leaves it out.
 */
@Throws(TillgateException::class)
fun productFromJson(id: String, json: String): Product {
    val idUtf8 = TillgateJni.utf8(id)
    val jsonUtf8 = TillgateJni.utf8(json)
    val a = TillgateJni.Args(TillgateJni.size(idUtf8) + TillgateJni.size(jsonUtf8))
    a.string(idUtf8)
    a.string(jsonUtf8)
    return TillgateJni.answer(TillgateJni.productFromJson(a.bytes, a.len)) { FfiConverterTypeProduct.read(it) }
}

/**
 * The JSON body of `PUT /products/{id}` for a product: `name`, `price`, `currency`,
 * `vatRate`, `barcode` (left out when absent), `active`, in that order. The `id`
 * travels in the path and `updated_at` is the server's, so neither is in it.
 */
fun productToJson(product: Product): String {
    val a = TillgateJni.Args(FfiConverterTypeProduct.allocationSize(product))
    FfiConverterTypeProduct.write(product, a.buf)
    return TillgateJni.answer(TillgateJni.productToJson(a.bytes, a.len)) { FfiConverterString.read(it) }
}

/**
 * Verifies a run of signed receipts of one register: signatures, `prev` links,
 * gapless `seq`, one register. Without `previous` the run must start at `seq` 1; with
 * it (a receipt already trusted) the run must continue it. Errors carry `index`.
 */
@Throws(TillgateException::class)
fun verifyReceiptChain(receipts: List<String>, trustedKeys: TrustedKeys, previous: String? = null): List<ReceiptClaims> {
    val handle = TillgateJni.handle(trustedKeys)
    val receiptsUtf8 = receipts.map { TillgateJni.utf8(it) }
    val a = TillgateJni.Args(
        4UL + receiptsUtf8.sumOf { TillgateJni.size(it) } + FfiConverterOptionalString.allocationSize(previous),
    )
    a.strings(receiptsUtf8)
    FfiConverterOptionalString.write(previous, a.buf)
    return TillgateJni.answer(TillgateJni.verifyReceiptChain(a.bytes, a.len, trustedKeys, handle)) {
        FfiConverterSequenceTypeReceiptClaims.read(it)
    }
}

/**
 * Verifies a register's whole chain, from `seq` 1, against `witness`: a receipt the
 * register kept when the server returned it. The chain must reach the witness's `seq`
 * and hold the witness there byte for byte (`witness_mismatch` if not: the history was
 * changed or cut back after the register saw it); a witness that does not verify
 * itself is `invalid_witness`. Chain errors carry `index` as above.
 */
@Throws(TillgateException::class)
fun verifyReceiptChainWitnessed(receipts: List<String>, trustedKeys: TrustedKeys, witness: String): List<ReceiptClaims> {
    val handle = TillgateJni.handle(trustedKeys)
    val receiptsUtf8 = receipts.map { TillgateJni.utf8(it) }
    val witnessUtf8 = TillgateJni.utf8(witness)
    val a = TillgateJni.Args(
        4UL + receiptsUtf8.sumOf { TillgateJni.size(it) } + TillgateJni.size(witnessUtf8),
    )
    a.strings(receiptsUtf8)
    a.string(witnessUtf8)
    return TillgateJni.answer(TillgateJni.verifyReceiptChainWitnessed(a.bytes, a.len, trustedKeys, handle)) {
        FfiConverterSequenceTypeReceiptClaims.read(it)
    }
}

/**
 * Whether to keep `received`, a receipt the server has just given the register, as its
 * witness instead of `current`: `true` if it verifies and comes later (or there is no
 * witness yet), `false` if it is `current` or earlier. `witness_mismatch` if it has
 * `current`'s sequence but other bytes, or directly follows it without linking to it
 * (the server forked the chain); `invalid_receipt` if it does not verify,
 * `receipt_chain_broken` if it is another register's, `invalid_witness` if `current`
 * does not verify.
 */
@Throws(TillgateException::class)
fun advancesWitness(current: String?, received: String, trustedKeys: TrustedKeys): Boolean {
    val handle = TillgateJni.handle(trustedKeys)
    val receivedUtf8 = TillgateJni.utf8(received)
    val a = TillgateJni.Args(FfiConverterOptionalString.allocationSize(current) + TillgateJni.size(receivedUtf8))
    FfiConverterOptionalString.write(current, a.buf)
    a.string(receivedUtf8)
    return TillgateJni.answer(TillgateJni.advancesWitness(a.bytes, a.len, trustedKeys, handle)) {
        FfiConverterBoolean.read(it)
    }
}

/**
 * The `prev` value that links to a receipt: base64url SHA-256 of the compact JWS.
 */
fun receiptLink(receipt: String): String {
    val receiptUtf8 = TillgateJni.utf8(receipt)
    val a = TillgateJni.Args(TillgateJni.size(receiptUtf8))
    a.string(receiptUtf8)
    return TillgateJni.answer(TillgateJni.receiptLink(a.bytes, a.len)) { FfiConverterString.read(it) }
}

/**
 * Verifies a server-signed timestamp; with `expected_nonce`, it must echo it
 * (`nonce_mismatch`). Its `iat` is then a trusted time floor.
 */
@Throws(TillgateException::class)
fun verifyServerTime(jws: String, trustedKeys: TrustedKeys, expectedNonce: String? = null): ServerTimeClaims {
    val handle = TillgateJni.handle(trustedKeys)
    val jwsUtf8 = TillgateJni.utf8(jws)
    val a = TillgateJni.Args(TillgateJni.size(jwsUtf8) + FfiConverterOptionalString.allocationSize(expectedNonce))
    a.string(jwsUtf8)
    FfiConverterOptionalString.write(expectedNonce, a.buf)
    return TillgateJni.answer(TillgateJni.verifyServerTime(a.bytes, a.len, trustedKeys, handle)) {
        FfiConverterTypeServerTimeClaims.read(it)
    }
}

/**
 * The device's clock as Unix milliseconds (for the `now_ms` arguments).
 */
fun unixTimeMs(): Long = TillgateJni.unixTimeMs()
