// FFI call overhead: the uniffi Kotlin binding's verifyDescriptor on a warmed-up JVM.
// Run by scripts/bench.sh; prints `ns_per_call=<median of rounds>`.
//
//   java ... dev.tillgate.bench.FfiBenchKt FIXTURE_DIR [ROUNDS] [MS_PER_ROUND]
package dev.tillgate.bench

import dev.tillgate.TrustedKeys
import dev.tillgate.VerifyOptions
import dev.tillgate.validateApiKey
import dev.tillgate.verifyDescriptor
import java.io.File

var sink = 0L

fun nsPerOp(f: () -> Boolean, ms: Long): Double {
    var ops = 0L
    var batch = 1L
    val start = System.nanoTime()
    val limit = ms * 1_000_000
    while (true) {
        for (i in 0 until batch) if (f()) sink++
        ops += batch
        val el = System.nanoTime() - start
        if (el >= limit) return el.toDouble() / ops
        batch = minOf(batch * 2, 4096)
    }
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
    check(call()) { "the fixture does not verify" }
    nsPerOp(call, maxOf(ms * 3, 300L)) // JIT warm-up
    val samples = (0 until rounds).map { nsPerOp(call, ms) }.sorted()
    println("ns_per_call=${samples[samples.size / 2]}")
    // A trivial call, to separate the cost of crossing the FFI from the work done.
    val key = "K7x!Qp2@Lm9#Vb4\$Nc6%Zt8^Wr1&Ys3*Hd5(Fg0)"
    val trivial = { validateApiKey(key).isNotEmpty() }
    nsPerOp(trivial, maxOf(ms, 100L))
    val t = (0 until rounds).map { nsPerOp(trivial, ms) }.sorted()
    println("ns_per_call_trivial=${t[t.size / 2]}")
    if (sink == -1L) println()
}
