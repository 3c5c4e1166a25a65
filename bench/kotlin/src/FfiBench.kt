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
//
// Warm-up: every call runs at least WARM_CALLS times and WARM_MS before it is measured, so
// that the JIT has compiled the bindings and JNA's marshalling (C2 compiles a method after
// ~10k invocations; 300 ms of 100 µs calls is only 3k, which is what the first version of
// this benchmark measured).
package dev.tillgate.bench

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

fun warmUp(f: () -> Boolean, calls: Long, ms: Long) {
    val start = System.nanoTime()
    var n = 0L
    while (n < calls || System.nanoTime() - start < ms * 1_000_000) {
        if (f()) sink++
        n++
    }
}

fun median(xs: List<Double>) = xs.sorted()[xs.size / 2]

fun measure(name: String, f: () -> Boolean, rounds: Int, ms: Long, warmCalls: Long, warmMs: Long) {
    warmUp(f, warmCalls, warmMs)
    val r = (0 until rounds).map { round(f, ms) }
    println("$name=${median(r.map { it.wallNs })}")
    println("cpu_$name=${median(r.map { it.cpuNs })}")
    println("thread_cpu_$name=${median(r.map { it.threadCpuNs })}")
    println("gc_share_$name=${median(r.map { it.gcShare })}")
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
    // A quick run (tillgate-bench --quick: 1 round of 30 ms) only proves it works.
    val quick = rounds <= 1
    fun warmCalls(n: Long) = if (quick) 100 else n
    val warmMs = if (quick) 50 else 3 * ms
    measure("ns_per_call", call, rounds, ms, warmCalls(10_000), warmMs)
    measure("ns_per_call_trivial", trivial, rounds, ms, warmCalls(50_000), warmMs)
    measure("ns_per_call_empty", empty, rounds, ms, warmCalls(50_000), warmMs)
    measure("ns_per_call_jna", callJna, rounds, ms, warmCalls(10_000), warmMs)
    measure("ns_per_call_trivial_jna", trivialJna, rounds, ms, warmCalls(50_000), warmMs)
    measure("ns_per_call_empty_jna", emptyJna, rounds, ms, warmCalls(50_000), warmMs)
    if (sink == -1L) println()
}
