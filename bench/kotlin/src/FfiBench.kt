// FFI call overhead: the Kotlin binding's verifyDescriptor on a warmed-up JVM.
// Run by scripts/bench.sh; prints `ns_per_call=<median of rounds>`,
// `ns_per_call_trivial=<median>` and `ns_per_call_empty=<median>` (wall time, what
// tillgate-bench reads), then for each the same median in CPU time of the whole JVM
// (`cpu_...`: the calling thread plus the GC, JNA's cleaner and JIT threads), in CPU time
// of the calling thread alone (`thread_cpu_...`) and the share of the rounds spent in GC
// pauses (`gc_share_...`), for reading a run on a loaded machine. Then the same three
// calls through uniffi's generated JNA functions (`..._jna`), for comparison.
//
//   java ... dev.tillgate.bench.FfiBenchKt FIXTURE_DIR [ROUNDS] [MS_PER_ROUND]
//
// The three calls, as an app makes them (the public functions: JNI, bindings/ffi/kotlin):
//   ns_per_call          verifyDescriptor(jws, keys, now, options): one JNI call, the JWS,
//                        `now` and the options record in one byte array (the keys as their
//                        handle), the returned record in another
//   ns_per_call_trivial  validateApiKey(40 chars): one JNI call, a byte array each way
//   ns_per_call_empty    unixTimeMs(): one JNI call, a Long back
// and through uniffi's generated JNA code (`verifyDescriptorJna`, ...):
//   ns_per_call_jna          5 JNA calls (a buffer for the JWS, a handle clone for the keys,
//                            a buffer for the options record, the function, freeing the
//                            returned record's buffer)
//   ns_per_call_trivial_jna  3 JNA calls (argument buffer, the function, freeing the
//                            returned string's buffer)
//   ns_per_call_empty_jna    1 JNA call, no buffer (a Long back)
// and, when the library has them (cargo feature `bench-baseline` of tillgate-ffi, which
// scripts/bench.sh builds), the same Rust call in this very JVM, timed in Rust, in rounds
// alternating with the Kotlin rounds of the first two calls (Kotlin, Rust, Kotlin, ...,
// each round as long as the other):
//   ns_per_call_rust          tillgate_ffi::verify_descriptor with the arguments Kotlin's
//                             verifyDescriptor passes, lifted once, then owned copies per
//                             call as the JNI entry point gets them (RustBaseline below)
//   ns_per_call_trivial_rust  tillgate_ffi::validate_api_key of the same 40-char key
// (with cpu_, thread_cpu_ and gc_share_ lines as above). Without them, a line on stderr
// says so and tillgate-bench falls back to its own Rust figure, from its own process.
//
// Warm-up: every call runs at least WARM_CALLS times and WARM_MS before it is measured, so
// that the JIT has compiled the bindings and JNA's marshalling (C2 compiles a method after
// ~10k invocations; 300 ms of 100 µs calls is only 3k, which is what the first version of
// this benchmark measured).
package dev.tillgate.bench

import dev.tillgate.FfiConverterLong
import dev.tillgate.FfiConverterTypeVerifyOptions
import dev.tillgate.TillgateJni
import dev.tillgate.TrustedKeys
import dev.tillgate.VerifyOptions
import dev.tillgate.unixTimeMs
import dev.tillgate.unixTimeMsJna
import dev.tillgate.validateApiKey
import dev.tillgate.validateApiKeyJna
import dev.tillgate.verifyDescriptor
import dev.tillgate.verifyDescriptorJna
import java.io.File
import java.lang.management.ManagementFactory

var sink = 0L

val os = ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean
val threads = ManagementFactory.getThreadMXBean()
val gcs = ManagementFactory.getGarbageCollectorMXBeans()

class Round(val wallNs: Double, val cpuNs: Double, val threadCpuNs: Double, val gcShare: Double)

/** Runs `f` for `ms` milliseconds; per-call wall, JVM CPU and thread CPU time, GC share. */
fun round(f: () -> Boolean, ms: Long): Round {
    var ops = 0L
    var batch = 1L
    val gc0 = gcs.sumOf { it.collectionTime }
    val cpu0 = os.processCpuTime
    val thread0 = threads.currentThreadCpuTime
    val start = System.nanoTime()
    val limit = ms * 1_000_000
    while (true) {
        for (i in 0 until batch) if (f()) sink++
        ops += batch
        val el = System.nanoTime() - start
        if (el >= limit) {
            val thread = threads.currentThreadCpuTime - thread0
            val cpu = os.processCpuTime - cpu0
            val gc = (gcs.sumOf { it.collectionTime } - gc0) * 1e6
            return Round(el.toDouble() / ops, cpu.toDouble() / ops, thread.toDouble() / ops, gc / el)
        }
        batch = minOf(batch * 2, 4096)
    }
}

/**
 * The Rust baseline, in this JVM (bindings/ffi/src/jni/baseline.rs, cargo feature
 * `bench-baseline`): each function makes [calls] calls of the Rust function behind the
 * Kotlin one, with the argument bytes that Kotlin function passes (lifted once in Rust),
 * and returns the nanoseconds they took. The library is loaded by TillgateJni's
 * initialiser, which TillgateJni.handle (called before any of these) runs.
 */
object RustBaseline {
    @JvmStatic external fun verifyDescriptor(args: ByteArray, len: Int, keys: TrustedKeys, handle: Long, calls: Int): Long
    @JvmStatic external fun validateApiKey(args: ByteArray, len: Int, calls: Int): Long
}

/** Like [round], for [run]`(n)`, which makes n calls in Rust and returns their nanoseconds. */
fun rustRound(run: (Int) -> Long, ms: Long): Round {
    var ops = 0L
    var ns = 0L
    var batch = 1
    val gc0 = gcs.sumOf { it.collectionTime }
    val cpu0 = os.processCpuTime
    val thread0 = threads.currentThreadCpuTime
    val start = System.nanoTime()
    val limit = ms * 1_000_000
    while (true) {
        ns += run(batch)
        ops += batch
        val el = System.nanoTime() - start
        if (el >= limit) {
            val thread = threads.currentThreadCpuTime - thread0
            val cpu = os.processCpuTime - cpu0
            val gc = (gcs.sumOf { it.collectionTime } - gc0) * 1e6
            // Wall time per call as Rust measured it (one JNI call per batch of up to 4096
            // calls is left out).
            return Round(ns.toDouble() / ops, cpu.toDouble() / ops, thread.toDouble() / ops, gc / el)
        }
        batch = minOf(batch * 2, 4096)
    }
}

fun warmUp(f: () -> Boolean, calls: Long, ms: Long) {
    val start = System.nanoTime()
    var n = 0L
    while (n < calls || System.nanoTime() - start < ms * 1_000_000) {
        if (f()) sink++
        n++
    }
}

fun median(xs: List<Double>) = xs.sorted()[xs.size / 2]

fun report(name: String, r: List<Round>) {
    println("$name=${median(r.map { it.wallNs })}")
    println("cpu_$name=${median(r.map { it.cpuNs })}")
    println("thread_cpu_$name=${median(r.map { it.threadCpuNs })}")
    println("gc_share_$name=${median(r.map { it.gcShare })}")
}

/** Measures [f]; with [rust], also the Rust baseline as `${name}_rust`, rounds alternating. */
fun measure(
    name: String, f: () -> Boolean, rounds: Int, ms: Long, warmCalls: Long, warmMs: Long,
    rust: ((Int) -> Long)? = null,
) {
    warmUp(f, warmCalls, warmMs)
    if (rust != null) rustRound(rust, minOf(ms, warmMs))
    val kotlin = ArrayList<Round>()
    val native = ArrayList<Round>()
    repeat(rounds) {
        kotlin += round(f, ms)
        if (rust != null) native += rustRound(rust, ms)
    }
    report(name, kotlin)
    if (rust != null) report("${name}_rust", native)
}

fun main(args: Array<String>) {
    val dir = File(args[0])
    val rounds = args.getOrNull(1)?.toInt() ?: 5
    val ms = args.getOrNull(2)?.toLong() ?: 300L
    val jws = File(dir, "jws.txt").readText().trim()
    val now = File(dir, "now.txt").readText().trim().toLong()
    val keys = TrustedKeys.fromJwksJson(File(dir, "jwks.json").readText())
    val options = VerifyOptions()
    val call = { verifyDescriptor(jws, keys, now, options).kid.isNotEmpty() }
    val callJna = { verifyDescriptorJna(jws, keys, now, options).kid.isNotEmpty() }
    check(call() && callJna()) { "the fixture does not verify" }
    // A trivial call, to separate the cost of crossing the FFI from the work done.
    val key = "K7x!Qp2@Lm9#Vb4\$Nc6%Zt8^Wr1&Ys3*Hd5(Fg0)"
    val trivial = { validateApiKey(key).isNotEmpty() }
    val trivialJna = { validateApiKeyJna(key).isNotEmpty() }
    // One crossing and nothing else: the floor of any call through these bindings.
    val empty = { unixTimeMs() > 0 }
    val emptyJna = { unixTimeMsJna() > 0 }
    // The Rust baselines: the argument bytes written as verifyDescriptor and validateApiKey
    // (bindings/ffi/kotlin/dev/tillgate/Jni.kt) write them, the keys' handle as they get it.
    val handle = TillgateJni.handle(keys)
    val jwsUtf8 = TillgateJni.utf8(jws)
    val callArgs = TillgateJni.Args(
        TillgateJni.size(jwsUtf8) + FfiConverterLong.allocationSize(now) +
            FfiConverterTypeVerifyOptions.allocationSize(options),
    )
    callArgs.string(jwsUtf8)
    FfiConverterLong.write(now, callArgs.buf)
    FfiConverterTypeVerifyOptions.write(options, callArgs.buf)
    val keyUtf8 = TillgateJni.utf8(key)
    val keyArgs = TillgateJni.Args(TillgateJni.size(keyUtf8))
    keyArgs.string(keyUtf8)
    val rustCall = { n: Int -> RustBaseline.verifyDescriptor(callArgs.bytes, callArgs.len, keys, handle, n) }
    val rustTrivial = { n: Int -> RustBaseline.validateApiKey(keyArgs.bytes, keyArgs.len, n) }
    // One call each proves the baseline is there and its calls succeed (a failing call throws).
    val baseline = try {
        rustCall(1) >= 0 && rustTrivial(1) >= 0
    } catch (e: UnsatisfiedLinkError) {
        System.err.println("FfiBench: no Rust baseline in this library (cargo feature bench-baseline): ${e.message}")
        false
    }
    // A quick run (tillgate-bench --quick: 1 round of 30 ms) only proves it works.
    val quick = rounds <= 1
    fun warmCalls(n: Long) = if (quick) 100 else n
    val warmMs = if (quick) 50 else 3 * ms
    measure("ns_per_call", call, rounds, ms, warmCalls(10_000), warmMs, rustCall.takeIf { baseline })
    measure("ns_per_call_trivial", trivial, rounds, ms, warmCalls(50_000), warmMs, rustTrivial.takeIf { baseline })
    measure("ns_per_call_empty", empty, rounds, ms, warmCalls(50_000), warmMs)
    measure("ns_per_call_jna", callJna, rounds, ms, warmCalls(10_000), warmMs)
    measure("ns_per_call_trivial_jna", trivialJna, rounds, ms, warmCalls(50_000), warmMs)
    measure("ns_per_call_empty_jna", emptyJna, rounds, ms, warmCalls(50_000), warmMs)
    if (sink == -1L) println()
}
