#!/usr/bin/env python3
"""Measurement aid, not a binding: rewrites uniffi 0.32.2's generated Kotlin so that each
thread reuses its `UniffiRustCallStatus` structures instead of building a new JNA
`Structure` (with its own JNA `Memory`s) for every FFI call. Used only by
bench/kotlin/experiment/run.sh to measure what that uniffi template change would save;
the bindings users get, tests and scripts/bench.sh never use it.

    status-reuse.py GENERATED_KT
"""
import sys

OLD = """    var status = UniffiRustCallStatus()
    val return_value = callback(status)
    uniffiCheckCallStatus(errorHandler, status)
    return return_value
}"""

NEW = """    // A stack per thread, so that a call made from inside a callback gets its own status.
    val pool = uniffiStatusPool.get()
    val status = pool.removeLastOrNull() ?: UniffiRustCallStatus()
    status.code = UNIFFI_CALL_SUCCESS
    try {
        val return_value = callback(status)
        uniffiCheckCallStatus(errorHandler, status)
        return return_value
    } finally {
        pool.addLast(status)
    }
}

internal val uniffiStatusPool: ThreadLocal<ArrayDeque<UniffiRustCallStatus>> =
    ThreadLocal.withInitial { ArrayDeque<UniffiRustCallStatus>() }"""

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
if text.count(OLD) != 1:
    sys.exit(f"{path}: uniffiRustCallWithError is not the uniffi 0.32.2 text this patch expects")
open(path, "w", encoding="utf-8").write(text.replace(OLD, NEW))
