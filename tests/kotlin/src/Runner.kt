// Runs the JUnit 4 suites and prints an honest count; exits 1 on any failure.
package dev.tillgate.tests

import org.junit.runner.JUnitCore
import org.junit.runner.Request
import kotlin.system.exitProcess

fun main(args: Array<String>) {
    // E2eTest skips itself (counted as skipped) unless TILLGATE_URL names a server.
    val classes = mutableListOf<Class<*>>(VectorsTest::class.java, E2eTest::class.java)
    args.forEach { classes += Class.forName(it) }
    val result = JUnitCore().run(Request.classes(*classes.toTypedArray()))
    for (f in result.failures) {
        println("FAIL ${f.testHeader}: ${f.message ?: f.exception}")
    }
    val failed = result.failureCount
    val skipped = result.ignoreCount + result.assumptionFailureCount
    val passed = result.runCount - failed - result.assumptionFailureCount
    println("kotlin: $passed passed, $failed failed, $skipped skipped")
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
