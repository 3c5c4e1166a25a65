package dev.tillgate.sample

import java.io.File

/**
 * Where the app keeps its small state (registration, API key, descriptor, trusted time
 * floor; the queued sales are in the client's own file queue, see [TillApp]). Plain
 * files work on Android (`context.filesDir`) and on the JVM.
 * A production app keeps the API key in the Android Keystore (EncryptedSharedPreferences
 * or similar); the sample keeps it simple.
 */
interface KeyValueStore {
    fun get(key: String): String?
    fun put(key: String, value: String)
    fun remove(key: String)
}

/** In memory, for tests. */
class MemoryStore : KeyValueStore {
    private val map = HashMap<String, String>()
    @Synchronized override fun get(key: String) = map[key]
    @Synchronized override fun put(key: String, value: String) { map[key] = value }
    @Synchronized override fun remove(key: String) { map.remove(key) }
}

/** One file per key in [dir]; each write goes to a temporary file first, then is renamed. */
class FileStore(private val dir: File) : KeyValueStore {
    init { dir.mkdirs() }
    private fun file(key: String): File {
        require(key.matches(Regex("[A-Za-z0-9_.-]+"))) { "bad key $key" }
        return File(dir, key)
    }
    @Synchronized override fun get(key: String): String? = file(key).takeIf { it.exists() }?.readText()
    @Synchronized override fun put(key: String, value: String) {
        val tmp = File(dir, "$key.tmp")
        tmp.writeText(value)
        if (!tmp.renameTo(file(key))) {
            file(key).delete()
            check(tmp.renameTo(file(key))) { "cannot write $key" }
        }
    }
    @Synchronized override fun remove(key: String) { file(key).delete() }
}

/** The keys the app uses. */
object Keys {
    const val ACTIVATION_ID = "activation_id"
    const val PRODUCTION_NUMBER = "production_number"
    const val API_KEY = "api_key"
    const val STATUS = "status"
    const val DESCRIPTOR = "descriptor"
    const val TRUSTED_TIME_FLOOR = "trusted_time_floor"
    /**
     * A registration sent without an answer yet: its Idempotency-Key and the request
     * (one value, written before the first send), to repeat it with the same key.
     */
    const val ACTIVATION_ATTEMPT = "activation_attempt"
    /**
     * The sale whose result the cashier has not seen yet: its Idempotency-Key and the
     * basket (one value, written before the sale is submitted), to resubmit it with the
     * same key.
     */
    const val SALE_IN_PROGRESS = "sale_in_progress"
}
