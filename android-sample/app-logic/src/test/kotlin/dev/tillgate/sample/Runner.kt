package dev.tillgate.sample

import org.junit.runner.JUnitCore
import kotlin.system.exitProcess

/** Runs every JVM test of the sample's logic and prints honest counts. */
fun main() {
    val result = JUnitCore.runClasses(
        StartupGuardTest::class.java,
        ActivationScreenTest::class.java,
        TillAppTest::class.java,
        RealServerTest::class.java,
    )
    result.failures.forEach { f ->
        println("FAIL  ${f.description.displayName}: ${f.message}")
        println(f.trace.lines().take(12).joinToString("\n") { "      $it" })
    }
    val failed = result.failureCount
    val skipped = result.assumptionFailureCount + result.ignoreCount
    val passed = result.runCount - failed - result.assumptionFailureCount
    println("android-sample: $passed passed, $failed failed, $skipped skipped")
    exitProcess(if (failed == 0) 0 else 1)
}
